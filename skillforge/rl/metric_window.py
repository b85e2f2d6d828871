"""Averages of update metrics and episode statistics between two progress reports."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from skillforge.core.errors import CheckpointError, TrainingDiverged


class MetricWindow:
    """Sums of the update metrics (kept on the device) and the episodes since the last report."""

    def __init__(self, names: Sequence[str], device: torch.device) -> None:
        self.names = tuple(names)
        self.device = device
        self.last_report: dict[str, float] = {}
        self._reset(time.perf_counter(), None)

    def _reset(self, now: float, step: int | None) -> None:
        self.sums = torch.zeros(len(self.names), device=self.device)
        self.updates = 0
        self.returns: dict[int, list[float]] = defaultdict(list)
        self.lengths: list[int] = []
        self.started, self.start_step = now, step

    def state_dict(self) -> dict:
        """The window so far, for checkpoints: after a resume the next report averages the
        same updates and episodes as an uninterrupted run (its timing restarts)."""
        return {
            "sums": self.sums.cpu(),
            "updates": self.updates,
            "returns": {int(skill): list(returns) for skill, returns in self.returns.items()},
            "lengths": list(self.lengths),
            "timed": self.start_step is not None,
        }

    def load_state_dict(self, state: dict, step: int) -> None:
        """Restore `state_dict` at training step `step`."""
        try:
            self.sums = state["sums"].to(self.device).reshape(len(self.names))
            self.updates = int(state["updates"])
            returns = {int(k): [float(r) for r in v] for k, v in state["returns"].items()}
            self.returns = defaultdict(list, returns)
            self.lengths = [int(length) for length in state["lengths"]]
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as error:
            raise CheckpointError(f"checkpoint has an unreadable metric window ({error})") from None
        if state.get("timed"):
            self.started, self.start_step = time.perf_counter(), step

    def add(self, metrics: torch.Tensor) -> None:
        """One update's metrics, shape (len(names),)."""
        self.sums += metrics  # stays on the device: no synchronisation per step
        self.updates += 1

    def episode_done(self, skill: int, extrinsic_return: float, length: int) -> None:
        self.returns[skill].append(extrinsic_return)
        self.lengths.append(length)

    def report(self, step: int) -> dict[str, float]:
        """Means since the last report (a TrainingDiverged on NaN/inf), then start afresh."""
        now = time.perf_counter()
        report: dict[str, float] = {}
        if self.updates:
            means = (self.sums / self.updates).tolist()
            for name, value in zip(self.names, means, strict=True):
                if not math.isfinite(value):
                    raise TrainingDiverged(f"{name} became {value} by step {step:,}")
                report[name] = value
        if self.start_step is not None and now > self.started:
            report["steps_per_second"] = (step - self.start_step) / (now - self.started)
            report["updates_per_second"] = self.updates / (now - self.started)
        if self.lengths:
            all_returns = [r for returns in self.returns.values() for r in returns]
            report["extrinsic_return"] = float(np.mean(all_returns))
            report["episode_length"] = float(np.mean(self.lengths))
            for skill, returns in self.returns.items():
                report[f"extrinsic_return/skill_{skill:02d}"] = float(np.mean(returns))
        self.last_report = report
        self._reset(now, step)
        return report
