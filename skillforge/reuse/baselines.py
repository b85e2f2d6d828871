"""Baselines for a meta-controller at the same env-step budget: the best single skill and
random skill switching every K steps (SAC from scratch is `skillforge.reuse.task_sac`).

The best single skill is the one a user would choose without seeing the test episodes:
every skill is tried on selection episodes (seeds of their own, apart from the training and
the test episodes), and the best few again on more selection episodes. The meta-controller
falls back to this same choice, so "never below the best skill" is a comparison on equal
terms. Picking the skill on the test episodes themselves is an oracle (the maximum of N
noisy means is biased upwards); `skill_means` on the test episodes reports it apart."""

from __future__ import annotations

import numpy as np

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


def skill_means(
    envs: SkillActionEnvs, episodes: int, seed: int, skills=None, on_decisions=None
) -> np.ndarray:
    """Each skill's mean return (one per skill of `skills`, by default all) over the
    episodes of `seed`."""
    skills = range(envs.n_skills) if skills is None else skills
    return np.array(
        [
            np.mean(run_skill_policy(envs, constant(k), seed, episodes, on_decisions=on_decisions))
            for k in skills
        ]
    )


def best_skill(
    envs: SkillActionEnvs, episodes: int, seed: int, on_decisions=None
) -> tuple[int, float]:
    """The best single skill on selection episodes: every skill on `episodes` episodes, the
    `CANDIDATE_SKILLS` best of them on `SECOND_ROUND` times as many other episodes. Returns
    the skill and its mean return in the second round. `seed` is the run's seed."""
    first = skill_means(envs, episodes, selection_seed(seed, 0), None, on_decisions)
    candidates = np.argsort(-first, kind="stable")[:CANDIDATE_SKILLS]
    second = skill_means(
        envs, SECOND_ROUND * episodes, selection_seed(seed, 1), candidates, on_decisions
    )
    best = max(range(len(candidates)), key=lambda i: (second[i], -candidates[i]))
    return int(candidates[best]), float(second[best])


def random_choice(n_skills: int):
    """A skill policy that picks a uniformly random skill in every lane."""
    return lambda obs, rng: rng.integers(n_skills, size=len(obs))


def random_skills(envs: SkillActionEnvs, env_steps: int, seed: int, callbacks=()) -> list[float]:
    """A uniformly random skill every K steps, for `env_steps` env steps."""
    callbacks = CallbackList(callbacks)
    callbacks.on_start({"step": 0, "total_steps": env_steps})
    returns = run_skill_policy(
        envs, random_choice(envs.n_skills), seed, env_steps=env_steps, callbacks=[callbacks]
    )
    callbacks.on_end(returns)
    return returns
