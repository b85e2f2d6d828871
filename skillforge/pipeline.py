"""The public entry points: pretrain a library into MLflow, resume one, register one, load one.

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

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from skillforge import delivery, registry, tracking
from skillforge.checkpoint import CheckpointWriteError, load_checkpoint, remove_stale_temp_files
from skillforge.config import PretrainConfig, is_valid_name
from skillforge.envs import resolve_env_id
from skillforge.errors import (
    CheckpointError,
    ConfigError,
    LibraryNotFound,
    SkillforgeError,
    TrainingDiverged,
    TrainingInterrupted,
    first_line,
)
from skillforge.library import LibrarySpec, SkillLibrary

CHECKPOINT_FILE = "checkpoint.pt"
JOURNAL_FILE = "metrics.jsonl"
DEFAULT_STORE_TIMEOUT = 120.0
"""Seconds a finished run waits for an unreachable tracking store before giving up."""
END_RECORD_TIMEOUT = 15.0
"""Seconds an interrupted or failed run waits to record its end in an unreachable store."""

logger = logging.getLogger("skillforge")


@dataclass
class PretrainResult:
    """A finished library: where it is and what it measured."""

    library: SkillLibrary
    run_id: str
    tracking_uri: str
    checkpoint_path: str
    models: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationOptions:
    """How a library is evaluated while and after it trains."""

    episodes: int = 5
    """Deterministic episodes per skill at the end (0: no evaluation)."""
    every: int = 50_000
    """Env steps between evaluations during training, without video (0: only at the end)."""
    video: bool = True
    """Film every skill at the end (skipped, with a warning, where rendering is unavailable)."""


DEFAULT_EVALUATION = EvaluationOptions()
NO_EVALUATION = EvaluationOptions(episodes=0, every=0, video=False)


def default_library_name(env_id: str, n_skills: int, run_id: str) -> str:
    """`hopper-20sk-1a2b3c`: env, skill count and a piece of the run id (unique per run)."""
    return f"{env_id.split('-v')[0].lower()}-{n_skills}sk-{run_id[:6]}"


def pretrain(
    config: PretrainConfig,
    tracking_uri: str | None = None,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
    callbacks=(),
    checkpoint_dir: str | Path = "checkpoints",
    evaluation: EvaluationOptions = DEFAULT_EVALUATION,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
) -> PretrainResult:
    """Pretrain a new skill library and track it as one MLflow run, every skill registered.

    Refuses, before anything is written: a configuration that cannot fit in memory, a
    checkpoint folder it cannot write, a library name already taken.
    """
    from skillforge import __version__

    _check_store_timeout(store_timeout)
    check_resources(config)
    root = checkpoint_root(checkpoint_dir)
    client = tracking.connect(tracking_uri)
    if config.name:
        tracking.refuse_taken_name(client, config.name)
        _refuse_leftover_checkpoint(checkpoint_path_for(root, config.name))
    experiment_id = tracking.ensure_experiment(client, experiment)
    tags = {
        tracking.TAG_KIND: "library",
        tracking.TAG_ENV: config.env_id,
        tracking.TAG_SKILLS: str(config.n_skills),
        tracking.TAG_STATUS: "starting",
        tracking.TAG_STEP: "0",
        tracking.TAG_TOTAL_STEPS: str(config.total_steps),
        tracking.TAG_CHECKPOINT_ROOT: str(root),
        tracking.TAG_CONFIG: json.dumps(config.to_dict()),
    }
    if config.name:
        tags[tracking.TAG_LIBRARY] = config.name
        tags[tracking.TAG_CHECKPOINT] = str(checkpoint_path_for(root, config.name))
    run_id = tracking.create_library_run(client, experiment_id, config.name, tags)
    if not config.name:  # the default name needs the run id: a second, single write
        config = config.replace(name=default_library_name(config.env_id, config.n_skills, run_id))
        _set_library_location(client, run_id, config, checkpoint_path_for(root, config.name))
    checkpoint_path = str(checkpoint_path_for(root, config.name))
    tracking.log_params(client, run_id, {**config.to_params(), **_package_versions(__version__)})
    job = _LibraryRun(client, run_id, config, checkpoint_path, evaluation, store_timeout)
    return _run(job, callbacks, state=None, sent_step=-1)


def resume(
    reference: str,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    total_steps: int | None = None,
    callbacks=(),
    evaluation: EvaluationOptions = DEFAULT_EVALUATION,
    expected_env: str | None = None,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
) -> PretrainResult:
    """Continue a library's run from its last checkpoint (`reference`: name, run id, latest).

    A run killed before its first checkpoint starts again from step 0 (same config, same
    seed: the same result). A run whose training finished but whose evaluation or
    registration did not (a kill, an unreachable store) is completed. `total_steps` larger
    than the steps done extends a library. `expected_env`, when given, must name the
    library's environment (a guard for the CLI).
    """
    _check_store_timeout(store_timeout)
    if reference is not None and not str(reference).strip():
        raise ConfigError("--resume needs a library name, a run id or 'latest'")
    client = tracking.connect(tracking_uri)
    info = tracking.find_library(reference, tracking_uri, experiment)
    if expected_env is not None and resolve_env_id(expected_env) != info.env_id:
        raise ConfigError(
            f"library {info.name} was trained on {info.env_id}, not {expected_env}; "
            f"run `skillforge pretrain --resume {info.name}`"
        )
    run = client.get_run(info.run_id)
    config, checkpoint_path = _library_location(client, run, info)
    state = _checkpoint_state(client, run, checkpoint_path)
    name = Path(checkpoint_path).parent.name
    if state is not None:
        config = _config_of(state, name, checkpoint_path)
    elif config is None:
        raise CheckpointError(f"library {name} has no checkpoint at {checkpoint_path}")
    if total_steps is not None:
        config = config.replace(total_steps=total_steps)
    step = int(state["step"]) if state is not None else 0
    status = run.data.tags.get(tracking.TAG_STATUS, "")
    sent_step = int(run.data.tags.get(tracking.TAG_STEP, -1) or -1)
    if step >= config.total_steps:
        if status != "finished" or run.info.status != "FINISHED":  # completion cut short
            job = _LibraryRun(
                client, run.info.run_id, config, checkpoint_path, evaluation, store_timeout
            )
            return _complete(job, state, sent_step)
        raise ConfigError(
            f"library {config.name} already ran {step:,} of its "
            f"{config.total_steps:,} steps; pass a larger --steps to continue it"
        )
    if state is None:
        logger.warning("library %s has no checkpoint yet: starting it from step 0", config.name)
    remove_stale_temp_files(checkpoint_path)
    client.set_tag(info.run_id, tracking.TAG_TOTAL_STEPS, str(config.total_steps))
    if not run.data.params:  # killed before its params were logged
        from skillforge import __version__

        tracking.log_params(
            client, info.run_id, {**config.to_params(), **_package_versions(__version__)}
        )
    job = _LibraryRun(client, info.run_id, config, checkpoint_path, evaluation, store_timeout)
    return _run(job, callbacks, state, sent_step)


def register(
    reference: str,
    tracking_uri: str | None = None,
    evaluation: EvaluationOptions = DEFAULT_EVALUATION,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
) -> PretrainResult:
    """Finish a library whose training is done: send the metrics still in its journal,
    evaluate it (unless already done), log the plot and checkpoint, register every skill not
    yet registered. Safe to run again: nothing is logged or registered twice."""
    _check_store_timeout(store_timeout)
    client = tracking.connect(tracking_uri)
    info = tracking.find_library(reference, tracking_uri)
    run = client.get_run(info.run_id)
    _, checkpoint_path = _library_location(client, run, info)
    state = _checkpoint_state(client, run, checkpoint_path)
    name = Path(checkpoint_path).parent.name
    if state is None:
        raise CheckpointError(
            f"library {name} has no checkpoint yet; continue its training with: "
            f"skillforge pretrain --resume {name}"
        )
    config = _config_of(state, name, checkpoint_path)
    step = int(state["step"])
    if step < config.total_steps:
        raise ConfigError(
            f"library {name} stopped at step {step:,} of {config.total_steps:,}; continue its "
            f"training with: skillforge pretrain --resume {name}"
        )
    sent_step = int(run.data.tags.get(tracking.TAG_STEP, -1) or -1)
    job = _LibraryRun(client, info.run_id, config, checkpoint_path, evaluation, store_timeout)
    return _complete(job, state, sent_step)


@dataclass(frozen=True)
class _LibraryRun:
    """One library's MLflow run and where its checkpoint is, with how to finish it."""

    client: object
    run_id: str
    config: PretrainConfig
    checkpoint_path: str
    evaluation: EvaluationOptions
    store_timeout: float

    def tracker(self, sent_step: int) -> delivery.BufferedTracker:
        """The run's metric sender, with its journal next to the checkpoint."""
        folder = Path(self.checkpoint_path).parent
        journal = delivery.MetricJournal(folder / JOURNAL_FILE, self.run_id)
        return delivery.BufferedTracker(self.client, self.run_id, journal, sent_step)


