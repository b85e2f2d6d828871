"""Reproduction of DIAYN-PyTorch's published results: one library's figures for the report.

    python benchmarks/bench_reproduction.py --store runs/repro --library mountaincar-ref
        [--episodes 20] [--skills 3,7,8]

For a library trained at the reference's budget (`skillforge pretrain ENV --episodes N`), it
writes to `docs/reproduction/<env>/`:
- `running_log_q.png`: the running log q(z|s) against episodes, smoothed as DIAYN-PyTorch
  plots it (`skillforge.app.library.running_log_q`), over the reference's end value (and
  a line at the reference's episodes when the library trained past them);
- for three skills (the best, the worst and the median by held-out return, unless
  `--skills` names them), `skill_NN.gif` (the run's own video of it) and
  `skill_NN_returns.png` (its return over `--episodes` held-out episodes), as the
  reference's README shows three skills;
and records the figures in `benchmarks/results/reproduction.json` (one entry per env:
episodes, env steps, gradient steps, wall time, the final running log q and its value after
the reference's episodes beside the reference's, the held-out measures and the best skill's
return).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "reproduction.json"
DOCS = ROOT / "docs" / "reproduction"
REFERENCE = {
    "Hopper-v5": {"episodes": 2200, "running_log_q": -0.25, "shape": "rising", "best": 1370},
    "BipedalWalker-v3": {"episodes": 1650, "running_log_q": -0.43, "shape": "rising"},
    "MountainCarContinuous-v0": {"episodes": 200, "running_log_q": -1.23, "shape": "falling"},
}
"""DIAYN-PyTorch's published curves (its README figures, read off by eye)."""
HELD_OUT = (
    "log_q_z",
    "discriminator_accuracy",
    "effective_skills",
    "coverage_bins",
    "random_coverage_bins",
    "best_skill",
    "best_skill_return",
)


def plot_curve(points, reference: dict, env_id: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes, values = zip(*points, strict=True)
    fig, axis = plt.subplots(figsize=(7, 4))
    axis.plot(episodes, values, label="skillforge (training log q, running 0.99 per episode)")
    axis.plot(
        [reference["episodes"]],
        [reference["running_log_q"]],
        "r*",
        ms=14,
        label=f"DIAYN-PyTorch at its end ({reference['running_log_q']}, {reference['shape']})",
    )
    axis.axhline(reference["running_log_q"], color="r", ls=":", lw=1)
    if episodes[-1] > reference["episodes"]:  # a run past the reference's budget
        axis.axvline(reference["episodes"], color="r", ls=":", lw=1)
    axis.set_xlabel("episode")
    axis.set_ylabel("running log q(z|s)")
    axis.set_title(env_id)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_returns(returns: np.ndarray, skill: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(4, 3))
    axis.hist(returns, bins=min(20, max(5, len(returns) // 2)), color="tab:blue")
    axis.set_xlabel("episode return (held out)")
    axis.set_ylabel("episodes")
    axis.set_title(f"skill {skill}: mean {returns.mean():.1f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def value_at(points: list[tuple[int, float]], episodes: int) -> float | None:
    """The running log q after `episodes` episodes: the last point at or before them."""
    before = [value for episode, value in points if episode <= episodes]
    return round(before[-1], 3) if before else None


def training_rate(client, run_id: str) -> float:
    """Mean env steps/s of the run's reports once learning had started (the random warm-up
    runs far faster than training)."""
    from skillforge.store import tracking

    rates = tracking.metric_history(client, run_id, "steps_per_second")
    training = [rate for step, rate in rates if step > 20_000] or [rate for _, rate in rates]
    return float(np.mean(training)) if training else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="runs/repro")
    parser.add_argument("--library", required=True)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--skills", default="", help="three skill indices (default: chosen)")
    args = parser.parse_args()

    from mlflow.tracking import MlflowClient

    from skillforge.app.library import running_log_q
    from skillforge.app.load import load_library
    from skillforge.evaluation.report import evaluate
    from skillforge.store import tracking

    uri = f"sqlite:///{Path(args.store).resolve() / 'mlflow.db'}"
    info = tracking.find_library(args.library, uri)
    client = MlflowClient(uri)
    run = client.get_run(info.run_id)
    env_id = run.data.params["env_id"]
    reference = REFERENCE[env_id]
    folder = DOCS / env_id.split("-")[0].lower()
    folder.mkdir(parents=True, exist_ok=True)

    points = running_log_q(args.library, uri)
    plot_curve(points, reference, env_id, folder / "running_log_q.png")

    library = load_library(args.library, uri)
    report = evaluate(library, episodes=args.episodes)
    means = report.returns.mean(axis=1)
    order = np.argsort(means)
    chosen = (
        [int(k) for k in args.skills.split(",")]
        if args.skills
        else [int(order[-1]), int(order[len(order) // 2]), int(order[0])]
    )
    with tempfile.TemporaryDirectory() as tmp:
        for skill in chosen:
            plot_returns(report.returns[skill], skill, folder / f"skill_{skill:02d}_returns.png")
            gif = client.download_artifacts(info.run_id, f"videos/skill_{skill:02d}.gif", tmp)
            shutil.copy(gif, folder / f"skill_{skill:02d}.gif")

    metrics, tags = run.data.metrics, run.data.tags
    entry = {
        "env": env_id,
        "library": args.library,
        "skills": int(run.data.params["n_skills"]),
        "episodes": points[-1][0] if points else None,
        "env_steps": int(tags[tracking.TAG_TOTAL_STEPS]),
        "updates_per_step": float(run.data.params["updates_per_step"]),
        "gradient_steps": int(metrics.get("gradient_steps", 0)),
        "wall_minutes": round((run.info.end_time - run.info.start_time) / 60000, 1),
        "steps_per_second": round(training_rate(client, info.run_id), 1),
        "running_log_q": round(points[-1][1], 3) if points else None,
        "running_log_q_at_reference_episodes": value_at(points, reference["episodes"]),
        "reference": reference,
        "held_out_at_training_end": {
            k: metrics[f"eval/{k}"] for k in HELD_OUT if f"eval/{k}" in metrics
        },
        "held_out_episodes": args.episodes,
        "held_out_best_skill": int(order[-1]),
        "held_out_best_return": round(float(means.max()), 1),
        "shown_skills": {str(k): round(float(means[k]), 1) for k in chosen},
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[env_id] = entry
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
