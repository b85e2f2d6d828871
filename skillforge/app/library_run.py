"""One library's MLflow run in progress: where it is, how it is evaluated, what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skillforge.app.locations import JOURNAL_FILE
from skillforge.core.config import EvaluationOptions, PretrainConfig
from skillforge.skills.library import SkillLibrary
from skillforge.store import delivery


@dataclass
class PretrainResult:
    """A finished library: where it is and what it measured."""

    library: SkillLibrary
    run_id: str
    tracking_uri: str
    checkpoint_path: str
    models: list[str] = field(default_factory=list)
    """The registered skills, one model URI each."""
    metrics: dict[str, float] = field(default_factory=dict)
    library_model: str = ""
    """The registered library model (every skill in one: observation and skill index in)."""


@dataclass(frozen=True)
class LibraryRun:
    """One library's MLflow run and where its checkpoint is, with how to finish it."""

    client: object
    run_id: str
    config: PretrainConfig
    checkpoint_path: str
    evaluation: EvaluationOptions
    store_timeout: float

    def tracker(self, sent_step: int) -> delivery.BufferedTracker:
        """The run's metric sender, with its journal next to the checkpoint."""
        folder = Path(self.checkpoint_path).parent
        journal = delivery.MetricJournal(folder / JOURNAL_FILE, self.run_id)
        return delivery.BufferedTracker(self.client, self.run_id, journal, sent_step)