def _run(job: _LibraryRun, callbacks, state: dict | None, sent_step: int) -> PretrainResult:
    """Train (from `state` if given), then complete the library."""
    from skillforge import diayn, evaluate

    client, run_id, config = job.client, job.run_id, job.config
    checkpoint_path = job.checkpoint_path
    tracker = job.tracker(sent_step)
    if state is not None:
        tracker.last_checkpoint = (checkpoint_path, int(state["step"]))
    client.set_tag(run_id, tracking.TAG_STATUS, "running")
    client.update_run(run_id, status="RUNNING")
    try:
        periodic = evaluate.PeriodicEvaluation(
            job.evaluation.every,
            lambda report, step: tracker.log_evaluation(step, report.metrics()),
            seed=config.seed,
            name=config.name,
        )
        result = diayn.train(config, checkpoint_path, [tracker, periodic, *callbacks], state)
    except TrainingInterrupted as stop:
        _record_end(tracker, run_id, f"interrupted at step {stop.step}", "KILLED")
        raise TrainingInterrupted(stop.step, stop.checkpoint_path, run_id) from None
    except TrainingDiverged as error:
        message = f"training diverged: {error}; {_last_good(tracker)}"
        _record_end(tracker, run_id, f"diverged: {error}", "FAILED")
        raise TrainingDiverged(
            f"{message}; the failure is recorded in MLflow run {run_id}"
        ) from None
    except CheckpointWriteError as error:
        _record_end(tracker, run_id, f"failed: {error}", "FAILED")
        raise CheckpointWriteError(
            error.errno,
            f"{error}; free some space or make the folder writable, then continue with: "
            f"skillforge pretrain --resume {config.name}",
        ) from None
    except BaseException:
        tracker.close(timeout=5.0)
        raise
    library = SkillLibrary(
        result.spec, result.agent.sac.policy, result.agent.discriminator, config.name, run_id
    )
    library.policy.cpu()
    library.discriminator.cpu()
    return _complete_library(job, tracker, library, result.step)


