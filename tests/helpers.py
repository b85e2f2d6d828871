"""Test helpers shared by several modules."""

from __future__ import annotations

from skillforge.core.config import PretrainConfig


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


def assert_one_line_error(result, *fragments: str) -> str:
    """A refusal: non-zero exit, exactly one `error: ...` line on stderr holding every
    fragment, no traceback. Returns the line."""
    assert result.exit_code not in (0, None), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
