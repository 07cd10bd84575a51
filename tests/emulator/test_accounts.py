"""Accounts in the emulator: each key's own seats, credits and tasks, counted apart.

Real HTTP on 127.0.0.1 in each wire format, each account with its own key as a client
sends it. Tasks stay in flight by settings (a queue time no test outlives), never by timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from runner import cli
from runner.cli.commands.emulator import settings_from_args
from runner.core.errors import EXIT_USAGE
from runner.emulator import EmulatorSettings, RunningEmulator, run_emulator
from runner.emulator.settings import Account, key_label
from runner.providers.kling_client import TokenSigner
from tests.emulator.conftest import FAST, payload, wait_for_status
from tests.emulator.test_fal_queue import APP, REQUESTS, fal_input

KEY_A = "sk-account-a-0123456789abcdef0123456789"
KEY_B = "sk-account-b-fedcba9876543210fedcba9876"
OTHER = "sk-unlisted-key-5555555555"
FAR = 600.0  # a queue time no test outlives: every task stays in flight
TWO_ACCOUNTS = FAST.replace(
    api_key=None, queue_time=FAR, retry_after=None,
    accounts={KEY_A: {"concurrency_cap": 2, "label": "team-a"},
              KEY_B: {"concurrency_cap": 2}})
LABEL_B = key_label(KEY_B)
KLING_CREATE = "/v1/videos/omni-video"
Session = Callable[[str], Awaitable[aiohttp.ClientSession]]


@pytest.fixture
async def running() -> AsyncIterator[Callable[..., Awaitable[tuple[RunningEmulator,
                                                                    Session]]]]:
    """Start an emulator (TWO_ACCOUNTS with changes) in a wire format; sessions per key."""
    async with contextlib.AsyncExitStack() as stack:
        async def start(provider: str = "gateway", **changes: Any
                        ) -> tuple[RunningEmulator, Session]:
            emulator = await stack.enter_async_context(
                run_emulator(TWO_ACCOUNTS.replace(**changes), provider=provider))

            async def session(key: str) -> aiohttp.ClientSession:
                if provider == "kling":
                    header = f"Bearer {TokenSigner('access-' + key[-4:], key).token()}"
                else:
                    header = f"{'Key' if provider == 'fal' else 'Bearer'} {key}"
                return await stack.enter_async_context(aiohttp.ClientSession(
                    base_url=emulator.base_url, headers={"Authorization": header}))

            return emulator, session

        yield start


async def call(http: aiohttp.ClientSession, method: str, path: str, **kw: Any
               ) -> tuple[int, Any, Any]:
    async with http.request(method, path, **kw) as response:
        return response.status, await response.json(), response.headers


async def gateway_create(http: aiohttp.ClientSession) -> tuple[int, Any, Any]:
    return await call(http, "POST", "/v1/videos/generations", json=payload())


def kling_input(**changes: Any) -> dict[str, Any]:
    body = {"model_name": "kling-v3-omni", "prompt": "A red kite over a grey sea",
            "duration": "3", "mode": "std", "aspect_ratio": "16:9", **changes}
    return body


async def test_each_account_has_its_own_concurrency_cap(running: Any) -> None:
    emulator, session = await running()
    a, b = await session(KEY_A), await session(KEY_B)
    for _ in range(2):
        assert (await gateway_create(a))[0] == 200
    status, body, headers = await gateway_create(a)
    assert status == 429 and body["error"]["code"] == "concurrency_limit_exceeded"
    assert int(headers["Retry-After"]) >= 1
    for _ in range(2):  # A is full, B still has its own two seats
        assert (await gateway_create(b))[0] == 200
    assert (await gateway_create(b))[0] == 429
    stats = emulator.stats()
    assert stats["max_in_flight"] == 4 and stats["accepted_tasks"] == 4
    assert stats["creation_requests"] == 6 and stats["rate_limited"] == 2
    assert stats["accounts"] == {
        label: {"creation_requests": 3, "accepted_tasks": 2, "in_flight": 2,
                "max_in_flight": 2, "rate_limited": 1, "credits_reserved": 48.6}
        for label in ("team-a", LABEL_B)}


@pytest.mark.parametrize("failure_rate", [0.0, 1.0], ids=["completed", "failed"])
async def test_a_finished_task_gives_its_accounts_seat_back(running: Any,
                                                            failure_rate: float) -> None:
    emulator, session = await running(queue_time=0.0, failure_rate=failure_rate,
                                      accounts={KEY_A: {"concurrency_cap": 1}})
    a = await session(KEY_A)
    first = (await gateway_create(a))[1]["id"]
    assert (await gateway_create(a))[0] == 429
    assert (await wait_for_status(a, first))["status"] == ("failed" if failure_rate
                                                           else "completed")
    assert emulator.stats()["accounts"][key_label(KEY_A)]["in_flight"] == 0
    assert (await gateway_create(a))[0] == 200
    counts = emulator.stats()["accounts"][key_label(KEY_A)]
    assert (counts["in_flight"], counts["max_in_flight"], counts["accepted_tasks"]) == (1, 1, 2)


async def test_the_emulator_wide_cap_still_bounds_the_sum(running: Any) -> None:
    emulator, session = await running(concurrency_cap=3)
    a, b = await session(KEY_A), await session(KEY_B)
    assert [(await gateway_create(a))[0] for _ in range(2)] == [200, 200]
    assert (await gateway_create(b))[0] == 200
    status, body, _ = await gateway_create(b)  # B has a seat left, the emulator has none
    assert status == 429 and body["error"]["code"] == "concurrency_limit_exceeded"
    assert emulator.stats()["accounts"][LABEL_B]["rate_limited"] == 0
    assert emulator.stats()["rate_limited"] == 1


async def test_an_unlisted_key_has_the_emulator_wide_settings(running: Any) -> None:
    emulator, session = await running()
    other = await session(OTHER)
    assert [(await gateway_create(other))[0] for _ in range(3)] == [200] * 3
    assert emulator.stats()["in_flight"] == 3
    assert set(emulator.stats()["accounts"]) == {"team-a", LABEL_B}  # listed ones only
    assert all(counts["creation_requests"] == 0
               for counts in emulator.stats()["accounts"].values())


async def test_an_unlisted_key_is_refused_when_api_key_names_another(running: Any) -> None:
    _, session = await running(api_key="sk-the-default-accounts-key")
    status, body, _ = await gateway_create(await session(OTHER))
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert (await gateway_create(await session(KEY_A)))[0] == 200  # listed: accepted


async def test_a_task_is_found_only_with_its_accounts_key(running: Any) -> None:
    _, session = await running()
    a, b, other = await session(KEY_A), await session(KEY_B), await session(OTHER)
    task_id = (await gateway_create(a))[1]["id"]
    assert (await call(a, "GET", f"/v1/tasks/{task_id}"))[0] == 200
    for stranger in (b, other):
        status, body, _ = await call(stranger, "GET", f"/v1/tasks/{task_id}")
        assert status == 404 and body["error"]["code"] == "task_not_found", body
    default_task = (await gateway_create(other))[1]["id"]
    assert (await call(a, "GET", f"/v1/tasks/{default_task}"))[0] == 404


async def test_keys_of_one_label_are_one_account(running: Any) -> None:
    """Kling's concurrency is shared by all the keys of an account: two keys, one label."""
    shared = {"concurrency_cap": 2, "label": "studio"}
    emulator, session = await running(accounts={KEY_A: shared, KEY_B: shared})
    a, b = await session(KEY_A), await session(KEY_B)
    task_id = (await gateway_create(a))[1]["id"]
    assert (await gateway_create(b))[0] == 200
    assert (await gateway_create(a))[0] == 429
    assert (await call(b, "GET", f"/v1/tasks/{task_id}"))[0] == 200  # the account's task
    assert emulator.stats()["accounts"]["studio"]["max_in_flight"] == 2


