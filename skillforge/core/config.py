"""Configuration of the commands: one frozen dataclass each, validated on construction.

This module imports nothing heavy so that the CLI can validate options before loading torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from skillforge.core.errors import ConfigError
from skillforge.core.names import RESERVED_NAMES, is_valid_name
from skillforge.core.position_envs import observed_env_id

MAX_SKILLS = 256
"""The most skills a library may have. Every skill is a registered model, a held-out
evaluation and a video, each growing with N: registering 806 skills took more than five
minutes, and their videos gigabytes of memory."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class PretrainConfig:
    """DIAYN pretraining. Defaults follow Eysenbach et al. 2018 (arXiv 1802.06070)."""

    env_id: str
    """Gymnasium id of the environment (aliases are resolved before this is built)."""
    n_skills: int = 20
    """Number of skills N; p(z) is uniform over them."""
    total_steps: int = 1_000_000
    """Environment steps in total, including the random warm-up."""
    total_episodes: int = 0
    """Episodes in total (a budget counted as DIAYN-PyTorch counts it); 0: none. The run ends
    at whichever budget it meets first; when the episodes end it, the steps they took become
    its `total_steps`."""
    total_minutes: float = 0.0
    """Minutes of training in total (a wall-clock budget, for comparing methods on one
    machine); 0: none. Like an episode budget, the steps done by then become `total_steps`;
    unlike the other budgets, where it ends depends on the machine's speed."""
    seed: int = 0
    """Seeds torch, the replay sampler and every episode reset."""
    hidden: int = 300
    """Units in each of the two hidden layers of every network."""
    batch_size: int = 256
    """Transitions per gradient step."""
    lr: float = 3e-4
    """Adam learning rate of policy, critics, discriminator (and alpha when learned)."""
    alpha: float | None = 0.1
    """Entropy coefficient; None learns it towards the target entropy -dim(A)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    learning_starts: int = 10_000
    """Steps of uniformly random actions before the first gradient step."""
    device: str = "auto"
    """auto, cpu or cuda."""
    checkpoint_every: int = 10_000
    """Steps between checkpoints (one is always written at the end)."""
    log_every: int = 500
    """Steps between metric reports to the callbacks (MLflow, progress bar)."""
    threads: int = 0
    """torch intra-op threads; 0: the cores other jobs leave free, decided again every 30 s
    (`core.threads`)."""
    name: str = ""
    """Library name; empty derives one from the env and run."""
    discriminator_features: str = "all"
    """What q(z|s) sees: all (the observation), x, xy (the agent's position: DIAYN+prior),
    or comma-separated observation indices."""
    objective: str = "diayn"
    """diayn (skills that can be told apart) or metra (skills that travel far)."""
    envs: int = 1
    """Copies of the env stepped in lockstep, one batched policy call for all."""
    updates_per_step: float = 1.0
    """Gradient steps per env step (fractions too: 0.03125 is one per 32 steps)."""
    max_episode_steps: int = 0
    """Episode length in training (0: the env's own time limit)."""

    @classmethod
    def for_objective(cls, env_id: str, objective: str, **changes) -> PretrainConfig:
        """A config with `objective`'s own defaults (`OBJECTIVE_DEFAULTS`), then `changes`,
        on the env that observes the agent's position where the objective or the
        discriminator's prior needs it (`core.position_envs.observed_env_id`)."""
        if objective not in OBJECTIVE_DEFAULTS:
            raise ConfigError(
                f"--objective must be one of {', '.join(OBJECTIVE_DEFAULTS)}, got {objective!r}"
            )
        features = check_feature_syntax(changes.get("discriminator_features", "all"))
        return cls(
            env_id=observed_env_id(env_id, objective, features),
            objective=objective,
            **{**OBJECTIVE_DEFAULTS[objective], **changes},
        )

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "discriminator_features", check_feature_syntax(self.discriminator_features)
        )
        require(
            self.objective in OBJECTIVE_DEFAULTS,
            f"--objective must be one of {', '.join(OBJECTIVE_DEFAULTS)}, got {self.objective!r}",
        )
        require(
            self.objective == "diayn" or self.discriminator_features == "all",
            "--discriminator-features is DIAYN's prior; METRA has no discriminator",
        )
        require(1 <= self.envs <= 64, f"--envs must be in [1, 64], got {self.envs}")
        require_updates_per_step(self.updates_per_step, "--updates-per-step")
        require(
            self.max_episode_steps >= 0,
            f"--max-episode-steps must be >= 0, got {self.max_episode_steps}",
        )
        require(
            2 <= self.n_skills <= MAX_SKILLS,
            f"--skills must be from 2 to {MAX_SKILLS}, got {self.n_skills}",
        )
        require(self.total_steps >= 1, f"--steps must be positive, got {self.total_steps}")
        require(self.total_episodes >= 0, f"--episodes must be positive, got {self.total_episodes}")
        require(
            math.isfinite(self.total_minutes) and self.total_minutes >= 0,
            f"--minutes must be positive, got {self.total_minutes}",
        )
        require(0 <= self.seed < 2**63, f"--seed must be in [0, 2^63), got {self.seed}")
        require(1 <= self.hidden <= 8192, f"--hidden must be in [1, 8192], got {self.hidden}")
        require(self.batch_size >= 1, f"--batch-size must be positive, got {self.batch_size}")
        require(positive_finite(self.lr), f"--lr must be a positive number, got {self.lr}")
        require(
            self.alpha is None or (math.isfinite(self.alpha) and self.alpha >= 0),
            f"--alpha must be a non-negative number or 'auto', got {self.alpha}",
        )
        require(0 <= self.gamma < 1, f"--gamma must be in [0, 1), got {self.gamma}")
        require(0 < self.tau <= 1, f"--tau must be in (0, 1], got {self.tau}")
        require(
            self.buffer_size >= self.batch_size,
            f"--buffer-size ({self.buffer_size}) must be at least --batch-size ({self.batch_size})",
        )
        require(
            self.learning_starts >= 0,
            f"--learning-starts must be >= 0, got {self.learning_starts}",
        )
        require(
            self.device in ("auto", "cpu", "cuda"),
            f"--device must be auto, cpu or cuda, got {self.device!r}",
        )
        require(
            self.checkpoint_every >= 1,
            f"--checkpoint-every must be positive, got {self.checkpoint_every}",
        )
        require(self.log_every >= 1, f"log_every must be positive, got {self.log_every}")
        require(self.threads >= 0, f"threads must be >= 0, got {self.threads}")
        require(
            self.name == "" or is_valid_name(self.name),
            f"--name {self.name!r} is not a valid library name: use letters, digits, '.', '_' "
            "and '-', at most 64 characters, starting with a letter or digit",
        )
        require(
            self.name not in RESERVED_NAMES,
            f"--name {self.name!r} is reserved (`--resume latest` means the most recent "
            "library); pick another name",
        )

    def budget_reached(self, step: int, episodes: int, seconds: float = 0.0) -> bool:
        """True once `step` env steps, `episodes` finished episodes or `seconds` of training
        meet the budget."""
        return (
            step >= self.total_steps
            or 0 < self.total_episodes <= episodes
            or 0 < self.total_minutes * 60 <= seconds
        )

    def to_params(self) -> dict[str, str]:
        """Flat string params, as logged to MLflow."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        params["alpha"] = "auto" if self.alpha is None else self.alpha
        return {key: str(value) for key, value in params.items()}

    def to_dict(self) -> dict:
        """Plain dict of the fields (stored in checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PretrainConfig:
        """Rebuild from `to_dict`, ignoring unknown keys (forward compatibility)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def replace(self, **changes) -> PretrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


OBJECTIVE_DEFAULTS: dict[str, dict] = {
    "diayn": {},
    "metra": {
        "alpha": 0.01,
        "hidden": 256,
        "envs": 8,
        "updates_per_step": 1 / 8,
        "max_episode_steps": 200,
    },
}
"""Each objective's own defaults over PretrainConfig's (DIAYN's paper settings). METRA's
follow its authors' runs (SAC alpha 0.01, 8 trajectories of 200 steps) where a 2-core CPU
allows: their 2 x 1024 units, lr 1e-4 and one update per 32 env steps take about 1.5 s per
update here, so METRA uses 2 x 256 units, DIAYN's lr 3e-4 and one update per 8 env steps:
the settings whose HalfCheetah skills run 30-50 m in 35 minutes."""


@dataclass(frozen=True)
class EvaluationOptions:
    """How a library is evaluated while and after it trains."""

    episodes: int = 5
    """Deterministic episodes per skill at the end (0: no evaluation)."""
    every: int = 50_000
    """Env steps between evaluations during training, without video (0: only at the end)."""
    video: bool = True
    """Film every skill at the end (skipped, with a warning, where rendering is unavailable)."""

    def __post_init__(self) -> None:
        require(self.episodes >= 0, f"--eval-episodes must be >= 0, got {self.episodes}")
        require(self.every >= 0, f"--eval-every must be >= 0, got {self.every}")


@dataclass(frozen=True)
class EvaluationOverrides:
    """Evaluation options given for a library whose run recorded its own (`--resume`,
    `library register`): each field set replaces the recorded one, None keeps it."""

    episodes: int | None = None
    every: int | None = None
    video: bool | None = None

    def __post_init__(self) -> None:
        self.applied_to(EvaluationOptions())  # refuse a bad value before anything starts

    def applied_to(self, recorded: EvaluationOptions) -> EvaluationOptions:
        """`recorded` with the fields given here replaced."""
        given = {key: value for key, value in dataclasses.asdict(self).items() if value is not None}
        return dataclasses.replace(recorded, **given)


DEFAULT_EVALUATION = EvaluationOptions()


RECORDED_EVALUATION = EvaluationOverrides()
"""Evaluate a library as its run recorded (`--resume`, `library register` without options)."""


NO_EVALUATION = EvaluationOptions(episodes=0, every=0, video=False)


DEFAULT_STORE_TIMEOUT = 120.0
"""Seconds a finished run waits for an unreachable tracking store before giving up."""


FEATURE_NAMES = ("all", "x", "xy")


def check_feature_syntax(text: str) -> str:
    """`--discriminator-features` normalised (`all`, `x`, `xy` or sorted unique indices
    `0,3`), or a ConfigError; `skillforge.rl.features` checks what fits which env."""
    text = str(text).strip().lower().replace(" ", "")
    if text in FEATURE_NAMES:
        return text
    try:
        indices = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise ConfigError(
            f"--discriminator-features must be all, x, xy or comma-separated observation "
            f"indices, got {text!r}"
        ) from None
    require(indices[0] >= 0, f"--discriminator-features: index {indices[0]} is negative")
    return ",".join(str(index) for index in indices)


def parse_alpha(text: str) -> float | None:
    """Parse the --alpha option: a non-negative number, or 'auto' (learned)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--alpha must be a number or 'auto', got {text!r}") from None
    require(math.isfinite(value) and value >= 0, f"--alpha must be >= 0 or 'auto', got {text!r}")
    return value


def positive_finite(value: float) -> bool:
    return math.isfinite(value) and value > 0


def require_updates_per_step(value: float, option: str) -> None:
    """Refuse a gradient-step rate that is not a positive number of at most 64."""
    require(math.isfinite(value) and 0 < value <= 64, f"{option} must be in (0, 64], got {value}")
