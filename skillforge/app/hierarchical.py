"""`skillforge hierarchical`: a meta-controller over a frozen library on a task, with its
baselines at the same env-step budget, tracked as one MLflow run under the library's.

Every method's final return is measured the same way: greedy, on the same held-out
episodes, run to their end."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skillforge.app.agent_model import register_agent_model
from skillforge.app.downstream import DownstreamRun
from skillforge.core.config import HierarchicalConfig
from skillforge.core.envs import EVAL_SEED_OFFSET
from skillforge.core.errors import SkillforgeError
from skillforge.reuse import baselines
from skillforge.reuse.meta_controller import LEARNER, MetaController, train_meta_controller
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy
from skillforge.reuse.task_sac import (
    TaskSACSettings,
    held_out_returns,
    scratch_agent,
    train_task_sac,
)
from skillforge.reuse.tasks import make_task
from skillforge.skills.library import SkillLibrary
from skillforge.store import registry, tracking

logger = logging.getLogger("skillforge")


@dataclass
class HierarchicalResult:
    """The meta-controller's run and the final returns it and each baseline reached."""

    run_id: str
    task: str
    meta_controller: MetaController
    final_returns: dict[str, float] = field(default_factory=dict)
    model_uri: str = ""
    skills_frozen: bool = True
    agent_uri: str = ""
    """The meta-controller and its skills as one registered model, `<library>.agent-<task>`."""


def load_skill_set(
    library: SkillLibrary, source: str, tracking_uri: str | None, model_uri: str = ""
):
    """The library's skills from the registry (its library model: version `model_uri`, by
    default the newest), its ONNX export or its checkpoint."""
    from skillforge.skills import sources as skill_sources

    if source == "registry":
        uri = tracking.resolve_tracking_uri(tracking_uri)
        return skill_sources.RegistrySkills.load(library.name, library.spec, uri, model_uri)
    if source == "onnx":
        return skill_sources.OnnxSkills.load(library.name, library.spec)
    return skill_sources.LibrarySkills(library)


def train_hierarchical(
    library: str | None,
    config: HierarchicalConfig,
    tracking_uri: str | None = None,
    callbacks_for=lambda name, total: (),
) -> HierarchicalResult:
    """Train a meta-controller over `library`'s frozen skills and run the chosen baselines;
    register the meta-controller (`<library>.meta-<task>`) and, with its skills, the agent
    (`<library>.agent-<task>`).

    `callbacks_for(name, total_steps)` returns extra callbacks for each phase ("meta",
    or a baseline name), e.g. progress bars.
    """
    import mlflow

    params = {**config.to_params(), "learner": LEARNER}
    run = DownstreamRun.start(library, config.task, "meta", params, tracking_uri)
    skills = load_skill_set(run.library, config.skills_from, tracking_uri, run.info.model_uri)
    lanes = SkillActionEnvs(
        [make_task(run.task) for _ in range(config.envs)], skills, config.skill_steps
    )
    validation_lanes = SkillActionEnvs(
        [make_task(run.task) for _ in range(max(1, min(config.envs, config.validation_episodes)))],
        skills,
        config.skill_steps,
    )
    fingerprint = skills.fingerprint()
    eval_seed = config.seed + EVAL_SEED_OFFSET
    steps = config.total_steps
    final: dict[str, float] = {}
    with mlflow.start_run(run_id=run.run_id), lanes, validation_lanes:
        meta = train_meta_controller(
            lanes, config, run.phase("", callbacks_for("meta", steps)), validation_lanes
        )
        run.client.log_param(run.run_id, "reward_scale", f"{meta.reward_scale:.6g}")
        fallback = "none" if meta.fallback is None else str(meta.fallback)
        run.client.set_tag(run.run_id, "skillforge.meta_fallback", fallback)
        _log_validation(run, meta, steps)
        greedy = run_skill_policy(
            lanes, lambda obs, rng: meta.choose(obs), eval_seed, config.eval_episodes
        )
        final["meta-controller"] = float(np.mean(greedy))
        if "best-skill" in config.baselines:
            final["best-skill"] = _best_skill_baseline(run, meta, lanes, validation_lanes, config)
        if "random-skills" in config.baselines:
            prefix, bars = "baseline/random-skills/", callbacks_for("random-skills", steps)
            baselines.random_skills(lanes, steps, config.seed, run.phase(prefix, bars))
            random_choice = baselines.random_choice(lanes.n_skills)
            final["random-skills"] = float(
                np.mean(run_skill_policy(lanes, random_choice, eval_seed, config.eval_episodes))
            )
        if "sac" in config.baselines:
            final["sac"] = sac_baseline(
                run, steps, config.seed, config.eval_episodes, callbacks_for("sac", steps)
            )
        frozen = skills.fingerprint() == fingerprint
        run.client.set_tag(run.run_id, "skillforge.skills_frozen", str(frozen).lower())
        curves = {
            "meta-controller": "return",
            "random-skills": "baseline/random-skills/return",
            "sac": "baseline/sac/return",
        }
        run.finish(final, steps, curves, flat=["best-skill"])
        _log_diagnostics_plot(run, meta, final)
        observations = np.stack([lanes.reset(0, seed=i)[0] for i in range(4)])
        model_uri = registry.register_module(
            meta,
            observations,
            f"{run.info.name}.meta-{run.task}",
            "meta_controller",
            {
                "library": run.info.name,
                "task": run.task,
                "run_id": run.run_id,
                "output": "Q-value per skill; act with argmax",
                "fallback_skill": fallback,
                "reward_scale": f"{meta.reward_scale:.6g}",
            },
        )
        try:
            agent_uri = register_agent_model(
                run.client, meta, skills, run.library, run.task, config.skill_steps, run.run_id
            )
        except SkillforgeError as error:  # the run and the meta-controller are kept
            logger.warning("the agent is not registered: %s", error)
            agent_uri = ""
    return HierarchicalResult(run.run_id, run.task, meta, final, model_uri, frozen, agent_uri)


