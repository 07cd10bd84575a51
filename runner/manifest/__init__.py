"""manifest: The manifest language: YAML file in, frozen :class:`~runner.core.model.Manifest` out.

    load (loader.py)  -> pass 1: schema (schema.py, fastcheck.py, secrets.py)
                      -> pass 2: names and media (media.py, assets.py), expansion (expand.py),
                         prompts (prompts.py), links (graph.py), takes (takes.py),
                         manifest-wide rules (rules.py), provider accounts (accounts.py)

Both passes always run (pass 2 on what pass 1 allowed, see :class:`.context.Context`), so one
``validate`` shows *every* problem of a file. Raw dicts never leave this package.

Public API: :func:`load_manifest` and :func:`validate_file`.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from runner.core.bulk import is_command_process, paused_gc
from runner.core.errors import ManifestError, Problem
from runner.core.model import Manifest, Take
from runner.manifest import cache
from runner.manifest.accounts import with_accounts
from runner.manifest.assets import LocalFiles
from runner.manifest.context import Context, get_str
from runner.manifest.expand import expand_shots
from runner.manifest.graph import ShotIndex
from runner.manifest.loader import load_yaml
from runner.manifest.mediarefs import MediaResolver
from runner.manifest.rules import (
    api_config,
    budget,
    check_api,
    check_unused,
    check_wire,
    output_dir,
    provider_of,
    store_url,
    variables,
    verify_policy,
)
from runner.manifest.schema import check as schema_check
from runner.manifest.secrets import check_secrets, secret_paths
from runner.manifest.takes import TakeBuilder
from runner.wire.specs import GATEWAY, chosen_base_url
from runner.wire.specs import chosen as chosen_provider

__all__ = ["load_manifest", "validate_file"]

_log = structlog.get_logger()


def _analyse(path: Path | str, provider: str | None = None, base_url: str | None = None,
             sends: bool = True) -> tuple[list[Problem], Manifest | None]:
    """Every problem of the file, and the manifest when there is no error.

    ``provider`` (from ``--provider`` or ``SHOTRUN_PROVIDER``) overrides ``api.provider``: it
    decides the provider's limits checked here and is part of every fingerprint.
    ``base_url`` (``--base-url`` or ``SHOTRUN_BASE_URL``) is where a run would send, in place
    of ``api.base_url``: local images are refused for a real fal/Kling URL only (see
    :func:`_remote`). ``sends`` False leaves that check out (see :func:`load_manifest`).
    """
    file = str(path)
    resolved = Path(path).absolute()
    try:
        root, problems = load_yaml(resolved, file)
    except ManifestError as exc:
        return list(exc.problems), None
    secrets = secret_paths(root)
    problems.extend(check_secrets(root, file, secrets))
    pass_one, refused = schema_check(root, file, skip=secrets)
    problems.extend(pass_one)
    refused |= secrets
    ctx = Context(root, file, resolved.parent, problems, refused)

    renames = check_wire(ctx)
    chosen = provider_of(ctx, provider)
    check_api(ctx, chosen)
    defined = variables(ctx)
    media = MediaResolver(ctx, LocalFiles(resolved.parent))
    media.declare()
    specs = expand_shots(ctx)
    index = ShotIndex((spec.shot_id, spec.base_id) for spec in specs)
    api = with_accounts(ctx, api_config(ctx, renames, chosen))

    builder = TakeBuilder(ctx, media, index, defined, api.model, renames, provider=chosen,
                          remote=sends and _remote(base_url, api.base_url))
    takes: list[Take] = []
    for spec in specs:
        takes.extend(builder.build(spec))
    index.check_cycles(ctx)
    index.check_frame_times(ctx, {t.shot_id: t.request.duration for t in takes})
    check_unused(ctx, defined, builder.used_vars)

    problems.sort(key=lambda p: (p.location.line, p.location.column))
    if ctx.failed:
        return problems, None
    name = get_str(root, "name") or "manifest"
    manifest = Manifest(
        path=resolved,
        name=name,
        output_dir=output_dir(ctx, name),
        api=api,
        budget=budget(ctx),
        takes=tuple(takes),
        verify=verify_policy(ctx),
        store_url=store_url(ctx),
        warnings=tuple(p for p in problems if p.severity == "warning"),
    )
    _log.debug("manifest_expanded", file=file, shots=len(specs), takes=len(takes))
    return problems, manifest


def _analyse_paused(path: Path | str, provider: str | None = None,
                    base_url: str | None = None, sends: bool = True
                    ) -> tuple[list[Problem], Manifest | None]:
    """:func:`_analyse` with the cyclic garbage collector paused.

    Loading builds hundreds of thousands of small objects and frees none, so the collector
    would keep rescanning them all for nothing (10,000 shots took 3x longer with it on).
    Nothing built here forms a reference cycle that needs it.
    """
    with paused_gc():
        return _analyse(path, provider, base_url, sends)


def validate_file(path: Path | str, provider: str | None = None,
                  base_url: str | None = None) -> list[Problem]:
    """Every problem (errors and warnings) of the manifest at ``path``; [] when it is clean.

    ``provider`` overrides ``api.provider`` and ``base_url`` ``api.base_url`` (see
    :func:`load_manifest`).
    """
    problems, _ = _analyse_paused(path, _provider(provider), _base_url(base_url))
    return problems


def _provider(flag: str | None) -> str | None:
    """``--provider`` or ``SHOTRUN_PROVIDER`` (a bad value: UsageError), or None."""
    return chosen_provider(flag)


def _base_url(flag: str | None) -> str | None:
    """``--base-url`` or ``SHOTRUN_BASE_URL``, or None (the manifest's): the same
    precedence as :func:`runner.providers.session.resolve_config`, which checks the value."""
    return chosen_base_url(flag)


def _remote(override: str | None, written: str) -> bool:
    """Whether a run sends to the provider's real API rather than the built-in emulator (which
    has a file service for local images): decided by the URL the run really uses."""
    return (override if override is not None else written).strip() != "emulator"


def load_manifest(path: Path | str, provider: str | None = None,
                  base_url: str | None = None, *, sends: bool = True) -> Manifest:
    """Load, check and expand the manifest at ``path``.

    Raises :class:`~runner.core.errors.ManifestError` holding every problem (both passes, with the
    warnings) when there is any error; otherwise warnings are in ``Manifest.warnings``. A big
    manifest loaded before by a ``shotrun`` command, with nothing it depends on changed since,
    comes from :mod:`.cache` in a ``shotrun`` command.

    ``provider`` (``--provider``), else ``SHOTRUN_PROVIDER``, overrides ``api.provider``: every
    command that loads a manifest sees the same takes and fingerprints. A manifest loaded
    for another provider than its own is never cached (the cache knows only the bytes).

    ``base_url`` (``--base-url``), else ``SHOTRUN_BASE_URL``, is where the command would send
    instead of ``api.base_url``: fal.ai and the Kling API document no upload service, so a
    local image is a located error for a real URL of theirs and fine for ``emulator``, as
    the run that follows will find it. It changes nothing else: ``api.base_url`` stays the
    manifest's (the session applies the override). ``sends`` False is for commands that only
    read what a run did (``status``, ``report``, ``export``, ``pick``, ``review``): they send
    nothing, so a provider's refusal of local images is not theirs to report.
    """
    override = _provider(provider)
    url = _base_url(base_url) if sends else None
    text: bytes | None = None
    # Library callers (tests, benchmarks) always load for real.
    if is_command_process() and override is None:
        try:
            text = Path(path).read_bytes()
        except OSError:
            text = None  # the load says what is wrong
    if text is not None:
        with paused_gc():  # unpickling builds as many objects as loading: see runner.core.bulk
            cached = cache.read(path, text)
        if cached is not None and _fits(cached, url, sends):
            return cached[0]
    started = time.time()
    problems, manifest = _analyse_paused(path, override, url, sends)
    if manifest is None:
        raise ManifestError(problems)
    if text is not None:
        cache.write(path, text, manifest, started=started,
                    remote=_checks_uploads(manifest, url, sends))
    return manifest


def _checks_uploads(manifest: Manifest, url: str | None, sends: bool) -> bool:
    """Whether loading ``manifest`` for this command refuses local images (fal.ai or the
    Kling API at a real URL, for a command that sends)."""
    return sends and manifest.api.provider != GATEWAY and _remote(url, manifest.api.base_url)


def _fits(cached: tuple[Manifest, bool], url: str | None, sends: bool) -> bool:
    """Whether a cached manifest may be served to this load.

    The local-image check is the only part of a load that depends on where it would send,
    and it only refuses: an entry stored by a load that made it (``remote``) serves every
    load; one stored without it serves only loads that would not make it either (the
    emulator, a command that sends nothing, the gateway, which uploads).
    """
    manifest, checked = cached
    return checked or not _checks_uploads(manifest, url, sends)
