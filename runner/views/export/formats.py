"""The edit lists an export can write, which package writes each, and the CSV of them.

- ``otio``: ``edit.otio``, OpenTimelineIO's own; OTIO-aware tools (Resolve 18+, Hiero, RV);
- ``edl``: ``edit.edl``, CMX 3600 by ``otio-cmx3600-adapter``; every NLE;
- ``fcpxml``: ``edit.xml``, Final Cut Pro 7 XML by ``otio-fcp-adapter``; Premiere Pro,
  DaVinci Resolve, Final Cut Pro 7;
- ``csv``: ``edit.csv``, by shotrun; spreadsheets and scripts.

``fcpxml`` is Final Cut Pro 7's XML (``xmeml``), the one Premiere and Resolve import; not
Final Cut Pro X's ``.fcpxml``. Without ``--format`` every format whose adapter is installed is
written (the adapters are shotrun's own dependencies, so normally all of them). A format asked
for by name whose adapter is missing is refused before anything is written, with the pip
package to install.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from runner.views.export.chosen import Clip
from runner.views.export.select import ExportError
from runner.views.export.timeline import Timeline, clip_places, installed_adapters, timecode


@dataclass(frozen=True, slots=True)
class Format:
    """One kind of edit list."""

    name: str  # as ``--format`` says it
    file: str  # its name in the export folder
    adapter: str | None  # the OTIO adapter that writes it (None: shotrun writes it)
    package: str  # the pip package that brings the adapter


FORMATS = (
    Format("otio", "edit.otio", "otio_json", "opentimelineio"),
    Format("edl", "edit.edl", "cmx_3600", "otio-cmx3600-adapter"),
    Format("fcpxml", "edit.xml", "fcp_xml", "otio-fcp-adapter"),
    Format("csv", "edit.csv", None, "shotrun"),
)
BY_NAME = {fmt.name: fmt for fmt in FORMATS}
ALWAYS = ("otio", "edl", "csv")  # written by default, installed or not (then: an error)


def _installed(fmt: Format, adapters: frozenset[str]) -> bool:
    return fmt.adapter is None or fmt.adapter in adapters


def _not_installed(fmt: Format) -> ExportError:
    return ExportError(f"--format {fmt.name}: the OpenTimelineIO adapter {fmt.adapter} is not "
                       f"installed; install it with `pip install {fmt.package}`")


def choose_formats(text: str | None) -> tuple[Format, ...]:
    """The formats ``--format TEXT`` names (comma-separated, in table order), or by default
    every one that is installed; ExportError for an unknown or uninstalled one."""
    adapters = installed_adapters()
    if text is None:
        chosen = [fmt for fmt in FORMATS
                  if fmt.name in ALWAYS or _installed(fmt, adapters)]
    else:
        names = [part.strip().lower() for part in text.split(",") if part.strip()]
        unknown = [name for name in names if name not in BY_NAME]
        if unknown or not names:
            what = f"unknown format {unknown[0]!r}" if unknown else "no format named"
            raise ExportError(f"--format: {what}; choose from "
                              f"{', '.join(fmt.name for fmt in FORMATS)} (comma-separated)")
        chosen = [fmt for fmt in FORMATS if fmt.name in names]
    for fmt in chosen:
        if not _installed(fmt, adapters):
            raise _not_installed(fmt)
    return tuple(chosen)


CSV_COLUMNS = ("index", "shot_id", "take", "file", "frames", "seconds", "record_in",
               "record_out", "picked", "sha256", "fps", "task_id", "credits", "fingerprint")


def edit_csv(clips: Sequence[Clip], timeline: Timeline) -> str:
    """The edit list as CSV: one row per clip, placed as on the timeline (gaps included).

    ``frames`` and the record timecodes are in the timeline's rate, ``fps`` is the clip's own.
    """
    rate = timeline.global_start_time.rate
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for clip, (_name, first, last) in zip(clips, clip_places(timeline), strict=True):
        chosen, record = clip.chosen, clip.chosen.record
        writer.writerow([
            chosen.index, chosen.shot_id, record.take, chosen.name, last - first,
            f"{(last - first) / rate:.3f}", timecode(first, rate), timecode(last, rate),
            "yes" if chosen.picked else "no", record.sha256, f"{clip.rate:g}",
            record.task_id or "", "" if record.credits is None else f"{record.credits:g}",
            record.fingerprint,
        ])
    return out.getvalue()
