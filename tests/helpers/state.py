"""Building takes (with their fingerprint payloads) for state, outputs and status tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.core.model import LocalFile, Take, TakeRequest
from runner.state import StateStore
from runner.wire.payload import build_payload, fingerprint, fingerprint_resolver


def make_take(
    shot_id: str = "s01",
    take: int = 1,
    *,
    prompt: str = "a lighthouse at dawn",
    duration: int = 5,
    image_sha: str | None = None,
    tags: Sequence[str] = (),
) -> Take:
    """A take whose fingerprint follows its prompt, duration and (local) image content."""
    images: tuple[LocalFile, ...] = ()
    if image_sha is not None:
        images = (LocalFile(Path("/assets/coast.png"), image_sha, 1000, "image/png"),)
    request = TakeRequest(prompt=prompt, multi_prompt=None, duration=duration, images=images)
    return Take(shot_id=shot_id, take=take, request=request, fingerprint=fingerprint(request),
                tags=tuple(tags))


def payloads(takes: Sequence[Take]) -> dict[str, dict[str, Any]]:
    """The canonical fingerprint payload of each take, by key, as the run passes to sync."""
    return {t.key: build_payload(t.request, fingerprint_resolver) for t in takes}


SHA = "ab" * 32


def fill_solo_store(store: StateStore) -> None:
    """A store as a solo run leaves it: a take done, one in flight (Kling units), one
    ambiguous, one failed then changed (its old record in the history), a pick, a note,
    an upload, the provider and the salt of the task ids."""
    takes = [make_take("s01"), make_take("s02"), make_take("s03"), make_take("s04")]
    store.sync(takes, payloads(takes))
    store.record_provider("gateway")
    store.client_salt()
    store.mark_submitting("s01/take-1", {"prompt": "p"}, 8.0)
    store.mark_submitted("s01/take-1", "task-1", 8.0, 30.0)
    store.mark_completed("s01/take-1", "https://cdn.example/r.mp4", 1.9e9)
    store.mark_downloading("s01/take-1")
    store.mark_done("s01/take-1", "/out/s01/take-1.mp4", 1234, SHA, 5.0,
                    video={"width": 1280, "height": 720})
    store.mark_submitting("s02/take-1", {}, 3.5, "units")
    store.mark_submitted("s02/take-1", "task-2", 3.25)
    store.mark_submitting("s03/take-1", {}, 8.0)
    store.mark_ambiguous("s03/take-1", "the answer was lost")
    store.mark_submitting("s04/take-1", {}, 8.0)
    store.mark_failed("s04/take-1", "permanent", "content_policy_violation", "refused")
    changed = [*takes[:3], make_take("s04", prompt="a quieter sea")]
    store.sync(changed, payloads(changed))
    store.set_pick("s01", 1, SHA)
    store.set_note("s01/take-1", "keep the flare", SHA)
    store.put_upload("cd" * 32, "https://uploads.example/a.png", 1.9e9, 10, "image/png")


def store_snapshot(store: StateStore) -> dict[str, Any]:
    """Everything a copy must keep, as the store's own readers answer it."""
    return {
        "records": sorted(store.records(), key=lambda r: r.key),
        "history": store.history(),
        "events": store.events(),
        "picks": store.picks(),
        "notes": store.notes(),
        "committed": store.committed_by_unit(),
        "salt": store.client_salt(),
        "provider": store.last_provider(),
        "upload": store.get_upload("cd" * 32),
    }
