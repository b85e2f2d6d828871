"""A sweep in MLflow: one parent run holding the grid, its libraries nested under it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from skillforge.core.errors import ConfigError
from skillforge.store.tracking import (
    TAG_KIND,
    TAG_LIBRARY,
    TAG_STATUS,
    TAG_STEP,
    TAG_TOTAL_STEPS,
    store_lock,
)

TAG_SWEEP = "skillforge.sweep"
TAG_GRID = "skillforge.grid"
TAG_FINGERPRINT = "skillforge.grid_fingerprint"
TAG_WORKER = "skillforge.worker"
"""Where a trial runs now: `<host>:<pid>` of its Ray worker (set again on every attempt)."""
PARENT = "mlflow.parentRunId"
"""MLflow's own tag: the UI nests a run under its parent."""


def sweep_run(client, experiment_id: str, name: str, fingerprint: str, grid: dict) -> str:
    """The run of sweep `name`: created on the first call, found again on a re-run.

    A ConfigError if `name` is a sweep of another grid (its libraries would be mixed up)."""
    with store_lock(client.tracking_uri):
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_KIND}` = 'sweep' and tags.`{TAG_SWEEP}` = '{name}'",
            max_results=1,
        )
        if runs:
            known = runs[0].data.tags.get(TAG_FINGERPRINT)
            if known != fingerprint:
                raise ConfigError(
                    f"sweep {name!r} already ran another grid "
                    f"({runs[0].data.tags.get(TAG_GRID, '?')}); pick another --name"
                )
            return runs[0].info.run_id
        tags = {
            TAG_KIND: "sweep",
            TAG_SWEEP: name,
            TAG_FINGERPRINT: fingerprint,
            TAG_GRID: json.dumps(grid, default=str)[:4000],
        }
        return client.create_run(experiment_id, tags=tags, run_name=name).info.run_id


@dataclass(frozen=True)
class TrialState:
    """A trial's library as the store knows it (what the progress table shows)."""

    name: str
    status: str
    step: int
    total_steps: int
    log_q_z: float | None
    worker: str

    @property
    def finished(self) -> bool:
        return self.status == "finished"


def trial_states(client, experiment_id: str, sweep: str) -> dict[str, TrialState]:
    """Every library of sweep `sweep` that has started, by name."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_KIND}` = 'library' and tags.`{TAG_SWEEP}` = '{sweep}'",
        max_results=10_000,
    )
    states = {}
    for run in runs:
        tags = run.data.tags
        name = tags.get(TAG_LIBRARY, "")
        states[name] = TrialState(
            name=name,
            status=tags.get(TAG_STATUS, run.info.status.lower()),
            step=int(tags.get(TAG_STEP, 0) or 0),
            total_steps=int(tags.get(TAG_TOTAL_STEPS, 0) or 0),
            log_q_z=run.data.metrics.get("log_q_z"),
            worker=tags.get(TAG_WORKER, ""),
        )
    return states
