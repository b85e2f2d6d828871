"""Soak test: kill -9 pretraining runs at random moments and check that nothing is lost.

Each library is a real `skillforge pretrain` process (tiny Pendulum settings, CPU), killed
with SIGKILL over and over: at random times, while a checkpoint is being written, while
it trains, while it evaluates, while it registers its skills. After every kill the
checkpoint on disk must load (never half-written), and `skillforge pretrain --resume`
continues. When a library finishes, it must equal an uninterrupted run of the same config
(every weight bit for bit), have every metric report exactly once with the uninterrupted
run's values, and every skill registered exactly once. Then the next library starts, until
the number of kills asked for is reached.

    .venv/bin/python benchmarks/soak_kill.py --kills 20            # the full soak
    .venv/bin/python benchmarks/soak_kill.py --kills 4 --keep DIR  # keep the files

The test suite runs a reduced form (tests/test_faults.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

N_SKILLS = 4
TOTAL_STEPS = 1500
SEED = 7
CLI_OPTIONS = (
    f"--skills {N_SKILLS} --hidden 32 --batch-size 32 --buffer-size 5000 --learning-starts 100 "
    f"--checkpoint-every 50 --threads 1 --steps {TOTAL_STEPS} --seed {SEED} "
    "--eval-episodes 1 --no-video"
).split()
TARGETS = ("checkpoint", "training", "registration", "random", "finishing", "random")
"""The moment each kill aims at, in turn ("random": anywhere from start-up to the end)."""
ATTEMPT_TIMEOUT = 300.0


@dataclass
class SoakReport:
    """What a soak did and found."""

    kills: int = 0
    libraries: int = 0
    attempts: int = 0
    kills_by_phase: Counter = field(default_factory=Counter)
    stale_temp_files: int = 0
    """Temp files a kill left mid-write (proof that kills landed inside checkpoint writes)."""
    checkpoints_checked: int = 0
    metric_reports_checked: int = 0
    skills_checked: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        phases = ", ".join(f"{phase} {n}" for phase, n in sorted(self.kills_by_phase.items()))
        return (
            f"kills survived: {self.kills} ({phases}); libraries finished: {self.libraries}; "
            f"processes started: {self.attempts}; kills inside a checkpoint write (temp file "
            f"left behind): {self.stale_temp_files}; checkpoints loaded after a kill: "
            f"{self.checkpoints_checked}; metric reports checked: {self.metric_reports_checked}; "
            f"registered skills checked: {self.skills_checked}; problems: {len(self.problems)}"
        )


def soak(kills: int, workdir: Path, seed: int = 0, log=print) -> SoakReport:
    """Kill -9 pretraining runs `kills` times in `workdir`; returns what was checked."""
    rng = random.Random(seed)
    report = SoakReport()
    workdir.mkdir(parents=True, exist_ok=True)
    reference = _reference(workdir / "reference")
    library_index = 0
    while report.kills < kills:
        library_index += 1
        name = f"soak-{library_index}"
        killed_here = _soak_library(name, workdir, kills - report.kills, rng, report, log)
        report.kills += killed_here
        _verify_library(name, workdir, reference, report)
        report.libraries += 1
        log(f"{name}: finished after {killed_here} kills, equal to the uninterrupted run")
    return report


# -- one library, killed again and again ------------------------------------------------------


def _soak_library(name, workdir, kills_left, rng, report, log) -> int:
    db = workdir / "mlflow.db"
    checkpoint = workdir / "checkpoints" / name / "checkpoint.pt"
    killed = 0
    while True:
        if _library_complete(db, name):  # the last kill came after everything was done
            return killed
        target = TARGETS[(report.kills + killed) % len(TARGETS)] if killed < kills_left else None
        exists = _library_exists(db, name)
        args = ["--resume", name] if exists else ["pendulum", "--name", name, *CLI_OPTIONS]
        process = _start(workdir, args, f"{name}-{report.attempts:03d}")
        report.attempts += 1
        phase = _wait_and_kill(process, target, db, checkpoint, name, rng) if target else None
        code = process.wait(timeout=ATTEMPT_TIMEOUT)
        if phase is None:
            if code != 0:
                raise RuntimeError(f"{name}: a run that was not killed exited with {code}")
            return killed
        killed += 1
        report.kills_by_phase[phase] += 1
        stale = list(checkpoint.parent.glob(".checkpoint.pt.*.tmp"))
        report.stale_temp_files += bool(stale)
        if checkpoint.exists():  # a kill never leaves a half-written checkpoint
            from skillforge.rl.checkpoint import load_checkpoint

            step = int(load_checkpoint(checkpoint)["step"])
            report.checkpoints_checked += 1
        else:
            step = None
        log(f"{name}: kill {killed} aimed at {target}, landed in {phase}; checkpoint step {step}")


def _start(workdir: Path, args: list[str], label: str) -> subprocess.Popen:
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    command = [sys.executable, "-m", "cli.main", "pretrain", *args]
    command += ["--tracking-uri", f"sqlite:///{workdir / 'mlflow.db'}"]
    if "--resume" not in args:
        command += ["--checkpoint-dir", str(workdir / "checkpoints")]
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    return subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=open(logs / f"{label}.out", "w"),  # noqa: SIM115 (the child owns it)
        stderr=open(logs / f"{label}.err", "w"),  # noqa: SIM115
    )


def _wait_and_kill(process, target, db, checkpoint, name, rng) -> str | None:
    """Wait for the moment `target` aims at, SIGKILL the process, return the phase it was
    in; None if it exited first."""
    started = time.monotonic()
    random_at = started + rng.uniform(0.5, 12.0)
    deadline = started + ATTEMPT_TIMEOUT
    tmp_pattern = ".checkpoint.pt.*.tmp"
    first_stamp = _stamp(checkpoint)
    trained_for = rng.uniform(0.0, 1.0)
    training_seen = None
    while process.poll() is None and time.monotonic() < deadline:
        if target == "checkpoint":
            hit = checkpoint.parent.is_dir() and any(checkpoint.parent.glob(tmp_pattern))
        elif target == "registration":
            hit = 0 < _registered_versions(db, name) < N_SKILLS
        elif target == "training":  # a new checkpoint, not the last: it trains; then wait a bit
            new = training_seen is None and _stamp(checkpoint) != first_stamp
            if new and _checkpoint_step(checkpoint) not in (None, TOTAL_STEPS):
                training_seen = time.monotonic()
            hit = training_seen is not None and time.monotonic() > training_seen + trained_for
        elif target == "finishing":
            hit = _checkpoint_step(checkpoint) == TOTAL_STEPS and _connected(process.pid, db)
        else:
            hit = time.monotonic() >= random_at
        if hit:
            phase = _phase(process.pid, db, checkpoint, name)
            process.send_signal(signal.SIGKILL)
            return phase
        time.sleep(0 if target == "checkpoint" else 0.01)
    return None


def _stamp(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _connected(pid: int, db: Path) -> bool:
    """Whether process `pid` has the store's database open (past its imports)."""
    try:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return str(db) in links


