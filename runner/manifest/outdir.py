"""Is a manifest's output folder usable as a folder? One check every command shares.

``output_dir`` is where the store, the videos and the report go. When that name (or a folder
above it) is an existing *file*, each command used to fail its own way, deep inside: ``report``
crashed with a ``FileExistsError``, ``run`` blamed "the state store", ``status`` claimed "no run
yet". The manifest is valid (it says where to write); the file system disagrees, so this is
checked when a command is about to use the folder, not when the manifest loads (``validate``
and the load cache stay pure), and answered with one located line, as a manifest problem.
"""

from __future__ import annotations

import os

from runner.core.errors import Location, ManifestError, Problem
from runner.core.fsutil import blocking_file
from runner.core.model import Manifest
from runner.manifest.loader import load_yaml
from runner.manifest.nodes import locate


def _location(manifest: Manifest) -> Location:
    """Where ``output_dir`` is written in the manifest (the file itself when it is not)."""
    file = str(manifest.path)
    try:
        root, _problems = load_yaml(manifest.path)
    except (ManifestError, OSError):
        return Location(file)
    if "output_dir" not in root:
        return Location(file)
    line, column = locate(root, ("output_dir",))
    return Location(file, line, column)


def output_dir_problem(manifest: Manifest) -> Problem | None:
    """The problem with ``manifest.output_dir`` as a folder to write into, or None."""
    folder = manifest.output_dir
    blocking = blocking_file(folder)
    if blocking is None:
        return None
    shown = os.path.relpath(folder, manifest.path.parent)
    if blocking == folder:
        what = f"{shown!r} is a file, not a folder"
    else:
        above = os.path.relpath(blocking, manifest.path.parent)
        what = f"{shown!r} cannot be a folder: {above!r} is a file"
    return Problem(_location(manifest), "output_dir",
                   f"{what}; move or rename that file, or set output_dir to a folder")


def check_output_dir(manifest: Manifest) -> None:
    """Raise :class:`ManifestError` (exit 2) when the output folder cannot be a folder.

    Costs a stat or two when all is well; the YAML is read again only to locate a problem.
    """
    problem = output_dir_problem(manifest)
    if problem is not None:
        raise ManifestError([problem])
