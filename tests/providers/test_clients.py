"""The fal and Kling clients against the emulator speaking each wire format, over HTTP.

No mock: the emulator on 127.0.0.1 answers as the provider's documentation says (and as
roughly), so these tests prove the client and the emulator agree with the same document from
both sides, and that each outcome lands in the right shotrun kind.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from yarl import URL

from runner.core.errors import (
    AuthenticationFailed,
    PermanentGatewayError,
    QuotaExhausted,
    RateLimited,
)
from runner.core.redact import redact
from runner.emulator import EmulatorSettings, RunningEmulator, run_emulator
from runner.providers.clients import make_client
from runner.providers.gateway.timeouts import ClientTimeouts
from runner.providers.kling_client import RENEW_BEFORE, TOKEN_LIFE, TokenSigner
from runner.wire.protocol import Gateway, ResolvesLostAnswers, TaskState
from tests.emulator.conftest import payload, polls

ACCESS = "AKshotrunTESTaccess0001"
SECRET = "SKshotrunTESTsecret0002-do-not-leak"
FAL_KEY = "fal-TEST-1234:abcdef0123456789"
FAST = ClientTimeouts(connect=5.0, request=5.0, upload=5.0, download_read=5.0)


def settings(**changes: Any) -> EmulatorSettings:
    base: dict[str, Any] = {"queue_time": 0.05, "processing_time": 0.1, "render": "cached",
                            "retry_after": 0.01, "seed": 5}
    base.update(changes)
    return EmulatorSettings(**base)


Open = Callable[..., Awaitable[tuple[RunningEmulator, Gateway]]]


@pytest.fixture
async def open_provider() -> AsyncIterator[Open]:
    """Start an emulator in a provider's format and a client for it (both closed after)."""
    stack: list[tuple[str, Any]] = []

    async def start(provider: str, key: str | None = None, **changes: Any
                    ) -> tuple[RunningEmulator, Gateway]:
        expected = SECRET if provider == "kling" else FAL_KEY
        context = run_emulator(settings(api_key=expected, **changes), provider=provider)
        emulator = await context.__aenter__()
        stack.append(("emulator", context))
        client = make_client(provider, emulator.base_url, emulator.files_url,
                             key or expected, ACCESS, timeouts=FAST)
        stack.append(("client", client))
        return emulator, client

    yield start
    for kind, item in reversed(stack):
        if kind == "client":
            await item.close()
        else:
            await item.__aexit__(None, None, None)


async def finished(client: Gateway, task_id: str) -> TaskState:
    seen: list[TaskState] = []
    for _ in polls():
        state = await client.get_task(task_id)
        seen.append(state)
        if state.status in ("completed", "failed"):
            return state
        await asyncio.sleep(0.01)
    raise AssertionError(f"task {task_id} never finished: {seen[-1:]}")


@pytest.mark.parametrize("provider", ["kling", "fal"])
async def test_a_task_is_created_polled_and_its_video_downloaded(
        provider: str, open_provider: Open, tmp_path: Path) -> None:
    emulator, client = await open_provider(provider)
    created = await client.create_task(payload(external_task_id="shotrun-abc"))
    assert created.status == "pending"
    state = await finished(client, created.task_id)
    assert state.status == "completed" and state.results
    saved = await client.download(state.results[0], tmp_path / "take.part")
    assert saved.size > 1000
    stats = emulator.stats()
    assert stats["creation_requests"] == stats["accepted_tasks"] == 1
    assert stats["polls"] >= 1


@pytest.mark.parametrize("provider", ["kling", "fal"])
async def test_ids_and_result_links_are_the_providers_own_never_the_boards(
        provider: str, open_provider: Open, tmp_path: Path) -> None:
    """fal hands out UUIDs and Kling long numbers; the emulator's gateway-style board id
    (``task-unified-...``) shows in no answer, no link, no counter, and finds nothing."""
    emulator, client = await open_provider(provider)
    created = await client.create_task(payload())
    rid = created.task_id
    if provider == "fal":
        assert str(uuid.UUID(rid)) == rid
    else:
        assert rid.isdigit() and len(rid) == 18
    state = await finished(client, rid)
    assert state.task_id == rid and state.status == "completed"
    link = URL(state.results[0])
    assert link.path == f"/results/{rid}.mp4" and "task-unified" not in str(link)
    assert (await client.download(state.results[0], tmp_path / "take.part")).size > 1000
    assert list(emulator.stats()["polls_per_task"]) == [rid]
    task = emulator.core.board.named(rid)
    assert task is not None and task.task_id.startswith("task-unified-")
    with pytest.raises(PermanentGatewayError):  # "no such task": the provider never said it
        await client.get_task(task.task_id)
    board_link = link.with_path(f"/results/{task.task_id}.mp4")
    async with aiohttp.ClientSession() as http, http.get(board_link) as response:
        assert response.status == 404


