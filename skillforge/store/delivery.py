"""Metric reports to an MLflow run that never make training wait: each report goes to a local
journal first, then a background thread sends it; while the store does not answer, reports
wait and are sent, in order, when it is back (or by `library register` after a crash)."""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from skillforge.core.errors import first_line
from skillforge.store.tracking import (
    METRICS_PER_BATCH,
    TAG_CHECKPOINT_STEP,
    TAG_STEP,
    log_metrics,
    probe,
    shown_uri,
)

logger = logging.getLogger("skillforge")


@dataclass
class Report:
    """One metric report as the store will hold it. It keeps its timestamp for good, so
    sending it twice is harmless (MLflow drops an exact duplicate of a logged metric)."""

    step: int
    timestamp: int
    """Milliseconds since the epoch."""
    metrics: dict[str, float]
    kind: str = "train"
    """"train" (a training report; the run's step tag follows it) or "eval"."""

    def to_json(self) -> str:
        fields = {"step": self.step, "time": self.timestamp, "kind": self.kind}
        return json.dumps({**fields, "metrics": self.metrics}) + "\n"

    @classmethod
    def from_json(cls, line: str) -> Report:
        entry = json.loads(line)
        metrics = {str(key): float(value) for key, value in entry["metrics"].items()}
        return cls(int(entry["step"]), int(entry["time"]), metrics, str(entry["kind"]))


