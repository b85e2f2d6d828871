"""Baselines for a meta-controller at the same env-step budget: the best single skill and
random skill switching every K steps (SAC from scratch is `skillforge.reuse.task_sac`).

The best single skill is the one a user would choose without seeing the test episodes:
every skill is tried on selection episodes (seeds of their own, apart from the training and
the test episodes), and the best few again on more selection episodes. The meta-controller
and `finetune --skill best` choose the same way; the best-skill baseline spends its whole
budget on it (more second-round episodes of the same two candidates), since its choosing
is all the task experience it has. Every selection step is paid from the method's budget
(`budget.TaskBudget`). Picking the skill on the test episodes themselves is an oracle (the
maximum of N noisy means is biased upwards); `skill_means` on the test episodes reports it
apart."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from skillforge.reuse.budget import TaskBudget
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy
from skillforge.rl.callbacks import CallbackList

SELECTION_SEED_OFFSET = 3_000_017
"""Selection (validation) episodes start from `episode_seed(seed + SELECTION_SEED_OFFSET, j)`,
then `+ 1` for the second round."""
CANDIDATE_SKILLS = 2
"""How many of the first round's best skills go to the second round: a few episodes can
misrank two skills of similar worth."""
SECOND_ROUND = 3
"""The second round has this many times the first round's episodes: falls are rare enough
that 8 episodes can miss them (measured: 1,125 on 8 episodes, 980 on 16)."""


def selection_seed(seed: int, round_: int) -> int:
    """The seed of the selection episodes of round `round_` (0, or 1 for the second) of a run
    seeded `seed`."""
    return seed + SELECTION_SEED_OFFSET + round_


def constant(skill: int):
    """A skill policy that always picks `skill`."""
    return lambda obs, rng: np.full(len(obs), skill)


class Selection(NamedTuple):
    """The best single skill on selection episodes: its mean return and returns in the
    second round (and later ones), the longest selection episode (env steps), and its mean
    return in the first round (the validation episodes every method is checked on)."""

    skill: int
    mean: float
    returns: np.ndarray
    longest: int
    first_round: float = -np.inf


class _Lengths:
    """Keeps the longest episode reported."""

    def __init__(self) -> None:
        self.longest = 0

    def on_step(self, step: int, metrics: dict) -> None:
        self.longest = max(self.longest, int(metrics["episode_length"]))


def skill_means(
    envs: SkillActionEnvs,
    episodes: int,
    seed: int,
    skills=None,
    on_decisions=None,
    budget: TaskBudget | None = None,
    callbacks=(),
) -> np.ndarray:
    """Each skill's mean return (one per skill of `skills`, by default all) over the
    episodes of `seed` (-inf for a skill the budget left no whole episode for)."""
    return np.array(
        [
            np.mean(r) if r else -np.inf
            for r in _skill_returns(envs, episodes, seed, skills, on_decisions, budget, callbacks)
        ]
    )


def _skill_returns(
    envs, episodes, seed, skills, on_decisions, budget, callbacks
) -> list[list[float]]:
    skills = range(envs.n_skills) if skills is None else skills
    return [
        run_skill_policy(envs, constant(k), seed, episodes, None, callbacks, on_decisions, budget)
        for k in skills
    ]


def best_skill(
    envs: SkillActionEnvs,
    episodes: int,
    seed: int,
    on_decisions=None,
    budget: TaskBudget | None = None,
    spend_all: bool = False,
    callbacks=(),
) -> Selection:
    """The best single skill on selection episodes: every skill on `episodes` episodes, the
    `CANDIDATE_SKILLS` best of them on `SECOND_ROUND` times as many other episodes; with
    `spend_all`, more such rounds of the two until `budget` is spent (the best-skill
    baseline's whole budget goes to choosing). Every step is paid from `budget`, if given;
    `on_decisions` sees the first round's decisions (every skill alone from the same starts,
    what a learner puts in its replay); `callbacks` see every round's episodes (as
    `run_skill_policy`'s). `seed` is the run's seed."""
    lengths = _Lengths()
    first = skill_means(  # the first round's decisions alone go to `on_decisions`
        envs, episodes, selection_seed(seed, 0), None, on_decisions, budget, [lengths, *callbacks]
    )
    candidates = np.argsort(-first, kind="stable")[:CANDIDATE_SKILLS]
    returns: list[list[float]] = [[] for _ in candidates]
    round_ = 1
    while round_ == 1 or (spend_all and budget.available >= envs.skill_steps):
        played = _skill_returns(
            envs,
            SECOND_ROUND * episodes,
            selection_seed(seed, round_),
            candidates,
            None,
            budget,
            [lengths, *callbacks],
        )
        for kept, new in zip(returns, played, strict=True):
            kept.extend(new)
        round_ += 1
    means = [np.mean(r) if r else -np.inf for r in returns]
    best = max(range(len(candidates)), key=lambda i: (means[i], -candidates[i]))
    skill = int(candidates[best])
    return Selection(
        skill, float(means[best]), np.asarray(returns[best]), lengths.longest, float(first[skill])
    )


def selection_total(n_skills: int, episodes: int) -> int:
    """The episodes `best_skill` plays in its first two rounds (`episodes` per skill first)."""
    return (n_skills + min(CANDIDATE_SKILLS, n_skills) * SECOND_ROUND) * episodes


def measured_skill(
    envs: SkillActionEnvs,
    skill: int,
    episodes: int,
    seed: int,
    budget: TaskBudget | None = None,
    callbacks=(),
) -> Selection:
    """A skill given by the user, measured as `best_skill` measures its choice: on the
    second round's selection episodes (`SECOND_ROUND` x `episodes`), paid from `budget`."""
    lengths = _Lengths()
    returns = run_skill_policy(
        envs,
        constant(skill),
        selection_seed(seed, 1),
        SECOND_ROUND * episodes,
        None,
        [lengths, *callbacks],
        None,
        budget,
    )
    mean = float(np.mean(returns)) if returns else -np.inf
    return Selection(skill, mean, np.asarray(returns), lengths.longest)


def selection_episodes(validation_episodes: int, eval_episodes: int) -> int:
    """Episodes per skill in the first selection round: the validation episodes, or the
    evaluation episodes where validation is off (one rule for `hierarchical` and `finetune`)."""
    return validation_episodes or eval_episodes


def random_choice(n_skills: int):
    """A skill policy that picks a uniformly random skill in every lane."""
    return lambda obs, rng: rng.integers(n_skills, size=len(obs))


def random_skills(
    envs: SkillActionEnvs, env_steps: int, seed: int, callbacks=(), budget: TaskBudget | None = None
) -> list[float]:
    """A uniformly random skill every K steps, for `env_steps` env steps (paid from `budget`)."""
    callbacks = CallbackList(callbacks)
    callbacks.on_start({"step": 0, "total_steps": env_steps})
    returns = run_skill_policy(
        envs,
        random_choice(envs.n_skills),
        seed,
        env_steps=env_steps,
        callbacks=[callbacks],
        budget=budget,
    )
    callbacks.on_end(returns)
    return returns
