"""Baselines for a meta-controller at the same env-step budget: the best single skill and
random skill switching every K steps (SAC from scratch is `skillforge.reuse.task_sac`)."""

from __future__ import annotations

import numpy as np

from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy
from skillforge.rl.callbacks import CallbackList


def best_skill(envs: SkillActionEnvs, episodes: int, seed: int) -> tuple[int, np.ndarray]:
    """Run every skill alone; returns the best skill and each skill's mean return."""
    means = np.array(
        [
            np.mean(
                run_skill_policy(envs, lambda obs, rng, k=k: np.full(len(obs), k), seed, episodes)
            )
            for k in range(envs.n_skills)
        ]
    )
    return int(means.argmax()), means


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
