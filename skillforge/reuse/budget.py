"""Task experience, counted: every env step a method takes on the task's reward (training,
skill selection, validation, fallback checks) is paid from one budget, `--steps`, so methods
compared at the same budget had the same experience of the task. Pretraining is not counted:
it never sees the task's reward."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TaskBudget:
    """`limit` task env steps for one method; `used` so far. `reserved` steps are kept for
    what must come last (the final validation): `available` is what the rest may use."""

    limit: int
    used: int = 0
    reserved: int = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    @property
    def available(self) -> int:
        return max(0, self.remaining - self.reserved)

    def spend(self, steps: int) -> None:
        if steps > self.remaining:
            raise RuntimeError(f"{steps} env steps asked for, {self.remaining} left")
        self.used += steps

    def count(self, decisions) -> None:
        """Pay for a batch of skill decisions (a `run_skill_policy` `on_decisions` hook)."""
        self.spend(int(decisions.result.env_steps.sum()))

    def reserve(self, steps: int) -> None:
        """Keep at least `steps` for the end (a reservation only grows, until released)."""
        self.reserved = max(self.reserved, steps)

    def release(self) -> None:
        """The end has come: everything that remains is available."""
        self.reserved = 0


EQUAL_EXPERIENCE = 0.01
"""Methods are compared only if their task env steps differ by at most this share."""


def check_equal_experience(task_env_steps: dict[str, float], context: str = "") -> None:
    """Refuse (ValueError) to compare methods whose task env steps differ by more than
    `EQUAL_EXPERIENCE` of the largest: they did not have the same experience of the task."""
    if not task_env_steps:
        return
    most, least = max(task_env_steps.values()), min(task_env_steps.values())
    if most - least > EQUAL_EXPERIENCE * most:
        spent = ", ".join(f"{name} {steps:,.0f}" for name, steps in task_env_steps.items())
        where = f" ({context})" if context else ""
        raise ValueError(
            f"unequal task experience{where}: {spent} task env steps differ by more than "
            f"{EQUAL_EXPERIENCE:.0%}; no comparison"
        )
