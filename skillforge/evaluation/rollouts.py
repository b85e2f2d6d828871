"""Deterministic rollouts of every skill in lockstep (one batched policy call per step), and
the uniformly random policy they are compared with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from skillforge.core.envs import EVAL_SEED_OFFSET, episode_seed, make_env
from skillforge.core.positions import PositionProbe, position_probe
from skillforge.rl.features import FeatureReader, feature_reader
from skillforge.skills.library import SkillLibrary

RANDOM_POLICY_STREAM = 7  # the random baseline's action generator: its own stream of the seed


@dataclass
class SkillRollouts:
    """Deterministic rollouts of every skill: returns and the states they visited."""

    returns: np.ndarray  # (n_skills, episodes) extrinsic return
    lengths: np.ndarray  # (n_skills, episodes) steps per episode
    observations: list[np.ndarray] = field(default_factory=list)  # per skill, (T, obs_dim)
    positions: list[list[np.ndarray]] = field(default_factory=list)  # per skill, episode: (T+1, d)

    @property
    def mean_returns(self) -> np.ndarray:
        return self.returns.mean(axis=1)


def _rollout(
    env_id: str,
    n: int,
    episodes: int,
    seed: int,
    act: Callable[[np.ndarray, np.ndarray], np.ndarray],
    probe: PositionProbe | None,
    filmer=None,
    features: FeatureReader | None = None,
) -> SkillRollouts:
    """N envs in lockstep for `episodes` episodes: one `act(obs (active, obs_dim), rows)` call
    per step. Episode e resets every env with the same held-out seed. `filmer`, a
    `video.Filmer`, films episode 0. The visited states are kept as the discriminator sees
    them (`features`, or the observation)."""
    envs = [filmer.make_env() if filmer else make_env(env_id) for _ in range(n)]
    returns = np.zeros((n, episodes))
    lengths = np.zeros((n, episodes), dtype=np.int64)
    visited: list[list[np.ndarray]] = [[] for _ in range(n)]
    positions: list[list[np.ndarray]] = [[] for _ in range(n)]

    def record(row: int, obs: np.ndarray, trace: list[np.ndarray], episode: int, t: int) -> None:
        if probe is not None:
            trace.append(probe.read(envs[row].unwrapped, obs))
        if filmer is not None and episode == 0:
            filmer.capture(row, envs[row], t)

    try:
        for episode in range(episodes):
            reset_seed = episode_seed(seed + EVAL_SEED_OFFSET, episode)
            obs = np.stack([env.reset(seed=reset_seed)[0] for env in envs]).astype(np.float32)
            traces: list[list[np.ndarray]] = [[] for _ in range(n)]
            for row in range(n):
                record(row, obs[row], traces[row], episode, 0)
            running = np.ones(n, dtype=bool)
            while running.any():
                active = np.flatnonzero(running)
                actions = act(obs[active], active)  # one batched call for every running skill
                for i, row in enumerate(active):
                    next_obs, reward, terminated, truncated, _ = envs[row].step(actions[i])
                    returns[row, episode] += reward
                    lengths[row, episode] += 1
                    seen = features.read(envs[row].unwrapped, next_obs) if features else next_obs
                    visited[row].append(np.asarray(seen, dtype=np.float32))
                    obs[row] = next_obs
                    record(row, next_obs, traces[row], episode, int(lengths[row, episode]))
                    if terminated or truncated:
                        running[row] = False
            for row in range(n):
                if traces[row]:
                    positions[row].append(np.stack(traces[row]))
    finally:
        for env in envs:
            env.close()
    return SkillRollouts(returns, lengths, [np.stack(v) for v in visited], positions)


def rollout_skills(
    library: SkillLibrary, episodes: int = 1, seed: int = 0, filmer=None, act=None
) -> SkillRollouts:
    """Run each skill for `episodes` episodes; all skills step together (batched policy:
    `act(obs, skills)`, by default the deterministic `library.act`). The states kept are
    what the library's discriminator sees (its prior, if any)."""
    spec = library.spec
    features = feature_reader(spec.discriminator_features, spec.env_id, spec.obs_dim)
    probe = position_probe(spec.env_id)
    act = act or library.act
    return _rollout(spec.env_id, library.n_skills, episodes, seed, act, probe, filmer, features)


@lru_cache(maxsize=32)
def random_policy_paths(
    env_id: str, n_envs: int, episodes: int, seed: int
) -> tuple[np.ndarray, ...] | None:
    """Where a uniformly random policy goes over `n_envs` x `episodes` episodes on the same
    held-out seeds as the skills: one (T+1, d) position trace per episode (cached: it depends
    on nothing a training run changes). None where the env has no position probe."""
    probe = position_probe(env_id)
    if probe is None:
        return None
    env = make_env(env_id)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    rng = np.random.default_rng([seed, RANDOM_POLICY_STREAM])

    def act(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, size=(len(rows), len(low))).astype(np.float32)

    rollouts = _rollout(env_id, n_envs, episodes, seed, act, probe)
    return tuple(p for skill in rollouts.positions for p in skill)
