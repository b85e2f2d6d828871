"""The end of a library's run: evaluate it, wait for the store to hold every metric, log
plots and checkpoint, register every skill and the whole library, record how the run ended."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from skillforge.app.graph_models import register_library_model
from skillforge.app.library_run import LibraryRun, PretrainResult
from skillforge.core.envs import make_env
from skillforge.core.errors import SkillforgeError, TrainingInterrupted, first_line
from skillforge.core.interrupts import signals_interrupt
from skillforge.skills.library import SkillLibrary
from skillforge.store import registry, tracking

logger = logging.getLogger("skillforge")


END_RECORD_TIMEOUT = 15.0
"""Seconds an interrupted or failed run waits to record its end in an unreachable store."""


def complete_library(job: LibraryRun, tracker, library, step: int) -> PretrainResult:
    """Evaluate (unless the journal has it), wait for the store to have every metric, log
    the plot and the checkpoint, register the skills and the library model not yet
    registered, mark it finished.

    Ctrl-C or SIGTERM meanwhile raises TrainingInterrupted: training is complete and saved,
    and `--resume` (or `library register`) finishes the rest, registering nothing twice."""
    try:
        with signals_interrupt():
            return _complete(job, tracker, library, step)
    except KeyboardInterrupt:
        tracker.close(timeout=5.0)  # the metrics not sent yet stay in the journal anyway
        try:
            status = f"interrupted after training (step {step})"
            job.client.set_tag(job.run_id, tracking.TAG_STATUS, status)
            job.client.set_terminated(job.run_id, "KILLED")
        except Exception as error:  # the store is gone too: resume finds the run as it was
            logger.warning("could not record the stop in run %s (%s)", job.run_id, error)
        raise TrainingInterrupted(step, job.checkpoint_path, job.run_id) from None


def _complete(job: LibraryRun, tracker, library, step: int) -> PretrainResult:
    import mlflow

    from skillforge.evaluation.report import evaluate

    client, run_id, config = job.client, job.run_id, job.config
    checkpoint_path, store_timeout = job.checkpoint_path, job.store_timeout

    metrics, report = tracker.evaluation(step), None
    if metrics is None and job.evaluation.episodes:
        report = evaluate(
            library, job.evaluation.episodes, seed=config.seed, video=job.evaluation.video
        )
        metrics = report.metrics()
        for note in report.notes:
            logger.warning("%s", note)
    metrics = metrics or {}
    if metrics:
        tracker.log_evaluation(step, metrics)
    store = tracking.shown_uri(client.tracking_uri)
    later = f"skillforge library register {run_id} --tracking-uri {store}"
    deadline = time.monotonic() + store_timeout
    problem = tracking.probe(client.tracking_uri) if tracker.store_down_for is None else "down"
    if problem is not None:
        logger.warning(
            "training is done; waiting up to %g s (--store-timeout) for the tracking store %s",
            store_timeout,
            store,
        )
    delivered = tracker.close(timeout=store_timeout)
    while delivered and problem is not None:  # nothing left to send: is the store there?
        problem = tracking.probe(client.tracking_uri)
        if problem is not None and time.monotonic() >= deadline:
            tracker.last_problem, delivered = problem, False
        elif problem is not None:
            time.sleep(1.0)
    if not delivered:
        raise tracking.StoreUnavailable(
            f"library {config.name} is trained (step {step:,}) and saved in {checkpoint_path}, "
            f"but the tracking store {store} did not answer within {store_timeout:g} s "
            f"({tracker.last_problem or 'no answer'}); its metrics are kept in "
            f"{tracker.journal.path}. When the store is back, finish with: {later}"
        )
    try:
        _log_plots(client, tracker, run_id, library, report)
        client.log_artifact(run_id, checkpoint_path, "checkpoint")
        with mlflow.start_run(run_id=run_id):
            example = example_observations(library)
            models = registry.register_skills(client, library, run_id, example, step)
            library_model = register_library_model(client, library, run_id, example, step)
            client.set_tag(run_id, tracking.TAG_STATUS, "finished")
    except SkillforgeError:
        raise
    except Exception as error:  # the store failed mid-way: nothing is lost, retry later
        raise tracking.StoreUnavailable(
            f"registering library {config.name} failed ({first_line(error)}); "
            f"its training is complete and saved in {checkpoint_path}; retry with: {later}"
        ) from error
    return PretrainResult(
        library, run_id, client.tracking_uri, checkpoint_path, models, metrics, library_model
    )


def _log_plots(client, tracker, run_id, library, report) -> None:
    """The learning curve, and with a fresh evaluation report its plots and videos too."""
    from skillforge.evaluation import plots
    from skillforge.evaluation.files import write_files

    history = {}
    for key in ("log_q_z", "discriminator_accuracy"):
        history[key] = tracker.history(key) or tracking.metric_history(client, run_id, key)
    for key in ("eval/log_q_z", "eval/discriminator_accuracy"):
        history[key] = tracking.metric_history(client, run_id, key)
    with tempfile.TemporaryDirectory() as folder:
        if report is None:
            title = f"{library.name}: {library.spec.env_id}, {library.n_skills} skills"
            plots.learning_curve(
                history, Path(folder) / "learning_curve.png", title, library.n_skills
            )
            client.log_artifact(run_id, str(Path(folder) / "learning_curve.png"), "plots")
            return
        write_files(report, folder, history)
        if report.coverage_of:
            client.set_tag(run_id, tracking.TAG_COVERAGE, report.coverage_of)
        client.log_artifacts(run_id, folder)


def record_end(tracker, run_id: str, status: str, mlflow_status: str) -> None:
    """Record how a run ended (tag and MLflow status); warn if the store cannot take it."""
    tracker.set_tags({tracking.TAG_STATUS: status})
    delivered = tracker.close(timeout=END_RECORD_TIMEOUT)
    try:
        if not delivered:
            raise SkillforgeError(tracker.last_problem or "no answer")
        tracker.client.set_terminated(run_id, mlflow_status)
    except Exception as error:
        logger.warning(
            "could not record the end of run %s in the tracking store (%s); its metrics are "
            "kept in %s",
            run_id,
            first_line(error),
            tracker.journal.path if tracker.journal else "memory only",
        )


def last_good_checkpoint(tracker) -> str:
    if tracker.last_checkpoint is None:
        return "no checkpoint had been written yet"
    path, step = tracker.last_checkpoint
    return f"the last good checkpoint (step {step:,}) is kept in {path}"


def example_observations(library: SkillLibrary, rows: int = 4):
    """A few real observations of the library's env (the registry's input example)."""
    import numpy as np

    env = make_env(library.spec.env_id)
    obs, _ = env.reset(seed=0)
    observations = [obs]
    for _ in range(rows - 1):
        obs, *_ = env.step(env.action_space.sample())
        observations.append(obs)
    env.close()
    return np.asarray(observations, dtype=np.float32)
