"""`skillforge sweep`: a grid of libraries on a Ray cluster, nested under one MLflow run.

Ray schedules the trials (one task each, `num_cpus` = the trial's threads) and retries a
trial whose worker or node died; the trial resumes from its checkpoint. The sweep itself
keeps no state of its own: the store says which libraries exist and how far they got, so
running the same command again skips finished libraries and resumes the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from skillforge.app.checks import check_learning_starts
from skillforge.app.sweep_trial import Trial, TrialOutcome, run_trial
from skillforge.core.config import DEFAULT_EVALUATION, DEFAULT_STORE_TIMEOUT, EvaluationOptions
from skillforge.core.errors import ConfigError, SkillforgeError
from skillforge.core.grid import SweepGrid, check_sweep_name
from skillforge.store import sweeps, tracking
from skillforge.store.paths import resolve_tracking_uri

RETRIES = 3
"""Times Ray runs a trial again after its worker or node died."""
POLL_SECONDS = 2.0
STOP_SECONDS = 300
"""How long Ctrl-C waits for the trials to write their checkpoints."""


class SweepInterrupted(SkillforgeError):
    """Ctrl-C: every trial stopped at a checkpoint; the same command continues the sweep."""


@dataclass(frozen=True)
class SweepOptions:
    """Where and how a sweep runs (the grid says what it trains)."""

    name: str = ""
    """Sweep name; empty: `sweep-<env>-<fingerprint of the grid>`."""
    ray_address: str | None = None
    """HOST:PORT of a running Ray cluster; None starts a local one sized to the machine."""
    max_concurrent: int = 0
    """Most trials at once; 0: as many as the cluster's CPUs hold."""
    cpus_per_trial: int = 1
    tracking_uri: str | None = None
    experiment: str = tracking.DEFAULT_EXPERIMENT
    checkpoint_dir: str = "checkpoints"
    """Must be a folder every node sees (a shared file system) on a multi-node cluster."""
    evaluation: EvaluationOptions = DEFAULT_EVALUATION
    store_timeout: float = DEFAULT_STORE_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_concurrent < 0:
            raise ConfigError(f"--max-concurrent must be >= 0, got {self.max_concurrent}")
        if not 1 <= self.cpus_per_trial <= 256:
            raise ConfigError(f"--cpus-per-trial must be in [1, 256], got {self.cpus_per_trial}")


@dataclass
class TrialRow:
    """One line of the progress table."""

    name: str
    status: str = "pending"
    step: int = 0
    total_steps: int = 0
    rate: float = 0.0
    log_q_z: float | None = None
    message: str = ""
    seen: tuple[float, int] | None = None
    """(time, step) when the step last changed: the rate is measured from there."""

    @property
    def eta(self) -> float | None:
        if self.status != "running" or self.rate <= 0:
            return None
        return max(0, self.total_steps - self.step) / self.rate


@dataclass
class SweepProgress:
    """What a sweep shows while it runs: a row per trial and the overall ETA."""

    name: str
    run_id: str
    rows: dict[str, TrialRow] = field(default_factory=dict)

    @property
    def eta(self) -> float | None:
        """Steps still to go over the summed rate of the running trials."""
        rate = sum(row.rate for row in self.rows.values() if row.status == "running")
        left = sum(
            max(0, row.total_steps - row.step)
            for row in self.rows.values()
            if row.status in ("pending", "queued", "running")
        )
        return left / rate if rate > 0 else None

    def count(self, *statuses: str) -> int:
        return sum(row.status in statuses for row in self.rows.values())


@dataclass(frozen=True)
class SweepResult:
    name: str
    run_id: str
    tracking_uri: str
    outcomes: list[TrialOutcome]
    comparison: str

    @property
    def failed(self) -> list[TrialOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]


