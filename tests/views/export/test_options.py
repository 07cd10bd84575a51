"""``shotrun export --format``, a missing adapter, a damaged file and the key, through the CLI.

Each refusal is one ``shotrun: error:`` line and exit 2 with nothing written; the adapters'
absence is real (OTIO told, through its own documented variables, not to load the installed
plugins), not a stand-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import opentimelineio as otio
import otio_cmx3600_adapter
import pytest

from runner import cli
from runner.core.redact import REDACTED, forget_secrets
from tests.helpers.export import read_back, run, write_manifest


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shotrun: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


def test_format_writes_only_the_edit_lists_asked_for(
        rendered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = rendered.parent / "cut"
    capsys.readouterr()
    assert cli.main(["export", str(rendered), str(cut), "--format", "EDL, csv"]) == 0
    assert sorted(p.name for p in cut.iterdir()) == [
        "01-s01.mp4", "02-s02.mp4", "edit.csv", "edit.edl"]
    assert "2 clips and edit.csv and edit.edl in" in capsys.readouterr().out
    _timeline, clips = read_back(cut / "edit.edl")
    assert [clip.name for clip in clips] == ["01-s01.mp4", "02-s02.mp4"]
    # Another format into the same folder: the lists not written now are the user's to drop.
    assert cli.main(["export", str(rendered), str(cut), "--format", "otio"]) == 0
    assert (cut / "edit.otio").is_file() and not (cut / "edit.xml").exists()
    assert capsys.readouterr().err == (
        f"shotrun: warning: {cut} also holds 2 files that are not part of this export "
        "(edit.csv, edit.edl); edit.otio lists only the clips written now: remove them, or "
        "export into an empty folder\n")


@pytest.mark.parametrize(("value", "message"), [
    ("aaf", "--format: unknown format 'aaf'; choose from otio, edl, fcpxml, csv"),
    ("edl,,fcp", "--format: unknown format 'fcp'; choose from otio, edl, fcpxml, csv"),
    (",", "--format: no format named; choose from otio, edl, fcpxml, csv"),
])
def test_an_unknown_format_is_one_line_exit_2_and_nothing_written(
        rendered: Path, capsys: pytest.CaptureFixture[str], value: str, message: str) -> None:
    cut = rendered.parent / "cut"
    capsys.readouterr()
    assert cli.main(["export", str(rendered), str(cut), "--format", value]) == 2
    assert message in _one_error_line(capsys)
    assert not cut.exists()


@pytest.fixture
def only_the_edl_adapter() -> Iterator[None]:
    """OTIO with the CMX 3600 adapter only: entry-point plugins off
    (``OTIO_DISABLE_ENTRYPOINTS_PLUGINS``), that one adapter's manifest on
    ``OTIO_PLUGIN_MANIFEST_PATH``, as a machine without otio-fcp-adapter would have."""
    cmx = Path(otio_cmx3600_adapter.__file__).parent / "plugin_manifest.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTIO_DISABLE_ENTRYPOINTS_PLUGINS", "1")
        patch.setenv("OTIO_PLUGIN_MANIFEST_PATH", str(cmx))
        otio.plugins.ActiveManifest(force_reload=True)
        assert "fcp_xml" not in otio.adapters.available_adapter_names()
        yield
    otio.plugins.ActiveManifest(force_reload=True)


@pytest.mark.usefixtures("only_the_edl_adapter")
def test_a_format_whose_adapter_is_missing_names_the_package_to_install(
        rendered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = rendered.parent / "cut"
    capsys.readouterr()
    assert cli.main(["export", str(rendered), str(cut), "--format", "otio,fcpxml"]) == 2
    assert _one_error_line(capsys) == (
        "shotrun: error: --format fcpxml: the OpenTimelineIO adapter fcp_xml is not "
        "installed; install it with `pip install otio-fcp-adapter`")
    assert not cut.exists()
    # Without --format, every format that is installed: no FCP XML here, and no error.
    assert cli.main(["export", str(rendered), str(cut)]) == 0
    assert sorted(p.name for p in cut.iterdir()) == [
        "01-s01.mp4", "02-s02.mp4", "edit.csv", "edit.edl", "edit.otio"]


def test_the_edl_adapter_is_always_needed_and_named_when_missing(
        rendered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = rendered.parent / "cut"
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTIO_DISABLE_ENTRYPOINTS_PLUGINS", "1")
        patch.delenv("OTIO_PLUGIN_MANIFEST_PATH", raising=False)
        otio.plugins.ActiveManifest(force_reload=True)
        try:
            assert cli.main(["export", str(rendered), str(cut)]) == 2
        finally:
            patch.undo()
            otio.plugins.ActiveManifest(force_reload=True)
    assert "`pip install otio-cmx3600-adapter`" in _one_error_line(capsys)
    assert not cut.exists()


def test_a_chosen_file_changed_on_disk_refuses_the_export_before_anything_is_written(
        rendered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = rendered.parent / "cut"
    cut.mkdir()
    (cut / "notes.txt").write_text("mine\n", encoding="utf-8")
    damaged = rendered.parent / "out" / "s02" / "take-1.mp4"
    with damaged.open("ab") as handle:
        handle.write(b"edited")
    capsys.readouterr()
    assert cli.main(["export", str(rendered), str(cut)]) == 2
    assert _one_error_line(capsys) == (
        f"shotrun: error: s02: {damaged} changed on disk since it was verified; run the "
        "manifest again or restore the file")
    # Not even s01's clip, which was fine: the folder is as it was.
    assert sorted(p.name for p in cut.iterdir()) == ["notes.txt"]


def test_the_api_key_never_reaches_an_exported_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-export-test-0123456789abcdef"
    monkeypatch.setenv("SHOTRUN_API_KEY", key)
    manifest = write_manifest(tmp_path, f'  - id: s01\n    prompt: "a sign that reads {key}"\n')
    assert run(manifest) == 0
    forget_secrets()  # a later shell: the export starts knowing no secret
    cut = tmp_path / "cut"
    assert cli.main(["export", str(manifest), str(cut)]) == 0
    said = capsys.readouterr()
    assert key not in said.out + said.err
    for path in cut.iterdir():
        assert key.encode() not in path.read_bytes(), path.name
    _timeline, clips = read_back(cut / "edit.otio")
    assert clips[0].metadata["shotrun"]["prompt"] == f"a sign that reads {REDACTED}"
    assert REDACTED in (cut / "edit.xml").read_text()
