"""The :class:`~runner.wire.protocol.Gateway` of the official Kling API (bodies: :mod:`.kling`).

Credentials: a JWT (HS256, ``{iss: access key, exp: now+1800, nbf: now-5}``) made here from
the access and secret keys and renewed :data:`RENEW_BEFORE` seconds before it expires. The
secret key is never sent; the access key and each token are registered with
:mod:`runner.core.redact` so no log line, store row or message can carry them.

A creation whose answer was lost is looked up by its ``external_task_id``
(:meth:`KlingClient.resolve_lost`), so it is never *ambiguous* here.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import jwt
import structlog
from yarl import URL

from runner.core.errors import MalformedResponse, PermanentGatewayError
from runner.core.redact import register_secret
from runner.providers.gateway.client import json_bytes
from runner.providers.http import ProviderClient
from runner.wire.common import CLIENT_TASK_ID
from runner.wire.kling import (
    CREATE_PATH,
    NOT_FOUND_CODES,
    error_of,
    parse_task,
    task_state,
    translate,
)
from runner.wire.protocol import TaskState
from runner.wire.specs import KLING, spec

log = structlog.get_logger()

TOKEN_LIFE = 1800
NOT_BEFORE = 5
RENEW_BEFORE = 300  # a token with less life than this left is replaced before it is sent


class TokenSigner:
    """Short-lived HS256 JWTs from an access key and a secret key, renewed before expiry."""

    def __init__(self, access_key: str, secret_key: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        if not access_key.strip() or not secret_key.strip():
            raise ValueError("the Kling access key or secret key is empty")
        register_secret(access_key)
        register_secret(secret_key)
        self._access = access_key
        self._secret = secret_key
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (token, expiry)
        self.issued = 0  # tokens made (tests check renewal)

    def token(self) -> str:
        """A token with at least :data:`RENEW_BEFORE` seconds of life left."""
        now = self._clock()
        if self._token is None or self._token[1] - now < RENEW_BEFORE:
            issued = int(now)
            claims = {"iss": self._access, "exp": issued + TOKEN_LIFE,
                      "nbf": issued - NOT_BEFORE}
            with warnings.catch_warnings():
                # A short secret is the account's, not ours to refuse: no Python warning on
                # the user's terminal for it.
                warnings.simplefilter("ignore")
                token = jwt.encode(claims, self._secret, algorithm="HS256",
                                   headers={"typ": "JWT"})
            register_secret(token)
            self._token = (token, float(issued + TOKEN_LIFE))
            self.issued += 1
            log.debug("kling_token_issued", expires_in=TOKEN_LIFE)
        return self._token[0]


class KlingClient(ProviderClient):
    """Speaks the official Kling API; see the module docstring."""

    label = spec(KLING).label
    error_of = staticmethod(error_of)

    def __init__(self, base_url: str, files_url: str | None, access_key: str,
                 secret_key: str, *, clock: Callable[[], float] = time.time,
                 **options: Any) -> None:
        self.signer = TokenSigner(access_key, secret_key, clock=clock)
        super().__init__(base_url, files_url, secret_key, **options)

    def __repr__(self) -> str:
        return f"KlingClient({str(self._base)!r})"

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.signer.token()}"}

    def _is_query(self, url: URL) -> bool:
        return url.path.rstrip("/") != CREATE_PATH and url.path.startswith(CREATE_PATH)

    async def create_native(self, body: Mapping[str, Any]
                            ) -> tuple[TaskState, dict[str, Any]]:
        """POST a body already in Kling's words (``shotrun probe``); the task and the
        answer's JSON object. A lost answer raises AmbiguousSubmission."""
        answer = await self.send("POST", CREATE_PATH, operation="create task",
                                 creating=True, body=json_bytes(body))
        return parse_task(answer, what="create task answer")

    async def create_task_answer(self, payload: Mapping[str, Any]
                                 ) -> tuple[TaskState, dict[str, Any]]:
        """POST the omni-video creation of a canonical payload; a lost answer raises
        AmbiguousSubmission."""
        try:
            return await self.create_native(translate(payload))
        except PermanentGatewayError as exc:
            # The id is taken: an earlier creation of this very attempt did arrive after
            # all (its answer was the one lost). Adopt that task rather than fail the take.
            if CLIENT_TASK_ID in exc.message and payload.get(CLIENT_TASK_ID):
                found = await self.resolve_lost(payload)
                if found is not None:
                    return found, {}
            raise

    async def get_task_answer(self, task_id: str) -> tuple[TaskState, dict[str, Any]]:
        """GET the task by the id Kling gave it; the answer's JSON object too."""
        if not task_id:
            raise ValueError("task_id is empty")
        body = await self.send("GET", f"{CREATE_PATH}/{quote(task_id, safe='')}",
                               operation=f"query task {task_id}", task_id=task_id)
        state, data = parse_task(body, what=f"query task {task_id} answer")
        if state.task_id != task_id:
            raise MalformedResponse(f"query task {task_id}: the answer describes task "
                                    f"{state.task_id}")
        return state, data

    async def resolve_lost(self, payload: Mapping[str, Any]) -> TaskState | None:
        """The task a lost creation of ``payload`` made, looked up by its external id; None
        when Kling has none (the creation never arrived: sending it again is safe)."""
        external = payload.get(CLIENT_TASK_ID)
        if not isinstance(external, str) or not external:
            raise ValueError("resolve_lost: the payload has no external_task_id")
        try:
            body = await self.send("GET", f"{CREATE_PATH}/{quote(external, safe='')}",
                                   operation=f"look up task {external}", task_id=external)
        except PermanentGatewayError as exc:
            if exc.status == 404 or exc.code in {str(c) for c in NOT_FOUND_CODES}:
                return None
            raise
        return self.remember_links(task_state(body, what=f"look up task {external} answer"))
