"""Help on every option of every command: the whole ``repogen`` parser is walked, so a command or option added
later is checked without touching this file."""

from __future__ import annotations

import argparse
import re

from repogen.cli import COMMANDS, build_parser

#: what an explicit metavar may look like: a value's shape (N, PATH, HOST:PORT, NAME:DIMS[,NAME:DIMS],
#: FILE.npz, all|latest:N|specific:V,V, grpc://HOST:PORT), never an argparse destination (MODEL_VERSION)
_DEST_LIKE = re.compile(r"[A-Za-z]+(_[A-Za-z]+)+")


def _commands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str | None]]:
    """command -> (its parser, its one-line help in ``repogen --help``)."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            out.update({name: (sub, helps.get(name)) for name, sub in action.choices.items()})
    return out


def problems(parser: argparse.ArgumentParser, command: str) -> list[str]:
    """Every option and positional of ``parser`` without help text, or whose value is shown as a destination
    name instead of a value (an option taking a value needs an explicit metavar or its choices)."""
    found = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        flag = "/".join(action.option_strings) or action.dest
        where = f"repogen {command} {flag}"
        if not action.help or action.help == argparse.SUPPRESS or not action.help.strip():
            found.append(f"{where}: no help text")
        if action.option_strings:
            if action.nargs == 0:
                continue
            if action.choices is None and action.metavar is None:
                found.append(f"{where}: shown as {action.dest.upper()} (give a metavar that reads as a value)")
            elif isinstance(action.metavar, str) and _DEST_LIKE.fullmatch(action.metavar):
                found.append(f"{where}: metavar {action.metavar} reads as a destination name, not a value")
        else:
            shown = action.metavar or action.dest
            if isinstance(shown, str) and _DEST_LIKE.fullmatch(shown):
                found.append(f"{where}: positional shown as {shown}")
    return found


def test_every_command_is_in_the_parser_with_help():
    commands = _commands(build_parser())
    assert sorted(commands) == sorted(COMMANDS)
    assert [name for name, (_, text) in commands.items() if not text] == []


def test_every_option_of_every_command_has_help_and_a_value_metavar():
    parser = build_parser()
    found = problems(parser, "")
    for name, (sub, _) in _commands(parser).items():
        found += problems(sub, name)
    assert found == []


def test_the_walk_finds_an_option_without_help_or_with_a_destination_metavar():
    """The check itself: the faults issue 26 found (no help, MODEL_VERSION / CPU_THREADS shown as values)."""
    p = argparse.ArgumentParser()
    p.add_argument("model", help="the model")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model-version", type=int, help="version folder")
    p.add_argument("--cpu-threads", type=int, metavar="CPU_THREADS", help="threads")
    p.add_argument("--threads", type=int, metavar="N", help="threads")
    p.add_argument("--target", choices=["paddle", "numpy"], help="target")
    assert problems(p, "x") == [
        "repogen x --json: no help text",
        "repogen x --model-version: shown as MODEL_VERSION (give a metavar that reads as a value)",
        "repogen x --cpu-threads: metavar CPU_THREADS reads as a destination name, not a value",
    ]


def test_every_command_help_renders():
    """``repogen COMMAND --help`` formats (a bad metavar such as one with unbalanced brackets raises here)."""
    for name, (sub, _) in _commands(build_parser()).items():
        text = sub.format_help()
        assert text.startswith(f"usage: repogen {name}")
