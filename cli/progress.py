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


def skills_summary(metrics: dict[str, float]) -> str | None:
    """DIAYN: mean log q(z|s) and discriminator accuracy (chance: -ln N and 1/N); METRA: the
    reward, the mean squared step in phi (kept <= 1) and lambda; both: updates/s."""
    if "log_q_z" in metrics:
        text = f"log q(z|s) {metrics['log_q_z']:.3f}  acc {metrics['discriminator_accuracy']:.2f}"
    elif "phi_step_squared" in metrics:
        text = (
            f"reward {metrics['intrinsic_reward']:.3f}  |dphi|^2 "
            f"{metrics['phi_step_squared']:.2f}  lambda {metrics['lambda']:.1f}"
        )
    else:
        return None
    if "updates_per_second" in metrics:
        text += f"  {rate_text(metrics['updates_per_second'])} updates/s"
    return text


def return_summary(metrics: dict[str, float]) -> str | None:
    """The last episode's return."""
    return f"return {metrics['return']:.1f}" if "return" in metrics else None


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "steps")
        return Text(f"{rate_text(task.speed)} {unit}/s" if task.speed else f"- {unit}/s")


def rate_text(rate: float) -> str:
    """A rate with the digits that matter: 1,234 or 56 steps/s, 0.53 episodes/s."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


def _bars() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[summary]}"),
        speed_estimate_period=120,
    )


class TrainingProgress:
    """Work done of total (`unit`: steps, episodes...), its rate, elapsed, ETA, and a one-line
    summary of the metrics.

    On a terminal, a live bar (a task of `progress` if given, shared with other bars).
    Otherwise (a log file, `nohup`, CI) a plain line every `log_seconds` and at the end, so a
    log shows progress while the work runs; with `announce`, also a line when it starts."""

    def __init__(
        self,
        label: str = "DIAYN",
        summary: Callable[[dict], str | None] = skills_summary,
        end_message: str = "Training done; evaluating and registering the skills...",
        log_seconds: float = 30.0,
        unit: str = "steps",
        progress: Progress | None = None,
        announce: bool = False,
    ) -> None:
        self.label, self.summary, self.end_message = label, summary, end_message
        self.unit, self.announce = unit, announce
        self.owns_progress = progress is None
        self.progress = _bars() if progress is None else progress
        self.live = self.progress.console.is_terminal
        self.log_seconds = log_seconds
        self.task = None
        self.by_episodes = False
        self._done = 0
        self._summary = self._metrics = ""
        self._plain = _PlainLog(label, unit)

    def __enter__(self) -> TrainingProgress:
        if self.live and self.owns_progress:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live and self.owns_progress:
            self.progress.stop()

    def on_start(self, info: dict) -> None:
        """`info`: `step`, `total_steps`, and the `unit` counted and the `label` shown if not
        `self.unit` and `self.label`."""
        self.by_episodes = bool(info.get("total_episodes"))
        default_unit = "episodes" if self.by_episodes else self.unit
        self.unit = self._plain.unit = info.get("unit", default_unit)
        self.label = self._plain.label = info.get("label", self.label)
        total, done = info["total_steps"], info["step"]
        if self.by_episodes:  # an episode budget: the steps it will take are not known
            total, done = info["total_episodes"], info.get("episodes", 0)
        if info.get("total_seconds"):  # a time budget: the steps it will take are not known
            self._plain.time_budget(info["total_seconds"], info.get("seconds", 0.0))
            total = None
        self.task = self.progress.add_task(
            self.label, total=total, completed=done, summary="", unit=self.unit
        )
        self._done = done
        self._plain.start(done, total)
        if self.announce and not self.live:
            unit = self.unit.removesuffix("s") if total == 1 else self.unit
            self._print(f"{self.label}: {total:,} {unit}")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        summary = self.summary(metrics)
        if summary is not None:
            self._metrics = summary
        self._summary = self._metrics
        if self.by_episodes:  # the steps are worth seeing when the bar counts episodes
            self._summary = f"{step:,} steps  {self._metrics}".rstrip()
            step = int(metrics.get("episodes", self._done))
        self._done = step
        self.on_progress(step)

    def on_progress(self, done: int) -> None:
        """`done` units of work so far (called at step boundaries, often)."""
        self.progress.update(self.task, completed=done, summary=self._summary)
        if not self.live and self._plain.due(self.log_seconds):
            self._print(self._plain.line(done, self._summary))

    def on_end(self, result) -> None:
        task = self.progress.tasks[self.task]
        # an episode or time budget ends before the step count
        done = self._done if self.by_episodes else int(getattr(result, "step", task.total))
        self.progress.update(self.task, completed=done, total=done)
        self._plain.total = done
        if not self.live and self._plain.since_step != done:  # unless the last line was
            self._print(self._plain.line(done, task.fields.get("summary", "")))
        if self.end_message:
            self._print(self.end_message)

    def _print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)


class _PlainLog:
    """The text of one progress line: steps, share, steps/s since the previous line (the
    random warm-up runs far faster than training: a rate since the start would promise too
    early an end), elapsed time and ETA."""

    def __init__(self, label: str, unit: str = "steps") -> None:
        self.label, self.unit = label, unit
        self.total: int | None = 0
        self.total_seconds = self.done_seconds = 0.0
        self.started = self.last = time.monotonic()
        self.since_step, self.since_time = 0, self.started

    def time_budget(self, total_seconds: float, done_seconds: float) -> None:
        """Share and ETA from training time (`--minutes`), not from steps."""
        self.total_seconds, self.done_seconds = total_seconds, done_seconds

    def start(self, step: int, total: int | None) -> None:
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
        if self.total_seconds:  # a time budget
            spent = self.done_seconds + now - self.started
            eta, share, of = max(0.0, self.total_seconds - spent), spent / self.total_seconds, ""
        else:
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            share, of = (step / self.total if self.total else 1.0), f"/{self.total:,}"
        text = (
            f"{self.label} {step:,}{of} ({min(share, 1.0):.0%}) {rate_text(rate)} {self.unit}/s "
            f"elapsed {clock(now - self.started)} ETA {clock(eta)}"
        )
        return f"{text}  {summary}" if summary else text


def clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: no rate yet
        return "-:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


PHASE_LABELS = {
    "selection": "best-skill selection",
    "meta": "meta-controller",
    "random-skills": "random skills",
    "sac": "SAC",
    "finetune": "fine-tuning",
    "start-skill": "start skill",
    "skills": "every skill",
}


def phase_label(phase: str) -> str:
    """What a user reads for a phase: `evaluation/sac` is "evaluation (SAC)"."""
    kind, _, what = phase.partition("/")
    label = PHASE_LABELS.get(kind, kind)
    return f"{label} ({PHASE_LABELS.get(what, what)})" if what else label


@contextlib.contextmanager
def phase_bars(log_seconds: float = 30.0):
    """A progress bar per phase of a downstream command, one under the other: yields
    `progress_for(phase, total)`, which returns the phase's bar as its callbacks (see
    `skillforge.reuse.phases`); the bar shows itself when the phase starts."""
    progress = _bars()
    live = progress.console.is_terminal

    def progress_for(phase: str, total: int) -> list[TrainingProgress]:
        label = phase_label(phase)
        return [TrainingProgress(label, return_summary, "", log_seconds, "steps", progress, True)]

    if live:
        progress.start()
    try:
        yield progress_for
    finally:
        if live:
            progress.stop()
