"""`hierarchical` end to end: a meta-controller over a frozen library on a task, its
baselines at the same env-step budget, all tracked as one MLflow run under the library's."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skillforge.app.load import load_library
from skillforge.core.config import HierarchicalConfig
from skillforge.core.errors import SkillforgeError
from skillforge.reuse.meta_controller import MetaController, train_meta_controller
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy
from skillforge.reuse.tasks import make_task, task_env_id
from skillforge.rl.callbacks import CallbackList
from skillforge.skills.library import SkillLibrary
from skillforge.store import tracking


@dataclass
class HierarchicalResult:
    """The meta-controller's run and the final returns it and each baseline reached."""

    run_id: str
    task: str
    meta_controller: MetaController
    final_returns: dict[str, float] = field(default_factory=dict)
    model_uri: str = ""
    skills_frozen: bool = True


class _Prefixed:
    """Send a phase's episode reports to the MLflow tracker under a prefix, and every event
    to the phase's own callbacks (progress bars)."""

    def __init__(self, tracker: tracking.MlflowTracker, prefix: str, callbacks=()) -> None:
        self.tracker, self.prefix = tracker, prefix
        self.callbacks = CallbackList(callbacks)

    def on_start(self, info: dict) -> None:
        self.callbacks.on_start(info)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.tracker.on_step(step, {f"{self.prefix}{k}": v for k, v in metrics.items()})
        self.callbacks.on_step(step, metrics)

    def on_end(self, result) -> None:
        self.callbacks.on_end(result)


def load_skill_set(library: SkillLibrary, source: str, tracking_uri: str | None):
    """The library's skills from the registry, its ONNX export or its checkpoint."""
    from skillforge.skills import sources as skill_sources

    if source == "registry":
        uri = tracking.resolve_tracking_uri(tracking_uri)
        return skill_sources.RegistrySkills.load(library.name, library.spec, uri)
    if source == "onnx":
        return skill_sources.OnnxSkills.load(library.name, library.spec)
    return skill_sources.LibrarySkills(library)