async def test_an_accounts_own_credits_answer_402(running: Any) -> None:
    emulator, session = await running(accounts={KEY_A: Account("a", credits=50.0)})
    a, other = await session(KEY_A), await session(OTHER)
    assert (await gateway_create(a))[0] == 200  # 24.3 credits
    assert (await gateway_create(a))[0] == 200
    status, body, _ = await gateway_create(a)
    assert status == 402 and body["error"]["code"] == "insufficient_quota"
    assert (await gateway_create(other))[0] == 200  # the default account has no balance set
    assert emulator.stats()["accounts"]["a"]["credits_reserved"] == 48.6


async def test_no_key_appears_in_the_stats(running: Any) -> None:
    emulator, session = await running()
    for key in (KEY_A, KEY_B, OTHER):
        await gateway_create(await session(key))
    async with aiohttp.ClientSession() as bare, \
            bare.get(f"{emulator.base_url}/_emulator/stats") as response:
        text = await response.text()
    assert json.loads(text)["accounts"][LABEL_B]["accepted_tasks"] == 1
    assert LABEL_B.startswith("key-") and len(LABEL_B) == 12
    for key in (KEY_A, KEY_B, OTHER):
        assert key not in text and key[-8:] not in text
    assert KEY_A not in repr(emulator.settings)


