"""What `finetune` and `hierarchical` share: a progress bar per phase, skillforge's warnings on
stderr, and a stop (Ctrl-C, SIGTERM) said in one line, with exit code 130."""

from __future__ import annotations

import contextlib
import shlex

import typer


@contextlib.contextmanager
def downstream_command():
    """Yields `progress_for(phase, total)`, the phases' progress bars, for the command's
    `skillforge.app` call; a `RunInterrupted` from it is printed as one line on stderr
    (where it stopped, what was kept, how to run it again) and exits with 130."""
    from cli.pretrain import echoed_warnings
    from cli.progress import phase_bars, phase_label
    from skillforge.app.downstream import RunInterrupted

    try:
        with echoed_warnings(), phase_bars() as progress_for:
            yield progress_for
    except RunInterrupted as stop:
        typer.echo(
            f"Stopped ({stop.signal_name}) during {phase_label(stop.phase)} at {stop.done:,} "
            f"of {stop.total:,} {stop.unit}: run {stop.run_id} is kept as KILLED "
            f"with what it logged, nothing was registered. Run it again with: {typed_command()}",
            err=True,
        )
        raise typer.Exit(130) from None


def typed_command() -> str:
    """The running command as typed: its name, then the arguments and options the command
    line gave (as parsed), ready to paste into a shell."""
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    context = get_current_context()
    words = context.command_path.split()
    for param in context.command.params:
        if context.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            continue
        value = context.params[param.name]
        if param.param_type_name == "argument":
            words.append(str(value))
        elif getattr(param, "is_flag", False):
            words.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)
