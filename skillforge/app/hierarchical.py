"""`skillforge hierarchical`: a meta-controller over a frozen library on a task, with its
baselines at the same task env-step budget, tracked as one MLflow run under the library's.

Every env step a method takes on the task's reward (selection, validation, training) is paid
from its budget, and logged as `task_env_steps/<method>`. Every method's final return is
measured the same way: greedy, on the same held-out episodes, run to their end (the test
episodes are not task experience: they only score)."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skillforge.app.agent_model import register_agent_model
from skillforge.app.downstream import DownstreamRun, stoppable
from skillforge.core.downstream_config import FinetuneConfig, HierarchicalConfig
from skillforge.core.envs import EVAL_SEED_OFFSET
from skillforge.core.errors import SkillforgeError
from skillforge.reuse import baselines
from skillforge.reuse.budget import TaskBudget
from skillforge.reuse.meta_controller import LEARNER, MetaController, train_meta_controller
from skillforge.reuse.meta_selection import Validation
from skillforge.reuse.phases import CallbacksFor, EpisodeCount, no_callbacks, phase
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy
from skillforge.reuse.task_sac import (
    TaskSACSettings,
    greedy_play,
    held_out_returns,
    scratch_agent,
    train_task_sac,
)
from skillforge.skills.library import SkillLibrary
from skillforge.store import registry, tracking

logger = logging.getLogger("skillforge")


@dataclass
class HierarchicalResult:
    """The meta-controller's run and the final returns it and each baseline reached."""

    run_id: str
    task: str
    meta_controller: MetaController | None
    """None when only the baselines ran (`HierarchicalConfig.meta_controller` off)."""
    final_returns: dict[str, float] = field(default_factory=dict)
    model_uri: str = ""
    skills_frozen: bool = True
    agent_uri: str = ""
    """The meta-controller and its skills as one registered model, `<library>.agent-<task>`."""
    task_env_steps: dict[str, int] = field(default_factory=dict)
    """Task env steps each method took, all included (never above the budget)."""


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
    callbacks_for: CallbacksFor = no_callbacks,
) -> HierarchicalResult:
    """Train a meta-controller over `library`'s frozen skills and run the chosen baselines;
    register the meta-controller (`<library>.meta-<task>`) and, with its skills, the agent
    (`<library>.agent-<task>`).

    `callbacks_for(phase, total)` gives each phase's callbacks (`skillforge.reuse.phases`:
    progress bars). Ctrl-C or SIGTERM stops it at the next step boundary, ends its run as
    KILLED and raises `downstream.RunInterrupted`.
    """
    with stoppable(callbacks_for) as start_run:
        return _train_hierarchical(start_run, library, config, tracking_uri)


def _train_hierarchical(
    start_run, library: str | None, config: HierarchicalConfig, tracking_uri: str | None
) -> HierarchicalResult:
    import mlflow

    params = {**config.to_params(), "learner": LEARNER}
    run: DownstreamRun = start_run(library, config.task, "meta", params, tracking_uri)
    skills = load_skill_set(run.library, config.skills_from, tracking_uri, run.info.model_uri)
    lanes = SkillActionEnvs(
        [run.make_task() for _ in range(config.envs)], skills, config.skill_steps
    )
    validation_lanes = SkillActionEnvs(
        [run.make_task() for _ in range(max(1, min(config.envs, config.validation_episodes)))],
        skills,
        config.skill_steps,
    )
    fingerprint = skills.fingerprint()
    meta, model_uri, agent_uri = None, "", ""
    with mlflow.start_run(run_id=run.run_id), lanes, validation_lanes:
        final: dict[str, float] = {}
        if config.meta_controller:
            meta = _meta_controller(run, lanes, validation_lanes, config)
            final["meta-controller"] = _evaluate(
                run, "meta", lanes, lambda obs, rng: meta.choose(obs), config
            )
        final |= _baselines(run, lanes, validation_lanes, config)
        frozen = skills.fingerprint() == fingerprint
        run.client.set_tag(run.run_id, "skillforge.skills_frozen", str(frozen).lower())
        curves = {
            "meta-controller": "return",
            "random-skills": "baseline/random-skills/return",
            "sac": "baseline/sac/return",
        }
        run.finish(final, config.total_steps, curves, flat=["best-skill"])
        if meta is not None:
            _log_diagnostics_plot(run, meta, final)
            model_uri, agent_uri = _register(run, meta, skills, lanes, config.skill_steps)
    spent = logged_task_env_steps(run)
    return HierarchicalResult(
        run.run_id, run.task, meta, final, model_uri, frozen, agent_uri, spent
    )