async def test_kling_answers_1303_per_account_and_1203_to_another(running: Any) -> None:
    emulator, session = await running("kling")
    a, b = await session(KEY_A), await session(KEY_B)
    made = [await call(a, "POST", KLING_CREATE, json=kling_input(external_task_id=f"x{n}"))
            for n in range(3)]
    assert [status for status, _, _ in made] == [200, 200, 429]
    assert made[2][1]["code"] == 1303 and "Retry-After" in made[2][2]
    assert (await call(b, "POST", KLING_CREATE, json=kling_input()))[0] == 200
    kling_id = made[0][1]["data"]["task_id"]
    for wanted in (kling_id, "x0"):  # by Kling's id or by the external one
        assert (await call(a, "GET", f"{KLING_CREATE}/{wanted}"))[0] == 200
        status, body, _ = await call(b, "GET", f"{KLING_CREATE}/{wanted}")
        assert status == 404 and body["code"] == 1203
    # External ids are unique per account: B may use A's.
    status, body, _ = await call(b, "POST", KLING_CREATE, json=kling_input(external_task_id="x0"))
    assert status == 200, body
    assert (await call(b, "GET", f"{KLING_CREATE}/x0"))[1]["data"]["task_id"] != kling_id
    counts = emulator.stats()["accounts"]
    assert counts["team-a"]["max_in_flight"] == 2 and counts["team-a"]["rate_limited"] == 1
    assert counts[LABEL_B]["accepted_tasks"] == 2


