"""What `hierarchical` and `finetune` share: the library and task they reuse it on, a child
run of the library's MLflow run that survives store outages, its phases' callbacks (progress,
and a stop on Ctrl-C or SIGTERM at the next step boundary), and how they report results
(final returns of every method on the same held-out episodes, return curves, one plot)."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym

from skillforge.app.completion import END_RECORD_TIMEOUT
from skillforge.app.load import load_library
from skillforge.core.config import DEFAULT_STORE_TIMEOUT
from skillforge.core.errors import SkillforgeError, first_line
from skillforge.core.versions import __version__
from skillforge.reuse.phases import CallbacksFor, no_callbacks
from skillforge.reuse.tasks import make_task, task_envs
from skillforge.rl.callbacks import CallbackList
from skillforge.rl.signals import StopRequest
from skillforge.skills.library import SkillLibrary
from skillforge.store import tracking
from skillforge.store.delivery import BufferedTracker

logger = logging.getLogger("skillforge")
TAG_TASK_ENV = "skillforge.task_env_id"
"""The env a downstream run built its task on (also its param `task_env_id`)."""


class RunInterrupted(SkillforgeError):
    """A downstream run stopped on request (Ctrl-C or SIGTERM) at a step boundary of `phase`
    (`done` of `total` `unit`): its MLflow run ended as KILLED with what it had logged, and
    nothing was registered."""

    def __init__(
        self, run_id: str, phase: str, done: int, total: int, unit: str, signal_name: str
    ) -> None:
        self.run_id, self.phase, self.done, self.total = run_id, phase, done, total
        self.signal_name, self.unit = signal_name, unit
        super().__init__(
            f"stopped by {signal_name} during {phase} at {done:,} of {total:,} {self.unit}; "
            f"run {run_id} ended as KILLED, nothing registered"
        )


class _Stop(Exception):
    """Raised by a phase's callbacks to end the work at a step boundary (not a
    SkillforgeError: nothing on the way may take it for a failure and go on)."""


class _Watch:
    """A phase's last callback: keeps where the work is, and stops it at the next step
    boundary once a stop was requested."""

    def __init__(self, run: DownstreamRun, phase: str, total: int) -> None:
        self.run, self.phase, self.total, self.unit = run, phase, total, "steps"

    def on_start(self, info: dict) -> None:
        self.unit = info.get("unit", self.unit)
        self._at(info["step"])

    def on_progress(self, done: int) -> None:
        self._at(done)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self._at(step)

    def _at(self, done: int) -> None:
        self.run.position = (self.phase, done, self.total, self.unit)
        if self.run.stop:
            raise _Stop


class Prefixed:
    """Send a phase's episode reports to the run's tracker under a prefix, and every event
    to the phase's own callbacks (progress bars)."""

    def __init__(self, tracker: BufferedTracker, prefix: str, callbacks=()) -> None:
        self.tracker, self.prefix = tracker, prefix
        self.callbacks = CallbackList(callbacks)

    def on_start(self, info: dict) -> None:
        self.callbacks.on_start(info)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.tracker.on_step(step, {f"{self.prefix}{k}": v for k, v in metrics.items()})
        self.callbacks.on_step(step, metrics)

    def on_progress(self, done: int) -> None:
        self.callbacks.on_progress(done)

    def on_end(self, result) -> None:
        self.callbacks.on_end(result)


