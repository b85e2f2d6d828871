"""A point mass in the plane, for known-answer tests of skills that travel."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

ENV_ID = "SkillforgeTestPointMass-v0"
STEP = 0.1
"""Metres one step moves at full action."""
EPISODE_STEPS = 50


class PointMass(gym.Env):
    """Observation: the x-y position; action: a velocity in [-1, 1]^2 (0.1 m per step)."""

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.position = np.zeros(2, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-0.05, 0.05, 2).astype(np.float32)
        return self.position.copy(), {}

    def step(self, action):
        self.position = (self.position + STEP * np.clip(action, -1, 1)).astype(np.float32)
        return self.position.copy(), 0.0, False, False, {}


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=PointMass, max_episode_steps=EPISODE_STEPS)


def final_positions(act, episodes: int, seed: int = 0) -> np.ndarray:
    """Where `act(obs)` ends after one episode from each of `episodes` resets, (episodes, 2)."""
    env, ends = PointMass(), []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        for _ in range(EPISODE_STEPS):
            obs, *_ = env.step(act(obs))
        ends.append(obs)
    return np.array(ends)