class MetricJournal:
    """The metric reports of one run in a local JSON-lines file, each appended before it is
    sent to the store. It lives next to the checkpoint: what the store has not received
    (server down, process killed) is still here, and is sent on resume or registration.
    A line torn by a kill is dropped; a journal of another run is started afresh."""

    FORMAT = "skillforge-metric-journal"

    def __init__(self, path: str | os.PathLike, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id

    def load(self) -> list[Report]:
        """The reports so far (rewriting the file if it was torn, foreign or missing)."""
        reports, intact = self._read()
        if not intact:
            self._rewrite(reports)
        return reports

    def append(self, report: Report) -> None:
        """Add one report (raises OSError if the disk refuses)."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(report.to_json())

    def _header(self) -> str:
        return json.dumps({"format": self.FORMAT, "run_id": self.run_id}) + "\n"

    def _read(self) -> tuple[list[Report], bool]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        except (OSError, UnicodeDecodeError):
            return [], False
        if not lines or lines[0] != self._header():
            return [], False
        reports = []
        for line in lines[1:]:
            try:
                if not line.endswith("\n"):
                    raise ValueError("torn line")
                reports.append(Report.from_json(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                return reports, False  # a kill tore the last line: keep what came before
        return reports, True

    def _rewrite(self, reports: list[Report]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(self._header() + "".join(r.to_json() for r in reports), "utf-8")
            os.replace(tmp, self.path)
        except OSError as error:
            logger.warning("cannot write the metric journal %s: %s", self.path, error)


class BufferedTracker:
    """Training callback that logs metric reports to one MLflow run without ever making
    training wait for the store.

    Each report is appended to `journal` (if given), then sent by a background thread with
    the run's step tag. While the store does not answer, reports wait (in memory and in the
    journal) and a warning says so; they are sent, in order, when it is back. Reports the
    journal already held when the tracker started (logged before a crash) are sent again if
    they are past `sent_step` (the run's step tag: what the store has; evaluations always),
    and are not logged a second time when the resumed training reaches their step again.
    """

    def __init__(
        self,
        client,
        run_id: str,
        journal: MetricJournal | None = None,
        sent_step: int = -1,
        retry_seconds: float = 1.0,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.journal = journal
        self.uri = client.tracking_uri
        self.retry_seconds = retry_seconds
        self.reports: list[Report] = journal.load() if journal is not None else []
        self.journaled_until = max((r.step for r in self.reports if r.kind == "train"), default=-1)
        """The last step the journal held at the start: a resumed run's reports up to it are
        dropped (the journal's copies are sent); this run's own reports never are."""
        self.last_checkpoint: tuple[str, int] | None = None
        self._pending = collections.deque(  # evaluations carry no step tag: resend them all
            r for r in self.reports if r.kind != "train" or r.step > sent_step
        )
        self._tags: dict[str, str] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._down_since: float | None = None
        self.last_problem = ""
        """Why the last send failed (empty once one succeeds)."""
        self._journal_failed = False
        self._thread = threading.Thread(
            target=self._send_loop, name="skillforge-tracker", daemon=True
        )
        self._thread.start()

    # -- the training callback --------------------------------------------------------------
    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if step <= self.journaled_until:
            return  # logged before a crash: the journal's copy is sent (or was)
        self._add(Report(step, int(time.time() * 1000), dict(metrics)))

    def on_checkpoint(self, path: str, step: int) -> None:
        self.last_checkpoint = (path, step)
        self.set_tags({TAG_CHECKPOINT_STEP: str(step)})

    # -- evaluation and tags ----------------------------------------------------------------
    def evaluation(self, step: int) -> dict[str, float] | None:
        """The evaluation already logged at `step` by this run (from the journal), if any."""
        for report in reversed(self.reports):
            if report.kind == "eval" and report.step == step:
                return {key.removeprefix("eval/"): v for key, v in report.metrics.items()}
        return None

    def log_evaluation(self, step: int, metrics: dict[str, float]) -> None:
        """Log `metrics` as `eval/<name>` at `step` (again, if the journal has them)."""
        for report in reversed(self.reports):
            if report.kind == "eval" and report.step == step:
                self._enqueue(report)
                return
        values = {f"eval/{key}": float(value) for key, value in metrics.items()}
        self._add(Report(step, int(time.time() * 1000), values, "eval"))

    def history(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of a training metric, from the reports this tracker knows."""
        return sorted(
            (r.step, r.metrics[key]) for r in self.reports if r.kind == "train" and key in r.metrics
        )

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set run tags with the next batch (or alone)."""
        with self._cond:
            self._tags.update(tags)
            self._cond.notify_all()

    # -- delivery ---------------------------------------------------------------------------
    @property
    def unsent(self) -> int:
        """Reports not yet accepted by the store."""
        with self._cond:
            return len(self._pending)

    @property
    def store_down_for(self) -> float | None:
        """Seconds since the store stopped answering, or None if it answers."""
        return None if self._down_since is None else time.monotonic() - self._down_since

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every report and tag to be sent; True if they
        all were."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while (self._pending or self._tags) and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.5))
            return not (self._pending or self._tags)

    def close(self, timeout: float) -> bool:
        """Flush (bounded by `timeout`) and stop the sender; True if everything was sent."""
        delivered = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
        return delivered

    def _add(self, report: Report) -> None:
        if self.journal is not None and not self._journal_failed:
            try:
                self.journal.append(report)
            except OSError as error:
                self._journal_failed = True
                logger.warning(
                    "cannot append to the metric journal %s (%s); metrics go to the store only",
                    self.journal.path,
                    error.strerror or error,
                )
        self.reports.append(report)
        self._enqueue(report)

    def _enqueue(self, report: Report) -> None:
        with self._cond:
            self._pending.append(report)
            self._cond.notify_all()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._tags or self._closing):
                    self._cond.wait()
                if self._closing:
                    return
                batch, size = [], 0
                for report in self._pending:
                    if batch and size + len(report.metrics) > METRICS_PER_BATCH:
                        break
                    batch.append(report)
                    size += len(report.metrics)
                tags = dict(self._tags)
            problem = self._send(batch, tags)
            with self._cond:
                if problem is None:
                    for _ in batch:
                        self._pending.popleft()
                    for key, value in tags.items():
                        if self._tags.get(key) == value:
                            del self._tags[key]
                    waiting = len(self._pending)
                self._cond.notify_all()
            self.last_problem = problem or ""
            if problem is None:
                if self._down_since is not None:
                    logger.warning(
                        "tracking store %s answers again after %.0f s: sent the buffered "
                        "metric reports (%d more waiting)",
                        shown_uri(self.uri),
                        time.monotonic() - self._down_since,
                        waiting,
                    )
                    self._down_since = None
                continue
            if self._down_since is None:
                self._down_since = time.monotonic()
                where = f" and kept in {self.journal.path}" if self.journal is not None else ""
                logger.warning(
                    "tracking store %s does not answer (%s); training goes on, metrics are "
                    "buffered%s and sent when it is back",
                    shown_uri(self.uri),
                    problem,
                    where,
                )
            with self._cond:
                if not self._closing:
                    self._cond.wait(self.retry_seconds)

    def _send(self, batch: list[Report], tags: dict[str, str]) -> str | None:
        """Send one batch; None on success, else why it failed."""
        from mlflow.entities import Metric

        problem = probe(self.uri)
        if problem is not None:
            return problem
        metrics = [
            Metric(key, value, report.timestamp, report.step)
            for report in batch
            for key, value in report.metrics.items()
        ]
        train_steps = [report.step for report in batch if report.kind == "train"]
        if train_steps:
            tags = {**tags, TAG_STEP: str(max(train_steps))}
        try:
            log_metrics(self.client, self.run_id, metrics, tags=tags)
        except Exception as error:  # the store is down, locked, or refusing: retry later
            return first_line(error)
        return None
