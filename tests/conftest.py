"""Shared fixtures: a real sqlite MLflow store in a temp dir, run from an empty folder."""

from __future__ import annotations

import logging
import os
import sys

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
logging.getLogger("mlflow").setLevel(logging.WARNING)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder with no tracking URI set, like a user on a fresh clone."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)  # mlflow.set_registry_uri sets it
    return tmp_path


@pytest.fixture
def store(workdir):
    """A sqlite tracking URI in the temp folder."""
    return f"sqlite:///{workdir / 'mlflow.db'}"


def pytest_terminal_summary(terminalreporter):
    """How many hostile command lines the fuzz tests tried (a figure, not a test: it must not
    depend on which tests ran or in which order)."""
    fuzz = sys.modules.get("test_fuzz")
    if fuzz is not None and fuzz.TRIED:
        terminalreporter.write_line(f"hostile command lines tried: {len(fuzz.TRIED)}")
