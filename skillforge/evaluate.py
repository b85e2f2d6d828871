"""Skill metrics from deterministic rollouts: every skill in lockstep, one batched policy call."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from skillforge.envs import episode_seed, make_env
from skillforge.library import SkillLibrary

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse a training episode's seed


@dataclass
class SkillRollouts:
    """Deterministic rollouts of every skill: returns and the observations they visited."""

    returns: np.ndarray  # (n_skills, episodes) extrinsic return
    observations: list[np.ndarray] = field(default_factory=list)  # per skill, (T, obs_dim)

    @property
    def mean_returns(self) -> np.ndarray:
        return self.returns.mean(axis=1)


def rollout_skills(library: SkillLibrary, episodes: int = 1, seed: int = 0) -> SkillRollouts:
    """Run each skill for `episodes` episodes; all skills step together (batched policy)."""
    n = library.n_skills
    envs = [make_env(library.spec.env_id) for _ in range(n)]
    returns = np.zeros((n, episodes))
    visited: list[list[np.ndarray]] = [[] for _ in range(n)]
    try:
        for episode in range(episodes):
            reset_seed = episode_seed(seed + EVAL_SEED_OFFSET, episode)
            obs = np.stack([env.reset(seed=reset_seed)[0] for env in envs]).astype(np.float32)
            running = np.ones(n, dtype=bool)
            while running.any():
                active = np.flatnonzero(running)
                actions = library.act(obs[active], active)
                for row, skill in enumerate(active):
                    next_obs, reward, terminated, truncated, _ = envs[skill].step(actions[row])
                    returns[skill, episode] += reward
                    visited[skill].append(next_obs.astype(np.float32))
                    obs[skill] = next_obs
                    if terminated or truncated:
                        running[skill] = False
    finally:
        for env in envs:
            env.close()
    return SkillRollouts(returns, [np.stack(states) for states in visited])


def discriminator_scores(library: SkillLibrary, rollouts: SkillRollouts) -> dict[str, float]:
    """Accuracy and mean log q(z|s) of the discriminator on held-out rollouts, the lower bound
    on I(S;Z) = E[log q(z|s)] + ln N (also divided by ln N), and the effective number of skills."""
    if library.discriminator is None:
        return {}
    states = torch.from_numpy(np.concatenate(rollouts.observations))
    skills = torch.cat(
        [
            torch.full((len(obs),), skill, dtype=torch.int64)
            for skill, obs in enumerate(rollouts.observations)
        ]
    )
    with torch.no_grad():
        log_q = library.discriminator(states).log_softmax(dim=-1)  # (states, n_skills)
    log_q_z = log_q.gather(1, skills[:, None]).mean().item()
    predicted = log_q.argmax(dim=-1)
    histogram = torch.bincount(predicted, minlength=library.n_skills).double()
    probabilities = histogram / histogram.sum()
    entropy = -(probabilities[probabilities > 0] * probabilities[probabilities > 0].log()).sum()
    ln_n = math.log(library.n_skills)
    return {
        "discriminator_accuracy": (predicted == skills).double().mean().item(),
        "log_q_z": log_q_z,
        "mutual_information_bound": log_q_z + ln_n,
        "mutual_information_fraction": (log_q_z + ln_n) / ln_n,
        "effective_skills": float(entropy.exp()),
    }


def evaluate_library(library: SkillLibrary, episodes: int = 1, seed: int = 0) -> dict[str, float]:
    """The metrics every library carries (logged with an `eval/` prefix by the pipeline)."""
    rollouts = rollout_skills(library, episodes, seed)
    means = rollouts.mean_returns
    metrics = {
        "best_skill_return": float(means.max()),
        "best_skill": float(means.argmax()),
        "mean_skill_return": float(means.mean()),
    }
    metrics.update({f"return/skill_{k:02d}": float(v) for k, v in enumerate(means)})
    metrics.update(discriminator_scores(library, rollouts))
    return metrics
