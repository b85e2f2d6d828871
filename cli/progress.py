"""Progress bars for long work: training callbacks drawn with rich."""

from __future__ import annotations

import contextlib
import time
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
    """Steps done of total, steps/s, elapsed, ETA, and a one-line summary of the metrics.

    On a terminal, a live bar. Otherwise (a log file, `nohup`, CI) a plain line every
    `log_seconds` and at the end, so a log shows progress while the work runs."""

    def __init__(
        self,
        label: str = "DIAYN",
        summary: Callable[[dict], str | None] = diayn_summary,
        end_message: str = "Training done; evaluating and registering the skills...",
        log_seconds: float = 30.0,
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
        self.live = self.progress.console.is_terminal
        self.log_seconds = log_seconds
        self.task = None
        self._plain = _PlainLog(label)

    def __enter__(self) -> TrainingProgress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.stop()

    def on_start(self, info: dict) -> None:
        self.task = self.progress.add_task(
            self.label, total=info["total_steps"], completed=info["step"], summary=""
        )
        self._plain.start(info["step"], info["total_steps"])

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        summary = self.summary(metrics)
        fields = {} if summary is None else {"summary": summary}
        self.progress.update(self.task, completed=step, **fields)
        if not self.live and self._plain.due(self.log_seconds):
            self._print(self._plain.line(step, summary or ""))

    def on_end(self, result) -> None:
        task = self.progress.tasks[self.task]
        self.progress.update(self.task, completed=task.total)
        if not self.live and self._plain.since_step != task.total:  # unless the last line was
            self._print(self._plain.line(int(task.total), task.fields.get("summary", "")))
        if self.end_message:
            self._print(self.end_message)

    def _print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)


class _PlainLog:
    """The text of one progress line: steps, share, steps/s since the previous line (the
    random warm-up runs far faster than training: a rate since the start would promise too
    early an end), elapsed time and ETA."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.total = 0
        self.started = self.last = time.monotonic()
        self.since_step, self.since_time = 0, self.started

    def start(self, step: int, total: int) -> None:
        self.total = total
        self.started = self.last = self.since_time = time.monotonic()
        self.since_step = step

    def due(self, seconds: float) -> bool:
        if time.monotonic() - self.last < seconds:
            return False
        self.last = time.monotonic()
        return True

    def line(self, step: int, summary: str) -> str:
        now = time.monotonic()
        span = now - self.since_time
        rate = (step - self.since_step) / span if span > 0 else 0.0
        self.since_step, self.since_time = step, now
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        share = step / self.total if self.total else 1.0
        text = (
            f"{self.label} {step:,}/{self.total:,} ({share:.0%}) {rate:,.0f} steps/s "
            f"elapsed {clock(now - self.started)} ETA {clock(eta)}"
        )
        return f"{text}  {summary}" if summary else text


def clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: no rate yet
        return "-:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


PHASE_LABELS = {
    "meta": "meta-controller",
    "random-skills": "random skills",
    "sac": "SAC",
    "finetune": "fine-tuning",
}


@contextlib.contextmanager
def phase_bars():
    """A progress bar per phase of a downstream command: yields `progress_for(phase, total)`,
    which opens the phase's bar and returns it as its callbacks; every bar is closed after."""
    bars: list[TrainingProgress] = []

    def progress_for(phase: str, total: int) -> list[TrainingProgress]:
        bar = TrainingProgress(PHASE_LABELS.get(phase, phase), return_summary, end_message="")
        bar.__enter__()
        bars.append(bar)
        return [bar]

    try:
        yield progress_for
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)
