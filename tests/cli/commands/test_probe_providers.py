"""``shotrun probe`` on fal.ai and the Kling API: the emulator in each wire format.

Each command runs through ``cli.main`` in a worker thread against an emulator (or a small
loopback proxy in front of one) in the test's loop; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from runner.emulator import run_emulator
from runner.manifest import load_manifest
from runner.media.profile import load_profile
from runner.probe.checks import ACCEPTED, UNSURE
from runner.probe.spend import Intent, spend_payload
from runner.providers.kling_client import KlingClient
from tests.helpers.probe import fast_emulator, main_in_thread, serving, write_manifest
from tests.helpers.providers import ACCESS, JWT_HEADER, PROVIDERS, keys, written_text

KLING_FIELDS = ("model_name", "prompt", "duration", "multi_shot", "shot_type", "multi_prompt",
                "image_list", "video_list", "mode", "aspect_ratio", "sound", "callback_url",
                "external_task_id")
FAL_FIELDS = ("prompt", "duration", "multi_prompt", "shot_type", "generate_audio",
              "start_image_url", "end_image_url", "image_urls", "elements", "aspect_ratio")


def no_secret(captured: pytest.CaptureResult[str], written: Path, key: str) -> None:
    """Neither the key, the Kling access key nor any token is printed or written."""
    for text in (captured.out, captured.err, written_text(written)):
        for secret in (key, ACCESS, JWT_HEADER):
            assert secret not in text


FAST_POLLING = ("--poll-min", "0.01", "--poll-max", "0.05")


async def probe(provider: str, manifest: Path, *flags: str, **settings: Any
                ) -> tuple[int, dict[str, Any]]:
    """``shotrun probe MANIFEST --provider P --json FLAGS`` at an emulator speaking
    ``provider``: (exit code, the emulator's counters once the command ended)."""
    async with run_emulator(fast_emulator(**settings), provider=provider) as emulator:
        code = await main_in_thread(["probe", str(manifest), "--provider", provider,
                                     "--json", *flags, *FAST_POLLING,
                                     "--base-url", emulator.base_url])
        return code, emulator.stats()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_without_spend_each_provider_is_checked_in_its_own_words_for_free(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, provider)
    manifest = write_manifest(tmp_path)
    code, stats = await probe(provider, manifest, api_key=expected)
    assert code == 0
    captured = capsys.readouterr()
    found = json.loads(captured.out)
    assert found["provider"] == provider and found["spend"] is None
    assert stats["accepted_tasks"] == 0 and stats["credits_reserved"] == 0
    assert stats["creation_requests"] == found["creations_sent"]
    assert found["reached"] is True and found["names_before_values"] is True
    assert found["baseline"]["param"] == "duration"
    verdicts = {item["field"]: item["verdict"] for item in found["fields"]}
    documented = KLING_FIELDS if provider == "kling" else FAL_FIELDS
    for name in documented:  # each field as the provider names it, known to its emulator
        assert verdicts.pop(name) == ACCEPTED, name
    # Kling's element_list holds ids of subjects registered beforehand: the emulator knows
    # none, and refuses it in other words than an unknown name's.
    assert verdicts == ({"element_list": UNSURE} if provider == "kling" else {})
    unknown = {item["asked"].split()[0]: item for item in found["unknown_task"]}
    assert all(item["read_as_unknown"] for item in unknown.values())
    assert set(unknown) == ({"task", "external_task_id"} if provider == "kling" else {"task"})
    no_secret(captured, tmp_path / "out", expected)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_spend_creates_one_task_and_checks_how_the_provider_finds_it_again(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, provider)
    manifest = write_manifest(tmp_path)
    code, stats = await probe(provider, manifest, "--spend", api_key=expected,
                                 output_scale=0.25)
    assert code == 0
    captured = capsys.readouterr()
    spend = json.loads(captured.out)["spend"]
    assert stats["accepted_tasks"] == 1 and stats["completed_tasks"] == 1
    assert spend["provider"] == provider and spend["status"] == "completed"
    assert spend["video"]["width"] == 320 and spend["video"]["height"] == 180
    assert spend["progress"]["reported"] is False  # neither provider reports a percentage
    if provider == "kling":
        external = spend["payload"]["external_task_id"]
        assert spend["lookup"] == {"external_task_id": external, "found": spend["task_id"],
                                   "same_task": True, "error": None}
        assert spend["creation_body"]["fields"]["data.task_info.external_task_id"] == "string"
        assert spend["creation_body"]["undocumented"] == []
        # final_unit_deduction, sent as a string: Kling units (0.6 a second at 720p), no
        # longer gateway-sized credits (issue 21)
        assert spend["credits_reserved"] == 1.8
    else:
        assert spend["status_url"]["same"] is True
        assert spend["query_body"]["fields"]["video.url"] == "string"
        assert spend["query_body"]["undocumented"] == []
    profile = load_profile(tmp_path / "out")
    assert profile is not None and profile.base_url.endswith(f" ({provider})")
    assert profile.sizes["720p 16:9"] == (320, 180)
    no_secret(captured, tmp_path / "out", expected)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_wrong_key_is_one_line_naming_the_variables_and_exit_1(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, provider, wrong=True)
    manifest = write_manifest(tmp_path)
    async with run_emulator(fast_emulator(api_key=expected), provider=provider) as emulator:
        code = await main_in_thread(["probe", str(manifest), "--provider", provider,
                                     "--base-url", emulator.base_url])
        assert emulator.stats()["accepted_tasks"] == 0
    assert code == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == 1 and "refused the API key" in errors[0], captured.err
    variables = ("KLING_ACCESS_KEY", "KLING_SECRET_KEY") if provider == "kling" else ("FAL_KEY",)
    assert all(name in errors[0] for name in variables)
    assert "Traceback" not in captured.err
    for text in (captured.out, captured.err, written_text(tmp_path / "out")):
        assert expected not in text and "wrong-" + expected not in text


Upstream = tuple[int, bytes, str]  # status, body, content type
# What the proxy does with one request: (the request, its body, a call that forwards it)
# -> the answer to give, or None to drop the connection (the client never hears back).
Interfere = Callable[[web.Request, bytes, Callable[[], Awaitable[Upstream]]],
                     Awaitable[Upstream | None]]


def is_paid_creation(request: web.Request, body: bytes) -> bool:
    """The probe's one valid creation (a duration of "3"; the free ones carry "0")."""
    return request.method == "POST" and b'"duration": "3"' in body


@asynccontextmanager
async def proxy(target: str, interfere: Interfere) -> AsyncIterator[str]:
    """A loopback proxy in front of ``target``: every request goes through ``interfere``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "range")}

        async def forward() -> Upstream:
            async with aiohttp.ClientSession() as session, session.request(
                    request.method, target + request.path_qs, data=body or None,
                    headers=headers) as answer:
                return (answer.status, await answer.read(),
                        answer.headers.get("Content-Type", "application/json"))

        given = await interfere(request, body, forward)
        if given is None:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        status, data, kind = given
        return web.Response(status=status, body=data, headers={"Content-Type": kind})

    async with serving(handle) as url:
        yield url


def answer_losing(lost: dict[str, int]) -> Interfere:
    """The first paid creation is forwarded, then its answer is dropped: the task exists,
    the client never hears of it."""

    async def interfere(request: web.Request, body: bytes,
                        forward: Callable[[], Awaitable[Upstream]]) -> Upstream | None:
        answer = await forward()
        if is_paid_creation(request, body) and not lost:
            lost["creations"] = 1
            return None
        return answer

    return interfere


async def test_kling_a_lost_creation_answer_is_looked_up_and_followed_never_sent_twice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, "kling")
    manifest = write_manifest(tmp_path)
    lost: dict[str, int] = {}
    async with run_emulator(fast_emulator(api_key=expected), provider="kling") as emulator:
        async with proxy(emulator.base_url, answer_losing(lost)) as url:
            code = await main_in_thread(["probe", str(manifest), "--provider", "kling",
                                         "--spend", "--json", *FAST_POLLING,
                                         "--base-url", url])
        stats = emulator.stats()
    assert lost == {"creations": 1}  # the answer was lost...
    assert code == 0
    spend = json.loads(capsys.readouterr().out)["spend"]
    assert stats["accepted_tasks"] == 1  # ...and nothing was sent again
    assert spend["status"] == "completed" and spend["video"] is not None
    assert spend["lookup"]["same_task"] is True
    assert not (tmp_path / "out" / ".shotrun" / "probe" / "intent.json").exists()


async def test_kling_an_earlier_probes_lost_creation_is_found_by_its_id_and_followed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe killed between sending and hearing: its intent names the external id; the
    next probe looks it up, follows that task, and creates none."""
    expected = keys(monkeypatch, "kling")
    manifest_path = write_manifest(tmp_path)
    manifest = load_manifest(manifest_path, "kling")
    payload = {**spend_payload(manifest), "external_task_id": "shotrun-probe-earlier-0001"}
    async with run_emulator(fast_emulator(api_key=expected), provider="kling") as emulator:
        async with KlingClient(emulator.base_url, None, ACCESS, expected) as client:
            created = await client.create_task(payload)  # what the killed probe sent
        Intent(manifest.output_dir).write({
            "state": "sending", "base_url": f"{emulator.base_url} (kling)", "sent_at": 1.0,
            "payload": payload})
        code = await main_in_thread(["probe", str(manifest_path), "--provider", "kling",
                                     "--spend", "--json", *FAST_POLLING,
                                     "--base-url", emulator.base_url])
        stats = emulator.stats()
    assert code == 0
    spend = json.loads(capsys.readouterr().out)["spend"]
    assert stats["accepted_tasks"] == 1  # the earlier one, followed: none created
    assert spend["resumed"] is True and spend["task_id"] == created.task_id
    assert spend["video"] is not None


async def test_fal_a_queue_that_validates_later_is_cancelled_and_nothing_more_is_sent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """fal.ai documents no synchronous validation: a queue that accepts the body invalid on
    purpose gets its request cancelled at once, no second creation, and a note; exit 0,
    since nothing rendered."""
    expected = keys(monkeypatch, "fal")
    manifest = write_manifest(tmp_path)
    code, stats = await probe("fal", manifest, api_key=expected, fal_validation="queue")
    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert stats["creation_requests"] == found["creations_sent"] == 1
    assert stats["accepted_tasks"] == 0 and stats["credits_reserved"] == 0
    assert stats["cancel_requests"] == 1
    (queued,) = found["creations_accepted"]
    assert queued["outcome"] == "cancelled" and "HTTP 202" in queued["outcome_detail"]
    assert found["fields"] == []
    async with run_emulator(fast_emulator(api_key=expected, fal_validation="queue"),
                            provider="fal") as emulator:
        code = await main_in_thread(["probe", str(manifest), "--provider", "fal",
                                     "--base-url", emulator.base_url])
    assert code == 0
    out = capsys.readouterr().out
    assert "NOTE: fal.ai queued the body invalid on purpose" in out
    assert "cannot be checked for free" in out and "WARNING" not in out
    # Nothing rendered, so the paid probe may go on: exactly one task.
    code, stats = await probe("fal", manifest, "--spend", api_key=expected,
                              fal_validation="queue")
    assert code == 0 and stats["accepted_tasks"] == 1
    assert json.loads(capsys.readouterr().out)["spend"]["video"] is not None


def refusing_first(what: Callable[[web.Request, bytes], bool], status: int, body: bytes,
                   seen: dict[str, int]) -> Interfere:
    """The first request ``what`` picks is answered ``status`` with ``body`` (never
    forwarded: nothing is created); every other request goes through."""

    async def interfere(request: web.Request, data: bytes,
                        forward: Callable[[], Awaitable[Upstream]]) -> Upstream | None:
        if what(request, data) and not seen:
            seen["refused"] = 1
            return status, body, "application/json"
        return await forward()

    return interfere


async def test_kling_a_rate_limited_paid_creation_is_waited_out_and_sent_once_more(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 429 creates nothing: the paid probe backs off and sends again, as a run does,
    instead of stopping on it."""
    expected = keys(monkeypatch, "kling")
    manifest = write_manifest(tmp_path)
    seen: dict[str, int] = {}
    limited = b'{"code": 1302, "message": "rate limit", "request_id": "r1"}'
    async with run_emulator(fast_emulator(api_key=expected), provider="kling") as emulator:
        async with proxy(emulator.base_url,
                         refusing_first(is_paid_creation, 429, limited, seen)) as url:
            code = await main_in_thread(["probe", str(manifest), "--provider", "kling",
                                         "--spend", "--json", *FAST_POLLING,
                                         "--base-url", url])
        stats = emulator.stats()
    assert seen == {"refused": 1} and code == 0
    assert stats["accepted_tasks"] == 1
    assert json.loads(capsys.readouterr().out)["spend"]["video"] is not None


async def test_a_passing_503_on_the_unknown_task_question_is_asked_again_not_a_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, "fal")
    manifest = write_manifest(tmp_path)
    seen: dict[str, int] = {}
    trouble = b'{"detail": "Service temporarily unavailable"}'

    def status_query(request: web.Request, _: bytes) -> bool:
        return request.method == "GET" and request.path.endswith("/status")

    async with run_emulator(fast_emulator(api_key=expected), provider="fal") as emulator, \
            proxy(emulator.base_url, refusing_first(status_query, 503, trouble, seen)) as url:
        code = await main_in_thread(["probe", str(manifest), "--provider", "fal",
                                     "--json", "--base-url", url])
    assert seen == {"refused": 1} and code == 0
    (unknown,) = json.loads(capsys.readouterr().out)["unknown_task"]
    assert unknown["read_as_unknown"] is True and unknown["status"] == 404


async def test_an_interrupted_paid_creation_keeps_its_intent_so_the_next_probe_never_pays_blind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (a cancelled task, as asyncio.run cancels it) while the paid creation is on
    the wire: it may have arrived, so the intent stays 'sending' with its external id."""
    from runner.probe.spend import create_once

    expected = keys(monkeypatch, "kling")
    manifest = load_manifest(write_manifest(tmp_path), "kling")
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def holding(request: web.Request, body: bytes,
                      forward: Callable[[], Awaitable[Upstream]]) -> Upstream | None:
        if is_paid_creation(request, body):
            answer = await forward()  # the task exists...
            arrived.set()
            await release.wait()  # ...and its answer is held until the test ends
            return answer
        return await forward()

    async with run_emulator(fast_emulator(api_key=expected), provider="kling") as emulator:
        async with proxy(emulator.base_url, holding) as url, \
                KlingClient(url, None, ACCESS, expected) as client:
            creating = asyncio.create_task(create_once(
                client, manifest, base_url=f"{url} (kling)", built_in=False))
            await arrived.wait()
            creating.cancel()
            with pytest.raises(asyncio.CancelledError):
                await creating
            release.set()
        assert emulator.stats()["accepted_tasks"] == 1
    intent = Intent(manifest.output_dir).read()
    assert intent is not None and intent["state"] == "sending"
    assert intent["payload"]["external_task_id"].startswith("shotrun-probe-")


async def test_an_earlier_paid_probe_elsewhere_is_never_forgotten_nor_paid_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, "fal")
    manifest_path = write_manifest(tmp_path)
    manifest = load_manifest(manifest_path, "fal")
    earlier = {"state": "created", "base_url": "https://api-singapore.klingai.com (kling)",
               "task_id": "778899", "sent_at": 1.0, "payload": {}}
    Intent(manifest.output_dir).write(earlier)
    async with run_emulator(fast_emulator(api_key=expected), provider="fal") as emulator:
        code = await main_in_thread(["probe", str(manifest_path), "--provider", "fal",
                                     "--spend", *FAST_POLLING, "--base-url",
                                     emulator.base_url])
        assert emulator.stats()["accepted_tasks"] == 0
    assert code == 1
    err = capsys.readouterr().err
    assert "left task 778899" in err and "api-singapore.klingai.com" in err
    assert "spend: creating" not in err  # nothing was about to be created
    assert Intent(manifest.output_dir).read() == earlier


def test_a_reader_that_goes_away_is_no_crash(tmp_path: Path) -> None:
    """`shotrun probe ... | head -1`: the pipe closes after the first line; the probe stops
    quietly with exit 1, no traceback and no crash log."""
    import os
    import subprocess
    import sys

    manifest = write_manifest(tmp_path)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("SHOTRUN_PROVIDER", None)
    process = subprocess.Popen([sys.executable, "-m", "runner", "probe", str(manifest)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"shotrun probe: probe-test via")
    process.stdout.close()  # the first line is printed before any check is made
    err = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert b"unexpected error" not in err and b"Traceback" not in err
    assert not (tmp_path / "cache" / "shotrun").exists()
