"""Several pretraining runs started at the same moment on one fresh sqlite store.

MLflow creates the schema of a fresh store in every process, and two processes doing it at
once crash ("duplicate column name", alembic errors). skillforge serialises that (and the
check-then-create of a library name) with a lock next to the database. Every run must
finish with every metric and every registered skill, and two runs asking for one name at
once must end with one library of that name and a one-line refusal for the other."""

import os
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

TINY = (
    "--skills 4 --hidden 32 --batch-size 32 --buffer-size 1000 --learning-starts 100 "
    "--checkpoint-every 100 --threads 1 --steps 600 --eval-episodes 1 --no-video"
).split()

CONNECT_AT_ONCE = """
import os, sys, time
import mlflow.store.tracking.sqlalchemy_store  # the slow imports, before the start line
from skillforge.store import tracking
open(sys.argv[3], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
tracking.connect(sys.argv[1])
"""


def test_processes_opening_a_fresh_store_at_the_same_instant_all_succeed(tmp_path):
    """The processes import everything first, then wait for one file and connect at once
    (without the lock, 3 of 4 crash with "duplicate column name" on MLflow 3.17)."""
    store = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{index}" for index in range(4)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONNECT_AT_ONCE, store, str(go), str(flag)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        assert all(process.poll() is None for process in processes)
        time.sleep(0.05)
    go.touch()
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    experiments = MlflowClient(store, registry_uri=store).search_experiments()
    assert [e.name for e in experiments] == ["Default"]


def test_concurrent_pretraining_runs_on_one_fresh_store(tmp_path):
    env = {**os.environ, "MUJOCO_GL": "egl"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    names = ["conc-a", "conc-b", "twin", "twin"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "cli.main", "pretrain", "pendulum", "--name", name, *TINY],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    results = [
        (name, process.returncode, stderr)
        for name, process, (_, stderr) in zip(names, processes, outputs, strict=True)
    ]
    for name, code, stderr in results[:2]:
        assert code == 0, f"{name}: {stderr}"
        assert "Traceback" not in stderr
    twins = sorted(results[2:], key=lambda result: result[1])
    assert twins[0][1] == 0, twins[0][2]
    refusal = [line for line in twins[1][2].splitlines() if line.startswith("error: ")]
    assert twins[1][1] == 1 and len(refusal) == 1 and "already exists" in refusal[0], twins[1][2]

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store, registry_uri=store)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`skillforge.kind` = 'library'",
    )
    assert sorted(run.data.tags["skillforge.library"] for run in runs) == [
        "conc-a",
        "conc-b",
        "twin",
    ]
    for run in runs:
        name = run.data.tags["skillforge.library"]
        assert run.info.status == "FINISHED" and run.data.tags["skillforge.status"] == "finished"
        for key in ("log_q_z", "discriminator_loss", "critic_loss", "extrinsic_return"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == [500, 600], (name, key, steps)  # every report, once
        assert len(client.get_metric_history(run.info.run_id, "eval/best_skill_return")) == 1
        for skill in range(4):
            versions = client.search_model_versions(f"name = '{name}.skill-{skill:02d}'")
            assert len(versions) == 1 and versions[0].tags["run_id"] == run.info.run_id
        assert Path(tmp_path, "checkpoints", name, "checkpoint.pt").is_file()
