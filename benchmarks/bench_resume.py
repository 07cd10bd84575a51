"""Resume cost: with every take already done, ``shotrun run`` and ``shotrun status`` are instant.

Both look at every done take's file on disk (a ``stat`` each: size and modification time; a
hash only for a file touched since it was verified), so the figure includes that check.

A user re-runs a finished 20,000-take manifest to check that nothing is left, or asks for
its status, many times a day; both must answer in well under the time it takes to notice.
The store is built through the store's own API (sync, then submitting -> submitted -> done
per take, with a tiny real output file each); only its durability is relaxed while building
(``PRAGMA synchronous=OFF``) so that building takes seconds, not minutes. Then report.html is
written the way the end of the run that finished those takes writes it. The timed commands
are child processes, timed from spawn to exit (interpreter start and imports included: that
is what the user waits for).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row
from runner.core.bulk import mark_command_process
from runner.emulator.video import plain_spec, render
from runner.manifest import load_manifest
from runner.state import StateStore, store_path_for
from runner.state.outputs import output_path
from runner.views.report import report_from_store
from runner.wire.payload import build_payload, fingerprint_resolver

# Today's figures for 20,000 takes before every run and status looked at each done take's
# file (issue 21: "done means on disk"), on the same 2-core machine: printed beside the new.
BEFORE_RUN, BEFORE_STATUS = 0.63, 0.40
TAKES_PER_SHOT = 4  # 20,000 takes = 5,000 shots (bench_manifest times shot lists alone)
CLIP_SIZE = (64, 36)  # a real (tiny) 3 s clip: the report makes a real poster of it


def build_done_store(manifest_path: Path) -> None:
    """Record every take of the manifest as done, with its output file in place, and
    write the report as the run that finished them would have (its manifest cache too)."""
    mark_command_process()  # this process plays that run: it loads through the cache
    try:
        manifest = load_manifest(manifest_path)
    finally:
        mark_command_process(False)
    takes = list(manifest.takes)
    wire = manifest.api.wire
    payloads = {t.key: build_payload(t.request, fingerprint_resolver, wire) for t in takes}
    clip = render(plain_spec(*CLIP_SIZE, [3], False))
    digest = hashlib.sha256(clip).hexdigest()
    original = manifest.output_dir / ".shotrun" / "clip.mp4"
    original.parent.mkdir(parents=True, exist_ok=True)
    original.write_bytes(clip)
    with StateStore.open(store_path_for(manifest)) as store:
        store.conn.execute("PRAGMA synchronous=OFF")  # building a fixture: speed over safety
        store.sync(takes, payloads)
        for n, take in enumerate(takes):
            dest = output_path(manifest.output_dir, take)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(original, dest)  # 20,000 outputs, one clip's worth of disk
            store.mark_submitting(take.key, payloads[take.key], 24.3)
            store.mark_submitted(take.key, f"task-bench-{n}", 24.3, 5.0)
            store.mark_done(take.key, dest, len(clip), digest, 3.0)
        report_from_store(manifest, store)  # as the end of the finishing run does


async def _time(command: str, manifest: Path, *extra: str) -> _emu.ChildRun:
    result = await _emu.shotrun(command, manifest, *extra)
    if result.code != 0:
        raise RuntimeError(f"shotrun {command} exited {result.code}: {result.stderr[-2000:]}")
    return result


def run(quick: bool) -> list[dict[str, Any]]:
    """Seconds for ``run`` with nothing to do and for ``status``, on a store of done takes."""
    _emu.quiet_logs()
    takes = 2_000 if quick else 20_000
    shots = takes // TAKES_PER_SHOT
    with tempfile.TemporaryDirectory() as tmp:
        # The manifest cache of this fixture (and of its timed runs) stays in it; building
        # the fixture fills it, as the shotrun run that finished the takes did.
        saved = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        try:
            manifest = _emu.write_manifest(Path(tmp), takes, takes_per_shot=TAKES_PER_SHOT)
            start = time.perf_counter()
            build_done_store(manifest)
            built = time.perf_counter() - start
            # Nothing to do, so no gateway is contacted; a loopback URL that nothing serves
            # would make any request fail loudly.
            again = asyncio.run(_time("run", manifest, "--base-url", "http://127.0.0.1:9"))
            status = asyncio.run(_time("status", manifest))
            idle = asyncio.run(_emu.shotrun("--version", manifest))
        finally:
            if saved is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = saved
    label = f"{takes} takes done ({shots} shots)"
    before = "" if quick else "; before the on-disk check (issue 21) {:.2f} s"
    return [
        row(f"resume: `shotrun run`, {label}, each file checked on disk (s)",
            round(again.wall, 2), "< 1.5",
            f"CPU {again.cpu:.2f} s; `shotrun --version` {idle.wall:.2f} s; "
            f"store built in {built:.0f} s" + before.format(BEFORE_RUN), again.wall < 1.5),
        row(f"resume: `shotrun status`, {label}, each file checked on disk (s)",
            round(status.wall, 2), "< 1",
            f"CPU {status.cpu:.2f} s; `shotrun --version` {idle.wall:.2f} s"
            + before.format(BEFORE_STATUS), status.wall < 1.0),
    ]


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
