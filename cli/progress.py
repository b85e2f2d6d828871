"""The pretraining progress bar: a training callback drawn with rich."""

from __future__ import annotations

import logging

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """Steps, steps/s, ETA, and the running mean log q(z|s) and discriminator accuracy."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]DIAYN"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("log q(z|s) {task.fields[log_q]}  acc {task.fields[accuracy]}"),
            transient=False,
        )
        self.task = None

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_start(self, info: dict) -> None:
        self.task = self.progress.add_task(
            "pretrain",
            total=info["total_steps"],
            completed=info["step"],
            rate="-",
            log_q="-",
            accuracy="-",
        )

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        fields = {}
        if "steps_per_second" in metrics:
            fields["rate"] = f"{metrics['steps_per_second']:.0f}"
        if "log_q_z" in metrics:
            fields["log_q"] = f"{metrics['log_q_z']:.3f}"
            fields["accuracy"] = f"{metrics['discriminator_accuracy']:.2f}"
        self.progress.update(self.task, completed=step, **fields)

    def on_end(self, result) -> None:
        self.progress.update(self.task, completed=result.step)
        self.progress.console.print("Training done; evaluating and registering the skills...")


def quiet_mlflow() -> None:
    """MLflow logs every registration at INFO; the CLI prints its own summary instead."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
