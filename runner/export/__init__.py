"""Export: the chosen take of every shot, in manifest order, and the edit as a timeline.

An editor wants the sequence, not a folder tree of takes: ``<nn>-<shot-id>.mp4`` files that
sort in story order, and an edit list their NLE imports. The edit is built once as an
OpenTimelineIO timeline and written through OTIO's adapters (``.otio``, CMX 3600 EDL, Final
Cut Pro 7 XML), plus a CSV for spreadsheets; each clip carries shotrun's provenance.

- :mod:`~runner.export.select`: which take of each shot (or a gap), from the store;
- :mod:`~runner.export.media`: each chosen file checked and measured (frames, rate);
- :mod:`~runner.export.provenance`: what a clip says about where it came from;
- :mod:`~runner.export.timeline`: the OTIO timeline, and the one place that touches OTIO;
- :mod:`~runner.export.formats`: the formats, their adapters and packages, the CSV;
- :mod:`~runner.export.folder`: writing the folder, every file atomically.
"""

from __future__ import annotations

from runner.export.folder import Exported, export, others
from runner.export.formats import FORMATS, Format, choose_formats
from runner.export.media import Clip
from runner.export.select import ExportError, Selection, select

__all__ = ["FORMATS", "Clip", "ExportError", "Exported", "Format", "Selection",
           "choose_formats", "export", "others", "select"]