@pytest.mark.parametrize("provider", ["kling", "fal"])
async def test_a_wrong_key_is_one_line_naming_the_provider_never_the_key(
        provider: str, open_provider: Open) -> None:
    _, client = await open_provider(provider, key="wrong-key-0000000000")
    with pytest.raises(AuthenticationFailed) as raised:
        await client.create_task(payload())
    message = raised.value.message
    assert "\n" not in message and "refused the API key" in message
    assert SECRET not in message and "wrong-key-0000000000" not in message
    assert redact(message) == message


@pytest.mark.parametrize("provider", ["kling", "fal"])
async def test_out_of_credits_is_quota_not_a_rate_limit(provider: str,
                                                        open_provider: Open) -> None:
    # The account's balance is in the provider's unit (issue 21): less than one task.
    _, client = await open_provider(provider, credits=0.01)
    with pytest.raises(QuotaExhausted):
        await client.create_task(payload())


@pytest.mark.parametrize("provider", ["kling", "fal"])
async def test_over_the_concurrency_cap_is_a_rate_limit(provider: str,
                                                        open_provider: Open) -> None:
    _, client = await open_provider(provider, concurrency_cap=1, processing_time=5.0)
    await client.create_task(payload())
    with pytest.raises(RateLimited) as raised:
        await client.create_task(payload(prompt="another"))
    assert raised.value.retry_after is not None
    if provider == "kling":
        assert raised.value.code == "1303"


@pytest.mark.parametrize(("code", "permanent"), [("content_policy_violation", True),
                                                  ("service_error", False)])
@pytest.mark.parametrize("provider", ["kling", "fal"])
async def test_a_failed_task_keeps_its_kind(provider: str, code: str, permanent: bool,
                                            open_provider: Open) -> None:
    from runner.core.errors import PERMANENT_TASK_CODES

    _, client = await open_provider(provider, failure_rate=1.0, failure_codes=(code,))
    state = await finished(client, (await client.create_task(payload())).task_id)
    assert state.status == "failed" and state.error_message
    assert (state.error_code in PERMANENT_TASK_CODES) is permanent


async def test_fal_reports_the_queue_position(open_provider: Open) -> None:
    _, client = await open_provider("fal", queue_time=30.0)
    first = await client.create_task(payload())
    second = await client.create_task(payload(prompt="second"))
    assert (await client.get_task(first.task_id)).queue_position == 0
    state = await client.get_task(second.task_id)
    assert state.status == "pending" and state.queue_position == 1


async def test_kling_finds_a_creation_by_its_external_id(open_provider: Open) -> None:
    emulator, client = await open_provider("kling")
    assert isinstance(client, ResolvesLostAnswers)
    sent = payload(external_task_id="shotrun-" + "1" * 40)
    created = await client.create_task(sent)
    found = await client.resolve_lost(sent)
    assert found is not None and found.task_id == created.task_id
    assert await client.resolve_lost(payload(external_task_id="shotrun-" + "2" * 40)) is None
    # Sending the same attempt again (its answer was lost, then it arrived after all): the
    # id is taken, and the client adopts the first task instead of failing or paying twice.
    again = await client.create_task(sent)
    assert again.task_id == created.task_id
    assert emulator.stats()["accepted_tasks"] == 1


async def test_fal_cannot_resolve_lost_answers(open_provider: Open) -> None:
    _, client = await open_provider("fal")
    assert not isinstance(client, ResolvesLostAnswers)


def test_kling_tokens_are_hs256_with_the_documented_claims_and_renewed_before_expiry(
        ) -> None:
    now = [1_800_000_000.0]
    signer = TokenSigner(ACCESS, SECRET, clock=lambda: now[0])
    token = signer.token()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"iss": ACCESS, "exp": 1_800_000_000 + 1800, "nbf": 1_800_000_000 - 5}
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    now[0] += TOKEN_LIFE - RENEW_BEFORE - 1
    assert signer.token() == token and signer.issued == 1
    now[0] += 2  # less than RENEW_BEFORE left: a new one before it is sent
    renewed = signer.token()
    assert renewed != token and signer.issued == 2
    # Every token is a secret: no text shotrun writes can carry one.
    assert token not in redact(f"Authorization: Bearer {token}")
    assert SECRET not in redact(SECRET) and ACCESS not in redact(ACCESS)


async def test_kling_an_expired_token_is_refused(open_provider: Open) -> None:
    emulator, _ = await open_provider("kling")
    import aiohttp

    old = jwt.encode({"iss": ACCESS, "exp": 1000, "nbf": 900}, SECRET, algorithm="HS256")
    async with aiohttp.ClientSession() as session, session.get(
            f"{emulator.base_url}/v1/videos/omni-video/1",
            headers={"Authorization": f"Bearer {old}"}) as resp:
        body = await resp.json()
    assert resp.status == 401 and body["code"] == 1004
