"""How long downstream work reports its phases without knowing who listens (a progress bar,
a stop request, a test).

Whoever runs the work hands it `callbacks_for(phase, total)`: the callbacks of one phase that
counts `total` units of work (`unit_of(phase)`: env steps, episodes or models). The phase
calls `on_start({"step": 0, "total_steps": total, "unit": unit})` (no unit: env steps),
then `on_progress(done)` at every step boundary (after an env step, a batch of skill
decisions or an episode), `on_step(step, metrics)` where training reports its episodes, and
`on_end(result)` (not when it stopped early). A listener may raise from any of them to stop
the work at that boundary.

Phases: `selection` (the best single skill on selection episodes), `validation/<what>`, the
training of a method (`meta`, `finetune`, `sac`, `random-skills`), `evaluation/<what>`
(held-out episodes), `registration`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from skillforge.rl.callbacks import CallbackList

CallbacksFor = Callable[[str, int], Iterable[object]]
EPISODE_PHASES = ("selection", "validation", "evaluation")


def no_callbacks(phase: str, total: int) -> tuple:
    """Nobody listens."""
    return ()


def unit_of(phase: str) -> str:
    """What a phase counts: `episodes`, `models` (registration) or env `steps` (training)."""
    kind = phase.split("/")[0]
    if kind in EPISODE_PHASES:
        return "episodes"
    return "models" if kind == "registration" else "steps"


@contextlib.contextmanager
def phase(
    callbacks_for: CallbacksFor, name: str, total: int, unit: str | None = None
) -> Iterator[CallbackList]:
    """The callbacks of phase `name` counting `total` of `unit` (default `unit_of(name)`),
    started; ended when the block ends without an error."""
    callbacks = CallbackList(callbacks_for(name, total))
    callbacks.on_start({"step": 0, "total_steps": total, "unit": unit or unit_of(name)})
    yield callbacks
    callbacks.on_end(None)


class EpisodeCount:
    """Callbacks for `skill_actions.run_skill_policy` that report a phase's progress in
    episodes: each finished episode counts one, and after every batch of decisions
    `callbacks.on_progress(episodes so far)` is called (where a stop may end the work)."""

    def __init__(self, callbacks: CallbackList) -> None:
        self.callbacks, self.done = callbacks, 0

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.done += 1

    def on_progress(self, steps: int) -> None:
        self.callbacks.on_progress(self.done)
