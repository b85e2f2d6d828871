"""Test helpers shared by several modules."""

from __future__ import annotations

from skillforge.config import PretrainConfig


def tiny_config(**changes) -> PretrainConfig:
    """Pendulum, 4 skills, small nets: seconds per run, every code path exercised."""
    values = dict(
        env_id="Pendulum-v1",
        n_skills=4,
        total_steps=300,
        hidden=32,
        batch_size=32,
        buffer_size=1_000,
        learning_starts=100,
        checkpoint_every=100,
        log_every=50,
        threads=1,
        device="cpu",
    )
    values.update(changes)
    return PretrainConfig(**values)
