"""The running log q(z|s) against episodes, as DIAYN-PyTorch plots it.

DIAYN-PyTorch gives each episode the mean log q(z|s) of the training batches over its steps,
then smooths: running = 0.99 * running + 0.01 * episode (its first episode sets it). A
skillforge run logs `log_q_z` (the mean over the updates of each report window) and
`episodes` (finished episodes so far) at the same steps: each episode gets the `log_q_z` of
the window it ended in, then the same smoothing. Episodes that ended before the first
update (the random warm-up) have no log q and are left out: DIAYN-PyTorch counts them as 0,
which its smoothing skips as well (a running value of 0 is re-initialised).
"""

from __future__ import annotations

from collections.abc import Iterable

SMOOTHING = 0.99
"""DIAYN-PyTorch's weight of the running value at each episode."""


def running_log_q(
    log_q_z: Iterable[tuple[int, float]],
    episodes: Iterable[tuple[int, float]],
    smoothing: float = SMOOTHING,
) -> list[tuple[int, float]]:
    """(episodes finished, running log q(z|s)) after each report window in which episodes
    ended, from the metric histories (step, value) of `log_q_z` and `episodes`; empty when
    either is. A value logged twice at one step (a resumed run) counts once, the last."""
    log_q_at = dict(log_q_z)
    points: list[tuple[int, float]] = []
    running: float | None = None
    finished = 0
    for step, count in sorted(dict(episodes).items()):
        ended, finished = max(int(count) - finished, 0), max(finished, int(count))
        value = log_q_at.get(step)
        if not ended or value is None:
            continue
        # `ended` episodes of one value: the first sets it, each moves it by 1 - smoothing
        running = value if running is None else value + (running - value) * smoothing**ended
        points.append((finished, running))
    return points
