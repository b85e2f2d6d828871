"""MLflow's log lines that skillforge's own calls cause."""

from __future__ import annotations

import logging
import os

QUIET_LOGGERS = ("mlflow.store.db.utils", "mlflow.pyfunc")
"""MLflow's INFO lines that skillforge's own calls cause and that tell a user nothing: the
database set-up ("Creating initial MLflow database tables", "Updating database tables") and
the check of a logged model's input example ("Validating input example ...")."""


def quiet_store_chatter() -> None:
    """Raise `QUIET_LOGGERS` to WARNING, for the Python API as the CLI does for all of MLflow;
    a level set by the user (MLFLOW_LOGGING_LEVEL, or on the logger itself) is kept."""
    if os.environ.get("MLFLOW_LOGGING_LEVEL", "").strip():
        return
    for name in QUIET_LOGGERS:
        named = logging.getLogger(name)
        if named.level == logging.NOTSET:
            named.setLevel(logging.WARNING)
