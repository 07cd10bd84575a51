"""views.export: Export: the chosen take of every shot, in manifest order, and the edit as a
timeline.

An editor wants the sequence, not a folder tree of takes: ``<nn>-<shot-id>.mp4`` files that
sort in story order, and an edit list their NLE imports. The edit is built once as an
OpenTimelineIO timeline and written through OTIO's adapters (``.otio``, CMX 3600 EDL, Final
Cut Pro 7 XML), plus a CSV for spreadsheets; each clip carries shotrun's provenance.

- :mod:`~runner.views.export.select`: which take of each shot (or a gap), from the store;
- :mod:`~runner.views.export.chosen`: each chosen file checked and measured (frames, rate);
- :mod:`~runner.views.export.provenance`: what a clip says about where it came from;
- :mod:`~runner.views.export.timeline`: the OTIO timeline, and the one place that touches OTIO;
- :mod:`~runner.views.export.formats`: the formats, their adapters and packages, the CSV;
- :mod:`~runner.views.export.folder`: writing the folder, every file atomically.
"""

from __future__ import annotations

from runner.views.export.chosen import Clip
from runner.views.export.folder import Exported, export, others
from runner.views.export.formats import FORMATS, Format, choose_formats
from runner.views.export.select import ExportError, Selection, select

__all__ = ["FORMATS", "Clip", "ExportError", "Exported", "Format", "Selection",
           "choose_formats", "export", "others", "select"]
