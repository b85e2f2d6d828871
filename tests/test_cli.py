"""The command line: options, refusals (one line, non-zero exit), a tiny run, Ctrl-C and resume."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()
TINY = (
    "--skills 4 --hidden 32 --batch-size 32 --buffer-size 1000 --learning-starts 100 "
    "--checkpoint-every 100 --threads 1"
).split()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_help_lists_every_option_with_the_papers_defaults():
    result = run("pretrain", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())  # help wrapped in a box
    options = (
        "--skills --steps --seed --hidden --batch-size --lr --alpha --gamma --tau --buffer-size "
        "--learning-starts --device --experiment --name --checkpoint-every --resume --tracking-uri "
        "--objective --envs --updates-per-step --max-episode-steps --episodes --minutes"
    )
    for option in options.split():
        assert option in text, option
    for default in (  # DIAYN's paper, and METRA's authors' where the objective changes it
        "[default: 20]",
        "1000000",
        "Default 300; metra: 256",
        "[default: 256]",
        "[default: 0.0003]",
        "Default 0.1; metra: 0.01",
        "Default 1; metra: 8",
        "Default 1; metra: 0.125",
        "metra: 200",
        "[default: diayn]",
        "[default: skillforge]",
    ):
        assert default in text, default


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["CartPole-v1"], ["Discrete action space", "continuous"]),
        (["no-such-env"], ["unknown environment", "hopper"]),
        (["hopper", "--skills", "1"], ["--skills"]),
        (["hopper", "--steps", "-5"], ["--steps"]),
        (["hopper", "--alpha", "lots"], ["--alpha", "auto"]),
        (["hopper", "--lr", "nan"], ["--lr"]),
        (["hopper", "--device", "tpu"], ["--device"]),
        (["hopper", "--skills", "many"], ["--skills"]),
        (["hopper", "--name", "../../x"], ["--name"]),
        (["hopper", "--name", "a'; drop table runs"], ["--name"]),
        ([], ["ENV"]),
    ],
)
def test_bad_input_is_refused_in_one_line(workdir, args, fragments):
    result = run("pretrain", *args)
    assert_one_line_error(result, *fragments)
    assert not (workdir / "mlflow.db").exists()  # refused before touching the store


@pytest.mark.parametrize("command", ["hierarchical", "finetune", "evaluate", "export"])
def test_the_long_commands_take_threads(workdir, command):
    assert "--threads" in run(command, "--help").stdout
    assert_one_line_error(run(command, "--threads", "100000"), "--threads 100000", "cores")
    assert list(workdir.iterdir()) == []


def test_library_commands_on_an_empty_store(workdir):
    result = run("library", "list")
    assert result.exit_code == 0 and "No skill libraries yet" in result.stdout
    assert_one_line_error(run("library", "show", "nope"), "no skill libraries")
    assert_one_line_error(run("pretrain", "--resume", "latest"), "no skill libraries")


def test_pretrain_list_show_and_resume(workdir):
    result = run("pretrain", "pendulum", "--steps", "300", "--name", "cli-lib", *TINY)
    assert result.exit_code == 0, result.output
    assert "Library cli-lib (Pendulum-v1, 4 skills)" in result.stdout
    assert "models:/cli-lib.skill-00/1" in result.stdout
    assert (workdir / "mlflow.db").exists() and (workdir / "mlruns").is_dir()
    assert (workdir / "checkpoints" / "cli-lib" / "checkpoint.pt").is_file()

    listing = run("library", "list")
    assert listing.exit_code == 0
    row = next(line for line in listing.stdout.splitlines() if line.startswith("cli-lib"))
    assert "Pendulum-v1" in row and "300" in row and "finished" in row

    shown = run("library", "show", "cli-lib")
    assert shown.exit_code == 0
    assert all(f"models:/cli-lib.skill-{k:02d}/1" in shown.stdout for k in range(4))

    assert_one_line_error(run("pretrain", "--resume", "cli-lib"), "larger --steps")
    assert_one_line_error(
        run("pretrain", "hopper", "--resume", "cli-lib", "--steps", "400"), "trained on Pendulum-v1"
    )
    assert_one_line_error(run("pretrain", "pendulum", "--name", "cli-lib", *TINY), "already exists")

    logger = logging.getLogger("skillforge")  # a command run in-process leaves it as it was
    assert logger.propagate and not logger.handlers


def test_ctrl_c_checkpoints_ends_the_run_killed_and_says_how_to_resume(workdir):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "cli.main", "pretrain", "pendulum"]
    command += ["--steps", "100000", "--name", "stop-me", *TINY]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = Path(workdir, "checkpoints", "stop-me", "checkpoint.pt")
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), process.stderr.read() if process.poll() is not None else ""
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Resume with: skillforge pretrain --resume" in stderr
    assert "Traceback" not in stderr

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    run_id = stderr.rsplit("--resume", 1)[1].split()[0]
    stopped = client.get_run(run_id)
    assert stopped.info.status == "KILLED"
    assert stopped.data.tags["skillforge.status"].startswith("interrupted at step")

    resumed = run("pretrain", "--resume", run_id, "--steps", "500")
    assert resumed.exit_code == 0, resumed.output
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.tags["skillforge.step"] == "500"


def test_progress_without_a_terminal_prints_plain_lines_with_rate_and_eta(capsys):
    from cli.progress import TrainingProgress

    with TrainingProgress("DIAYN", log_seconds=0.0, end_message="done") as progress:
        progress.on_start({"step": 1_000, "total_steps": 5_000})
        for step in (2_000, 3_000):
            progress.on_step(step, {"log_q_z": -1.25, "discriminator_accuracy": 0.5})
        progress.on_end(None)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[-1] == "done"
    assert lines[0].startswith("DIAYN 2,000/5,000 (40%) ")
    assert "steps/s elapsed 0:00:00 ETA " in lines[0]
    assert lines[0].endswith("log q(z|s) -1.250  acc 0.50")
    assert lines[2].startswith("DIAYN 5,000/5,000 (100%) ")
    assert not any("\x1b[" in line for line in lines)  # no terminal escapes in a log


def test_the_last_progress_line_is_printed_once(capsys):
    from cli.progress import TrainingProgress

    with TrainingProgress("DIAYN", log_seconds=0.0, end_message="") as progress:
        progress.on_start({"step": 0, "total_steps": 4_000})
        for step in (2_000, 4_000):  # the loop reports the final step too
            progress.on_step(step, {"log_q_z": -1.25, "discriminator_accuracy": 0.5})
        progress.on_end(None)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["DIAYN 2,000/4,000", "DIAYN 4,000/4,000"]
    assert "ETA -:--:--" not in lines[-1]  # not a second line with no steps since the first


@pytest.mark.parametrize("level", [None, ""])  # unset, or set but blank
def test_a_run_on_a_fresh_store_prints_no_mlflow_chatter(tmp_path, level):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if level is not None:
        env["MLFLOW_LOGGING_LEVEL"] = level
    quick = ["--steps", "300", "--skills", "2", "--eval-episodes", "0", "--no-video"]
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "pretrain", "pendulum", *TINY, *quick],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mlflow.db").is_file() and "registered  2 skills" in done.stdout
    # no "INFO mlflow.store.db.utils: Creating ...", no "Successfully registered model ..."
    assert done.stderr == "", done.stderr
    assert "Successfully registered" not in done.stdout and "Created version" not in done.stdout
