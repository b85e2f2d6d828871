"""One library's MLflow run in progress: where it is, how it is evaluated, what it returns."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from skillforge.app.locations import JOURNAL_FILE
from skillforge.core.config import (
    DEFAULT_EVALUATION,
    EvaluationOptions,
    EvaluationOverrides,
    PretrainConfig,
)
from skillforge.core.errors import ConfigError
from skillforge.skills.library import SkillLibrary
from skillforge.store import delivery, tracking


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


def evaluation_tag(evaluation: EvaluationOptions) -> str:
    """The evaluation options as the run records them (`TAG_EVALUATION`)."""
    return json.dumps(dataclasses.asdict(evaluation))


def run_evaluation(
    client, run, evaluation: EvaluationOptions | EvaluationOverrides
) -> EvaluationOptions:
    """How a library's run is evaluated from now on: `evaluation` if complete, else the
    run's recorded choices (`--eval-episodes`, `--eval-every`, `--video` of its pretrain;
    the defaults for a run made before they were recorded) with the overrides given.
    A change is recorded on the run, so a later `--resume` or `register` keeps it."""
    tags = run.data.tags
    try:
        recorded = EvaluationOptions(**json.loads(tags[tracking.TAG_EVALUATION]))
    except KeyError:
        recorded = DEFAULT_EVALUATION
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"run {run.info.run_id} has an unreadable {tracking.TAG_EVALUATION} tag ({error})"
        ) from None
    if isinstance(evaluation, EvaluationOverrides):
        evaluation = evaluation.applied_to(recorded)
    if evaluation != recorded or tracking.TAG_EVALUATION not in tags:
        client.set_tag(run.info.run_id, tracking.TAG_EVALUATION, evaluation_tag(evaluation))
    return evaluation