def train_hierarchical(
    library: str | None,
    config: HierarchicalConfig,
    tracking_uri: str | None = None,
    callbacks_for=lambda name, total: (),
) -> HierarchicalResult:
    """Train a meta-controller over `library`'s frozen skills and run the chosen baselines.

    `callbacks_for(name, total_steps)` returns extra callbacks for each phase ("meta",
    or a baseline name), e.g. progress bars.
    """
    import mlflow

    from skillforge.core.versions import __version__
    from skillforge.reuse import baselines

    client = tracking.connect(tracking_uri)
    info = tracking.find_library(library, tracking_uri)
    task = config.task or info.env_id
    if task_env_id(task) != info.env_id:
        raise SkillforgeError(
            f"library {info.name} was learned on {info.env_id}, but task {task} uses "
            f"{task_env_id(task)}: observation and action shapes differ"
        )
    library_skills = load_library(info.run_id, tracking_uri)
    skills = load_skill_set(library_skills, config.skills_from, tracking_uri)
    envs = [make_task(task) for _ in range(config.envs)]
    lanes = SkillActionEnvs(envs, skills, config.skill_steps)
    fingerprint = skills.fingerprint()

    run = client.create_run(
        client.get_run(info.run_id).info.experiment_id,
        run_name=f"{info.name}-meta-{task}",
        tags={
            "mlflow.parentRunId": info.run_id,
            tracking.TAG_KIND: "hierarchical",
            tracking.TAG_LIBRARY: info.name,
            "skillforge.task": task,
        },
    )
    run_id = run.info.run_id
    tracking.log_params(
        client,
        run_id,
        {
            **config.to_params(),
            "task": task,
            "library": info.name,
            "library_run_id": info.run_id,
            "n_skills": info.n_skills,
            "learner": "double-dqn",
            "skillforge_version": __version__,
        },
    )
    tracker = tracking.MlflowTracker(client, run_id)
    final: dict[str, float] = {}
    with mlflow.start_run(run_id=run_id), lanes:
        meta = train_meta_controller(
            lanes, config, [_Prefixed(tracker, "", callbacks_for("meta", config.total_steps))]
        )
        client.log_param(run_id, "reward_scale", f"{meta.reward_scale:.6g}")
        eval_seed = config.seed + 1_000_003
        final["meta-controller"] = float(
            np.mean(
                run_skill_policy(
                    lanes, lambda obs, rng: meta.choose(obs), eval_seed, config.eval_episodes
                )
            )
        )
        if "best-skill" in config.baselines:
            best, means = baselines.best_skill(lanes, config.eval_episodes, eval_seed)
            final["best-skill"] = float(means[best])
            client.set_tag(run_id, "skillforge.best_skill", str(best))
        if "random-skills" in config.baselines:
            baselines.random_skills(
                lanes,
                config.total_steps,
                config.seed,
                [
                    _Prefixed(
                        tracker,
                        "baseline/random-skills/",
                        callbacks_for("random-skills", config.total_steps),
                    )
                ],
            )
            # measured like the others: whole episodes on the held-out seeds (the curve's
            # last episodes are cut by the budget, and the long ones are cut most)
            random_returns = run_skill_policy(
                lanes, baselines.random_choice(lanes.n_skills), eval_seed, config.eval_episodes
            )
            final["random-skills"] = float(np.mean(random_returns))
        if "sac" in config.baselines:
            returns = baselines.sac_from_scratch(
                make_task(task),
                config.total_steps,
                library_skills.spec.hidden,
                config.seed,
                [_Prefixed(tracker, "baseline/sac/", callbacks_for("sac", config.total_steps))],
            )
            final["sac"] = float(np.mean(returns[-config.eval_episodes :])) if returns else 0.0
        frozen = skills.fingerprint() == fingerprint
        client.set_tag(run_id, "skillforge.skills_frozen", str(frozen).lower())
        finals = {f"final_return/{name}": value for name, value in final.items()}
        tracking.log_metrics(client, run_id, finals, config.total_steps)
        _log_comparison_plot(client, run_id, tracker.history, final, task, info.name)
        model_uri = _register_meta_controller(meta, lanes, info.name, task, run_id)
    return HierarchicalResult(run_id, task, meta, final, model_uri, frozen)


def _register_meta_controller(meta, lanes, library: str, task: str, run_id: str) -> str:
    import mlflow
    import torch
    from mlflow.models import infer_signature

    observations = np.stack([lanes.reset(0, seed=i)[0] for i in range(4)]).astype(np.float32)
    with torch.no_grad():
        q_values = meta(torch.from_numpy(observations)).numpy()
    info = mlflow.pytorch.log_model(
        meta,
        name="meta_controller",
        serialization_format="pt2",
        signature=infer_signature(observations, q_values),
        input_example=observations,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    name = f"{library}.meta-{task}"
    version = mlflow.register_model(
        info.model_uri,
        name,
        tags={
            "library": library,
            "task": task,
            "run_id": run_id,
            "output": "Q-value per skill; act with argmax",
            "reward_scale": f"{meta.reward_scale:.6g}",
        },
    )
    return f"models:/{name}/{version.version}"


def _log_comparison_plot(client, run_id, history, final, task, library) -> None:
    from skillforge.evaluation import plots

    curves = {"meta-controller": history.get("return", [])}
    for name in ("random-skills", "sac"):
        if f"baseline/{name}/return" in history:
            curves[name] = history[f"baseline/{name}/return"]
    with tempfile.TemporaryDirectory() as folder:
        path = plots.return_curves(
            curves,
            Path(folder) / "returns.png",
            f"{library} on {task}",
            flat={"best-skill": final["best-skill"]} if "best-skill" in final else {},
        )
        client.log_artifact(run_id, str(path), "plots")
