"""Small refusals (issue 23 item 9): an empty name, a file that is no library file, a folder
that does not exist. Each is one line, and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import assert_one_line_error, tiny_config
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.core.config import NO_EVALUATION
from skillforge.core.errors import ConfigError
from skillforge.store.tracking import find_library

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args",
    [
        ["pretrain", "pendulum", "--name", ""],
        ["pretrain", "pendulum", "--name", "  "],
        ["sweep", "pendulum", "--name", ""],
        ["library", "import", "exports/libraries/hopper.pt", "--name", ""],
    ],
)
def test_an_empty_name_is_refused_not_read_as_the_default(workdir, args):
    args = [str(REPO / arg) if arg.startswith("exports/") else arg for arg in args]
    assert_one_line_error(runner.invoke(app, args), "--name")
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    "content", [os.urandom(4096), b"a text file\nnot a library\n"], ids=["bytes", "text"]
)
def test_a_file_that_is_no_library_file_is_called_that(workdir, content):
    path = workdir / "library.pt"
    path.write_bytes(content)
    result = runner.invoke(app, ["library", "import", str(path)])
    line = assert_one_line_error(result, "is not a library file", "skillforge library save")
    assert "run code" not in line and "KeyError" not in line
    assert sorted(p.name for p in workdir.iterdir()) == ["library.pt"]


@pytest.fixture
def library(store, tmp_path):
    pipeline.pretrain(
        tiny_config(name="pend"), store, checkpoint_dir=tmp_path / "ck", evaluation=NO_EVALUATION
    )
    return "pend"


def test_an_empty_library_name_names_no_library(library, store, workdir):
    before = sorted(workdir.iterdir())
    for args in (
        ["library", "show", ""],
        ["library", "show", " "],
        ["library", "save", "", "--out", "x.pt"],
        ["evaluate", "", "--episodes", "1", "--no-video"],
        ["export", ""],
        ["hierarchical", "--library", ""],
    ):
        line = assert_one_line_error(runner.invoke(app, [*args, "--tracking-uri", store]))
        assert "empty" in line or "names no library" in line, (args, line)
        assert sorted(workdir.iterdir()) == before, args
    with pytest.raises(ConfigError, match="names no library"):
        find_library("", store)


def test_save_refuses_a_folder_that_does_not_exist(library, store, workdir):
    out = workdir / "no-such-folder" / "inside" / "pend.pt"
    result = runner.invoke(
        app, ["library", "save", library, "--out", str(out), "--tracking-uri", store]
    )
    assert_one_line_error(result, f"no folder {out.parent}")
    assert not (workdir / "no-such-folder").exists()
    saved = runner.invoke(
        app, ["library", "save", library, "--out", "pend.pt", "--tracking-uri", store]
    )
    assert saved.exit_code == 0, saved.output  # an existing folder is fine
    assert (workdir / "pend.pt").is_file()