def _complete(job: _LibraryRun, state: dict, sent_step: int) -> PretrainResult:
    """Complete a library whose training finished, from its final checkpoint `state`."""
    spec = LibrarySpec.from_dict(state["spec"])
    try:
        library = SkillLibrary.from_state_dict(spec, state["agent"], name=job.config.name)
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(
            f"{job.checkpoint_path} does not hold a skill library ({error})"
        ) from None
    library.run_id = job.run_id
    return _complete_library(job, job.tracker(sent_step), library, int(state["step"]))


def _complete_library(job: _LibraryRun, tracker, library, step: int) -> PretrainResult:
    """Evaluate (unless the journal has it), wait for the store to have every metric, log
    the plot and the checkpoint, register the skills not yet registered, mark it finished."""
    import mlflow

    from skillforge import evaluate

    client, run_id, config = job.client, job.run_id, job.config
    checkpoint_path, store_timeout = job.checkpoint_path, job.store_timeout

    metrics, report = tracker.evaluation(step), None
    if metrics is None and job.evaluation.episodes:
        report = evaluate.evaluate(
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
            models = registry.register_skills(
                client, library, run_id, _example_observations(library), step
            )
            client.set_tag(run_id, tracking.TAG_STATUS, "finished")
    except SkillforgeError:
        raise
    except Exception as error:  # the store failed mid-way: nothing is lost, retry later
        raise tracking.StoreUnavailable(
            f"registering library {config.name} failed ({first_line(error)}); "
            f"its training is complete and saved in {checkpoint_path}; retry with: {later}"
        ) from error
    return PretrainResult(library, run_id, client.tracking_uri, checkpoint_path, models, metrics)


def _log_plots(client, tracker, run_id, library, report) -> None:
    """The learning curve, and with a fresh evaluation report its plots and videos too."""
    from skillforge import evaluate, plots

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
        evaluate.write_files(report, folder, history)
        if report.coverage_of:
            client.set_tag(run_id, tracking.TAG_COVERAGE, report.coverage_of)
        client.log_artifacts(run_id, folder)


def _record_end(tracker, run_id: str, status: str, mlflow_status: str) -> None:
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


def _last_good(tracker) -> str:
    if tracker.last_checkpoint is None:
        return "no checkpoint had been written yet"
    path, step = tracker.last_checkpoint
    return f"the last good checkpoint (step {step:,}) is kept in {path}"


# -- where a library lives --------------------------------------------------------------------


def checkpoint_root(checkpoint_dir: str | os.PathLike) -> Path:
    """The absolute checkpoint folder, created and checked writable (else a ConfigError)."""
    text = os.fspath(checkpoint_dir)
    if not text.strip() or "\x00" in text:
        raise ConfigError(f"--checkpoint-dir must name a folder, got {text!r}")
    root = Path(os.path.expanduser(text)).resolve()  # like a shell: an unknown ~user stays
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".skillforge-write-test-"):
            pass
    except OSError as error:
        raise ConfigError(
            f"cannot write checkpoints to {root}: {error.strerror or error}"
        ) from None
    return root


