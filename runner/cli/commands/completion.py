"""``shotrun completion bash|zsh|fish``: print the shell's completion script for shotrun.

The script is generated once, from the real parser, by shtab, and is static: pressing Tab
runs no program (argcomplete would start shotrun, Python and its imports on every Tab).
Install it once, as ``docs`` says, and again after an upgrade that adds commands or flags:

    shotrun completion bash > ~/.local/share/bash-completion/completions/shotrun
    shotrun completion zsh > ~/.zfunc/_shotrun   # with fpath+=(~/.zfunc) before compinit
    shotrun completion fish > ~/.config/fish/completions/shotrun.fish

Manifests, output folders and files complete as paths.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from runner.core.errors import EXIT_OK

SHELLS = ("bash", "zsh", "fish")
# Positional arguments (by dest) that name a file or a folder: completed as paths.
PATH_ARGUMENTS = frozenset({"manifest", "file", "files", "dir"})
PATH_OPTIONS = frozenset({"--csv-file"})


def add_parser(subparsers: Any) -> None:
    """Register ``shotrun completion``."""
    parser = subparsers.add_parser(
        "completion", help="print the shell completion script (bash, zsh or fish; spends nothing)",
        description="Print shotrun's completion script for SHELL, to be saved once where the "
        "shell reads completions (e.g. `shotrun completion bash > "
        "~/.local/share/bash-completion/completions/shotrun`). The script is static: Tab "
        "runs no program.",
    )
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL",
                        help="bash, zsh or fish")
    parser.set_defaults(func=run)


def _mark_paths(parser: argparse.ArgumentParser) -> None:
    """Tell shtab which arguments are paths, in every command's parser."""
    import shtab

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub)
        elif ((not action.option_strings and action.dest in PATH_ARGUMENTS)
              or PATH_OPTIONS.intersection(action.option_strings)):
            action.complete = shtab.FILE  # type: ignore[attr-defined]


def script(shell: str) -> str:
    """The completion script of ``shotrun`` for ``shell`` (one of :data:`SHELLS`)."""
    # Here, not at the top: building every command's parser is the completion's business
    # only, and `shotrun --help` must not pay for it (nor for shtab) at start-up.
    import shtab

    from runner.cli import build_parser

    parser = build_parser()
    _mark_paths(parser)
    text: str = shtab.complete(parser, shell=shell)
    return text if text.endswith("\n") else text + "\n"


def run(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``."""
    sys.stdout.write(script(args.shell))
    return EXIT_OK