@dataclass
class DownstreamRun:
    """A library reused on a task, tracked as a child run of the library's run."""

    client: object
    info: tracking.LibraryInfo
    library: SkillLibrary
    task: str
    env_id: str
    """The env the task is built on: the library's (`tasks.task_env_id`)."""
    run_id: str
    trackers: list[BufferedTracker]
    listeners: CallbacksFor = no_callbacks
    """The caller's callbacks of each phase (progress bars)."""
    stop: object = False
    """True once a stop was requested (a `StopRequest` while the command runs)."""
    position: tuple[str, int, int, str] = field(default=("start", 0, 0, "steps"))
    """(phase, done, total, unit) at the last step boundary."""

    @classmethod
    def start(
        cls,
        reference: str | None,
        task: str,
        kind: str,
        params: dict,
        tracking_uri: str | None,
        check: Callable[[tracking.LibraryInfo], None] | None = None,
    ) -> DownstreamRun:
        """Find the library, check the task can be built on its env (a named task on its
        env family: the base env or its WithPosition variant) and `check(info)` passes, if
        given, then create the child run, which records the env as the param `task_env_id`
        and the tag `skillforge.task_env_id`: a refusal writes nothing."""
        client = tracking.connect_existing(tracking_uri)
        info = tracking.find_library(reference, client=client)
        task = task or info.env_id
        envs = task_envs(task)
        if info.env_id not in envs:
            raise SkillforgeError(
                f"library {info.name} was learned on {info.env_id}, but task {task} is built "
                f"on {' or '.join(envs)}: observation and action shapes differ"
            )
        if check is not None:
            check(info)
        library = load_library(client=client, info=info)
        run = client.create_run(
            client.get_run(info.run_id).info.experiment_id,
            run_name=f"{info.name}-{kind}-{task}",
            tags={
                "mlflow.parentRunId": info.run_id,
                tracking.TAG_KIND: kind,
                tracking.TAG_LIBRARY: info.name,
                "skillforge.task": task,
                TAG_TASK_ENV: info.env_id,
            },
        )
        run_id = run.info.run_id
        tracking.log_params(
            client,
            run_id,
            {
                **params,
                "task": task,
                "task_env_id": info.env_id,
                "library": info.name,
                "library_run_id": info.run_id,
                "n_skills": info.n_skills,
                "skillforge_version": __version__,
            },
        )
        return cls(client, info, library, task, info.env_id, run_id, [])

    def make_task(self) -> gym.Env:
        """A copy of the task, built on the library's env."""
        return make_task(self.task, self.env_id)

    def callbacks_for(self, phase: str, total: int) -> list:
        """The callbacks of one phase (`skillforge.reuse.phases`): the caller's, then a
        watch that ends the work at its next step boundary once a stop was requested."""
        return [*self.listeners(phase, total), _Watch(self, phase, total)]

    def end_interrupted(self, signal_name: str) -> RunInterrupted:
        """Deliver what the phases logged, end the run as KILLED; the error that says so."""
        phase, done, total, unit = self.position
        deadline = time.monotonic() + END_RECORD_TIMEOUT
        try:
            for tracker in self.trackers:
                tracker.close(timeout=max(0.0, deadline - time.monotonic()))
            status = f"interrupted during {phase} at {done} of {total} {unit}"
            self.client.set_tag(self.run_id, tracking.TAG_STATUS, status)
            self.client.set_terminated(self.run_id, "KILLED")
        except Exception as error:  # the store is gone too: say so, the stop stands
            logger.warning(
                "could not record the stop in run %s (%s)", self.run_id, first_line(error)
            )
        return RunInterrupted(self.run_id, phase, done, total, unit, signal_name)

    def phase(self, prefix: str, callbacks=()) -> list[Prefixed]:
        """Callbacks for one phase: its episodes go to the run as `<prefix>return`, sent in
        the background (training never waits for the store; an outage only delays them)."""
        tracker = BufferedTracker(self.client, self.run_id)
        self.trackers.append(tracker)
        return [Prefixed(tracker, prefix, callbacks)]

    def history(self, key: str) -> list[tuple[int, float]]:
        """(env steps, value) of a reported metric, from every phase."""
        return sorted(point for tracker in self.trackers for point in tracker.history(key))

    def finish(
        self, final: dict[str, float], step: int, curves: dict[str, str], flat: list[str]
    ) -> None:
        """Deliver the curves (waiting for a store that went away), then log every method's
        final return as `final_return/<method>` and the plot `plots/returns.png`: one line
        per method in `curves` (method: metric key), a flat line per method in `flat`."""
        for tracker in self.trackers:
            if not tracker.close(timeout=DEFAULT_STORE_TIMEOUT):
                raise tracking.StoreUnavailable(
                    f"the tracking store did not take the return curves of run {self.run_id} "
                    f"within {DEFAULT_STORE_TIMEOUT:g} s ({tracker.last_problem})"
                )
        finals = {f"final_return/{name}": value for name, value in final.items()}
        tracking.log_metrics(self.client, self.run_id, finals, step)
        self._log_plot(final, curves, flat)

    def _log_plot(self, final: dict[str, float], curves: dict[str, str], flat: list[str]) -> None:
        from skillforge.evaluation import plots

        lines = {name: self.history(key) for name, key in curves.items()}
        with tempfile.TemporaryDirectory() as folder:
            path = plots.return_curves(
                {name: points for name, points in lines.items() if points},
                Path(folder) / "returns.png",
                f"{self.info.name} on {self.task}",
                flat={name: final[name] for name in flat if name in final},
            )
            self.client.log_artifact(self.run_id, str(path), "plots")


@contextlib.contextmanager
def stoppable(callbacks_for: CallbacksFor = no_callbacks) -> Iterator[Callable[..., DownstreamRun]]:
    """Run a downstream command with Ctrl-C and SIGTERM caught: yields `start`, which is
    `DownstreamRun.start` giving the run `callbacks_for` as its phases' listeners. A stop then
    ends the work at the next step boundary of a phase and the run as KILLED, and raises
    `RunInterrupted`; a second signal does so at once."""
    runs: list[DownstreamRun] = []

    def start(*args, **kwargs) -> DownstreamRun:
        run = DownstreamRun.start(*args, **kwargs)
        run.listeners, run.stop = callbacks_for, stop
        runs.append(run)
        return run

    with StopRequest() as stop:
        try:
            yield start
        except (_Stop, KeyboardInterrupt):
            if not runs:  # stopped before the run was made: nothing to end
                raise KeyboardInterrupt from None
            raise runs[-1].end_interrupted(stop.signal_name or "SIGINT") from None
