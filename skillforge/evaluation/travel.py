"""How far skills travel: displacement and speed per skill (the paths themselves are drawn
beside a random policy's by `plots.trajectories`).

Displacements are measured after `HORIZON` steps (or at the episode's end, if sooner), the
length of METRA's training episodes, so that libraries trained and evaluated with different
episode lengths compare alike. Along a track (x) a displacement is signed: forward is +x;
in the plane (x-y) it is the distance from the start.
"""

from __future__ import annotations

import numpy as np

HORIZON = 200
"""Steps after which displacement is measured."""


def displacements(trajectories: list[list[np.ndarray]], horizon: int = HORIZON) -> np.ndarray:
    """Position after `horizon` steps minus the start, per skill and episode:
    (n_skills, episodes, d) from `trajectories[k][e]`, a (T+1, d) position trace."""
    return np.array(
        [
            [trace[min(horizon, len(trace) - 1)] - trace[0] for trace in skill]
            for skill in trajectories
        ]
    )


def travel_metrics(
    trajectories: list[list[np.ndarray]], dt: float | None, horizon: int = HORIZON
) -> dict[str, float]:
    """Per skill its mean displacement (`displacement/skill_k`, m: signed x, or distance in the
    plane) and speed (`speed/skill_k`, m/s over the horizon, when `dt` is known); over the
    library the farthest skills: `max_forward_m` and `max_backward_m` along x, or
    `max_distance_m` in the plane."""
    moved = displacements(trajectories, horizon)  # (n_skills, episodes, d)
    if moved.size == 0:
        return {}
    planar = moved.shape[2] >= 2
    per_skill = np.linalg.norm(moved, axis=2).mean(axis=1) if planar else moved[:, :, 0].mean(1)
    steps = np.array([[min(horizon, len(t) - 1) for t in skill] for skill in trajectories])
    metrics = {f"displacement/skill_{k:02d}": float(v) for k, v in enumerate(per_skill)}
    if dt:
        seconds = np.maximum(steps.mean(axis=1), 1) * dt
        speeds = np.abs(per_skill) / seconds
        metrics.update({f"speed/skill_{k:02d}": float(v) for k, v in enumerate(speeds)})
    if planar:
        metrics["max_distance_m"] = float(per_skill.max())
    else:
        metrics["max_forward_m"] = float(per_skill.max())
        metrics["max_backward_m"] = float(-per_skill.min())
    return metrics