def run_sweep(
    grid: SweepGrid,
    options: SweepOptions = SweepOptions(),
    on_progress: Callable[[SweepProgress], None] = lambda progress: None,
) -> SweepResult:
    """Train every library of `grid` on Ray, each an ordinary registered library nested in
    the sweep's MLflow run; at the end the sweep run holds their comparison (table, plot).

    Refused before any trial starts: an unreachable store or Ray address, a name used by a
    sweep of another grid. Ctrl-C stops every trial at a checkpoint (`SweepInterrupted`).
    """
    name = check_sweep_name(options.name or grid.default_name())
    for config in grid.configs(name):
        check_learning_starts(config)
    uri = resolve_tracking_uri(options.tracking_uri)
    check_ray_address(options.ray_address)
    client = tracking.connect(uri)
    experiment_id = tracking.ensure_experiment(client, options.experiment)
    described = {"libraries": grid.size, **grid.varied()}
    run_id = sweeps.sweep_run(client, experiment_id, name, grid.fingerprint(), described)
    client.update_run(run_id, status="RUNNING")
    tracking.log_params(client, run_id, {**_grid_params(grid), "sweep": name})
    checkpoint_dir = str(Path(options.checkpoint_dir).expanduser().resolve())
    trials = [
        Trial(
            config.replace(threads=options.cpus_per_trial),
            name,
            run_id,
            uri,
            options.experiment,
            checkpoint_dir,
            options.evaluation,
            options.store_timeout,
        )
        for config in grid.configs(name)
    ]
    rows = {
        t.config.name: TrialRow(t.config.name, total_steps=t.config.total_steps) for t in trials
    }
    progress = SweepProgress(name, run_id, rows)
    _refresh(progress, client, experiment_id, [])
    outcomes = [  # finished by an earlier run of the command: no need to start Ray for them
        TrialOutcome(row.name, "skipped")
        for row in progress.rows.values()
        if row.status == "finished"
    ]
    left = [trial for trial in trials if progress.rows[trial.config.name].status != "finished"]
    if left:
        with _ray_session(options.ray_address):
            outcomes += _run_trials(left, options, client, experiment_id, progress, on_progress)
    on_progress(progress)
    order = {trial.config.name: index for index, trial in enumerate(trials)}
    outcomes.sort(key=lambda outcome: order[outcome.name])
    comparison = _log_comparison(client, run_id, uri, [t.config.name for t in trials], outcomes)
    failed = any(outcome.status == "failed" for outcome in outcomes)
    client.update_run(run_id, status="FAILED" if failed else "FINISHED")
    return SweepResult(name, run_id, uri, outcomes, comparison)


def check_ray_address(address: str | None) -> None:
    """A ConfigError unless `address` (HOST:PORT) answers; None (a local cluster) passes."""
    if address is None:
        return
    host, _, port = address.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as error:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address}: {error.strerror or error}; start one "
            "with `ray start --head`, or leave out --ray-address for a local one"
        ) from None


