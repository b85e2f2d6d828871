"""How the meta-controller is kept honest: every skill is tried alone first, the greedy policy
is checked on validation episodes while it learns (the best network is kept), and at the end
the kept network and the best single skills are compared on other validation episodes (the
kept network's own score is biased upwards: it was the best of several checks).

The validation episodes start from seeds of their own, used by neither the training episodes
nor the held-out test episodes every method is finally scored on. They only evaluate: their
steps go neither into the replay buffer nor into the `--steps` budget (they are counted
apart, `validation_env_steps`), like the evaluation episodes of an RL paper."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy

SCAN_SEED_OFFSET = 2_000_003
VALIDATION_SEED_OFFSET = 3_000_017
CONFIDENCE = 1.645
"""The kept network is deployed only if the lower end of its one-sided 95% confidence
interval (normal, over the second validation episodes) beats the best skill's mean by
`MARGIN`: a network that falls in some episodes can outscore a steady skill on a few
episodes by chance and lose on the test episodes."""
MARGIN = 0.01
"""Of the best skill's |mean return|: a steady skill's own mean moves by about this much
from one set of episodes to another (Hopper: 1,027 to 1,050), so a smaller lead is a tie,
and a tie goes to the skill."""
FINAL_EPISODES = 3
"""The second validation set has this many times the validation episodes: falls are rare
enough events that 8 episodes can miss them (measured: 1,125 on 8 episodes, 980 on 16)."""
CANDIDATE_SKILLS = 2
"""How many of the scan's best skills are validated against the kept network: one episode
per skill can misrank two skills of similar worth."""


def scan_skills(envs: SkillActionEnvs, seed: int, on_decisions, callbacks) -> np.ndarray:
    """Every skill alone for one episode from the same start; returns (n_skills,) returns."""
    returns = np.zeros(envs.n_skills)
    for skill in range(envs.n_skills):
        callbacks.on_start({})
        episode = run_skill_policy(
            envs,
            lambda obs, rng, k=skill: np.full(len(obs), k),
            seed,
            episodes=1,
            callbacks=[callbacks],
            on_decisions=on_decisions,
        )
        returns[skill] = episode[0]
    return returns


@dataclass
class Validation:
    """The greedy policy on the same validation episodes, every `every` training env steps;
    keeps the network with the best mean return (ties: the later one)."""

    envs: SkillActionEnvs
    episodes: int
    seed: int
    every: int
    next_check: int = 0
    env_steps: int = 0
    """Env steps the validation episodes took (not part of the training budget)."""
    curve: list[tuple[int, float]] = field(default_factory=list)
    best_return: float = -np.inf
    best_state: dict | None = None

    def __post_init__(self) -> None:
        self.next_check = self.every

    def returns_of(self, choose, seed: int, episodes: int | None = None) -> np.ndarray:
        """Returns of `choose(obs, rng)` on the validation episodes of `seed` (by default
        `self.episodes` of them)."""
        counted = _StepCount()
        episodes = episodes or self.episodes
        returns = run_skill_policy(self.envs, choose, seed, episodes, on_decisions=counted)
        self.env_steps += counted.steps
        return np.asarray(returns)

    def due(self, training_steps: int) -> bool:
        return training_steps >= self.next_check

    def check(self, network: torch.nn.Module, choose, training_steps: int) -> float:
        """Validate the network as it is now; keep a copy if it is the best so far."""
        while self.next_check <= training_steps:
            self.next_check += self.every
        mean = float(self.returns_of(choose, self.seed).mean())
        self.curve.append((training_steps, mean))
        if mean >= self.best_return:
            self.best_return, self.best_state = mean, copy.deepcopy(network.state_dict())
        return mean

    def final_comparison(self, choose, scan: np.ndarray) -> tuple[float, float, int, float]:
        """On the second validation episodes (`FINAL_EPISODES` times as many): the mean
        return of `choose` (the kept network) and the lower end of its one-sided 95%
        confidence interval less the `MARGIN`, and the best of the scan's top skills with
        its mean."""
        seed, episodes = self.seed + 1, FINAL_EPISODES * self.episodes
        kept = self.returns_of(choose, seed, episodes)
        spread = kept.std(ddof=1) / np.sqrt(len(kept)) if len(kept) > 1 else 0.0
        candidates = np.argsort(-scan, kind="stable")[:CANDIDATE_SKILLS]
        means = {
            int(k): float(
                self.returns_of(lambda obs, rng, k=k: np.full(len(obs), k), seed, episodes).mean()
            )
            for k in candidates
        }
        best = max(means, key=lambda k: (means[k], -k))
        lower = kept.mean() - CONFIDENCE * spread - MARGIN * abs(means[best])
        return float(kept.mean()), float(lower), best, means[best]


class _StepCount:
    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, decisions) -> None:
        self.steps += int(decisions.result.env_steps.sum())
