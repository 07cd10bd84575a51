"""``shotrun probe`` end to end: the real CLI against real servers on 127.0.0.1.

The emulator (or a small aiohttp app playing another gateway) runs in the test's loop; the
command runs through ``cli.main`` in a worker thread. What the probe sent is counted on the
server side, where the client cannot fudge it. No sleeps: every wait is the command's own.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from runner import cli
from runner.emulator import EmulatorSettings, run_emulator
from runner.media.profile import (
    GatewayProfile,
    derived_sizes,
    describe_expectations,
    load_profile,
    profile_path,
)
from runner.probe.checks import (
    ACCEPTED,
    REFUSED,
    UNSURE,
    Answer,
    judge,
)
from runner.providers.gateway.client import GatewayClient
from tests.helpers.probe import KEY, fast_emulator, main_in_thread, serving, write_manifest

WRONG = "sk-probe-wrong-key-fedcba9876543210"


async def probe_at(settings: EmulatorSettings, manifest: Path, *flags: str
                   ) -> tuple[int, dict[str, Any]]:
    """``shotrun probe MANIFEST FLAGS`` against an emulator of ``settings``: (exit code,
    the emulator's counters once the command ended)."""
    async with run_emulator(settings) as emulator:
        code = await main_in_thread(["probe", str(manifest), *flags,
                                     "--base-url", emulator.base_url])
        return code, emulator.stats()


def no_key_anywhere(root: Path, *texts: str, key: str = KEY) -> None:
    for text in texts:
        assert key not in text
    for path in root.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


async def test_without_spend_creations_are_sent_but_none_is_accepted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path, api="  wire: {start_frame: image_start}\n")
    code, stats = await probe_at(fast_emulator(), manifest, "--json")
    assert code == 0
    out, err = capsys.readouterr()
    found = json.loads(out)
    assert stats["accepted_tasks"] == 0 and stats["credits_reserved"] == 0
    assert stats["creation_requests"] == found["creations_sent"] >= 12
    assert found["reached"] is True and found["authentication"]["accepted"] is True
    assert found["names_before_values"] is True and found["spend"] is None
    verdicts = {item["field"]: item for item in found["fields"]}
    assert verdicts["start_image_url"]["verdict"] == REFUSED  # the manifest's rename
    assert verdicts["start_image_url"]["sent_as"] == "image_start"
    assert verdicts["start_image_url"]["source"] == "api.wire"
    for name in ("model", "prompt", "duration", "resolution", "aspect_ratio", "image_urls",
                 "elements", "multi_prompt", "shot_type", "callback_url"):
        assert verdicts[name]["verdict"] == ACCEPTED, name
    assert found["not_checked"] == ["frontal_image_url", "reference_image_urls", "video_url"]
    assert found["profile"] is None and load_profile(tmp_path / "out") is None
    no_key_anywhere(tmp_path, out, err)
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)["profile"]
    assert profile["path"] is None
    assert "`shotrun probe --spend` learns one, paying for one task" in profile["line"]


async def test_spend_creates_exactly_one_task_and_the_next_plan_uses_its_size(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path)
    code, stats = await probe_at(fast_emulator(output_scale=0.125), manifest, "--spend",
                                 "--json")
    assert code == 0
    out, err = capsys.readouterr()
    assert "about 24.3 credits" in err  # the estimate, said before the creation
    found = json.loads(out)
    assert stats["accepted_tasks"] == 1 and stats["completed_tasks"] == 1
    spend = found["spend"]
    assert spend["video"]["width"] == 160 and spend["video"]["height"] == 90
    assert spend["video"]["codec"] == "h264" and spend["video"]["duration"] == 3
    assert spend["credits_reserved"] == 24.3 and spend["estimated_credits"] == 24.3
    assert spend["payload"]["duration"] == 3 and spend["payload"]["resolution"] == "720p"
    assert spend["creation_body"]["fields"]["id"] == "string"
    assert spend["query_body"]["fields"]["results[]"] == "string"
    assert spend["timing"]["polls"] >= 1 and spend["progress"]["reported"] is True
    assert spend["link"]["query_parameters"] == ["sig"]
    assert spend["link"]["headers"]["Content-Type"] == "video/mp4"
    assert Path(spend["kept"]).is_file()
    assert not (tmp_path / "out" / ".shotrun" / "probe" / "intent.json").exists()
    profile = load_profile(tmp_path / "out")
    assert profile is not None and found["profile"] == str(
        profile_path(tmp_path / "out", profile.base_url))  # one file per provider and URL
    assert profile.sizes["720p 16:9"] == (160, 90)
    assert profile.sizes["720p 9:16"] == (90, 160)  # derived, and marked so
    assert "720p 9:16" in profile.details["derived_sizes"]
    assert profile.base_url.startswith("http://127.0.0.1:")
    no_key_anywhere(tmp_path, out, err)

    # The manifest names the built-in emulator: a profile of another gateway is not used.
    assert cli.main(["plan", str(manifest)]) == 0
    text = capsys.readouterr().out
    assert (f"expected sizes: nominal (the gateway profile was observed on "
            f"{profile.base_url}, not this gateway") in text
    monkeypatch.setenv("SHOTRUN_BASE_URL", profile.base_url)  # the probed gateway's run
    assert cli.main(["plan", str(manifest)]) == 0
    text = capsys.readouterr().out
    assert "expected sizes: observed by `shotrun probe`" in text
    assert "for 720p 16:9; derived from what it observed for 720p 9:16; nominal for the " \
           "rest (1080p 16:9)" in text
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    sizes = json.loads(capsys.readouterr().out)["profile"]["expected_sizes"]
    assert sizes["720p 16:9"] == {"size": [160, 90], "source": "observed"}
    assert sizes["720p 9:16"] == {"size": [90, 160], "source": "derived"}
    assert sizes["1080p 16:9"] == {"size": [1920, 1080], "source": "nominal"}


