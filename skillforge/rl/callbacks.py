"""How training reports progress without knowing who listens (MLflow, a progress bar, a test)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol


class TrainingCallback(Protocol):
    """Every method is optional; `CallbackList` calls only those an object defines."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Training starts (or resumes) at `info['step']` of `info['total_steps']`; `info` also
        holds the `spec` and the `agent` being trained."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        """Window-averaged metrics, every `log_every` steps."""

    def on_checkpoint(self, path: str, step: int) -> None:
        """A checkpoint was written."""

    def on_end(self, result: Any) -> None:
        """Training finished; `result` is a `TrainResult`."""


class CallbackList:
    """Dispatch each event to every callback that implements it."""

    def __init__(self, callbacks: Iterable[object] = ()) -> None:
        self.callbacks = list(callbacks)

    def __getattr__(self, event: str):
        if not event.startswith("on_"):
            raise AttributeError(event)

        def dispatch(*args, **kwargs) -> None:
            for callback in self.callbacks:
                handler = getattr(callback, event, None)
                if handler is not None:
                    handler(*args, **kwargs)

        return dispatch
