"""Plots saved as PNG files (matplotlib, headless)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def skill_colors(n_skills: int) -> list:
    """One colour per skill: tab10 / tab20 while they last, then evenly spaced hues."""
    plt = _pyplot()
    if n_skills <= 10:
        return [plt.get_cmap("tab10")(k) for k in range(n_skills)]
    if n_skills <= 20:
        return [plt.get_cmap("tab20")(k) for k in range(n_skills)]
    return [plt.get_cmap("turbo")(k / (n_skills - 1)) for k in range(n_skills)]


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_curve(
    history: dict[str, list[tuple[int, float]]], path: str | Path, title: str, n_skills: int
) -> Path:
    """Mean log q(z|s) (with chance level) and discriminator accuracy against env steps:
    training batches as a line, held-out evaluations (`eval/log_q_z`,
    `eval/discriminator_accuracy` in `history`, if any) as dots."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for axis, key, label in (
        (top, "log_q_z", "mean log q(z|s)"),
        (bottom, "discriminator_accuracy", "discriminator accuracy"),
    ):
        points = history.get(key, [])
        if points:
            steps, values = zip(*points, strict=True)
            axis.plot(steps, values, color="tab:blue", label="training batches")
        held_out = [(s, v) for s, v in history.get(f"eval/{key}", []) if math.isfinite(v)]
        if held_out:
            steps, values = zip(*held_out, strict=True)
            axis.plot(steps, values, "o", color="tab:orange", label="held-out rollouts")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    top.axhline(-math.log(n_skills), color="grey", linestyle="--", label="chance (-ln N)")
    top.legend(loc="lower right")
    bottom.set_xlabel("environment steps")
    bottom.set_ylim(0, 1)
    fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix(
    confusion: np.ndarray, path: str | Path, title: str, accuracy: float | None = None
) -> Path:
    """Row k: the share of skill k's states that q(z|s) assigns to each skill."""
    plt = _pyplot()
    n = len(confusion)
    size = min(10, 3 + 0.3 * n)
    fig, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(confusion, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(image, ax=axis, fraction=0.046, label="share of the skill's states")
    if n <= 12:
        for row in range(n):
            for col in range(n):
                value = confusion[row, col]
                color = "white" if value > 0.6 else "black"
                axis.text(col, row, f"{value:.2f}", ha="center", va="center", color=color)
    ticks = range(n) if n <= 20 else range(0, n, max(1, n // 10))
    axis.set_xticks(list(ticks))
    axis.set_yticks(list(ticks))
    axis.set_xlabel("skill predicted by the discriminator (argmax q(z|s))")
    axis.set_ylabel("skill that ran")
    subtitle = "" if accuracy is None else f"\naccuracy {accuracy:.2f} (chance {1 / n:.2f})"
    axis.set_title(f"{title}{subtitle}", fontsize=10)
    return _save(fig, path)


def return_distribution(returns: np.ndarray, path: str | Path, title: str) -> Path:
    """Extrinsic return of each skill: a box over its episodes, every episode a dot."""
    plt = _pyplot()
    n, episodes = returns.shape
    colors = skill_colors(n)
    fig, axis = plt.subplots(figsize=(max(6, 0.35 * n + 2), 4))
    axis.boxplot(list(returns), positions=range(n), widths=0.6, showfliers=False)
    jitter = np.linspace(-0.15, 0.15, episodes) if episodes > 1 else np.zeros(1)
    for skill in range(n):
        axis.scatter(skill + jitter, returns[skill], s=14, color=colors[skill], zorder=3)
    best = int(returns.mean(axis=1).argmax())
    axis.axvspan(best - 0.45, best + 0.45, color="gold", alpha=0.25, label=f"best: skill {best}")
    axis.set_xticks(range(n) if n <= 30 else range(0, n, 5))
    axis.set_xlabel("skill")
    axis.set_ylabel(f"extrinsic return ({episodes} episodes)")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(loc="best")
    axis.set_title(title, fontsize=10)
    return _save(fig, path)


def trajectories(
    positions: list[list[np.ndarray]],
    path: str | Path,
    title: str,
    caption: str = "",
    position: str = "position",
    random_positions: list[np.ndarray] | None = None,
) -> Path:
    """Where each skill went, coloured by skill: x against steps, or the x-y path.
    `positions[k][e]` is skill k's episode e, (T+1, 1) or (T+1, 2). With `random_positions`
    (one trace per episode), a random policy's paths are drawn beside, on the same scale."""
    plt = _pyplot()
    n = len(positions)
    colors = skill_colors(n)
    planar = positions[0][0].shape[1] >= 2
    panels = 1 if random_positions is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 5), sharey=True, squeeze=False)
    axis = axes[0, 0]
    for skill, episodes in enumerate(positions):
        for episode, trace in enumerate(episodes):
            label = f"skill {skill}" if episode == 0 and n <= 20 else None
            _path(axis, trace, colors[skill], planar, label)
    if random_positions is not None:
        for trace in random_positions:
            _path(axes[0, 1], trace, "grey", planar)
        axes[0, 1].set_title("uniformly random policy, same episodes", fontsize=10)
        if planar:  # the same square of the plane on both sides
            axes[0, 1].set_xlim(axis.get_xlim())
    for side in axes[0]:
        side.set_xlabel(f"{position}: x" if planar else "environment step")
        side.grid(alpha=0.3)
        if planar:
            side.set_aspect("equal", adjustable="datalim")
    axis.set_ylabel(f"{position}: y" if planar else position)
    if n <= 20:
        axis.legend(fontsize=7, ncol=2 if n > 10 else 1, loc="best")
    axis.set_title(f"{title}\n{caption}" if caption else title, fontsize=10)
    return _save(fig, path)


def _path(axis, trace: np.ndarray, color, planar: bool, label: str | None = None) -> None:
    """One episode's positions: the x-y path with its end marked, or x against steps."""
    if planar:
        axis.plot(trace[:, 0], trace[:, 1], color=color, lw=1, label=label)
        axis.plot(trace[-1, 0], trace[-1, 1], "o", color=color, ms=3)
    else:
        axis.plot(trace[:, 0], color=color, lw=1, label=label)


def return_curves(
    curves: dict[str, list[tuple[int, float]]],
    path: str | Path,
    title: str,
    flat: dict[str, float],
) -> Path:
    """Episode return against env steps per learner (smoothed), constant baselines as lines."""
    fig, axis = _pyplot().subplots(figsize=(7, 4))
    for name, points in curves.items():
        if points:
            steps, returns = (np.asarray(column) for column in zip(*points, strict=True))
            window = max(1, len(returns) // 20)
            smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
            axis.plot(steps[window - 1 :], smooth, label=name)
    for name, value in flat.items():
        axis.axhline(value, linestyle="--", color="grey", label=f"{name} ({value:.0f})")
    axis.set_xlabel("environment steps")
    axis.set_ylabel("episode return")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:  # a short run may have no curve to name
        axis.legend()
    return _save(fig, path)


def measure_bars(names: list[str], measures: dict[str, list[float]], path: str | Path) -> Path:
    """One panel per measure, one bar per library (NaN: no bar): a sweep at a glance."""
    fig, axes = _pyplot().subplots(
        len(measures), 1, figsize=(max(6.0, 0.5 * len(names) + 2), 2.6 * len(measures))
    )
    for axis, (label, values) in zip(np.atleast_1d(axes), measures.items(), strict=True):
        axis.bar(range(len(names)), [0.0 if math.isnan(v) else v for v in values])
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        axis.set_ylabel(label, fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def meta_diagnostics(
    history: dict[str, list[tuple[int, float]]],
    choices: list[tuple[int, np.ndarray]],
    lines: dict[str, float],
    path: str | Path,
    title: str,
) -> Path:
    """A meta-controller's training at a glance, against env steps: episode returns and
    validation returns (with reference `lines`), Q-values and TD error (reward units),
    exploration rate and randomly chosen share of the replay, and the skills chosen."""
    plt = _pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(8, 11), sharex=True)
    panels = (
        (axes[0], ("return", "validation_return"), "return"),
        (axes[1], ("q_value", "q_target", "td_error"), "reward units"),
        (axes[2], ("epsilon", "replay_random_share"), "fraction"),
    )
    for axis, keys, label in panels:
        for key in keys:
            points = history.get(key, [])
            if points:
                steps, values = zip(*points, strict=True)
                style = "o-" if key == "validation_return" else "-"
                axis.plot(steps, values, style, label=key.replace("_", " "), markersize=4)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    for name, value in lines.items():
        axes[0].axhline(value, linestyle="--", label=f"{name} ({value:.0f})", color="grey")
    if choices:
        steps = [step for step, _ in choices]
        shares = np.stack([share for _, share in choices], axis=1)
        colors = skill_colors(len(shares))
        axes[3].stackplot(steps, shares, colors=colors, labels=[str(k) for k in range(len(shares))])
        axes[3].legend(
            title="skill", fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1, 0.5)
        )
    axes[3].set_ylabel("share of decisions")
    axes[3].set_xlabel("environment steps")
    for axis in axes[:3]:
        if axis.get_legend_handles_labels()[0]:  # a short run may have nothing to report yet
            axis.legend(fontsize=8)
    axes[0].set_title(title)
    return _save(fig, path)
