"""Progress bars for long work: training callbacks drawn with rich."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def diayn_summary(metrics: dict[str, float]) -> str | None:
    """Running mean log q(z|s) and discriminator accuracy (chance: -ln N and 1/N)."""
    if "log_q_z" not in metrics:
        return None
    return f"log q(z|s) {metrics['log_q_z']:.3f}  acc {metrics['discriminator_accuracy']:.2f}"


def return_summary(metrics: dict[str, float]) -> str | None:
    """The last episode's return."""
    return f"return {metrics['return']:.1f}" if "return" in metrics else None


class _StepRate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} steps/s" if task.speed else "- steps/s")


class TrainingProgress:
    """Steps done of total, steps/s, elapsed, ETA, and a one-line summary of the metrics."""

    def __init__(
        self,
        label: str = "DIAYN",
        summary: Callable[[dict], str | None] = diayn_summary,
        end_message: str = "Training done; evaluating and registering the skills...",
    ) -> None:
        self.label, self.summary, self.end_message = label, summary, end_message
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _StepRate(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[summary]}"),
            speed_estimate_period=120,
        )
        self.task = None

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_start(self, info: dict) -> None:
        self.task = self.progress.add_task(
            self.label, total=info["total_steps"], completed=info["step"], summary=""
        )

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        summary = self.summary(metrics)
        fields = {} if summary is None else {"summary": summary}
        self.progress.update(self.task, completed=step, **fields)

    def on_end(self, result) -> None:
        self.progress.update(self.task, completed=self.progress.tasks[self.task].total)
        if self.end_message:
            self.progress.console.print(self.end_message)


def quiet_mlflow() -> None:
    """MLflow logs every registration at INFO; the CLI prints its own summary instead."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