@contextlib.contextmanager
def _ray_session(address: str | None):
    """Ray connected (or a local instance started) for the sweep, shut down after."""
    try:
        import ray
    except ImportError:
        raise ConfigError("skillforge sweep needs Ray: pip install 'skillforge[cluster]'") from None

    env = {"MLFLOW_LOGGING_LEVEL": "WARNING", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    settings = dict(log_to_driver=False, logging_level=logging.ERROR, runtime_env={"env_vars": env})
    if address is None:
        ray.init("local", num_cpus=os.cpu_count(), include_dashboard=False, **settings)
    else:
        try:
            ray.init(address=address, **settings)
        except Exception as error:  # e.g. a cluster with token authentication, no token
            lines = str(error).strip().splitlines() or [type(error).__name__]
            raise ConfigError(
                f"cannot join the Ray cluster at {address}: {lines[0][:300]}"
            ) from None
    try:
        yield
    finally:
        ray.shutdown()


def _run_trials(trials, options, client, experiment_id, progress, on_progress):
    """Submit the trials (at most `max_concurrent` at once), report progress until all are
    done; on Ctrl-C cancel them (each stops at a checkpoint) and raise SweepInterrupted."""
    import ray

    remote = ray.remote(run_trial)
    waiting, running, outcomes = list(trials), {}, []
    limit = options.max_concurrent or len(trials)
    try:
        while waiting or running:
            while waiting and len(running) < limit:
                trial = waiting.pop(0)
                task = remote.options(
                    num_cpus=options.cpus_per_trial,
                    max_retries=RETRIES,
                    retry_exceptions=False,
                    name=trial.config.name,
                )
                running[task.remote(trial)] = trial
                progress.rows[trial.config.name].status = "queued"
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                outcomes.append(_outcome(ref, running.pop(ref)))
            _refresh(progress, client, experiment_id, outcomes)
            on_progress(progress)
    except KeyboardInterrupt:
        _stop(running, client, experiment_id, progress.name)
        client.update_run(progress.run_id, status="KILLED")
        raise SweepInterrupted(
            f"sweep {progress.name} stopped: its libraries are at their last checkpoints; "
            "run the same command again to continue it"
        ) from None
    return outcomes


def _outcome(ref, trial: Trial) -> TrialOutcome:
    import ray
    from ray.exceptions import RayError

    try:
        return ray.get(ref)
    except RayError as error:  # retries used up, or the trial raised something unexpected
        line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        return TrialOutcome(trial.config.name, "failed", message=line[:300])


def _stop(running: dict, client, experiment_id: str, sweep: str) -> None:
    """Interrupt the running trials (a KeyboardInterrupt in each: it writes a checkpoint and
    records the stop in its run) and wait until the store shows none of them training; a
    second Ctrl-C stops waiting."""
    import ray

    for ref in running:
        ray.cancel(ref)
    names = {trial.config.name for trial in running.values()}
    deadline = time.monotonic() + STOP_SECONDS
    with contextlib.suppress(KeyboardInterrupt):
        while time.monotonic() < deadline:
            states = sweeps.trial_states(client, experiment_id, sweep)
            if not any(states[n].status == "running" for n in names if n in states):
                return
            time.sleep(POLL_SECONDS / 4)


def _refresh(progress: SweepProgress, client, experiment_id: str, outcomes) -> None:
    """Rows from the store (step, log q(z|s)) and the finished outcomes; rates from the
    steps done since the last refresh."""
    now = time.monotonic()
    try:
        states = sweeps.trial_states(client, experiment_id, progress.name)
    except Exception:  # the store is down for a moment: keep the last rows, trials go on
        states = {}
    for name, state in states.items():
        row = progress.rows.get(name)
        if row is None:
            continue
        if row.seen is not None and state.step > row.seen[1]:
            row.rate = (state.step - row.seen[1]) / max(now - row.seen[0], 1e-6)
        if row.seen is None or state.step != row.seen[1]:
            row.seen = (now, state.step)
        row.step, row.log_q_z = state.step, state.log_q_z
        row.total_steps = state.total_steps or row.total_steps
        if state.finished and row.status in ("pending", "queued", "running"):
            row.status = "finished"
        elif state.status == "running" and row.status == "queued":
            row.status = "running"
    for outcome in outcomes:
        row = progress.rows[outcome.name]
        row.status, row.message, row.rate = outcome.status, outcome.message, 0.0


def _log_comparison(client, run_id: str, uri: str, names: list[str], outcomes) -> str:
    """The sweep run's summary of its libraries: the `library compare` table (markdown and
    csv artifacts) and a bar plot of the main measures."""
    from skillforge.evaluation import compare
    from skillforge.evaluation.plots import measure_bars
    from skillforge.store.records import library_records

    done = {o.name for o in outcomes if o.status in ("finished", "skipped")}
    names = [name for name in names if name in done]
    if not names:
        return ""
    records = library_records(names, uri)  # read once: the tables and the plot share them
    rows = compare.comparison(records)
    table, csv = compare.render(rows, "markdown"), compare.render(rows, "csv")
    measures = {
        label: [r.metrics.get(f"eval/{key}", float("nan")) for r in records]
        for label, key in (
            ("log q(z|s)", "log_q_z"),
            ("effective skills", "effective_skills"),
            ("best skill return", "best_skill_return"),
        )
    }
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "comparison.md").write_text(table + "\n")
        Path(folder, "comparison.csv").write_text(csv + "\n")
        measure_bars(names, measures, Path(folder, "comparison.png"))
        for file in ("comparison.md", "comparison.csv", "comparison.png"):
            client.log_artifact(run_id, str(Path(folder, file)))
    return table


def _grid_params(grid: SweepGrid) -> dict[str, str]:
    """The grid as params of the sweep run: every varied field's list, the rest's value."""
    params = {key: str(value) for key, value in grid.base.to_params().items()}
    for key, values in grid.values.items():
        params[key] = ",".join(str(v) for v in values)
    params.pop("name", None)
    return params