def test_built_in_emulator_needs_no_key_and_spend_reports_every_section(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOTRUN_API_KEY", raising=False)
    manifest = write_manifest(tmp_path)
    assert cli.main(["probe", str(manifest), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["built_in_emulator"] is True
    assert found["emulator"]["accepted_tasks"] == 0
    assert found["emulator"]["creation_requests"] == found["creations_sent"]

    assert cli.main(["probe", str(manifest), "--spend"]) == 0
    out = capsys.readouterr().out
    for section in ("reached: yes", "authentication: key accepted", "field names:",
                    "spend: creating one task", "task: task-", "timing:", "progress:",
                    "link:", "video: 1280x720", "profile:"):
        assert section in out, section
    profile = load_profile(tmp_path / "out")
    assert profile is not None and profile.base_url == "emulator"
    assert cli.main(["run", str(manifest), "--poll-min", "0.01", "--poll-max", "0.05"]) == 0
    assert "expected sizes: observed by `shotrun probe` of the built-in emulator" in \
        capsys.readouterr().out


async def test_a_gateway_without_progress_is_reported_as_such(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path)
    code, stats = await probe_at(fast_emulator(progress="none"), manifest, "--spend")
    assert code == 0 and stats["accepted_tasks"] == 1
    assert "progress: none reported" in capsys.readouterr().out


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in err
    return lines[0]


async def test_a_wrong_key_is_one_line_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", WRONG)
    manifest = write_manifest(tmp_path)
    code, stats = await probe_at(fast_emulator(), manifest, "--spend")
    assert code == 1
    out, err = capsys.readouterr()
    line = one_line(err)
    assert "refused the API key" in line and "SHOTRUN_API_KEY" in line
    assert stats["creation_requests"] == 1 and stats["accepted_tasks"] == 0
    no_key_anywhere(tmp_path, out, err, key=WRONG)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_wrong_url_is_one_line_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path)
    url = f"http://127.0.0.1:{closed_port()}"
    assert cli.main(["probe", str(manifest), "--base-url", url]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"cannot connect to the gateway at {url} (connection refused)" in line


async def test_something_that_is_not_the_gateway_is_one_line_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path)

    async def html(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="<html><body>Not Found</body></html>",
                            content_type="text/html")

    async with serving(html) as url:
        code = await main_in_thread(["probe", str(manifest), "--base-url", url])
    assert code == 1
    line = one_line(capsys.readouterr().err)
    assert "answered HTTP 404 with an HTML page" in line and "the gateway?" in line


def refusing_gateway(counts: dict[str, int]
                     ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A gateway that judges the duration before anything else, and drops the connection
    of a valid creation (its answer is lost: an ambiguous submission)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method == "GET":  # the probe's question about a task nobody created
            return web.json_response({"error": {
                "code": "resource_not_found", "type": "invalid_request_error",
                "message": "task not found"}}, status=404)
        body = await request.json()
        if body.get("duration") == 3:
            counts["valid"] = counts.get("valid", 0) + 1
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        counts["invalid"] = counts.get("invalid", 0) + 1
        return web.json_response({"error": {
            "code": "invalid_request", "type": "invalid_request_error", "param": "duration",
            "message": "duration must be between 3 and 15"}}, status=400)

    return handle


async def test_another_validation_order_is_could_not_tell_and_a_lost_answer_is_never_resent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path)
    counts: dict[str, int] = {}
    async with serving(refusing_gateway(counts)) as url:
        code = await main_in_thread(["probe", str(manifest), "--json", "--spend",
                                     "--base-url", url])
        out, err = capsys.readouterr()
        assert code == 1 and counts["valid"] == 1
        stopped = json.loads(out)  # --json: what was found, and why the probe stopped
        assert "not sent again" in stopped["error"] and stopped["spend"] is None
        assert stopped["reached"] is True and stopped["fields"]
        line = one_line("\n".join(x for x in err.splitlines() if "spend: creating" not in x))
        assert "not sent again" in line and "intent.json" in line
        intent = json.loads((tmp_path / "out" / ".shotrun" / "probe" / "intent.json")
                            .read_text())
        assert intent["state"] == "sending" and intent["base_url"] == url

        code = await main_in_thread(["probe", str(manifest), "--json", "--spend",
                                     "--base-url", url])
        out, err = capsys.readouterr()
        assert code == 1 and counts["valid"] == 1  # refused to create another
        assert "not sending another" in err
        # Without --spend the checks still run, and say honestly what they could not tell.
        code = await main_in_thread(["probe", str(manifest), "--json", "--base-url", url])
    assert code == 0 and counts["valid"] == 1
    found = json.loads(capsys.readouterr().out)
    assert found["names_before_values"] is False
    verdicts = {item["field"]: item["verdict"] for item in found["fields"]}
    assert verdicts.pop("duration") == ACCEPTED
    assert set(verdicts.values()) == {UNSURE}


async def test_a_gateway_that_accepts_a_body_invalid_on_purpose_gets_nothing_more(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path)
    created: list[dict[str, Any]] = []

    async def lenient(request: web.Request) -> web.StreamResponse:
        created.append(await request.json())
        return web.json_response({"id": f"task-lenient-{len(created)}", "status": "pending",
                                  "progress": 0})

    async with serving(lenient) as url:
        code = await main_in_thread(["probe", str(manifest), "--spend", "--base-url", url])
    assert code == 1
    assert len(created) == 1 and created[0]["duration"] == 0  # and no paid creation after it
    out = capsys.readouterr().out
    assert "the gateway CREATED a task from a body invalid on purpose (task-lenient-1)" in out
    assert "spend:" not in out


async def test_a_task_created_by_an_earlier_probe_is_followed_not_created_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path)
    async with run_emulator(fast_emulator()) as emulator:
        async with GatewayClient(emulator.base_url, None, KEY) as client:
            state = await client.create_task({"model": "kling-o3-reference-to-video",
                                              "prompt": "earlier", "duration": 3})
        folder = tmp_path / "out" / ".shotrun" / "probe"
        folder.mkdir(parents=True)
        (folder / "intent.json").write_text(json.dumps({
            "state": "created", "base_url": emulator.base_url, "task_id": state.task_id,
            "sent_at": 0}))
        code = await main_in_thread(["probe", str(manifest), "--spend", "--json",
                                     "--base-url", emulator.base_url])
        stats = emulator.stats()
    assert code == 0 and stats["accepted_tasks"] == 1
    spend = json.loads(capsys.readouterr().out)["spend"]
    assert spend["task_id"] == state.task_id and spend["resumed"] is True
    assert spend["timing"]["real_time_at_most"] is None  # its sending time was not recorded
    assert spend["video"]["width"] == 1280


def test_bad_input_is_one_line_with_the_documented_code(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    assert cli.main(["probe", str(manifest), "--base-url", "ftp://x"]) == 2
    assert "must be `emulator` or an http(s) URL" in one_line(capsys.readouterr().err)
    assert cli.main(["probe", str(tmp_path / "missing.yaml")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert cli.main(["probe", str(manifest), "--task-timeout", "0"]) == 2
    assert "--task-timeout" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_judging_a_field_needs_the_calibration_to_be_certain() -> None:
    calibration = Answer(400, "invalid_request", "shotrun_probe_no_such_field",
                         "create task: HTTP 400, invalid 'shotrun_probe_no_such_field' "
                         "(invalid_request_error: unknown field shotrun_probe_no_such_field)")
    refused = Answer(400, "invalid_request", "image_start",
                     "create task: HTTP 400, invalid 'image_start' (invalid_request_error: "
                     "unknown field image_start)")
    about_duration = Answer(400, "invalid_request", "duration", "duration must be 3-15")
    value = Answer(400, "invalid_request", "image_urls", "image_urls must be a list")
    kw: dict[str, Any] = {"duration": "duration", "calibration": calibration}
    assert judge("start_image_url", "image_start", refused, names_first=True, **kw)[0] == REFUSED
    assert judge("image_urls", "image_urls", about_duration, names_first=True, **kw)[0] == \
        ACCEPTED
    assert judge("image_urls", "image_urls", about_duration, names_first=False, **kw)[0] == \
        UNSURE
    assert judge("image_urls", "image_urls", value, names_first=True, **kw)[0] == UNSURE
    assert judge("x", "x", Answer(None), names_first=True, **kw)[0] == UNSURE
    # Other gateways' words for an unknown name refuse it even without a calibration...
    for words in ('json: unknown field "x"', "Extra inputs are not permitted",
                  "Unrecognized request argument supplied: x",
                  "additional properties are not allowed ('x' was unexpected)"):
        answer = Answer(400, None, "x", words)
        assert judge("x", "x", answer, duration="duration", calibration=None,
                     names_first=False)[0] == REFUSED, words
    # ...but words about a value do not.
    answer = Answer(400, None, "x", "unexpected value for x: expected a list")
    assert judge("x", "x", answer, names_first=True, **kw)[0] == UNSURE
    created = Answer(200, task_id="t-1", created=True)
    assert "CREATED" in judge("x", "x", created, names_first=True, **kw)[1]


def test_derived_sizes_and_the_expectation_line() -> None:
    assert derived_sizes("720p 16:9", (1280, 720)) == {"720p 9:16": (720, 1280),
                                                       "720p 1:1": (720, 720)}
    assert derived_sizes("720p 16:9", (1248, 704)) == {"720p 9:16": (704, 1248),
                                                       "720p 1:1": (704, 704)}
    assert "nominal (no gateway profile" in describe_expectations(None, [])
    profile = GatewayProfile("https://gw.example", "2026-12-03T08:00:00Z",
                             {"720p 16:9": (160, 90)})
    assert describe_expectations(profile, []) == "expected sizes: nominal (no takes)"


async def test_a_failed_task_is_reported_and_an_unknown_earlier_task_is_let_go(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path)
    intent = tmp_path / "out" / ".shotrun" / "probe" / "intent.json"
    failing = fast_emulator(failure_rate=1.0, failure_codes=("content_policy_violation",))
    code, stats = await probe_at(failing, manifest, "--spend")
    assert code == 1 and stats["accepted_tasks"] == 1
    out = capsys.readouterr().out
    assert "failed: content_policy_violation" in out and "video:" not in out
    assert not intent.exists() and load_profile(tmp_path / "out") is None

    async with run_emulator(fast_emulator()) as emulator:
        intent.write_text(json.dumps({"state": "created", "base_url": emulator.base_url,
                                      "task_id": "task-unified-1700000000-gone0000",
                                      "sent_at": 1}))
        code = await main_in_thread(["probe", str(manifest), "--spend",
                                     "--base-url", emulator.base_url])
        assert code == 1 and emulator.stats()["accepted_tasks"] == 0
        line = one_line(capsys.readouterr().err)
        assert "task-unified-1700000000-gone0000" in line and "record of it was removed" in line
        assert not intent.exists()
        code = await main_in_thread(["probe", str(manifest), "--spend",
                                     "--base-url", emulator.base_url])
        assert code == 0 and emulator.stats()["accepted_tasks"] == 1


@pytest.mark.parametrize(("args", "words"), [
    (["probe", "{m}", "--poll-min", "5", "--poll-max", "1"],
     "timing flags: --poll-min 5, --poll-max 1"),
    (["plan", "{m}", "--base-url", "ftp://x"], "--base-url must be `emulator` or an http(s) URL"),
    (["validate", "{m}", "--base-url", "http://user:secret@h"],
     "--base-url must not carry credentials"),
])
def test_nonsense_flags_of_probe_plan_and_validate_are_one_line_and_exit_2(
        args: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    assert cli.main([arg.format(m=manifest) for arg in args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "secret" not in err
    assert not (tmp_path / "out").exists()  # nothing written, nothing sent
