"""Expansion: order and ids, defaults, vars, matrix, takes, named references, links,
local files, renames and fingerprints."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from runner.core.errors import ManifestError
from runner.core.model import FrameRef, ImageElement, LocalFile, VideoElement
from runner.core.redact import REDACTED, redact
from runner.manifest import load_manifest, validate_file
from runner.wire import payload as wire
from tests.manifest.conftest import Write


def test_demo_takes_in_manifest_order(repo_root: Path) -> None:
    manifest = load_manifest(repo_root / "manifests" / "demo.yaml")
    assert [t.key for t in manifest.takes] == [
        "s01-arrival/take-1", "s01-arrival/take-2", "s02-look.16x9/take-1",
        "s02-look.9x16/take-1", "s03-gull/take-1", "s04-lighthouse/take-1"]
    assert manifest.api.base_url == "emulator"
    assert dict(manifest.api.emulator) == {"queue_time": 0.2, "processing_time": 1.0}
    assert manifest.output_dir == repo_root / "manifests" / "renders" / "coastline-demo"
    look = manifest.takes[2]
    assert look.base_shot_id == "s02-look"
    assert look.request.duration == 5  # the segments' sum, not the default 4
    assert look.request.multi_prompt is not None
    assert look.request.multi_prompt[0].prompt == "@Element1 looks at the sea"
    assert manifest.takes[0].fingerprint == manifest.takes[1].fingerprint
    for take in manifest.takes:
        assert take.fingerprint == wire.fingerprint(take.request, manifest.api.wire)
        assert take.location is not None and take.location.line > 0


def test_matrix_ids_order_and_takes(write: Write) -> None:
    write("""
        version: 1
        name: t
        shots:
          - id: a
            prompt: p
            takes: 2
            matrix:
              aspect_ratio: [16:9, "1:1"]
              resolution: [720p, 1080p]
          - {id: b, prompt: q}
    """)
    manifest = load_manifest("m.yaml")
    assert [t.key for t in manifest.takes] == [
        "a.16x9.720p/take-1", "a.16x9.720p/take-2", "a.16x9.1080p/take-1",
        "a.16x9.1080p/take-2", "a.1x1.720p/take-1", "a.1x1.720p/take-2",
        "a.1x1.1080p/take-1", "a.1x1.1080p/take-2", "b/take-1"]
    first, last = manifest.takes[0].request, manifest.takes[6].request
    assert (first.aspect_ratio, first.resolution) == ("16:9", "720p")
    assert (last.aspect_ratio, last.resolution) == ("1:1", "1080p")
    assert manifest.takes[-1].base_shot_id == ""


def test_defaults_and_prompt_slot(write: Write) -> None:
    write("""
        version: 1
        name: t
        defaults: {prompt: default prompt, duration: 8, resolution: 1080p, tags: [x]}
        shots:
          - {id: a}
          - id: b
            multi_prompt: [{prompt: one, duration: 2}, {prompt: two, duration: 2}]
          - {id: c, prompt: own, resolution: 720p, tags: []}
    """)
    a, b, c = load_manifest("m.yaml").takes
    assert (a.request.prompt, a.request.duration, a.request.resolution) == (
        "default prompt", 8, "1080p")
    assert a.tags == ("x",)
    assert b.request.prompt is None and b.request.duration == 4
    assert (c.request.prompt, c.request.resolution, c.tags) == ("own", "720p", ())


def test_vars_substitution(write: Write) -> None:
    write("""
        version: 1
        name: t
        vars: {place: Big Sur, n: 3, on: true, hero_ref: "@hero"}
        elements:
          hero: {frontal: ok.png}
        shots:
          - id: a
            prompt: "${n} waves at ${place}, ${on}; $${place} stays; ${hero_ref} runs"
            elements: [hero]
    """)
    (take,) = load_manifest("m.yaml").takes
    assert take.request.prompt == "3 waves at Big Sur, true; ${place} stays; @Element1 runs"


def test_named_references_follow_each_shots_lists(write: Write) -> None:
    write("""
        version: 1
        name: t
        assets: {coast: ok2.jpg, web: "https://cdn.example/w.jpg"}
        elements:
          hero: {frontal: ok.png, references: [anim.gif, pic.webp]}
          gull: {frontal: coast}
          dancer: {video: "https://cdn.example/d.mp4"}
        shots:
          - {id: a, prompt: "@hero and @gull at @coast", elements: [hero, gull], images: [coast]}
          - {id: b, prompt: "@gull and @hero by @web, mail me@x.org", elements: [gull, hero],
             images: [ok.png, web]}
          - {id: c, prompt: "@dancer then @Element2", elements: [dancer, {frontal: ok.png}]}
    """)
    manifest = load_manifest("m.yaml")
    a, b, c = (t.request for t in manifest.takes)
    assert a.prompt == "@Element1 and @Element2 at @Image1"
    assert b.prompt == "@Element1 and @Element2 by @Image2, mail me@x.org"
    assert c.prompt == "@Element1 then @Element2"
    hero = a.elements[0]
    assert isinstance(hero, ImageElement)
    assert [m.mime for m in (hero.frontal, *hero.references) if isinstance(m, LocalFile)] == [
        "image/png", "image/gif", "image/webp"]
    gull = a.elements[1]
    assert isinstance(gull, ImageElement) and isinstance(gull.frontal, LocalFile)
    assert gull.frontal.mime == "image/jpeg"
    assert b.images[1] == "https://cdn.example/w.jpg"
    assert c.elements[0] == VideoElement(video="https://cdn.example/d.mp4")
    assert manifest.warnings == ()


def test_unknown_at_word_is_kept_with_a_warning(write: Write) -> None:
    write("version: 1\nname: t\nshots:\n  - {id: a, prompt: 'meet @noon'}\n")
    manifest = load_manifest("m.yaml")
    assert manifest.takes[0].request.prompt == "meet @noon"
    (warning,) = manifest.warnings
    assert warning.severity == "warning" and "@noon" in warning.message


def test_local_file_identity(write: Write, workdir: Path) -> None:
    write("version: 1\nname: t\nshots:\n  - {id: a, prompt: p, images: [ok.png]}\n")
    first = load_manifest("m.yaml").takes[0]
    (image,) = first.request.images
    assert isinstance(image, LocalFile)
    assert image.path == workdir / "ok.png"
    assert image.sha256 == hashlib.sha256((workdir / "ok.png").read_bytes()).hexdigest()
    assert image.size == (workdir / "ok.png").stat().st_size
    (workdir / "sub").mkdir()
    shutil.copy(workdir / "ok.png", workdir / "sub" / "moved.png")
    write("version: 1\nname: t\nshots:\n  - {id: a, prompt: p, images: [sub/moved.png]}\n")
    moved = load_manifest("m.yaml").takes[0]
    assert moved.fingerprint == first.fingerprint  # moving a file changes nothing
    (workdir / "sub" / "moved.png").write_bytes((workdir / "ok2.jpg").read_bytes())
    edited = load_manifest("m.yaml").takes[0]
    assert edited.fingerprint != first.fingerprint  # editing it does


def test_fingerprint_follows_prompt_and_renames(write: Write) -> None:
    write("version: 1\nname: t\nshots:\n  - {id: a, prompt: p}\n  - {id: b, prompt: p}\n")
    a, b = load_manifest("m.yaml").takes
    assert a.fingerprint == b.fingerprint  # identity is (shot id, take, fingerprint)
    write("version: 1\nname: t\nshots:\n  - {id: a, prompt: q}\n  - {id: b, prompt: p}\n")
    a2, b2 = load_manifest("m.yaml").takes
    assert a2.fingerprint != a.fingerprint and b2.fingerprint == b.fingerprint
    write("version: 1\nname: t\napi: {wire: {resolution: quality, generate_audio: null}}\n"
          "shots:\n  - {id: a, prompt: q, extra: {seed: 7}}\n")
    manifest = load_manifest("m.yaml")
    (take,) = manifest.takes
    payload = wire.build_payload(take.request, wire.preview_resolver, manifest.api.wire)
    assert payload["quality"] == "720p" and "generate_audio" not in payload
    assert payload["seed"] == 7
    assert take.fingerprint == wire.fingerprint(take.request, manifest.api.wire)
    assert take.fingerprint != a2.fingerprint


def test_links_become_frame_refs_and_after(write: Write) -> None:
    write("""
        version: 1
        name: t
        shots:
          - {id: s01, prompt: p, matrix: {aspect_ratio: ["16:9", "9:16"]}}
          - id: s02
            prompt: p
            matrix: {aspect_ratio: ["16:9", "9:16"]}
            start_frame: {from_shot: s01}
          - {id: s03, prompt: p, after: [s01], end_frame: {from_shot: s02.9x16, frame: 2}}
          - {id: s04, prompt: p, start_frame: {from_shot: s03, frame: first}, after: [s03]}
    """)
    takes = {t.shot_id: t for t in load_manifest("m.yaml").takes}
    assert takes["s02.9x16"].request.start_frame == FrameRef("s01.9x16", "last")
    assert takes["s02.9x16"].after == ("s01.9x16",)
    assert takes["s03"].after == ("s01.16x9", "s01.9x16", "s02.9x16")
    assert takes["s03"].request.end_frame == FrameRef("s02.9x16", 2.0)
    assert takes["s04"].after == ("s03",)
    assert takes["s04"].request.start_frame == FrameRef("s03", "first")


def test_yaml_conveniences(write: Write) -> None:
    write("""
        version: 1
        name: t
        x-base: &base {resolution: 1080p, duration: 4}
        shots:
          - {<<: *base, id: a, prompt: p, aspect_ratio: 9:16, duration: 6}
          - {<<: *base, id: b, prompt: no}
    """)
    a, b = load_manifest("m.yaml").takes
    assert (a.request.resolution, a.request.aspect_ratio, a.request.duration) == (
        "1080p", "9:16", 6)
    assert b.request.prompt == "no"  # YAML 1.2: `no` is a string


def test_output_dir_and_paths(write: Write, workdir: Path) -> None:
    (workdir / "proj").mkdir()
    shutil.copy(workdir / "ok.png", workdir / "proj" / "hero.png")
    write("version: 1\nname: t\noutput_dir: out/here\nshots:\n"
          "  - {id: a, prompt: p, images: [hero.png]}\n", "proj/m.yaml")
    manifest = load_manifest("proj/m.yaml")
    assert manifest.output_dir == workdir / "proj" / "out" / "here"
    assert manifest.path == workdir / "proj" / "m.yaml"
    image = manifest.takes[0].request.images[0]
    assert isinstance(image, LocalFile) and image.path == workdir / "proj" / "hero.png"


def test_environment_is_not_applied(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_BASE_URL", "https://elsewhere.example")
    write("version: 1\nname: t\nshots:\n  - {id: a, prompt: p}\n")
    assert load_manifest("m.yaml").api.base_url == "emulator"


def test_error_holds_problems_of_both_passes(write: Write) -> None:
    write("version: 1\nname: t\nshots:\n  - {id: a, prompt: '${x}', colour: red}\n"
          "  - {id: b, prompt: '@Image1'}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest("m.yaml")
    messages = [p.message for p in caught.value.problems]
    assert any("unknown key 'colour'" in m for m in messages)  # pass 1
    assert any("undefined variable ${x}" in m for m in messages)  # pass 2, same shot
    assert any("@Image1 points outside" in m for m in messages)  # pass 2, another shot
    assert str(caught.value).startswith("m.yaml:4:")
    assert validate_file("m.yaml") == list(caught.value.problems)


def test_refused_secret_is_redacted_everywhere(write: Write) -> None:
    secret = "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2"
    write(f"version: 1\nname: t\napi:\n  base_url: emulator\n  model: {secret}\n"
          "shots:\n  - {id: a, prompt: p}\n")
    problems = validate_file("m.yaml")
    assert len(problems) == 1 and "environment variable SHOTRUN_API_KEY" in problems[0].message
    assert secret not in str(problems[0])
    assert redact(f"x {secret}") == f"x {REDACTED}"