def checkpoint_path_for(root: Path, name: str) -> Path:
    """`root/<name>/checkpoint.pt`, refusing any name that would land outside `root`."""
    if not is_valid_name(name):
        raise ConfigError(f"{name!r} is not a valid library name")
    path = (root / name / CHECKPOINT_FILE).resolve()
    if path.parent.parent != root.resolve():
        raise ConfigError(f"library {name!r} would be written outside {root}")
    return path


def _refuse_leftover_checkpoint(path: Path) -> None:
    if path.exists():
        raise ConfigError(
            f"{path} already holds a checkpoint (of a library no longer in this store?); "
            "move it away or pick another --name"
        )


def _set_library_location(client, run_id: str, config: PretrainConfig, path: Path) -> None:
    from mlflow.entities import RunTag

    tags = {
        tracking.TAG_LIBRARY: config.name,
        tracking.TAG_CHECKPOINT: str(path),
        tracking.TAG_CONFIG: json.dumps(config.to_dict()),
    }
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    client.set_tag(run_id, "mlflow.runName", config.name)


def _library_location(client, run, info: tracking.LibraryInfo) -> tuple[PretrainConfig | None, str]:
    """The library's config as recorded at creation (None for libraries made before that
    was recorded) and its checkpoint path, checked: the name must be valid and the path
    `<folder>/<name>/checkpoint.pt`, whatever the store says."""
    tags = run.data.tags
    try:
        config = PretrainConfig.from_dict(json.loads(tags[tracking.TAG_CONFIG]))
    except KeyError:
        config = None  # a library made before the config tag existed
    except (ValueError, TypeError) as error:
        raise CheckpointError(
            f"run {run.info.run_id} has an unreadable {tracking.TAG_CONFIG} tag ({error})"
        ) from None
    name = info.name
    if not name and config is not None:  # killed before its default name was written
        name = default_library_name(config.env_id, config.n_skills, run.info.run_id)
    if not is_valid_name(name):
        raise LibraryNotFound(f"run {run.info.run_id} does not hold a library with a valid name")
    checkpoint = info.checkpoint
    if not checkpoint and tags.get(tracking.TAG_CHECKPOINT_ROOT):
        checkpoint = str(checkpoint_path_for(Path(tags[tracking.TAG_CHECKPOINT_ROOT]), name))
    path = Path(checkpoint)
    if not (path.is_absolute() and path.name == CHECKPOINT_FILE and path.parent.name == name):
        raise CheckpointError(
            f"library {name} records its checkpoint as {checkpoint or '(nothing)'}, not "
            f"<folder>/{name}/{CHECKPOINT_FILE}; refusing to read or write there"
        )
    if config is not None:
        config = config.replace(name=name)
        if not info.name:
            _set_library_location(client, run.info.run_id, config, path)
    return config, str(path)


def _config_of(state: dict, name: str, checkpoint_path: str) -> PretrainConfig:
    """The config stored in a checkpoint, renamed to its library (a foreign or tampered
    checkpoint is a CheckpointError, never a traceback)."""
    try:
        int(state["step"])
        return PretrainConfig.from_dict({**dict(state["config"]), "name": name})
    except ConfigError as error:
        raise CheckpointError(f"{checkpoint_path} holds an invalid config ({error})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(
            f"{checkpoint_path} does not hold a skillforge pretraining state ({error!r})"
        ) from None


