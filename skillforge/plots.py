"""Plots saved as PNG files (matplotlib, headless)."""

from __future__ import annotations

import math
from pathlib import Path


def learning_curve(
    history: dict[str, list[tuple[int, float]]], path: str | Path, title: str, n_skills: int
) -> Path:
    """Mean log q(z|s) (with chance level) and discriminator accuracy against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for axis, key, label in (
        (top, "log_q_z", "mean log q(z|s)"),
        (bottom, "discriminator_accuracy", "discriminator accuracy"),
    ):
        points = history.get(key, [])
        if points:
            steps, values = zip(*points, strict=True)
            axis.plot(steps, values, color="tab:blue")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    top.axhline(-math.log(n_skills), color="grey", linestyle="--", label="chance (-ln N)")
    top.legend(loc="lower right")
    bottom.set_xlabel("environment steps")
    bottom.set_ylim(0, 1)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
