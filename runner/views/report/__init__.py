"""views.report: The contact sheet: one HTML page with every take of a manifest.

``write_report(manifest, records)`` gathers (:mod:`.view`), renders (:mod:`.render`) and writes
``<output_dir>/report.html`` atomically, with poster frames under
``<output_dir>/.shotrun/posters/`` (the page refers to them, so it works where it is). With
``standalone`` it writes ``report-standalone.html`` with the posters inlined: it can be moved
or mailed, with the video folders beside it to play them. ``write_trace_csv`` writes the
per-take trace records (the same fields as ``shotrun status --json``) for spreadsheets.

The page carries a digest of what it shows (:func:`page_state`: the manifest and the store's
:meth:`~runner.state.StateStore.stamp`). Making the page costs seconds for 20,000 takes
(a stat, a poster and a tile each), so the end of a run that changed nothing leaves a page
with the same digest alone (:func:`is_current`); ``shotrun report`` always writes it. Both
write it from an open store through :func:`report_from_store`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from runner import __version__
from runner.core.model import Manifest
from runner.core.words import count
from runner.state.continuity import chosen_takes
from runner.state.notes import Note
from runner.state.records import TakeRecord
from runner.views.report.pictures import write_atomic
from runner.views.report.render import render_html, state_of_page
from runner.views.report.view import ReportData, Totals, collect

if TYPE_CHECKING:
    from runner.state import Store

log = structlog.get_logger()

REPORT_NAME = "report.html"
STANDALONE_NAME = "report-standalone.html"  # posters inlined: can be moved or mailed

__all__ = [
    "REPORT_NAME",
    "STANDALONE_NAME",
    "ReportData",
    "WrittenReport",
    "collect",
    "is_current",
    "page_state",
    "render_html",
    "report_from_store",
    "report_path",
    "write_report",
]


@dataclass(frozen=True, slots=True)
class WrittenReport:
    """Where the report went and the figures at its top (for the command's one-line answer)."""

    path: Path
    totals: Totals | None  # None: the page already showed this state and was left alone

    def describe(self) -> str:
        """``12 takes: 9 done, 2 failed, 1 new``."""
        if self.totals is None:
            return "the same takes as before (unchanged)"
        counts = ", ".join(f"{n} {status.replace('_', ' ')}"
                           for status, n in sorted(self.totals.by_status.items()))
        return count(self.totals.takes, "take") + (f": {counts}" if counts else "")


def report_path(manifest: Manifest, *, standalone: bool = False) -> Path:
    """Where the report of ``manifest`` is written (the stand-alone page beside it)."""
    return manifest.output_dir / (STANDALONE_NAME if standalone else REPORT_NAME)


# Bump when the page changes shape, so that pages made by an older shotrun are remade.
PAGE_FORMAT = 1
_HEAD_BYTES = 4096  # the state digest is in the page's first few hundred bytes


def page_state(manifest: Manifest, store_stamp: str) -> str:
    """A digest of everything the page shows: the manifest and the store's state.

    The manifest's text covers titles, prompts, tags and file names; the takes' fingerprints
    cover the content of its local files; ``store_stamp`` (:meth:`StateStore.stamp`) the
    records and picks. What it does not see: an output deleted by hand since (the store says
    the take is done; ``shotrun report`` rewrites the page).
    """
    digest = hashlib.sha256(f"{PAGE_FORMAT}\0{__version__}\0{manifest.path}\0"
                            f"{manifest.output_dir}\0{store_stamp}\0".encode())
    try:
        digest.update(manifest.path.read_bytes())
    except OSError:
        digest.update(b"\0unreadable")
    digest.update("".join(f"{take.key}\0{take.fingerprint}\0" for take in manifest.takes)
                  .encode())
    return digest.hexdigest()[:32]


def is_current(manifest: Manifest, state: str, path: Path | None = None) -> bool:
    """True when the page at ``path`` (default: the manifest's) was written for ``state``."""
    target = path or report_path(manifest)
    try:
        with target.open("rb") as handle:
            head = handle.read(_HEAD_BYTES).decode("utf-8", "replace")
    except OSError:
        return False
    return state_of_page(head) == state


def write_report(
    manifest: Manifest, records: Iterable[TakeRecord], *, path: Path | None = None,
    chosen: Mapping[str, tuple[int, bool]] | None = None, state: str = "",
    notes: Mapping[str, Note] | None = None, standalone: bool = False,
) -> WrittenReport:
    """Write the report of ``manifest`` (at ``path``, default ``<output_dir>/report.html``);
    ``chosen`` (shot id -> chosen take, picked or not) marks the chosen tiles; ``state``
    (:func:`page_state`) is written into the page for :func:`is_current`; ``notes`` (the
    store's) are shown on their takes. ``standalone`` inlines the posters (default path
    ``<output_dir>/report-standalone.html``): the page no longer needs ``.shotrun/``."""
    target = path or report_path(manifest, standalone=standalone)
    data = collect(manifest, records, chosen=chosen, page_dir=target.parent, notes=notes,
                   standalone=standalone)
    if state:
        data = replace(data, state=state)
    write_atomic(target, render_html(data).encode("utf-8"))
    totals = data.totals()
    log.info("report_written", path=str(target), shots=len(data.shots), takes=totals.takes)
    return WrittenReport(target, totals)


def report_from_store(manifest: Manifest, store: Store, *,
                      force: bool = False, standalone: bool = False) -> WrittenReport:
    """Write ``report.html`` from an open store (``shotrun report``, and the end of a run).

    Without ``force`` (the end of a run), a page that already shows this manifest and this
    state of the store is left as it is: a run that had nothing to do does not spend seconds
    remaking a 20,000-take page identical but for its "generated" time. ``standalone``:
    the page with posters inlined (``report --standalone``).
    """
    state = page_state(manifest, store.stamp())  # before reading: a later change shows
    if not force and is_current(manifest, state):
        return WrittenReport(report_path(manifest), None)
    records = store.records()
    fingerprints = {take.key: take.fingerprint for take in manifest.takes}
    return write_report(manifest, records, state=state, notes=store.notes(),
                        chosen=chosen_takes(records, store.picks(), fingerprints),
                        standalone=standalone)