async def test_kling_expired_token_of_an_account_is_1004(running: Any) -> None:
    import jwt

    emulator, _ = await running("kling")
    token = jwt.encode({"iss": "access", "exp": 1, "nbf": 0}, KEY_A, algorithm="HS256")
    async with aiohttp.ClientSession(base_url=emulator.base_url,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
        status, body, _ = await call(http, "POST", KLING_CREATE, json=kling_input())
    assert status == 401 and body["code"] == 1004


async def test_fal_answers_429_per_account_and_404_to_another(running: Any) -> None:
    emulator, session = await running("fal")
    a, b = await session(KEY_A), await session(KEY_B)
    made = [await call(a, "POST", APP, json=fal_input()) for _ in range(3)]
    assert [status for status, _, _ in made] == [200, 200, 429]
    assert "Retry-After" in made[2][2]
    assert (await call(b, "POST", APP, json=fal_input()))[0] == 200
    rid = made[0][1]["request_id"]
    assert (await call(a, "GET", f"{REQUESTS}{rid}/status"))[0] == 200
    for method, path in (("GET", f"{REQUESTS}{rid}/status"), ("GET", f"{REQUESTS}{rid}"),
                         ("PUT", f"{REQUESTS}{rid}/cancel")):
        status, body, _ = await call(b, method, path)
        assert status == 404 and body == {"detail": "Request not found"}, (method, path)
    assert (await call(a, "PUT", f"{REQUESTS}{rid}/cancel"))[0] == 202  # frees A's seat
    assert (await call(a, "POST", APP, json=fal_input()))[0] == 200
    counts = emulator.stats()["accounts"]["team-a"]
    assert counts["in_flight"] == 2 and counts["max_in_flight"] == 2


async def test_fal_late_refusal_is_its_accounts_only(running: Any) -> None:
    _, session = await running("fal", fal_validation="queue")
    a, b = await session(KEY_A), await session(KEY_B)
    rid = (await call(a, "POST", APP, json=fal_input(duration=3)))[1]["request_id"]
    assert (await call(a, "GET", f"{REQUESTS}{rid}/status"))[0] == 200
    assert (await call(b, "GET", f"{REQUESTS}{rid}/status"))[0] == 404


@pytest.mark.parametrize(
    ("accounts", "fragment"),
    [({KEY_A: {"concurrency_cap": 0}}, r"accounts\[key-[0-9a-f]{8}\]\.concurrency_cap must"),
     ({KEY_A: {"concurrency_cap": 1.5, "label": "a"}}, r"accounts\[a\]\.concurrency_cap"),
     ({KEY_A: {"credits": -1, "label": "a"}}, r"accounts\[a\]\.credits must be >= 0"),
     ({KEY_A: {"cap": 2}}, r"unknown setting 'cap' of accounts\[key-"),
     ({KEY_A: 2}, r"accounts\[key-[0-9a-f]{8}\] must be a mapping"),
     ({KEY_A: {"label": "s", "concurrency_cap": 1}, KEY_B: {"label": "s"}},
      r"accounts\[s\]: keys of one account"),
     ({"": {}}, "accounts: key number 1 must be a non-empty string"),
     ([KEY_A], "accounts must be a mapping of API keys")],
    ids=["cap-zero", "cap-fraction", "credits", "unknown", "not-mapping", "one-label",
         "empty-key", "list"],
)
def test_bad_accounts_are_refused_by_label_never_by_key(accounts: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as caught:
        EmulatorSettings.from_mapping({"accounts": accounts})
    assert KEY_A not in str(caught.value) and KEY_B not in str(caught.value)


def test_accounts_keep_every_default() -> None:
    settings = EmulatorSettings.from_mapping({"accounts": {KEY_A: {"concurrency_cap": 2}}})
    assert settings.replace(accounts={}) == EmulatorSettings()
    assert settings.account_of(KEY_A) == Account(key_label(KEY_A), 2)
    assert settings.account_of(OTHER) is None


def test_account_flags_read_keys_from_variables() -> None:
    args = cli.build_parser().parse_args([
        "emulator", "--account", "EMU_A=2", "--account", "EMU_B=3",
        "--account-credits", "EMU_A=100", "--concurrency-cap", "4"])
    settings = settings_from_args(args, {"EMU_A": KEY_A, "EMU_B": KEY_B})
    assert dict(settings.accounts) == {KEY_A: Account("EMU_A", 2, 100.0),
                                       KEY_B: Account("EMU_B", 3)}
    assert settings.concurrency_cap == 4


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [(["--account", "EMU_UNSET=2"], "--account: the variable EMU_UNSET is not set"),
     (["--account", "EMU_A=0"], "--account EMU_A=0: the number of tasks in flight must be"),
     (["--account", "EMU_A=1.5"], "--account EMU_A=1.5: the number of tasks in flight"),
     (["--account", "EMU_A"], "--account expects KEY=NUMBER"),
     (["--account", "EMU_A=2", "--account", "EMU_SAME=2"],
      "--account: EMU_SAME holds the same key as EMU_A"),
     (["--account", "EMU_A=2", "--account-credits", "EMU_B=5"],
      "--account-credits EMU_B: no account of that name"),
     (["--account", "EMU_A=2", "--account-credits", "EMU_A=-5"],
      "accounts[EMU_A].credits must be >= 0")],
    ids=["unset", "zero", "fraction", "no-number", "same-key", "credits-alone",
         "negative-credits"],
)
def test_bad_account_flags_are_one_line_usage_errors(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        argv: list[str], fragment: str) -> None:
    for var, key in (("EMU_A", KEY_A), ("EMU_B", KEY_B), ("EMU_SAME", KEY_A)):
        monkeypatch.setenv(var, key)
    monkeypatch.delenv("EMU_UNSET", raising=False)
    assert cli.main(["emulator", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and KEY_A not in err and KEY_B not in err


def test_the_command_names_its_accounts_by_variable(repo_root: Path) -> None:
    env = {**os.environ, "EMU_A": KEY_A, "EMU_B": KEY_B}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "emulator", "--provider", "kling",
         "--account", "EMU_A=2", "--account", "EMU_B=1", "--account-credits", "EMU_B=9"],
        cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # blocks until the server is listening
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        with opener.open(f"{url}/_emulator/stats", timeout=10) as response:
            stats = response.read().decode()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert set(json.loads(stats)["accounts"]) == {"EMU_A", "EMU_B"}
    assert "account EMU_A: at most 2 tasks in flight; a run uses it with export " \
           'KLING_SECRET_KEY="$EMU_A"' in err
    assert "account EMU_B: at most 1 task in flight, 9 Kling units of balance" in err
    for key in (KEY_A, KEY_B):
        assert key not in err and key not in stats
