"""An evaluation report as files: plots (`plots/*.png`) and videos (`videos/*.gif`)."""

from __future__ import annotations

from pathlib import Path

from skillforge.evaluation.report import EvaluationReport


def write_files(
    report: EvaluationReport,
    folder: str | Path,
    history: dict[str, list[tuple[int, float]]] | None = None,
) -> list[Path]:
    """The report's pictures (`plots/*.png`) and videos (`videos/*.gif`) under `folder`.

    `history` holds metric histories by name (`log_q_z`, `discriminator_accuracy` of training,
    `eval/log_q_z` ... of earlier evaluations) for the learning curve; None leaves it out.
    """
    from skillforge.evaluation import plots

    folder = Path(folder)
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    title = f"{report.library}: {report.env_id}, {report.n_skills} skills"
    files = []
    if report.confusion is not None:
        files.append(
            plots.confusion_matrix(
                report.confusion,
                folder / "plots" / "confusion_matrix.png",
                title,
                report.scores["discriminator_accuracy"],
            )
        )
    files.append(
        plots.return_distribution(report.returns, folder / "plots" / "skill_returns.png", title)
    )
    if any(report.trajectories):
        files.append(
            plots.trajectories(
                report.trajectories,
                folder / "plots" / "trajectories.png",
                title,
                _coverage_caption(report),
                report.position,
                report.random_trajectories or None,
            )
        )
    if history is not None:
        files.append(
            plots.learning_curve(
                history, folder / "plots" / "learning_curve.png", title, report.n_skills
            )
        )
    if report.frames:
        from skillforge.evaluation import video

        (folder / "videos").mkdir(exist_ok=True)
        for skill, frames in enumerate(report.frames):
            path = folder / "videos" / f"skill_{skill:02d}.gif"
            files.append(video.write_gif(frames, path, report.frame_seconds))
        grid = folder / "videos" / "all_skills.gif"
        files.append(video.write_grid_gif(report.frames, grid, report.frame_seconds))
    return files


def _coverage_caption(report: EvaluationReport) -> str:
    if report.coverage is None:
        return ""
    return (
        f"coverage: {report.coverage} bins of size {report.bin_size:.3g} visited "
        f"(uniformly random policy: {report.random_coverage})"
    )