def _phase(pid: int, db: Path, checkpoint: Path, name: str) -> str:
    """Where a run is right now, as seen from outside."""
    if checkpoint.parent.is_dir() and any(checkpoint.parent.glob(".checkpoint.pt.*.tmp")):
        return "checkpoint write"
    if not _connected(pid, db) or not _library_exists(db, name):
        return "start-up"
    versions = _registered_versions(db, name)
    if 0 < versions < N_SKILLS:
        return "registration"
    if _checkpoint_step(checkpoint) == TOTAL_STEPS:
        return "evaluation/registration" if versions == 0 else "after registration"
    return "training"


_step_cache: dict[tuple[str, float], int] = {}


def _checkpoint_step(checkpoint: Path) -> int | None:
    """The step of a checkpoint file (cached by modification time: loading costs)."""
    try:
        stamp = checkpoint.stat().st_mtime
    except OSError:
        return None
    key = (str(checkpoint), stamp)
    if key not in _step_cache:
        import torch

        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            _step_cache[key] = int(state["step"])
        except Exception:
            return None
    return _step_cache[key]


def _query(db: Path, sql: str, *args) -> list[tuple]:
    """Rows of a read of the store; none before its tables exist. Not read-only: a run killed
    inside a write leaves a hot journal that only a connection allowed to write rolls back
    (a read-only one fails until then, and "no rows" would be the wrong answer)."""
    if not db.exists():
        return []
    deadline = time.monotonic() + 60
    while True:
        try:
            with sqlite3.connect(db, timeout=1.0) as connection:
                return connection.execute(sql, args).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return []
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # locked by the writer


def _library_exists(db: Path, name: str) -> bool:
    sql = "SELECT count(*) FROM tags WHERE key = 'skillforge.library' AND value = ?"
    rows = _query(db, sql, name)
    return bool(rows and rows[0][0])


def _library_complete(db: Path, name: str) -> bool:
    sql = (
        "SELECT count(*) FROM runs r JOIN tags n ON r.run_uuid = n.run_uuid "
        "JOIN tags s ON r.run_uuid = s.run_uuid WHERE n.key = 'skillforge.library' "
        "AND n.value = ? AND s.key = 'skillforge.status' AND s.value = 'finished' "
        "AND r.status = 'FINISHED'"
    )
    rows = _query(db, sql, name)
    return bool(rows and rows[0][0])


