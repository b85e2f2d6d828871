"""One trial of a sweep, as a Ray worker runs it: an ordinary library, nested in the sweep.

Idempotent, so that Ray may run it again after a worker or node died, and a re-run sweep
may call it for every trial: a finished library is left alone, a started one resumes from
its last checkpoint (on storage every node sees), a new one is pretrained.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from skillforge.core.config import EvaluationOptions, PretrainConfig
from skillforge.core.errors import LibraryNotFound, SkillforgeError, TrainingInterrupted
from skillforge.store import sweeps, tracking

logger = logging.getLogger("skillforge")


@dataclass(frozen=True)
class Trial:
    """Everything a worker needs to run one library of a sweep (plain data, sent by Ray)."""

    config: PretrainConfig
    sweep: str
    sweep_run_id: str
    tracking_uri: str
    experiment: str
    checkpoint_dir: str
    evaluation: EvaluationOptions
    store_timeout: float


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended: finished (now or before), stopped at a checkpoint, or failed."""

    name: str
    status: str
    """finished, skipped (finished by an earlier run), stopped or failed"""
    run_id: str = ""
    message: str = ""


def run_trial(trial: Trial) -> TrialOutcome:
    """Pretrain, resume or skip the trial's library; never raises for the library's own
    failures (a sweep goes on when one of its libraries diverges)."""
    from skillforge.app.pretrain import pretrain, resume

    name = trial.config.name
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        client = tracking.connect(trial.tracking_uri)
        try:
            info = tracking.find_library(name, client=client)
        except LibraryNotFound:
            info = None
        if info is not None and info.status == "finished":
            return TrialOutcome(name, "skipped", info.run_id)
        if info is None:
            tags = {
                sweeps.PARENT: trial.sweep_run_id,
                sweeps.TAG_SWEEP: trial.sweep,
                sweeps.TAG_WORKER: worker,
            }
            result = pretrain(
                trial.config,
                trial.tracking_uri,
                trial.experiment,
                checkpoint_dir=trial.checkpoint_dir,
                evaluation=trial.evaluation,
                store_timeout=trial.store_timeout,
                run_tags=tags,
            )
        else:
            client.set_tag(info.run_id, sweeps.TAG_WORKER, worker)
            result = resume(name, trial.tracking_uri, store_timeout=trial.store_timeout)
    except (TrainingInterrupted, KeyboardInterrupt) as stop:
        step = getattr(stop, "step", None)
        where = f" at step {step:,}" if step is not None else ""
        return TrialOutcome(name, "stopped", message=f"stopped{where}")
    except SkillforgeError as error:
        return TrialOutcome(name, "failed", message=str(error).splitlines()[0])
    return TrialOutcome(name, "finished", result.run_id)
