"""Parity: every exported file's actions against the PyTorch policy's, on real states."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skillforge.core.envs import make_env
from skillforge.skills.library import SkillLibrary

PARITY_TOLERANCE = 1e-4
"""Largest accepted |exported action - PyTorch action|, in action units. Float32 rounding
grows with the inputs: a METRA library pretrained on the hurdle course differed by 1.4e-6 on
visited states and by 1.25e-5 on the random ones (x up to 57 m, velocities up to 23), where
onnxruntime and PyTorch sum 256 products in different orders. An export defect shows as 1e-3
or more (a shifted bias, a wrong weight)."""


PARITY_REAL_OBSERVATIONS = 1024
"""Observations visited in the library's environment, compared in every parity check."""


PARITY_RANDOM_OBSERVATIONS = 256
"""Random observations around (and well beyond) the visited ones, compared as well."""


PARITY_EPISODE_STEPS = 100
"""Steps per rollout episode: short episodes cover more skills and more resets."""


@dataclass(frozen=True)
class ParityCheck:
    """One exported file against the PyTorch policy."""

    file: str
    skill: int | None
    """The skill of a per-skill file; None for the library file (checked on every skill)."""
    rows: int
    """Observation rows compared (the library file: every observation with every skill)."""
    max_abs_diff: float
    passed: bool


def parity_observations(
    library: SkillLibrary,
    real: int = PARITY_REAL_OBSERVATIONS,
    random: int = PARITY_RANDOM_OBSERVATIONS,
    seed: int = 0,
) -> np.ndarray:
    """(real + random, obs_dim) float32 observations: first states visited in the library's
    environment, alternately by its skills and by random actions, then random vectors drawn
    around them with three times their spread (inputs a deployed skill may still meet)."""
    env = make_env(library.spec.env_id)
    env.action_space.seed(seed)
    visited: list[np.ndarray] = []
    episode = 0
    try:
        while len(visited) < real:
            obs, _ = env.reset(seed=seed + episode)
            skill = (episode // 2) % library.n_skills
            for _ in range(min(PARITY_EPISODE_STEPS, real - len(visited))):
                visited.append(np.asarray(obs, dtype=np.float32))
                by_skill = episode % 2 == 0
                action = library.act(obs, skill) if by_skill else env.action_space.sample()
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            episode += 1
    finally:
        env.close()
    states = np.stack(visited)  # (real, obs_dim)
    rng = np.random.default_rng(seed)
    spread = 3 * states.std(axis=0) + 1
    noise = states.mean(axis=0) + spread * rng.standard_normal((random, states.shape[1]))
    return np.concatenate([states, noise.astype(np.float32)])


def max_abs_diff(
    run: Callable[..., np.ndarray],
    library: SkillLibrary,
    obs: np.ndarray,
    skills: np.ndarray,
    per_skill: bool,
) -> float:
    """Max |exported - PyTorch| over every row; one row alone, then the rest as one batch
    (the batch dimension is dynamic). NaN, a wrong shape or a crash count as infinite."""
    expected = library.act(obs, skills)  # (rows, action_dim)
    parts = []
    for rows in (slice(0, 1), slice(1, None)):
        inputs = (obs[rows],) if per_skill else (obs[rows], skills[rows].astype(np.int64))
        parts.append(np.asarray(run(*inputs)))
    actual = np.concatenate(parts)
    if actual.shape != expected.shape or not np.all(np.isfinite(actual)):
        return float("inf")
    return float(np.max(np.abs(actual - expected)))