def _best_skill_baseline(
    run: DownstreamRun,
    meta: MetaController,
    lanes: SkillActionEnvs,
    validation_lanes: SkillActionEnvs,
    config: HierarchicalConfig,
) -> float:
    """The best single skill, chosen on the selection episodes (the meta-controller's own
    choice where it was validated), scored on the held-out episodes. Also logs the best
    skill in hindsight, chosen on the held-out episodes themselves (an upward-biased oracle),
    as `hindsight_return/best-skill`."""
    best = meta.best_skill
    if best is None:
        episodes = config.validation_episodes or config.eval_episodes
        best = baselines.best_skill(validation_lanes, episodes, config.seed)[0]
    eval_seed = config.seed + EVAL_SEED_OFFSET
    means = baselines.skill_means(lanes, config.eval_episodes, eval_seed)
    run.client.set_tag(run.run_id, "skillforge.best_skill", str(best))
    run.client.set_tag(run.run_id, "skillforge.hindsight_best_skill", str(int(means.argmax())))
    metrics = {"hindsight_return/best-skill": float(means.max())}
    tracking.log_metrics(run.client, run.run_id, metrics, config.total_steps)
    return float(means[best])


def _log_validation(run: DownstreamRun, meta: MetaController, steps: int) -> None:
    """`best_return/meta-controller`: the best validation return (the kept network's);
    `validation_return/...`: it and the best single skill on the second validation
    episodes, where one of them is deployed (the network if its
    `validation_lower_bound/meta-controller` is at least the skill's return); the env steps
    validation took apart from the budget."""
    if not meta.validation:
        return
    metrics = {
        "best_return/meta-controller": meta.validation["best"],
        "validation_return/meta-controller": meta.validation["meta-controller"],
        "validation_lower_bound/meta-controller": meta.validation["meta-controller-lower-bound"],
        "validation_return/best-skill": meta.validation["best-skill"],
        "validation_env_steps": float(meta.validation_env_steps),
    }
    tracking.log_metrics(run.client, run.run_id, metrics, steps)


def _log_diagnostics_plot(run: DownstreamRun, meta: MetaController, final: dict) -> None:
    """`plots/meta_controller.png`: returns, Q-values and TD error, exploration, chosen skills."""
    from skillforge.evaluation import plots

    keys = ("return", "validation_return", "q_value", "q_target", "td_error", "epsilon")
    history = {key: run.history(key) for key in (*keys, "replay_random_share")}
    lines = {"best skill (validation)": meta.validation.get("best-skill")}
    lines["best skill (test)"] = final.get("best-skill")
    with tempfile.TemporaryDirectory() as folder:
        path = plots.meta_diagnostics(
            history,
            meta.choices,
            {name: value for name, value in lines.items() if value is not None},
            Path(folder) / "meta_controller.png",
            f"{run.info.name}: meta-controller on {run.task}",
        )
        run.client.log_artifact(run.run_id, str(path), "plots")


def sac_baseline(
    run: DownstreamRun,
    steps: int,
    seed: int,
    eval_episodes: int,
    callbacks=(),
    settings: TaskSACSettings | None = None,
) -> float:
    """SAC from scratch on the task (the library's network width), its curve logged as
    `baseline/sac/return`; returns its greedy mean return on the held-out episodes."""
    settings = settings or TaskSACSettings(hidden=run.library.spec.hidden)
    env = make_task(run.task)
    agent = scratch_agent(env, settings)
    train_task_sac(agent, env, steps, seed, settings, run.phase("baseline/sac/", callbacks))
    env.close()
    return float(
        np.mean(held_out_returns(lambda: make_task(run.task), agent.act, seed, eval_episodes))
    )
