"""`skillforge finetune`: SAC on a task's real reward starting from one frozen skill (DIAYN
paper section 4.2.1), optionally against SAC from scratch with the same networks and
settings, tracked as a child run of the library's MLflow run; the fine-tuned policy is
registered as `<library>.finetuned-<task>`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from skillforge.app.downstream import DownstreamRun, stoppable
from skillforge.app.hierarchical import log_task_env_steps, logged_task_env_steps, sac_baseline
from skillforge.core.downstream_config import FinetuneConfig
from skillforge.core.envs import EVAL_SEED_OFFSET
from skillforge.core.errors import ConfigError
from skillforge.reuse import baselines
from skillforge.reuse.baselines import SECOND_ROUND
from skillforge.reuse.budget import TaskBudget
from skillforge.reuse.meta_selection import Validation, surely_better
from skillforge.reuse.phases import CallbacksFor, EpisodeCount, no_callbacks, phase
from skillforge.reuse.skill_actions import SkillActionEnvs
from skillforge.reuse.task_sac import (
    TaskAgent,
    TaskSACSettings,
    greedy_play,
    held_out_returns,
    skill_agent,
    train_task_sac,
)
from skillforge.skills.sources import LibrarySkills
from skillforge.store import registry, tracking

SKILL_CHOICE_STEPS = 50
"""K while the skills are scored to pick the best one (each runs alone: K only batches)."""


@dataclass
class FinetuneResult:
    """The fine-tuning run, the skill it started from and every method's final return."""

    run_id: str
    task: str
    skill: int
    final_returns: dict[str, float] = field(default_factory=dict)
    skill_returns: list[float] = field(default_factory=list)
    model_uri: str = ""
    fallback: bool = False
    """The fine-tuned policy was not surely better than the skill: the skill's weights are
    what is scored and registered."""
    task_env_steps: dict[str, int] = field(default_factory=dict)
    """Task env steps each method took, all included (never above the budget)."""


def example_observations(env: gym.Env, rows: int = 4) -> np.ndarray:
    """A few real observations of `env`, a task (a registered model's input example); closes
    it."""
    observations = np.stack([env.reset(seed=seed)[0] for seed in range(rows)])
    env.close()
    return observations


def _keep_if_surely_better(
    run: DownstreamRun,
    agent: TaskAgent,
    start: dict,
    validation: Validation,
    skill: baselines.Selection,
    config: FinetuneConfig,
) -> bool:
    """Compare the fine-tuned policy (the best validated one) with the skill it started from
    (`start`, its policy weights; `skill`, its returns on the second round's selection
    episodes) on those episodes, until the budget is spent; put the skill back unless the
    fine-tuned policy is surely better (`meta_selection.surely_better`: a tie keeps the
    skill), as the meta-controller falls back to its best skill. Logged as
    `validation_return/...`, `validation_lower_bound/finetune` and the tag
    `skillforge.finetune_fallback`; returns whether the skill was put back."""
    total = SECOND_ROUND * config.validation_episodes
    with phase(run.callbacks_for, "validation/finetune", total) as comparing:
        tuned_return, bound = validation.final_comparison(agent.act, skill, [comparing])
    fallback = not surely_better(bound, skill.mean)
    if fallback:
        agent.sac.policy.load_state_dict(start)
    metrics = {
        "validation_return/finetune": tuned_return,
        "validation_lower_bound/finetune": bound,
        "validation_return/start-skill": skill.mean,
    }
    metrics = {key: value for key, value in metrics.items() if np.isfinite(value)}
    tracking.log_metrics(run.client, run.run_id, metrics, config.total_steps)
    run.client.set_tag(run.run_id, "skillforge.finetune_fallback", str(fallback).lower())
    return fallback


def finetune(
    library: str | None,
    config: FinetuneConfig,
    tracking_uri: str | None = None,
    callbacks_for: CallbacksFor = no_callbacks,
) -> FinetuneResult:
    """Fine-tune skill `config.skill` (or the best one on the task) of `library` with SAC on
    the task's reward; `callbacks_for(phase, total)` gives each phase's callbacks
    (`skillforge.reuse.phases`: progress bars). Ctrl-C or SIGTERM stops it at the next step
    boundary, ends its run as KILLED and raises `downstream.RunInterrupted`."""
    with stoppable(callbacks_for) as start_run:
        return _finetune(start_run, library, config, tracking_uri)


