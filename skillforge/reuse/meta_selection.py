"""How the meta-controller is kept honest: every skill is tried alone first, the greedy policy
is checked on validation episodes while it learns (the best network is kept), and at the end
the kept network is compared with the best single skill (`baselines.best_skill`, the very
choice the best-skill baseline makes) on other validation episodes (the kept network's own
score is biased upwards: it was the best of several checks).

The validation episodes start from seeds of their own, used by neither the training episodes
nor the held-out test episodes every method is finally scored on. They only evaluate: their
steps go neither into the replay buffer nor into the `--steps` budget (they are counted
apart, `validation_env_steps`), like the evaluation episodes of an RL paper."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from skillforge.reuse.baselines import SECOND_ROUND, best_skill, constant, selection_seed
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy

SCAN_SEED_OFFSET = 2_000_003
CONFIDENCE = 2.326
"""The kept network is deployed only if the lower end of its one-sided 99% confidence
interval (normal, over the second validation episodes) beats the best skill's mean by
`MARGIN`: a network that falls in some episodes can outscore a steady skill on a few dozen
episodes by chance and lose on the test episodes (measured on Hopper: a network at 1,112 on
24 validation episodes, lower end 1,056 at 95%, scored 1,006 on 40 test episodes, where the
skill it beat scored about 1,030)."""
MARGIN = 0.05
"""Of the best skill's |mean return|: a lead smaller than this is not worth the falls a
learned policy risks and a steady skill does not, so it goes to the skill."""


def lower_bound(returns: np.ndarray, reference: float) -> float:
    """The lower end of the one-sided 99% confidence interval (normal) of the mean of
    `returns`, less `MARGIN` of |reference|: deploy a learned policy instead of `reference`'s
    (a steady skill's mean return) only if this is at least `reference`."""
    spread = returns.std(ddof=1) / np.sqrt(len(returns)) if len(returns) > 1 else 0.0
    return float(returns.mean() - CONFIDENCE * spread - MARGIN * abs(reference))


def scan_skills(envs: SkillActionEnvs, seed: int, on_decisions, callbacks) -> None:
    """Every skill alone for one episode from the same start (the decisions go to
    `on_decisions`, where the learner puts them in its replay)."""
    for skill in range(envs.n_skills):
        callbacks.on_start({})
        run_skill_policy(envs, constant(skill), seed, 1, None, [callbacks], on_decisions)


@dataclass
class Validation:
    """The greedy policy on the same validation episodes, every `every` training env steps;
    keeps the network with the best mean return (ties: the later one). `seed` is the run's."""

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

    def returns_of(self, choose, round_: int = 0) -> np.ndarray:
        """Returns of `choose(obs, rng)` on the validation episodes of the first round (0) or
        the second (1, `SECOND_ROUND` times as many)."""
        episodes = self.episodes * (SECOND_ROUND if round_ else 1)
        seed = selection_seed(self.seed, round_)
        returns = run_skill_policy(self.envs, choose, seed, episodes, on_decisions=self.count)
        return np.asarray(returns)

    def count(self, decisions) -> None:
        self.env_steps += int(decisions.result.env_steps.sum())

    def due(self, training_steps: int) -> bool:
        return training_steps >= self.next_check

    def check(self, network: torch.nn.Module, choose, training_steps: int) -> float:
        """Validate the network as it is now; keep a copy if it is the best so far."""
        while self.next_check <= training_steps:
            self.next_check += self.every
        mean = float(self.returns_of(choose).mean())
        self.curve.append((training_steps, mean))
        if mean >= self.best_return:
            self.best_return, self.best_state = mean, copy.deepcopy(network.state_dict())
        return mean

    def final_comparison(self, choose) -> tuple[float, float, int, float]:
        """On the second validation episodes: the mean return of `choose` (the kept network)
        and the lower end of its one-sided 99% confidence interval less the `MARGIN`, and
        the best single skill with its mean."""
        kept = self.returns_of(choose, round_=1)
        skill, skill_return = best_skill(self.envs, self.episodes, self.seed, self.count)
        return float(kept.mean()), lower_bound(kept, skill_return), skill, skill_return