def _registered_versions(db: Path, name: str) -> int:
    rows = _query(db, "SELECT count(*) FROM model_versions WHERE name LIKE ?", f"{name}.skill-%")
    return rows[0][0] if rows else 0


# -- the uninterrupted run and the checks -----------------------------------------------------


@dataclass
class Reference:
    """An uninterrupted run of the soak's config: its weights and metric reports."""

    agent: dict
    reports: dict[int, dict[str, float]]
    library: object


def _reference(folder: Path) -> Reference:
    from skillforge.core.config import PretrainConfig
    from skillforge.rl import loop
    from skillforge.skills.library import SkillLibrary

    config = PretrainConfig(
        env_id="Pendulum-v1",
        n_skills=N_SKILLS,
        total_steps=TOTAL_STEPS,
        seed=SEED,
        hidden=32,
        batch_size=32,
        buffer_size=5000,
        learning_starts=100,
        checkpoint_every=50,
        threads=1,
        device="cpu",
        name="reference",
    )
    reports: dict[int, dict[str, float]] = {}

    class Recorder:
        def on_step(self, step, metrics):
            reports[step] = dict(metrics)

    result = loop.train(config, str(folder / "checkpoint.pt"), [Recorder()])
    library = SkillLibrary(result.spec, result.agent.sac.policy, result.agent.discriminator)
    agent = {key: value.clone() for key, value in result.agent.state_dict().items()}
    return Reference(agent, reports, library)


def _verify_library(name: str, workdir: Path, reference: Reference, report: SoakReport) -> None:
    import mlflow
    import numpy as np
    import torch
    from mlflow.tracking import MlflowClient

    from skillforge.rl.checkpoint import load_checkpoint

    def problem(text: str) -> None:
        report.problems.append(f"{name}: {text}")

    state = load_checkpoint(workdir / "checkpoints" / name / "checkpoint.pt")
    if int(state["step"]) != TOTAL_STEPS:
        problem(f"final checkpoint at step {state['step']}")
    for key, value in reference.agent.items():
        if not torch.equal(state["agent"][key], value):
            problem(f"weights {key} differ from the uninterrupted run")

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)  # never a registry set elsewhere
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`skillforge.library` = '{name}'",
    )
    if len(runs) != 1:
        problem(f"{len(runs)} runs named {name}")
        return
    run = runs[0]
    if run.info.status != "FINISHED" or run.data.tags.get("skillforge.status") != "finished":
        problem(f"run status {run.info.status} / {run.data.tags.get('skillforge.status')}")
    keys = {key for metrics in reference.reports.values() for key in metrics}
    for key in sorted(keys):
        history = client.get_metric_history(run.info.run_id, key)
        logged = sorted(m.step for m in history)
        expected = sorted(step for step, metrics in reference.reports.items() if key in metrics)
        if logged != expected:
            problem(f"metric {key} logged at steps {logged}, expected {expected} (once each)")
            continue
        if key not in ("steps_per_second", "updates_per_second"):  # measured times, not results
            for m in history:
                if m.value != reference.reports[m.step][key]:
                    problem(f"metric {key} at step {m.step}: {m.value}, expected ...")
        report.metric_reports_checked += len(history)
    evaluations = client.get_metric_history(run.info.run_id, "eval/best_skill_return")
    if len(evaluations) != 1:
        problem(f"{len(evaluations)} evaluations logged, expected 1")

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    observations = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    for skill in range(N_SKILLS):
        model = f"{name}.skill-{skill:02d}"
        versions = client.search_model_versions(f"name = '{model}'")
        if len(versions) != 1 or versions[0].tags.get("run_id") != run.info.run_id:
            problem(f"{model} has {len(versions)} versions")
            continue
        loaded = mlflow.pyfunc.load_model(f"models:/{model}/{versions[0].version}")
        actions = np.asarray(loaded.predict(observations))
        if not np.allclose(actions, reference.library.act(observations, skill), atol=1e-6):
            problem(f"{model} does not act like the uninterrupted run's skill {skill}")
        report.skills_checked += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to deliver (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    started = time.monotonic()
    if args.keep is not None:
        report = soak(args.kills, args.keep.resolve(), args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="skillforge-soak-") as folder:
            report = soak(args.kills, Path(folder), args.seed)
    print(report.summary())
    print(json.dumps({"seconds": round(time.monotonic() - started), "problems": report.problems}))
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
