"""A sweep's grid: lists of pretraining options, one library per combination.

Pure data, validated before anything starts: an empty or invalid value is a one-line
ConfigError naming the option, and every combination is a valid `PretrainConfig`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass

from skillforge.core.config import (
    OBJECTIVE_DEFAULTS,
    PretrainConfig,
    check_feature_syntax,
    parse_alpha,
)
from skillforge.core.errors import ConfigError
from skillforge.core.names import is_valid_name
from skillforge.core.position_envs import observed_env_id

GRID_OPTIONS: dict[str, tuple[str, Callable[[str], object]]] = {
    "env_id": ("ENV", str),
    "seed": ("--seeds", int),
    "n_skills": ("--skills", int),
    "total_steps": ("--steps", int),
    "hidden": ("--hidden", int),
    "batch_size": ("--batch-size", int),
    "lr": ("--lr", float),
    "alpha": ("--alpha", parse_alpha),
    "gamma": ("--gamma", float),
    "tau": ("--tau", float),
    "learning_starts": ("--learning-starts", int),
    "discriminator_features": ("--discriminator-features", str),
    "objective": ("--objective", str),
}
"""PretrainConfig fields a sweep varies: the option that lists them, how one value reads."""

MAX_TRIALS = 1000
NAME_ROOM = 60
"""Longest sweep name: its trials are `<sweep>-NN` libraries (at most 64 characters)."""


def parse_values(option: str, text: str, read: Callable[[str], object]) -> list:
    """`"0,1,2"` -> `[0, 1, 2]`; an empty list, an empty item or an unreadable value is a
    ConfigError naming `option`. Repeated values are kept once."""
    items = [item.strip() for item in str(text).split(",")]
    if not text or not str(text).strip() or any(not item for item in items):
        raise ConfigError(f"{option} has an empty value in {text!r}; give e.g. {option} 0,1,2")
    values = []
    for item in items:
        try:
            value = read(item)
        except (ValueError, ConfigError):
            raise ConfigError(f"{option} value {item!r} is not valid") from None
        if value not in values:
            values.append(value)
    return values


@dataclass(frozen=True)
class SweepGrid:
    """Every library of a sweep: `base` with each combination of `values` applied."""

    base: PretrainConfig
    values: dict[str, list]
    """PretrainConfig field -> the values it takes (one value: the same for every trial)."""

    def __post_init__(self) -> None:
        for field, values in self.values.items():
            if field not in GRID_OPTIONS:
                raise ConfigError(f"a sweep cannot vary {field!r}")
            if not values:
                raise ConfigError(f"{GRID_OPTIONS[field][0]} needs at least one value")
        if self.size > MAX_TRIALS:
            raise ConfigError(f"the grid has {self.size:,} libraries; at most {MAX_TRIALS:,}")
        self.configs()  # every combination must be a valid configuration

    @property
    def size(self) -> int:
        size = 1
        for values in self.values.values():
            size *= len(values)
        return size

    def varied(self) -> dict[str, list]:
        """The fields that take more than one value (what tells the trials apart)."""
        return {field: values for field, values in self.values.items() if len(values) > 1}

    def points(self) -> list[dict]:
        """Each trial's values, in a stable order (the last field varies fastest)."""
        fields, combos = list(self.values), itertools.product(*self.values.values())
        return [dict(zip(fields, combo, strict=True)) for combo in combos]

    def configs(self, sweep: str = "sweep") -> list[PretrainConfig]:
        """Each trial's configuration, named `<sweep>-NN`: the swept values, then its
        objective's own defaults for what the sweep does not set (METRA's collection: env
        copies, updates per step, episode length), on the env its objective needs."""
        width = max(2, len(str(self.size - 1)))
        return [
            self._config(point, f"{sweep}-{index:0{width}d}")
            for index, point in enumerate(self.points())
        ]

    def _config(self, point: dict, name: str) -> PretrainConfig:
        objective = point.get("objective", self.base.objective)
        if objective not in OBJECTIVE_DEFAULTS:
            raise ConfigError(
                f"--objective must be one of {', '.join(OBJECTIVE_DEFAULTS)}, got {objective!r}"
            )
        own = {k: v for k, v in OBJECTIVE_DEFAULTS[objective].items() if k not in self.values}
        fields = {**dataclasses.asdict(self.base), **own, **point, "name": name}
        features = check_feature_syntax(fields["discriminator_features"])
        fields["env_id"] = observed_env_id(fields["env_id"], objective, features)
        return PretrainConfig(**fields)

    def fingerprint(self) -> str:
        """Identical for the same libraries, whatever the sweep name or thread count."""
        configs = [{**c.to_dict(), "name": "", "threads": 0} for c in self.configs()]
        text = json.dumps(configs, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def default_name(self) -> str:
        """`sweep-<env>-<fingerprint>`: the same command always names the same sweep."""
        env = self.values.get("env_id", [self.base.env_id])[0]
        short = "".join(c for c in env.split("-")[0].lower() if c.isalnum())[:20]
        return f"sweep-{short}-{self.fingerprint()[:6]}"


def check_sweep_name(name: str) -> str:
    """A sweep name usable as the stem of its libraries' names."""
    if not is_valid_name(name) or len(name) > NAME_ROOM:
        raise ConfigError(
            f"--name {name!r} is not a usable sweep name (letters, digits, '.', '_', '-', "
            f"at most {NAME_ROOM} characters)"
        )
    return name
