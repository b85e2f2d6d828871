"""A shipped HalfCheetah library imported with the Python API, as a user would (issue 23 items 7
and 8): nothing on stderr that the user did not ask for, and `library list` shows the
held-out log q(z|s) that the import measured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

SHIPPED = Path(__file__).resolve().parents[1] / "exports" / "libraries" / "halfcheetah-x.pt"
IMPORT = f"""
from skillforge.app.library_file import import_library

result = import_library({str(SHIPPED)!r})
print(repr(result.metrics["log_q_z"]))
"""


def test_a_halfcheetah_import_is_quiet_and_listed_with_its_heldout_log_q(workdir, store):
    done = subprocess.run(  # a process of its own: MuJoCo and MLflow write to its fd 2
        [sys.executable, "-c", IMPORT], cwd=workdir, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    assert "settotalmass" not in done.stderr, done.stderr  # MuJoCo's, about gymnasium's XML
    assert " INFO mlflow" not in done.stderr, done.stderr  # database set-up, input example
    assert done.stderr.strip() == "", done.stderr
    assert not (workdir / "MUJOCO_LOG.TXT").exists()
    heldout = float(done.stdout.strip().splitlines()[-1])

    listed = CliRunner().invoke(app, ["library", "list", "--tracking-uri", store])
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()[:2]
    assert "held-out log q(z|s)" in header
    assert row.split()[0] == "halfcheetah-x"
    assert f"{heldout:.3f}" in row.split()  # not `-`: the library has no training metrics
    shown = CliRunner().invoke(app, ["library", "show", "halfcheetah-x", "--tracking-uri", store])
    assert "running log q(z|s) unavailable" in shown.stdout  # no training curve in the file


def test_only_the_known_mujoco_warning_is_dropped(capsys):
    import mujoco

    from skillforge.core.envs import KNOWN_MUJOCO_WARNINGS, _known_mujoco_warnings_dropped

    before = mujoco.get_mju_user_warning()
    with _known_mujoco_warnings_dropped("HalfCheetah-v5"):
        handler = mujoco.get_mju_user_warning()
        handler(f"{KNOWN_MUJOCO_WARNINGS[0]} and will be removed")
        handler("Nan, Inf or huge value in QACC at DOF 0")
    assert mujoco.get_mju_user_warning() is before  # put back
    assert capsys.readouterr().err == "WARNING: Nan, Inf or huge value in QACC at DOF 0\n\n"
