"""Every command's --help, as a user reads it: no words eaten by markup, no Python-isms."""

from __future__ import annotations

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from cli.main import app
from skillforge.app.locations import default_library_name

runner = CliRunner()


def command_paths(group=None, path=()) -> list[tuple[str, ...]]:
    """Every command and sub-group of the app (`library`, `library show`...), and the app."""
    group = group or get_command(app)
    paths = [path]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            paths += command_paths(command, (*path, name))
        else:
            paths.append((*path, name))
    return paths


def command_of(path: tuple[str, ...]):
    command = get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def help_of(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.stdout


def flat(text: str) -> str:
    """The help text without its box and line breaks: one line of words."""
    return " ".join(text.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


PATHS = command_paths()


def test_every_command_is_rendered():
    assert ("library", "show") in PATHS and ("serve",) in PATHS and () in PATHS
    assert len(PATHS) >= 18


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "skillforge")
def test_help_says_what_a_user_types(path):
    text = help_of(path)
    for python_ism in ("<bool>", "list[", "(all)", "(dynamic)", "<function", "<class", "None"):
        assert python_ism not in text, f"{python_ism!r} in `{' '.join(path)} --help`:\n{text}"
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert not re.search(r"[{}]", usage), usage
    arguments = usage.split("[OPTIONS]", 1)[1].split()
    for argument in arguments:  # LIBRARY, [ENV], [LIBRARIES]..., COMMAND [ARGS]...
        assert re.fullmatch(r"\[?[A-Z_]+\]?(\.\.\.)?", argument), usage
    # no bracketed words swallowed: every [..] of every help text is shown as written
    command = command_of(path)
    sources = [command.help or ""] + [param.help or "" for param in command.params]
    sources += [sub.help or "" for sub in getattr(command, "commands", {}).values()]
    shown = flat(text)
    for source in sources:
        for bracketed in re.findall(r"\[[^\]\[]*\]", source.replace("\\[", "[")):
            assert flat(bracketed) in shown, f"{bracketed!r} missing from:\n{text}"


def test_the_serve_request_format_is_shown_whole():
    for path in ((), ("serve",)):
        assert '"skill": [k, ...]}}' in flat(help_of(path))


def test_the_name_default_is_the_one_pretrain_gives():
    real = default_library_name("Hopper-v5", 20, "1a2b3c4d5e6f")
    assert real == "hopper-20sk-1a2b3c"
    assert real in flat(help_of(("pretrain",)))


def test_the_sweep_feature_default_reads_as_written():
    assert "[default: all]" in flat(help_of(("sweep",)))
