"""`skillforge pretrain`: pretrain a library into MLflow, resume one, register one.

What survives what:
- kill -9 at any moment: the run is created with everything `--resume` needs in one
  transaction; checkpoints are atomic; every metric report goes to a local journal before
  the store; registration skips the skills already registered. `resume` continues from the
  last complete checkpoint (or from step 0 if there was none yet), or completes the
  evaluation and registration of a library whose training had finished.
- the tracking server going away: training goes on, metrics wait in the journal and are
  sent when it is back; if it is still gone at the end, the checkpoint is there and
  `skillforge library register` finishes the job later.
- divergence, disk full, read-only folders: a one-line error naming what happened, the last
  good checkpoint kept, the failure recorded in the MLflow run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from skillforge.app.checks import check_pretraining, check_store_timeout, check_threads
from skillforge.app.completion import complete_library, last_good_checkpoint, record_end
from skillforge.app.library_run import LibraryRun, PretrainResult, evaluation_tag, run_evaluation
from skillforge.app.locations import (
    checkpoint_path_for,
    checkpoint_root,
    claim_checkpoint_folder,
    config_of_checkpoint,
    default_library_name,
    library_location,
    refuse_foreign_checkpoint,
    refuse_leftover_checkpoint,
    set_library_location,
    stored_checkpoint,
)
from skillforge.core.config import (
    DEFAULT_EVALUATION,
    DEFAULT_STORE_TIMEOUT,
    RECORDED_EVALUATION,
    EvaluationOptions,
    EvaluationOverrides,
    PretrainConfig,
)
from skillforge.core.envs import resolve_env_id, steps_for_episodes
from skillforge.core.errors import (
    CheckpointError,
    ConfigError,
    TrainingDiverged,
    TrainingInterrupted,
)
from skillforge.core.versions import package_versions
from skillforge.rl.checkpoint import LIBRARY_FILE, CheckpointWriteError, remove_stale_temp_files
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import SkillLibrary
from skillforge.store import tracking

logger = logging.getLogger("skillforge")


def pretrain(
    config: PretrainConfig,
    tracking_uri: str | None = None,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
    callbacks=(),
    checkpoint_dir: str | Path = "checkpoints",
    evaluation: EvaluationOptions = DEFAULT_EVALUATION,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
    run_tags: dict[str, str] | None = None,
) -> PretrainResult:
    """Pretrain a new skill library and track it as one MLflow run, every skill registered
    (`run_tags`: more tags for its run, e.g. `mlflow.parentRunId` to nest it under a sweep).

    Refuses, before anything is written: a run that would end before learning starts, a
    configuration this machine cannot hold or run, a checkpoint folder it cannot write, a
    store it cannot open, a library name already taken.
    """
    check_store_timeout(store_timeout)
    check_pretraining(config)
    root = checkpoint_root(checkpoint_dir)
    path = checkpoint_path_for(root, config.name) if config.name else None
    if path is not None and not tracking.store_exists(tracking.resolve_tracking_uri(tracking_uri)):
        refuse_leftover_checkpoint(path)  # no store, so no library of that name: refuse first
    client = tracking.connect(tracking_uri)
    if path is not None:
        tracking.refuse_taken_name(client, config.name)  # the better reason when both hold
        refuse_leftover_checkpoint(path)
    job = start_library_run(
        client, config, experiment, root, evaluation, store_timeout, run_tags or {}
    )
    return _run(job, callbacks, state=None, sent_step=-1)


def start_library_run(
    client,
    config: PretrainConfig,
    experiment: str,
    root: Path,
    evaluation: EvaluationOptions,
    store_timeout: float,
    run_tags: dict[str, str],
) -> LibraryRun:
    """Create a library's MLflow run with everything `--resume` needs (tags, params), its
    checkpoint at `root/<name>/checkpoint.pt`; the default name comes from the run id."""
    experiment_id = tracking.ensure_experiment(client, experiment)
    tags = {
        **run_tags,
        tracking.TAG_KIND: "library",
        tracking.TAG_ENV: config.env_id,
        tracking.TAG_SKILLS: str(config.n_skills),
        tracking.TAG_FEATURES: config.discriminator_features,
        tracking.TAG_STATUS: "starting",
        tracking.TAG_STEP: "0",
        tracking.TAG_TOTAL_STEPS: str(config.total_steps),
        tracking.TAG_CHECKPOINT_ROOT: str(root),
        tracking.TAG_CONFIG: json.dumps(config.to_dict()),
        tracking.TAG_EVALUATION: evaluation_tag(evaluation),
    }
    if config.name:
        tags[tracking.TAG_LIBRARY] = config.name
        tags[tracking.TAG_CHECKPOINT] = str(checkpoint_path_for(root, config.name))
    run_id = tracking.create_library_run(client, experiment_id, config.name, tags)
    if not config.name:  # the default name needs the run id: a second, single write
        config = config.replace(name=default_library_name(config.env_id, config.n_skills, run_id))
        set_library_location(client, run_id, config, checkpoint_path_for(root, config.name))
    checkpoint_path = str(checkpoint_path_for(root, config.name))
    claim_checkpoint_folder(client, checkpoint_path)
    tracking.log_params(client, run_id, {**config.to_params(), **_run_versions()})
    return LibraryRun(client, run_id, config, checkpoint_path, evaluation, store_timeout)


def resume(
    reference: str,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    total_steps: int | None = None,
    callbacks=(),
    evaluation: EvaluationOptions | EvaluationOverrides = RECORDED_EVALUATION,
    total_episodes: int | None = None,
    expected_env: str | None = None,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
    threads: int | None = None,
) -> PretrainResult:
    """Continue a library's run from its last checkpoint (`reference`: name, run id, latest).

    A run killed before its first checkpoint starts again from step 0 (same config, same
    seed: the same result). A run whose training finished but whose evaluation or
    registration did not (a kill, an unreachable store) is completed. `total_steps` larger
    than the steps done extends a library (and lifts its episode budget); `total_episodes`
    sets a new episode budget. It is evaluated as its run recorded, with the
    `evaluation` overrides given (complete options replace them). `threads`, when given,
    replaces the run's: they are the machine's, not the library's. `expected_env`, when
    given, must name the library's environment (a guard for the CLI).
    """
    check_store_timeout(store_timeout)
    if reference is not None and not str(reference).strip():
        raise ConfigError("--resume needs a library name, a run id or 'latest'")
    client = tracking.connect_existing(tracking_uri)
    info = tracking.find_library(reference, experiment=experiment, client=client)
    if expected_env is not None and resolve_env_id(expected_env) != info.env_id:
        raise ConfigError(
            f"library {info.name} was trained on {info.env_id}, not {expected_env}; "
            f"run `skillforge pretrain --resume {info.name}`"
        )
    run = client.get_run(info.run_id)
    config, checkpoint_path = library_location(client, run, info)
    refuse_foreign_checkpoint(client, checkpoint_path)
    state = stored_checkpoint(client, run, checkpoint_path)
    name = Path(checkpoint_path).parent.name
    if state is not None:
        config = config_of_checkpoint(state, name, checkpoint_path)
    elif config is None:
        raise CheckpointError(f"library {name} has no checkpoint at {checkpoint_path}")
    if total_steps is not None:
        config = config.replace(total_steps=total_steps, total_episodes=0, total_minutes=0.0)
    if total_episodes is not None:
        steps = total_steps or steps_for_episodes(config.env_id, total_episodes)
        config = config.replace(total_steps=steps, total_episodes=total_episodes)
    if threads is not None:
        check_threads(threads)  # also when only evaluation and registration are left
        config = config.replace(threads=threads)
    step = int(state["step"]) if state is not None else 0
    if state is not None and state.get("kind") == LIBRARY_FILE and step < config.total_steps:
        raise ConfigError(
            f"library {config.name} was imported from a library file (weights only, no replay "
            "buffer or optimiser): it cannot be trained further"
        )
    finished = run.data.tags.get(tracking.TAG_STATUS) == "finished"
    sent_step = int(run.data.tags.get(tracking.TAG_STEP, -1) or -1)
    if step >= config.total_steps and finished and run.info.status == "FINISHED":
        raise ConfigError(
            f"library {config.name} already ran {step:,} of its "
            f"{config.total_steps:,} steps; pass a larger --steps to continue it"
        )
    if step < config.total_steps:
        check_pretraining(config)
    evaluation = run_evaluation(client, run, evaluation)
    job = LibraryRun(client, info.run_id, config, checkpoint_path, evaluation, store_timeout)
    if step >= config.total_steps:  # training done, completion cut short
        return complete_from_state(job, state, sent_step)
    if state is None:
        logger.warning("library %s has no checkpoint yet: starting it from step 0", config.name)
    remove_stale_temp_files(checkpoint_path)
    client.set_tag(info.run_id, tracking.TAG_TOTAL_STEPS, str(config.total_steps))
    if not run.data.params:  # killed before its params were logged
        tracking.log_params(client, info.run_id, {**config.to_params(), **_run_versions()})
    return _run(job, callbacks, state, sent_step)


def register(
    reference: str,
    tracking_uri: str | None = None,
    evaluation: EvaluationOptions | EvaluationOverrides = RECORDED_EVALUATION,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
) -> PretrainResult:
    """Finish a library whose training is done: send the metrics still in its journal,
    evaluate it (unless already done; as its run recorded, with the `evaluation` overrides
    given), log the plot and checkpoint, register every skill not yet registered. Safe to
    run again: nothing is logged or registered twice."""
    check_store_timeout(store_timeout)
    client = tracking.connect_existing(tracking_uri)
    info = tracking.find_library(reference, client=client)
    run = client.get_run(info.run_id)
    _, checkpoint_path = library_location(client, run, info)
    refuse_foreign_checkpoint(client, checkpoint_path)
    state = stored_checkpoint(client, run, checkpoint_path)
    name = Path(checkpoint_path).parent.name
    if state is None:
        raise CheckpointError(
            f"library {name} has no checkpoint yet; continue its training with: "
            f"skillforge pretrain --resume {name}"
        )
    config = config_of_checkpoint(state, name, checkpoint_path)
    step = int(state["step"])
    if step < config.total_steps:
        raise ConfigError(
            f"library {name} stopped at step {step:,} of {config.total_steps:,}; continue its "
            f"training with: skillforge pretrain --resume {name}"
        )
    sent_step = int(run.data.tags.get(tracking.TAG_STEP, -1) or -1)
    evaluation = run_evaluation(client, run, evaluation)
    job = LibraryRun(client, info.run_id, config, checkpoint_path, evaluation, store_timeout)
    return complete_from_state(job, state, sent_step)


def _run(job: LibraryRun, callbacks, state: dict | None, sent_step: int) -> PretrainResult:
    """Train (from `state` if given), then complete the library."""
    from skillforge.evaluation.report import PeriodicEvaluation, frozen_library
    from skillforge.rl import loop

    client, run_id, config = job.client, job.run_id, job.config
    checkpoint_path = job.checkpoint_path
    tracker = job.tracker(sent_step)
    if state is not None:
        tracker.last_checkpoint = (checkpoint_path, int(state["step"]))
    client.set_tag(run_id, tracking.TAG_STATUS, "running")
    client.update_run(run_id, status="RUNNING")
    try:
        periodic = PeriodicEvaluation(
            job.evaluation.every,
            lambda report, step: tracker.log_evaluation(step, report.metrics()),
            seed=config.seed,
            name=config.name,
        )
        result = loop.train(config, checkpoint_path, [tracker, periodic, *callbacks], state)
    except TrainingInterrupted as stop:
        record_end(tracker, run_id, f"interrupted at step {stop.step}", "KILLED")
        raise TrainingInterrupted(stop.step, stop.checkpoint_path, run_id) from None
    except TrainingDiverged as error:
        message = f"training diverged: {error}; {last_good_checkpoint(tracker)}"
        record_end(tracker, run_id, f"diverged: {error}", "FAILED")
        raise TrainingDiverged(
            f"{message}; the failure is recorded in MLflow run {run_id}"
        ) from None
    except CheckpointWriteError as error:
        record_end(tracker, run_id, f"failed: {error}", "FAILED")
        raise CheckpointWriteError(
            error.errno,
            f"{error}; free some space or make the folder writable, then continue with: "
            f"skillforge pretrain --resume {config.name}",
        ) from None
    except BaseException:
        tracker.close(timeout=5.0)
        raise
    if result.config.total_steps != config.total_steps:  # the episode budget ended it
        client.set_tag(run_id, tracking.TAG_TOTAL_STEPS, str(result.config.total_steps))
        job = dataclasses.replace(job, config=result.config)
    library = frozen_library(result.agent, result.spec, config.name)
    library.run_id = run_id
    return complete_library(job, tracker, library, result.step)


def complete_from_state(job: LibraryRun, state: dict, sent_step: int) -> PretrainResult:
    """Complete a library whose training finished, from its final checkpoint `state`."""
    spec = LibrarySpec.from_dict(state["spec"])
    try:
        library = SkillLibrary.from_state_dict(spec, state["agent"], name=job.config.name)
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(
            f"{job.checkpoint_path} does not hold a skill library ({error})"
        ) from None
    library.run_id = job.run_id
    return complete_library(job, job.tracker(sent_step), library, int(state["step"]))


def _run_versions() -> dict[str, str]:
    """The versions a library's results depend on, as run params (`torch_version`, ...)."""
    versions = package_versions(("torch", "gymnasium", "mujoco", "mlflow", "numpy"))
    return {f"{package}_version": version for package, version in versions.items()}
