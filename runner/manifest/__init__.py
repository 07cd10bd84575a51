"""The manifest language: YAML file in, frozen :class:`~runner.model.Manifest` out.

    load (loader.py)  -> pass 1: schema (schema.py, fastcheck.py, secrets.py)
                      -> pass 2: names and media (media.py, assets.py), expansion (expand.py),
                         prompts (prompts.py), links (graph.py), takes (takes.py),
                         manifest-wide rules (rules.py)

Both passes always run (pass 2 on what pass 1 allowed, see :class:`.context.Context`), so one
``validate`` shows *every* problem of a file. Raw dicts never leave this package.

Public API: :func:`load_manifest` and :func:`validate_file`.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from runner.bulk import is_command_process, paused_gc
from runner.errors import ManifestError, Problem
from runner.manifest import cache
from runner.manifest.assets import LocalFiles
from runner.manifest.context import Context, get_str
from runner.manifest.expand import expand_shots
from runner.manifest.graph import ShotIndex
from runner.manifest.loader import load_yaml
from runner.manifest.media import MediaResolver
from runner.manifest.rules import (
    api_config,
    budget,
    check_api,
    check_unused,
    check_wire,
    output_dir,
    provider_of,
    variables,
    verify_policy,
)
from runner.manifest.schema import check as schema_check
from runner.manifest.secrets import check_secrets, secret_paths
from runner.manifest.takes import TakeBuilder
from runner.model import Manifest, Take
from runner.providers import chosen as chosen_provider

__all__ = ["load_manifest", "validate_file"]

_log = structlog.get_logger()


def _analyse(path: Path | str, provider: str | None = None
             ) -> tuple[list[Problem], Manifest | None]:
    """Every problem of the file, and the manifest when there is no error.

    ``provider`` (from ``--provider`` or ``SHOTRUN_PROVIDER``) overrides ``api.provider``: it
    decides the provider's limits checked here and is part of every fingerprint.
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
    api = api_config(ctx, renames, chosen)

    builder = TakeBuilder(ctx, media, index, defined, api.model, renames, provider=chosen,
                          remote=api.base_url != "emulator")
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
        warnings=tuple(p for p in problems if p.severity == "warning"),
    )
    _log.debug("manifest_expanded", file=file, shots=len(specs), takes=len(takes))
    return problems, manifest


def _analyse_paused(path: Path | str, provider: str | None = None
                    ) -> tuple[list[Problem], Manifest | None]:
    """:func:`_analyse` with the cyclic garbage collector paused.

    Loading builds hundreds of thousands of small objects and frees none, so the collector
    would keep rescanning them all for nothing (10,000 shots took 3x longer with it on).
    Nothing built here forms a reference cycle that needs it.
    """
    with paused_gc():
        return _analyse(path, provider)


def validate_file(path: Path | str, provider: str | None = None) -> list[Problem]:
    """Every problem (errors and warnings) of the manifest at ``path``; [] when it is clean.

    ``provider`` overrides ``api.provider`` (see :func:`load_manifest`).
    """
    problems, _ = _analyse_paused(path, _provider(provider))
    return problems


def _provider(flag: str | None) -> str | None:
    """``--provider`` or ``SHOTRUN_PROVIDER`` (a bad value: UsageError), or None."""
    return chosen_provider(flag)


def load_manifest(path: Path | str, provider: str | None = None) -> Manifest:
    """Load, check and expand the manifest at ``path``.

    Raises :class:`~runner.errors.ManifestError` holding every problem (both passes, with the
    warnings) when there is any error; otherwise warnings are in ``Manifest.warnings``. A big
    manifest loaded before by a ``shotrun`` command, with nothing it depends on changed since,
    comes from :mod:`.cache` in a ``shotrun`` command.

    ``provider`` (``--provider``), else ``SHOTRUN_PROVIDER``, overrides ``api.provider``: every
    command that loads a manifest sees the same takes and fingerprints. A manifest loaded
    for another provider than its own is never cached (the cache knows only the bytes).
    """
    override = _provider(provider)
    text: bytes | None = None
    # Library callers (tests, benchmarks) always load for real.
    if is_command_process() and override is None:
        try:
            text = Path(path).read_bytes()
        except OSError:
            text = None  # the load says what is wrong
    if text is not None:
        with paused_gc():  # unpickling builds as many objects as loading: see runner.bulk
            cached = cache.read(path, text)
        if cached is not None:
            return cached
    started = time.time()
    problems, manifest = (_analyse_paused(path) if override is None
                          else _analyse_paused(path, override))
    if manifest is None:
        raise ManifestError(problems)
    if text is not None:
        cache.write(path, text, manifest, started=started)
    return manifest
