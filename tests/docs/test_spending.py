"""``--help`` says what each command spends, in the README's words (its table says the same)."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli import build_parser

SPENDS = {
    "run": "spends credits, up to the budget",
    "probe": "for free; with --spend, one paid task",
}


def _commands() -> dict[str, str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {action.dest: action.help or "" for action in sub._choices_actions}


def test_every_command_help_says_what_it_spends() -> None:
    helps = _commands()
    assert set(helps) >= {"run", "probe", "plan", "validate", "status", "init", "emulator"}
    for name, text in helps.items():
        assert SPENDS.get(name, "spends nothing)") in " ".join(text.split()), name


def test_the_flags_that_spend_say_so() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {(name, opt): action.help or "" for name, command in sub.choices.items()
             for action in command._actions for opt in action.option_strings}
    assert flags[("run", "--retry-failed")].startswith("spends: ")
    assert flags[("probe", "--spend")].startswith("spends: ")


def test_the_readme_table_names_every_command() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## What each command spends"):readme.index("## Exit codes")]
    for name in _commands():
        assert f"`{name}`" in table, name
