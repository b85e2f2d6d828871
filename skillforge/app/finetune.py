"""`skillforge finetune`: SAC on a task's real reward starting from one frozen skill (DIAYN
paper section 4.2.1), optionally against SAC from scratch with the same networks and
settings, tracked as a child run of the library's MLflow run; the fine-tuned policy is
registered as `<library>.finetuned-<task>`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from skillforge.app.downstream import DownstreamRun
from skillforge.app.hierarchical import sac_baseline
from skillforge.core.config import FinetuneConfig
from skillforge.core.envs import EVAL_SEED_OFFSET
from skillforge.core.errors import ConfigError
from skillforge.reuse import baselines
from skillforge.reuse.meta_selection import lower_bound
from skillforge.reuse.skill_actions import SkillActionEnvs
from skillforge.reuse.task_sac import (
    TaskAgent,
    TaskSACSettings,
    held_out_returns,
    skill_agent,
    train_task_sac,
)
from skillforge.reuse.tasks import make_task
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


def example_observations(task: str, rows: int = 4) -> np.ndarray:
    """A few real observations of the task (a registered model's input example)."""
    env = make_task(task)
    observations = np.stack([env.reset(seed=seed)[0] for seed in range(rows)])
    env.close()
    return observations


def _keep_if_surely_better(
    run: DownstreamRun, agent: TaskAgent, start: dict, config: FinetuneConfig
) -> None:
    """Compare the fine-tuned policy with the skill it started from (`start`, its policy
    weights) on validation episodes; put the skill back unless the fine-tuned policy is
    surely better (`meta_selection.lower_bound`), as the meta-controller falls back to its
    best skill. Logged as `validation_return/...`, `validation_lower_bound/finetune` and the
    tag `skillforge.finetune_fallback`."""
    tuned = copy.deepcopy(agent.sac.policy.state_dict())

    def validate() -> np.ndarray:
        returns = held_out_returns(
            lambda: make_task(run.task),
            agent.act,
            baselines.selection_seed(config.seed, 1),
            config.validation_episodes,
            offset=0,
        )
        return np.asarray(returns)

    tuned_returns = validate()
    agent.sac.policy.load_state_dict(start)
    skill_return = float(validate().mean())
    bound = lower_bound(tuned_returns, skill_return)
    fallback = bound < skill_return
    if not fallback:
        agent.sac.policy.load_state_dict(tuned)
    metrics = {
        "validation_return/finetune": float(tuned_returns.mean()),
        "validation_lower_bound/finetune": bound,
        "validation_return/start-skill": skill_return,
    }
    tracking.log_metrics(run.client, run.run_id, metrics, config.total_steps)
    run.client.set_tag(run.run_id, "skillforge.finetune_fallback", str(fallback).lower())


def finetune(
    library: str | None,
    config: FinetuneConfig,
    tracking_uri: str | None = None,
    callbacks_for=lambda name, total: (),
) -> FinetuneResult:
    """Fine-tune skill `config.skill` (or the best one on the task) of `library` with SAC on
    the task's reward; `callbacks_for(phase, total_steps)` gives progress callbacks for
    "finetune" and "sac"."""
    import mlflow

    def check_skill(info) -> None:
        if config.skill != "best" and int(config.skill) >= info.n_skills:
            raise ConfigError(
                f"--skill {config.skill} is out of range: library {info.name} has skills "
                f"0..{info.n_skills - 1}"
            )

    run = DownstreamRun.start(
        library, config.task, "finetune", config.to_params(), tracking_uri, check_skill
    )
    n_skills = run.library.n_skills
    eval_seed = config.seed + EVAL_SEED_OFFSET
    lanes = SkillActionEnvs(
        [make_task(run.task) for _ in range(min(n_skills, 8))],
        LibrarySkills(run.library),
        SKILL_CHOICE_STEPS,
    )
    with lanes:  # `best`: chosen on selection episodes, like every best-skill baseline's
        best = baselines.best_skill(lanes, config.eval_episodes, config.seed)[0]
        skill = best if config.skill == "best" else int(config.skill)
        skill_returns = baselines.skill_means(lanes, config.eval_episodes, eval_seed)
    settings = TaskSACSettings(
        hidden=run.library.spec.hidden,
        batch_size=config.batch_size,
        lr=config.lr,
        learning_starts=config.learning_starts,
    )
    # the library's last entropy coefficient (fixed or learned), as logged during training
    alpha = float(run.client.get_run(run.info.run_id).data.metrics.get("alpha", 0.1))
    env = make_task(run.task)
    agent = skill_agent(env, run.library, skill, settings, alpha)
    start = copy.deepcopy(agent.sac.policy.state_dict())
    final = {"best-skill": float(skill_returns[best]), "start-skill": float(skill_returns[skill])}
    steps = config.total_steps
    with mlflow.start_run(run_id=run.run_id):
        run.client.set_tag(run.run_id, "skillforge.skill", str(skill))
        train_task_sac(
            agent,
            env,
            steps,
            config.seed,
            settings,
            run.phase("", callbacks_for("finetune", steps)),
        )
        env.close()
        if config.validation_episodes:
            _keep_if_surely_better(run, agent, start, config)
        returns = held_out_returns(
            lambda: make_task(run.task), agent.act, config.seed, config.eval_episodes
        )
        final["finetune"] = float(np.mean(returns))
        if "sac" in config.baselines:
            final["sac"] = sac_baseline(
                run, steps, config.seed, config.eval_episodes, callbacks_for("sac", steps), settings
            )
        run.finish(
            final, steps, {"finetune": "return", "sac": "baseline/sac/return"}, ["start-skill"]
        )
        observations = example_observations(run.task)
        model_uri = registry.register_module(
            agent.greedy_module(),
            observations,
            f"{run.info.name}.finetuned-{run.task}",
            "finetuned_policy",
            {
                "library": run.info.name,
                "task": run.task,
                "skill": str(skill),
                "run_id": run.run_id,
                "output": "action (deterministic)",
            },
        )
    return FinetuneResult(
        run.run_id, run.task, skill, final, [float(r) for r in skill_returns], model_uri
    )
