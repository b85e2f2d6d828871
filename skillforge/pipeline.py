"""The public entry points: pretrain a library into MLflow, resume one, load one back."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from skillforge import tracking
from skillforge.checkpoint import load_checkpoint
from skillforge.config import PretrainConfig
from skillforge.envs import resolve_env_id
from skillforge.errors import (
    CheckpointError,
    ConfigError,
    LibraryNotFound,
    TrainingDiverged,
    TrainingInterrupted,
)
from skillforge.library import SkillLibrary

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class PretrainResult:
    """A finished library: where it is and what it measured."""

    library: SkillLibrary
    run_id: str
    tracking_uri: str
    checkpoint_path: str
    models: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def default_library_name(env_id: str, n_skills: int, run_id: str) -> str:
    """`hopper-20sk-1a2b3c`: env, skill count and a piece of the run id (unique per run)."""
    return f"{env_id.split('-v')[0].lower()}-{n_skills}sk-{run_id[:6]}"


def pretrain(
    config: PretrainConfig,
    tracking_uri: str | None = None,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
    callbacks=(),
    checkpoint_dir: str | Path = "checkpoints",
    eval_episodes: int = 1,
) -> PretrainResult:
    """Pretrain a new skill library and track it as one MLflow run, every skill registered."""
    from skillforge import __version__

    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, experiment)
    if config.name and _name_taken(config.name, tracking_uri):
        raise ConfigError(
            f"a library named {config.name!r} already exists; pick another --name, "
            f"or continue it with --resume {config.name}"
        )
    run = client.create_run(experiment_id, tags={tracking.TAG_KIND: "library"})
    run_id = run.info.run_id
    name = config.name or default_library_name(config.env_id, config.n_skills, run_id)
    config = config.replace(name=name)
    checkpoint_path = str((Path(checkpoint_dir) / name / CHECKPOINT_FILE).resolve())
    client.set_tag(run_id, "mlflow.runName", name)
    for key, value in {
        tracking.TAG_LIBRARY: name,
        tracking.TAG_ENV: config.env_id,
        tracking.TAG_SKILLS: str(config.n_skills),
        tracking.TAG_CHECKPOINT: checkpoint_path,
        tracking.TAG_STATUS: "running",
    }.items():
        client.set_tag(run_id, key, value)
    tracking.log_params(client, run_id, {**config.to_params(), **_package_versions(__version__)})
    return _run(client, run_id, config, checkpoint_path, callbacks, None, eval_episodes)


def resume(
    reference: str,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    total_steps: int | None = None,
    callbacks=(),
    eval_episodes: int = 1,
    expected_env: str | None = None,
) -> PretrainResult:
    """Continue a library's run from its last checkpoint (`reference`: name, run id, latest).

    `expected_env`, when given, must name the library's environment (a guard for the CLI).
    """
    client = tracking.connect(tracking_uri)
    info = tracking.find_library(reference, tracking_uri, experiment)
    if expected_env is not None and resolve_env_id(expected_env) != info.env_id:
        raise ConfigError(
            f"library {info.name} was trained on {info.env_id}, not {expected_env}; "
            f"run `skillforge pretrain --resume {info.name}`"
        )
    state = load_checkpoint(_local_checkpoint(client, info))
    config = PretrainConfig.from_dict(state["config"])
    if total_steps is not None:
        config = config.replace(total_steps=total_steps)
    if int(state["step"]) >= config.total_steps:
        raise ConfigError(
            f"library {info.name} already ran {int(state['step']):,} of its "
            f"{config.total_steps:,} steps; pass a larger --steps to continue it"
        )
    client.set_tag(info.run_id, tracking.TAG_STATUS, "running")
    client.log_param(info.run_id, "total_steps_resumed", str(config.total_steps))
    return _run(client, info.run_id, config, info.checkpoint, callbacks, state, eval_episodes)


def _run(client, run_id, config, checkpoint_path, callbacks, state, eval_episodes):
    import mlflow

    from skillforge import diayn

    tracker = tracking.MlflowTracker(client, run_id)
    with mlflow.start_run(run_id=run_id) as active:
        try:
            result = diayn.train(config, checkpoint_path, [tracker, *callbacks], state)
        except TrainingInterrupted as stop:
            client.set_tag(run_id, tracking.TAG_STATUS, f"interrupted at step {stop.step}")
            mlflow.end_run(status="KILLED")
            raise TrainingInterrupted(stop.step, stop.checkpoint_path, run_id) from None
        except TrainingDiverged as error:
            client.set_tag(run_id, tracking.TAG_STATUS, f"diverged: {error}")
            mlflow.end_run(status="FAILED")
            raise
        library = SkillLibrary(
            result.spec, result.agent.sac.policy, result.agent.discriminator, config.name, run_id
        )
        library.policy.cpu()
        library.discriminator.cpu()
        metrics = _finish(client, active.info.run_id, library, result, eval_episodes)
        models = tracking.register_skills(client, library, run_id, _example_observations(library))
        client.set_tag(run_id, tracking.TAG_STATUS, "finished")
    return PretrainResult(
        library, run_id, client.tracking_uri, result.checkpoint_path, models, metrics
    )


def _finish(client, run_id, library, result, eval_episodes) -> dict[str, float]:
    """Evaluate the skills, log the plot and the checkpoint; returns the eval metrics."""
    from mlflow.entities import Metric

    from skillforge import evaluate, plots

    metrics = evaluate.evaluate_library(library, episodes=eval_episodes) if eval_episodes else {}
    if metrics:
        client.log_batch(
            run_id,
            metrics=[Metric(f"eval/{key}", v, 0, result.step) for key, v in metrics.items()],
        )
    history = {
        key: tracking.metric_history(client, run_id, key)
        for key in ("log_q_z", "discriminator_accuracy")
    }
    with tempfile.TemporaryDirectory() as folder:
        title = f"{library.name}: {library.spec.env_id}, {library.n_skills} skills"
        plot = plots.learning_curve(
            history, Path(folder) / "learning_curve.png", title, library.n_skills
        )
        client.log_artifact(run_id, str(plot), "plots")
    client.log_artifact(run_id, result.checkpoint_path, "checkpoint")
    return metrics


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


def _name_taken(name: str, tracking_uri: str | None) -> bool:
    try:
        tracking.find_library(name, tracking_uri)
    except LibraryNotFound:
        return False
    return True


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
