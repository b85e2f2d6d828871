"""The Typer app and what every command shares: one-line errors, common options.

Command modules register themselves on `app`; heavy imports (torch, mlflow) happen inside
commands so that `--help` and refusals stay fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from dataclasses import MISSING
from types import SimpleNamespace
from typing import Annotated

import typer
from typer._click.exceptions import UsageError  # vendored click (typer >= 0.29)

from cli.help import Group, Typer
from skillforge.core.errors import SkillforgeError


class _OneLineErrors(Group):
    """Every refusal is one line on stderr with a non-zero exit, never a traceback or a box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        quiet_mlflow()
        try:
            result = super().main(
                args, prog_name or "skillforge", complete_var, standalone_mode=False, **extra
            )
        except UsageError as error:
            _fail(error.format_message(), 2)
        except SkillforgeError as error:
            _fail(str(error), 1)
        except (typer.Abort, KeyboardInterrupt):
            _fail("aborted", 130)
        sys.exit(result if isinstance(result, int) else 0)


def quiet_mlflow() -> None:
    """MLflow logs database set-up and every registration at INFO; the CLI prints its own
    summary instead. Before mlflow is imported only its environment variable works (the
    import configures its logger); a user's own MLFLOW_LOGGING_LEVEL is kept."""
    level = os.environ.get("MLFLOW_LOGGING_LEVEL", "").strip().upper()
    if not level:
        os.environ["MLFLOW_LOGGING_LEVEL"] = level = "WARNING"
    with contextlib.suppress(ValueError):  # a user's odd value: mlflow says what it makes of it
        logging.getLogger("mlflow").setLevel(int(level) if level.isdigit() else level)


def _fail(message: str, code: int) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"error: {first_line}", file=sys.stderr)
    sys.exit(code)


app = Typer(
    cls=_OneLineErrors,
    help="Learn reusable skills without a reward (DIAYN, METRA), track them in MLflow, export "
    "them, reuse them on tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def warn_if_exposed(host: str, message: str) -> None:
    """`warning: <message>` on stderr when a server would listen beyond loopback."""
    from skillforge.store.ui_server import LOOPBACK

    if host not in LOOPBACK:
        typer.echo(f"warning: {message}", err=True)


def defaults(config_class) -> SimpleNamespace:
    """The default of every field of a config dataclass: option defaults come from the
    configs, so the CLI and the Python API cannot drift apart."""
    return SimpleNamespace(
        **{f.name: f.default for f in dataclasses.fields(config_class) if f.default is not MISSING}
    )


def given_or_absent(param: typer.CallbackParam, value: str | None) -> str | None:
    """An option's callback: an empty value (`--name ""`) is refused, never read as the option
    left out (which would silently take the default)."""
    if value is not None and not value.strip():
        if param.param_type_name == "option":
            raise typer.BadParameter(f"empty; leave {param.opts[0]} out for its default")
        raise typer.BadParameter("empty; see --help")
    return value


TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (e.g. http://127.0.0.1:5000). Default: $MLFLOW_TRACKING_URI, "
        "else ./mlflow.db with artifacts in ./mlruns.",
        show_default=False,
    ),
]
THREADS_HELP = (
    "torch and onnxruntime threads (0: the cores other jobs leave free, decided again every "
    "30 s while training; one for networks too small to gain from more)."
)
Threads = Annotated[int, typer.Option(help=THREADS_HELP, show_default=True)]
Experiment = Annotated[str, typer.Option("--experiment", help="MLflow experiment.")]
LIBRARY_FORMS = "Library name, run id or models:/<library>@<alias> (or models:/<library>/<version>)"
"""How a library is named wherever one is: a `models:/` URI names the library whose model it is."""
LibraryArgument = Annotated[
    str, typer.Argument(help=f"{LIBRARY_FORMS}, or 'latest'.", callback=given_or_absent)
]

TaskArgument = Annotated[
    str | None,
    typer.Argument(
        help="Task: halfcheetah-goal, halfcheetah-hurdle, ant-navigation, or an env id/alias "
        "(its real reward). Default: the library's own env.",
        show_default=False,
    ),
]
LibraryOption = Annotated[
    str | None,
    typer.Option(
        help=f"{LIBRARY_FORMS}. Default: the most recent library.",
        show_default=False,
        callback=given_or_absent,
    ),
]