def _checkpoint_state(client, run, checkpoint_path: str) -> dict | None:
    """The library's last complete checkpoint: the local file, else the copy in its MLflow
    artifacts; None if it never wrote one (a refusal if one was written but is gone)."""
    if Path(checkpoint_path).exists():
        return load_checkpoint(checkpoint_path)
    folder = tempfile.mkdtemp(prefix="skillforge-")
    try:
        local = client.download_artifacts(run.info.run_id, f"checkpoint/{CHECKPOINT_FILE}", folder)
    except Exception:
        local = None
    if local is not None:
        return load_checkpoint(local)
    written = run.data.tags.get(tracking.TAG_CHECKPOINT_STEP)
    if written:
        raise CheckpointError(
            f"the checkpoint of step {int(written):,} is gone from {checkpoint_path} and from "
            "the MLflow artifacts; cannot continue this library"
        )
    return None


def _local_checkpoint(client, info: tracking.LibraryInfo) -> str:
    """The library's checkpoint file: local path if present, else downloaded from MLflow."""
    if info.checkpoint and Path(info.checkpoint).is_file():
        return info.checkpoint
    try:
        folder = tempfile.mkdtemp(prefix="skillforge-")
        return client.download_artifacts(info.run_id, f"checkpoint/{CHECKPOINT_FILE}", folder)
    except Exception:
        raise CheckpointError(
            f"library {info.name} has no checkpoint at {info.checkpoint or '(none recorded)'} "
            "and none in its MLflow artifacts"
        ) from None


# -- refusals before anything is written ------------------------------------------------------


def check_resources(config: PretrainConfig) -> None:
    """Refuse a configuration this machine cannot hold in memory (replay buffer, networks,
    a batch's activations) or a thread count it cannot run, before anything starts."""
    from skillforge.envs import make_env

    cores = os.cpu_count() or 1
    if config.threads > max(16, 4 * cores):
        raise ConfigError(
            f"--threads {config.threads} is more than this machine can use ({cores} cores); "
            "use 0 (all cores) or a number up to the cores"
        )
    env = make_env(config.env_id)
    obs_dim = int(env.observation_space.shape[0])
    action_dim = int(env.action_space.shape[0])
    env.close()
    replay = config.buffer_size * (4 * (2 * obs_dim + action_dim + 2) + 8)
    hidden, inputs = config.hidden, obs_dim + config.n_skills
    layer = inputs * hidden + hidden * hidden
    parameters = layer + hidden * 2 * action_dim  # policy
    parameters += 4 * (layer + action_dim * hidden + hidden)  # twin critics and their targets
    parameters += obs_dim * hidden + hidden * hidden + hidden * config.n_skills  # discriminator
    networks = parameters * 4 * 4  # weights, gradients, two Adam moments
    activations = config.batch_size * (inputs + 4 * hidden + config.n_skills) * 4 * 8
    need = replay + networks + activations
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > 0.8 * have:
        raise ConfigError(
            f"this configuration needs about {need / 1e9:,.1f} GB of memory (replay buffer "
            f"{replay / 1e9:,.1f} GB, networks {networks / 1e9:,.1f} GB, a batch "
            f"{activations / 1e9:,.1f} GB) and this machine has {have / 1e9:,.1f} GB; "
            "lower --buffer-size, --skills, --hidden or --batch-size"
        )


def _check_store_timeout(store_timeout: float) -> None:
    if not (math.isfinite(store_timeout) and 0 <= store_timeout <= 7 * 24 * 3600):
        raise ConfigError(
            f"--store-timeout must be a number of seconds from 0 to one week, got {store_timeout}"
        )


def _example_observations(library: SkillLibrary, rows: int = 4):
    """A few real observations of the library's env (the registry's input example)."""
    import numpy as np

    from skillforge.envs import make_env

    env = make_env(library.spec.env_id)
    obs, _ = env.reset(seed=0)
    observations = [obs]
    for _ in range(rows - 1):
        obs, *_ = env.step(env.action_space.sample())
        observations.append(obs)
    env.close()
    return np.asarray(observations, dtype=np.float32)


def _package_versions(version: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    versions = {"skillforge_version": version}
    for package in ("torch", "gymnasium", "mujoco", "mlflow", "numpy"):
        try:
            versions[f"{package}_version"] = package_version(package)
        except PackageNotFoundError:
            versions[f"{package}_version"] = "absent"
    return versions


def load_library(
    reference: str | None = None, tracking_uri: str | None = None, experiment: str | None = None
) -> SkillLibrary:
    """Load a library's skills from the store (name, run id, or None for the latest)."""
    client = tracking.connect(tracking_uri)
    info = tracking.find_library(reference, tracking_uri, experiment)
    library = SkillLibrary.from_checkpoint(_local_checkpoint(client, info), name=info.name)
    library.run_id = info.run_id
    return library