def _finetune(
    start_run, library: str | None, config: FinetuneConfig, tracking_uri: str | None
) -> FinetuneResult:
    import mlflow

    def check_skill(info) -> None:
        if config.skill != "best" and int(config.skill) >= info.n_skills:
            raise ConfigError(
                f"--skill {config.skill} is out of range: library {info.name} has skills "
                f"0..{info.n_skills - 1}"
            )

    run: DownstreamRun = start_run(
        library, config.task, "finetune", config.to_params(), tracking_uri, check_skill
    )
    n_skills = run.library.n_skills
    eval_seed = config.seed + EVAL_SEED_OFFSET
    lanes = SkillActionEnvs(
        [run.make_task() for _ in range(min(n_skills, 8))],
        LibrarySkills(run.library),
        SKILL_CHOICE_STEPS,
    )
    budget = TaskBudget(config.total_steps)
    episodes = baselines.selection_episodes(config.validation_episodes, config.eval_episodes)
    selection = None
    with lanes:  # `best`: chosen on selection episodes exactly as `hierarchical` chooses
        if config.skill == "best":
            total = baselines.selection_total(n_skills, episodes)
            with phase(run.callbacks_for, "selection", total) as choosing:
                selection = baselines.best_skill(
                    lanes, episodes, config.seed, budget=budget, callbacks=[EpisodeCount(choosing)]
                )
        elif config.validation_episodes:
            total = SECOND_ROUND * episodes
            with phase(run.callbacks_for, "selection", total) as choosing:
                selection = baselines.measured_skill(
                    lanes,
                    int(config.skill),
                    episodes,
                    config.seed,
                    budget,
                    callbacks=[EpisodeCount(choosing)],
                )
        skill = selection.skill if config.skill == "best" else int(config.skill)
        total = n_skills * config.eval_episodes
        with phase(run.callbacks_for, "evaluation/skills", total) as scoring:
            skill_returns = baselines.skill_means(
                lanes, config.eval_episodes, eval_seed, callbacks=[EpisodeCount(scoring)]
            )
    settings = TaskSACSettings(
        hidden=run.library.spec.hidden,
        batch_size=config.batch_size,
        lr=config.lr,
        learning_starts=config.learning_starts,
        updates_per_step=config.updates_per_step,
    )
    # the library's last entropy coefficient (fixed or learned), as logged during training
    alpha = float(run.client.get_run(run.info.run_id).data.metrics.get("alpha", 0.1))
    env = run.make_task()
    agent = skill_agent(env, run.library, skill, settings, alpha)
    start = copy.deepcopy(agent.sac.policy.state_dict())
    final = {"start-skill": float(skill_returns[skill])}
    if config.skill == "best":
        final["best-skill"] = final["start-skill"]
    steps = config.total_steps
    validation = None
    if config.validation_episodes:
        play = greedy_play(run.make_task)
        validation = Validation(play, episodes, config.seed, config.validate_every, budget)
        validation.reserve_for_the_end(selection.longest)
    with mlflow.start_run(run_id=run.run_id):
        run.client.set_tag(run.run_id, "skillforge.skill", str(skill))
        train_task_sac(
            agent,
            env,
            budget,
            config.seed,
            settings,
            run.phase("", run.callbacks_for("finetune", steps)),
            validation,
        )
        env.close()
        fallback = False
        if validation is not None:
            fallback = _keep_if_surely_better(run, agent, start, validation, selection, config)
        log_task_env_steps(run, "finetune", budget.used, steps)
        with phase(run.callbacks_for, "evaluation/finetune", config.eval_episodes) as scoring:
            returns = held_out_returns(
                run.make_task,
                agent.act,
                config.seed,
                config.eval_episodes,
                callbacks=[scoring],
            )
        final["finetune"] = float(np.mean(returns))
        if "sac" in config.baselines:
            final["sac"] = sac_baseline(run, settings, config)
        run.finish(
            final, steps, {"finetune": "return", "sac": "baseline/sac/return"}, ["start-skill"]
        )
        observations = example_observations(run.make_task())
        with phase(run.callbacks_for, "registration", 1):
            model_uri = registry.register_module(
                agent.greedy_module(),
                observations,
                f"{run.info.name}.finetuned-{run.task}",
                "finetuned_policy",
                {
                    "library": run.info.name,
                    "task": run.task,
                    "task_env_id": run.env_id,
                    "skill": str(skill),
                    "run_id": run.run_id,
                    "output": "action (deterministic)",
                },
            )
    skill_returns = [float(r) for r in skill_returns]
    spent = logged_task_env_steps(run)
    return FinetuneResult(
        run.run_id, run.task, skill, final, skill_returns, model_uri, fallback, spent
    )
