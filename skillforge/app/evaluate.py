"""`skillforge evaluate`: evaluate a stored library and log everything to its own MLflow run."""

from __future__ import annotations

import math
from collections.abc import Callable

from skillforge.core.errors import ConfigError
from skillforge.evaluation.files import write_files
from skillforge.evaluation.report import DEFAULT_EPISODES, EvaluationReport, check_env, evaluate
from skillforge.skills.library import SkillLibrary


def evaluate_and_log(
    client,
    run_id: str,
    library: SkillLibrary,
    step: int,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    video: bool = True,
) -> EvaluationReport:
    """Evaluate `library`, then log its measures (`eval/...` at `step`), pictures and videos
    to its MLflow run `run_id`. What `skillforge evaluate` and the end of pretraining do. The
    report also carries the run's running log q(z|s) (`report.running_log_q`)."""
    import tempfile

    from skillforge.app.library import running_log_q_of_run
    from skillforge.store import tracking

    report = evaluate(library, episodes, seed, video=video)
    history = {}
    for key in ("log_q_z", "discriminator_accuracy"):  # training batches, then held-out
        history[key] = tracking.metric_history(client, run_id, key)
        earlier = tracking.metric_history(client, run_id, f"eval/{key}")
        history[f"eval/{key}"] = [(s, v) for s, v in earlier if s != step]
        history[f"eval/{key}"].append((step, report.scores.get(key, math.nan)))
    report.running_log_q = running_log_q_of_run(client, run_id)
    with tempfile.TemporaryDirectory(prefix="skillforge-eval-") as folder:
        files = write_files(report, folder, history)
        report.artifacts = [str(path.relative_to(folder)) for path in files]
        tracking.log_evaluation(
            client, run_id, report.metrics(), step, folder, coverage_of=report.coverage_of
        )
    return report


def evaluate_stored(
    reference: str | None,
    tracking_uri: str | None = None,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    video: bool = True,
    on_start: Callable | None = None,
):
    """`skillforge evaluate`: evaluate a stored library (name, run id, or None for the latest)
    and log everything to its own run, at its current step. `on_start(info)` is called once
    the library is found and loadable. Returns (LibraryInfo, report)."""
    from skillforge.app.load import load_library
    from skillforge.store import tracking

    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    client = tracking.connect_existing(tracking_uri)
    info = tracking.find_library(reference, client=client)
    library = load_library(client=client, info=info)
    library.name = info.name
    check_env(library)
    if on_start is not None:
        on_start(info)
    report = evaluate_and_log(client, info.run_id, library, info.step, episodes, seed, video)
    return info, report
