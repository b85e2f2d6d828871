"""What the meta-controller's learning looked like, for finding out why it did (not) learn:
Q-values and TD errors of the sampled batches, the exploration rate, how much of the replay
was chosen at random, and which skills the behaviour policy chose, per stretch of training."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MetaDiagnostics:
    """Accumulates one stretch of training at a time; `flush` turns it into metrics (Q-values
    and TD errors in the task's reward units, whatever the reward scale) and keeps the
    chosen-skill counts for the plot."""

    n_skills: int
    q_sum: float = 0.0
    target_sum: float = 0.0
    td_sum: float = 0.0
    updates: int = 0
    counts: np.ndarray = field(init=False)
    choices: list[tuple[int, np.ndarray]] = field(default_factory=list)
    """(env steps, share of each skill among the decisions of the stretch ending there)."""

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.n_skills, dtype=np.int64)

    def chose(self, skills: np.ndarray) -> None:
        self.counts += np.bincount(skills, minlength=self.n_skills)

    def updated(self, q: float, target: float, td_error: float) -> None:
        self.q_sum, self.target_sum, self.td_sum = (
            self.q_sum + q,
            self.target_sum + target,
            self.td_sum + td_error,
        )
        self.updates += 1

    def flush(self, env_steps: int, reward_scale: float) -> dict[str, float]:
        """The stretch's metrics (empty before learning starts); starts the next stretch."""
        metrics: dict[str, float] = {}
        if self.updates:
            n, scale = self.updates, reward_scale
            metrics = {
                "q_value": self.q_sum / n / scale,
                "q_target": self.target_sum / n / scale,
                "td_error": self.td_sum / n / scale,
            }
        if self.counts.any():
            self.choices.append((env_steps, self.counts / self.counts.sum()))
        self.q_sum = self.target_sum = self.td_sum = 0.0
        self.updates = 0
        self.counts[:] = 0
        return metrics