def _meta_controller(
    run: DownstreamRun,
    lanes: SkillActionEnvs,
    validation_lanes: SkillActionEnvs,
    config: HierarchicalConfig,
) -> MetaController:
    """The meta-controller trained on the task, with its fallback skill, validation and
    task env steps logged to the run."""
    steps = config.total_steps
    meta = train_meta_controller(
        lanes,
        config,
        run.phase("", run.callbacks_for("meta", steps)),
        validation_lanes,
        run.callbacks_for,
    )
    run.client.log_param(run.run_id, "reward_scale", f"{meta.reward_scale:.6g}")
    run.client.set_tag(run.run_id, "skillforge.meta_fallback", _fallback(meta))
    if meta.best_skill is not None:  # the skill it falls back to, as finetune chooses
        run.client.set_tag(run.run_id, "skillforge.selected_skill", str(meta.best_skill))
    _log_validation(run, meta, steps)
    log_task_env_steps(run, "meta-controller", meta.task_env_steps, steps)
    return meta


def _fallback(meta: MetaController) -> str:
    """The skill the meta-controller deploys instead of its network, or `none`."""
    return "none" if meta.fallback is None else str(meta.fallback)


def _baselines(
    run: DownstreamRun,
    lanes: SkillActionEnvs,
    validation_lanes: SkillActionEnvs,
    config: HierarchicalConfig,
) -> dict[str, float]:
    """The final return of each baseline the config names, each with the whole budget."""
    steps = config.total_steps
    final = {}
    if "best-skill" in config.baselines:
        final["best-skill"] = _best_skill_baseline(run, lanes, validation_lanes, config)
    if "random-skills" in config.baselines:
        prefix, bars = "baseline/random-skills/", run.callbacks_for("random-skills", steps)
        budget = TaskBudget(steps)
        baselines.random_skills(lanes, steps, config.seed, run.phase(prefix, bars), budget)
        log_task_env_steps(run, "random-skills", budget.used, steps)
        random_choice = baselines.random_choice(lanes.n_skills)
        final["random-skills"] = _evaluate(run, "random-skills", lanes, random_choice, config)
    if "sac" in config.baselines:
        # the library's width; random actions for a tenth of the budget, at most
        # learning_starts (train_task_sac caps the warm-up)
        settings = TaskSACSettings(
            hidden=run.library.spec.hidden, updates_per_step=config.sac_updates_per_step
        )
        final["sac"] = sac_baseline(run, settings, config)
    return final


def _register(
    run: DownstreamRun, meta: MetaController, skills, lanes: SkillActionEnvs, skill_steps: int
) -> tuple[str, str]:
    """Register the meta-controller (`<library>.meta-<task>`) and, with its skills, the agent
    (`<library>.agent-<task>`); the agent's URI is empty if it could not be registered."""
    observations = np.stack([lanes.reset(0, seed=i)[0] for i in range(4)])
    with phase(run.callbacks_for, "registration", 2):
        model_uri = registry.register_module(
            meta,
            observations,
            f"{run.info.name}.meta-{run.task}",
            "meta_controller",
            {
                "library": run.info.name,
                "task": run.task,
                "task_env_id": run.env_id,
                "run_id": run.run_id,
                "output": "Q-value per skill; act with argmax",
                "fallback_skill": _fallback(meta),
                "reward_scale": f"{meta.reward_scale:.6g}",
            },
        )
        try:
            agent_uri = register_agent_model(
                run.client, meta, skills, run.library, run.task, skill_steps, run.run_id
            )
        except SkillforgeError as error:  # the run and the meta-controller are kept
            logger.warning("the agent is not registered: %s", error)
            agent_uri = ""
    return model_uri, agent_uri


