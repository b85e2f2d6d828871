"""What `hierarchical` and `finetune` share: the library and task they reuse it on, a child
run of the library's MLflow run that survives store outages, and how they report results
(final returns of every method on the same held-out episodes, return curves, one plot)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skillforge.app.load import load_library
from skillforge.core.config import DEFAULT_STORE_TIMEOUT
from skillforge.core.errors import SkillforgeError
from skillforge.core.versions import __version__
from skillforge.reuse.tasks import task_env_id
from skillforge.rl.callbacks import CallbackList
from skillforge.skills.library import SkillLibrary
from skillforge.store import tracking
from skillforge.store.delivery import BufferedTracker


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

    def on_end(self, result) -> None:
        self.callbacks.on_end(result)


@dataclass
class DownstreamRun:
    """A library reused on a task, tracked as a child run of the library's run."""

    client: object
    info: tracking.LibraryInfo
    library: SkillLibrary
    task: str
    run_id: str
    trackers: list[BufferedTracker]

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
        """Find the library, check the task reuses its env (and `check(info)` passes, if
        given), then create the child run: a refusal writes nothing."""
        client = tracking.connect_existing(tracking_uri)
        info = tracking.find_library(reference, client=client)
        task = task or info.env_id
        if task_env_id(task) != info.env_id:
            raise SkillforgeError(
                f"library {info.name} was learned on {info.env_id}, but task {task} uses "
                f"{task_env_id(task)}: observation and action shapes differ"
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
            },
        )
        run_id = run.info.run_id
        tracking.log_params(
            client,
            run_id,
            {
                **params,
                "task": task,
                "library": info.name,
                "library_run_id": info.run_id,
                "n_skills": info.n_skills,
                "skillforge_version": __version__,
            },
        )
        return cls(client, info, library, task, run_id, [])

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
