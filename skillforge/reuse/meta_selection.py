"""How the meta-controller (and a fine-tuned policy) is kept honest: the best single skill is
chosen first (`baselines.best_skill`, the very choice the best-skill baseline starts from), the
greedy policy is checked on validation episodes while it learns (the best network is kept),
and at the end the kept network is compared with the best skill on the second round's
validation episodes (the kept network's own score is biased upwards: it was the best of
several checks).

The validation episodes start from seeds of their own, used by neither the training episodes
nor the held-out test episodes every method is finally scored on. Their steps are task
experience and are paid from the method's budget (`budget.TaskBudget`): the last check and
the final comparison are reserved for at the end, and the final comparison plays the second
round's episodes until the budget is spent."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from skillforge.reuse.baselines import SECOND_ROUND, Selection, selection_seed
from skillforge.reuse.budget import TaskBudget
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy


def skill_play(envs: SkillActionEnvs):
    """`Validation.play` on skill-action envs: `choose(obs, rng)` picks skills."""

    def play(
        choose, seed: int, episodes: int | None, budget: TaskBudget, callbacks=()
    ) -> list[float]:
        return run_skill_policy(envs, choose, seed, episodes, callbacks=callbacks, budget=budget)

    return play


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
    `returns`, less `MARGIN` of |reference| (-inf with fewer than two returns: nothing is
    sure): deploy a learned policy instead of `reference`'s (a steady skill's mean return)
    only if this is above `reference` (`surely_better`)."""
    if len(returns) < 2:
        return -np.inf
    spread = returns.std(ddof=1) / np.sqrt(len(returns))
    return float(returns.mean() - CONFIDENCE * spread - MARGIN * abs(reference))


def surely_better(bound: float, reference: float) -> bool:
    """Deploy the learned policy only if its `lower_bound` is strictly above the skill's
    mean: a tie (all-zero returns on a sparse task, say) keeps the proven skill."""
    return bound > reference


@dataclass
class Validation:
    """The greedy policy on the same validation episodes, every `every` task env steps of
    `budget` (which pays for them); keeps the network with the best mean return (ties: the
    later one). `play(choose, seed, episodes, budget)` plays `episodes` episodes (None:
    until the budget is spent) from `episode_seed(seed, j)` and returns those that ended;
    `compares`: a final comparison with a skill follows the last check. `seed` is the
    run's."""

    play: Callable
    episodes: int
    seed: int
    every: int
    budget: TaskBudget
    compares: bool = True
    next_check: int = 0
    env_steps: int = 0
    """Task env steps the validation episodes took (paid from the budget)."""
    curve: list[tuple[int, float]] = field(default_factory=list)
    best_return: float = -np.inf
    best_state: dict | None = None

    def __post_init__(self) -> None:
        self.next_check = self.every

    def returns_of(
        self, choose, round_: int = 0, until_spent: bool = False, callbacks=()
    ) -> np.ndarray:
        """Returns of `choose` on the validation episodes of the first round (0, `episodes`
        of them, or more until the budget is spent), or of the second (1) until the budget
        is spent; `callbacks` go to `play` (progress)."""
        episodes = None if round_ or until_spent else self.episodes
        used = self.budget.used
        seed = selection_seed(self.seed, round_)
        returns = self.play(choose, seed, episodes, self.budget, callbacks)
        self.env_steps += self.budget.used - used
        return np.asarray(returns)

    def reserve_for_the_end(self, longest_episode: int) -> None:
        """Keep enough of the budget for the last check and the final comparison (the second
        round: `SECOND_ROUND` times as many episodes), each episode as long as the longest
        seen."""
        rounds = 1 + (SECOND_ROUND if self.compares else 0)
        self.budget.reserve(rounds * self.episodes * longest_episode)

    def due(self, task_steps: int) -> bool:
        return task_steps >= self.next_check

    def check(
        self, network: torch.nn.Module, choose, task_steps: int, until_spent: bool = False
    ) -> float | None:
        """Validate the network as it is now and return its mean return; keep a copy if it is
        the best so far (None for a check the budget cut before any episode ended: it scores
        nothing and keeps nothing)."""
        while self.next_check <= task_steps:
            self.next_check += self.every
        returns = self.returns_of(choose, until_spent=until_spent)
        if not len(returns):
            return None
        mean = float(returns.mean())
        self.curve.append((task_steps, mean))
        if mean >= self.best_return:
            self.best_return, self.best_state = mean, copy.deepcopy(network.state_dict())
        return mean

    def final_comparison(self, choose, skill: Selection, callbacks=()) -> tuple[float, float]:
        """On the second validation episodes, until the budget is spent: the mean return of
        `choose` (the kept network) and the lower end of its one-sided 99% confidence
        interval less the `MARGIN` of the best skill's mean there (`callbacks`: `play`'s)."""
        self.budget.release()
        kept = self.returns_of(choose, round_=1, callbacks=callbacks)
        mean = float(kept.mean()) if len(kept) else -np.inf
        return mean, lower_bound(kept, skill.mean)
