"""Help as a user reads it: what to type, in plain words.

Typer renders help as rich markup (so `[k, ...]` in a help text vanished), writes a required
argument `{LIBRARY}` in the usage line, gives flags a `<bool>` value and lists `<list[str]>`,
and puts a written-out default in parentheses. `Typer` and `Group` here render every command
of the app without those, whatever module registers it.
"""

from __future__ import annotations

from typing import get_args

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class _Argument(TyperArgument):
    """An argument as a user reads it: `LIBRARY` (required) or `[ENV]` in the usage line, not
    typer's `{LIBRARY}`; a list's element type (`<str>`), not `<list[str]>`."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return f"{name}..." if self.nargs != 1 else name

    def display_type_rich(self, ctx) -> str | None:
        return _element_type(self) or super().display_type_rich(ctx)


class _Option(TyperOption):
    """An option as a user reads it: a flag shows no `<bool>` (it takes no value), a repeatable
    option its element type, and a written-out default as written (not `(all)`)."""

    def display_type_rich(self, ctx) -> str | None:
        if self.is_flag:
            return None
        return _element_type(self) or super().display_type_rich(ctx)

    def _get_default_string(self, *, ctx, show_default_is_str, default_value) -> str:
        if show_default_is_str:
            return str(self.show_default)
        return super()._get_default_string(
            ctx=ctx, show_default_is_str=False, default_value=default_value
        )


def _element_type(param: TyperArgument | TyperOption) -> str | None:
    if not param.type_descriptor.is_list:
        return None
    return f"<{param._bare_type(get_args(param.type_descriptor.annotation)[0])}>"


def _as_read(param):
    """`param` rendered for people: our display classes (typer builds its parameters itself
    and has no hook for their class), an upper-case argument name, and help that is plain
    text, not rich markup (which ate `[k, ...]`). Done once per parameter."""
    if isinstance(param, _Argument | _Option) or not isinstance(param, TyperArgument | TyperOption):
        return param
    if isinstance(param, TyperArgument):
        param.__class__ = _Argument
        param.metavar = param.metavar or param.name.upper()
    else:
        param.__class__ = _Option
    param.help = escape(param.help) if param.help else param.help
    return param


class _PlainHelp:
    """Help that says what a user types: see `_as_read`; command help is plain text too."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.help = escape(self.help) if self.help else self.help
        self.params = [_as_read(param) for param in self.params]

    def get_help_option(self, ctx):
        return _as_read(super().get_help_option(ctx))


class _Command(_PlainHelp, TyperCommand):
    """A command with help as `_PlainHelp` renders it."""


class Group(_PlainHelp, TyperGroup):
    """A group of commands (`skillforge library ...`) with help as `_PlainHelp` renders it."""


class Typer(typer.Typer):
    """`typer.Typer` whose commands render their help as `_PlainHelp` does."""

    def command(self, name: str | None = None, *, cls=None, **kwargs):
        return super().command(name, cls=cls or _Command, **kwargs)