def _best_skill_baseline(
    run: DownstreamRun,
    lanes: SkillActionEnvs,
    validation_lanes: SkillActionEnvs,
    config: HierarchicalConfig,
) -> float:
    """The best single skill, chosen on selection episodes with the whole budget: the
    meta-controller's own selection, then more second-round episodes of its two candidates
    until the budget is spent. Scored on the held-out episodes. Also logs the best skill in
    hindsight, chosen on the held-out episodes themselves (an upward-biased oracle), as
    `hindsight_return/best-skill`."""
    episodes = baselines.selection_episodes(config.validation_episodes, config.eval_episodes)
    budget = TaskBudget(config.total_steps)
    with phase(run.callbacks_for, "selection", budget.limit, "steps") as choosing:
        selection = baselines.best_skill(  # the whole budget: its progress is in env steps
            validation_lanes,
            episodes,
            config.seed,
            budget=budget,
            spend_all=True,
            callbacks=[choosing],
        )
    best = selection.skill
    log_task_env_steps(run, "best-skill", budget.used, config.total_steps)
    if np.isfinite(selection.first_round):  # its return on the validation episodes
        curve = {"baseline/best-skill/validation_return": selection.first_round}
        tracking.log_metrics(run.client, run.run_id, curve, budget.used)
    eval_seed = config.seed + EVAL_SEED_OFFSET
    total = lanes.n_skills * config.eval_episodes
    with phase(run.callbacks_for, "evaluation/skills", total) as scoring:
        means = baselines.skill_means(
            lanes, config.eval_episodes, eval_seed, callbacks=[EpisodeCount(scoring)]
        )
    run.client.set_tag(run.run_id, "skillforge.best_skill", str(best))
    run.client.set_tag(run.run_id, "skillforge.hindsight_best_skill", str(int(means.argmax())))
    metrics = {"hindsight_return/best-skill": float(means.max())}
    tracking.log_metrics(run.client, run.run_id, metrics, config.total_steps)
    return float(means[best])


def _log_validation(run: DownstreamRun, meta: MetaController, steps: int) -> None:
    """`best_return/meta-controller`: the best validation return (the kept network's);
    `validation_return/...`: it and the best single skill on the second validation
    episodes, where one of them is deployed (the network if its
    `validation_lower_bound/meta-controller` is above the skill's return); the task env
    steps validation took, out of the budget."""
    if not meta.validation:
        return
    metrics = {
        "best_return/meta-controller": meta.validation["best"],
        "validation_return/meta-controller": meta.validation["meta-controller"],
        "validation_lower_bound/meta-controller": meta.validation["meta-controller-lower-bound"],
        "validation_return/best-skill": meta.validation["best-skill"],
        "validation_env_steps": float(meta.validation_env_steps),
    }
    metrics = {key: value for key, value in metrics.items() if np.isfinite(value)}
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


def log_task_env_steps(run: DownstreamRun, method: str, used: int, step: int) -> None:
    """`task_env_steps/<method>`: the task env steps the method really took, all included."""
    metrics = {f"task_env_steps/{method}": float(used)}
    tracking.log_metrics(run.client, run.run_id, metrics, step)


def logged_task_env_steps(run: DownstreamRun) -> dict[str, int]:
    """Every method's `task_env_steps`, as logged to the run."""
    metrics = run.client.get_run(run.run_id).data.metrics
    prefix = "task_env_steps/"
    return {k.removeprefix(prefix): int(v) for k, v in metrics.items() if k.startswith(prefix)}


def sac_baseline(
    run: DownstreamRun, settings: TaskSACSettings, config: HierarchicalConfig | FinetuneConfig
) -> float:
    """SAC from scratch on the task with `settings`, with the budget, seed, validation and
    test episodes of the method it is compared with (`config`), its curve logged as
    `baseline/sac/return`; with validation episodes, its greedy policy is checked as the
    other methods' are (on the same validation episodes, paid from the same budget) and the
    best one kept. Returns its greedy mean return on the held-out episodes."""
    steps, seed, eval_episodes = config.total_steps, config.seed, config.eval_episodes
    episodes, every = config.validation_episodes, config.validate_every
    env = run.make_task()
    agent = scratch_agent(env, settings, seed)
    budget = TaskBudget(steps)
    checks = None
    if episodes:
        play = greedy_play(run.make_task)
        checks = Validation(play, episodes, seed, every, budget, compares=False)
    callbacks = run.phase("baseline/sac/", run.callbacks_for("sac", steps))
    train_task_sac(agent, env, budget, seed, settings, callbacks, checks)
    env.close()
    log_task_env_steps(run, "sac", budget.used, steps)
    with phase(run.callbacks_for, "evaluation/sac", eval_episodes) as scoring:
        returns = held_out_returns(
            run.make_task, agent.act, seed, eval_episodes, callbacks=[scoring]
        )
    return float(np.mean(returns))


def _evaluate(
    run: DownstreamRun, method: str, lanes: SkillActionEnvs, choose, config: HierarchicalConfig
) -> float:
    """The mean return of a skill policy `choose` on the held-out episodes."""
    eval_seed = config.seed + EVAL_SEED_OFFSET
    with phase(run.callbacks_for, f"evaluation/{method}", config.eval_episodes) as scoring:
        returns = run_skill_policy(
            lanes, choose, eval_seed, config.eval_episodes, callbacks=[EpisodeCount(scoring)]
        )
    return float(np.mean(returns))
