"""Baselines for a meta-controller at the same env-step budget: the best single skill,
random skill switching every K steps, and SAC from scratch on the raw action space."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from skillforge.core.envs import episode_seed
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy
from skillforge.rl.callbacks import CallbackList
from skillforge.rl.replay import ReplayBuffer
from skillforge.rl.sac import SAC, make_optimizer


def best_skill(envs: SkillActionEnvs, episodes: int, seed: int) -> tuple[int, np.ndarray]:
    """Run every skill alone; returns the best skill and each skill's mean return."""
    means = np.array(
        [
            np.mean(
                run_skill_policy(envs, lambda obs, rng, k=k: np.full(len(obs), k), seed, episodes)
            )
            for k in range(envs.n_skills)
        ]
    )
    return int(means.argmax()), means


def random_choice(n_skills: int):
    """A skill policy that picks a uniformly random skill in every lane."""
    return lambda obs, rng: rng.integers(n_skills, size=len(obs))


def random_skills(envs: SkillActionEnvs, env_steps: int, seed: int, callbacks=()) -> list[float]:
    """A uniformly random skill every K steps, for `env_steps` env steps."""
    callbacks = CallbackList(callbacks)
    callbacks.on_start({"step": 0, "total_steps": env_steps})
    returns = run_skill_policy(
        envs, random_choice(envs.n_skills), seed, env_steps=env_steps, callbacks=[callbacks]
    )
    callbacks.on_end(returns)
    return returns


def sac_from_scratch(
    env: gym.Env, env_steps: int, hidden: int, seed: int, callbacks=(), batch_size: int = 256
) -> list[float]:
    """SAC on the task's raw actions with the skills' network sizes; episode returns."""
    callbacks = CallbackList(callbacks)
    torch.manual_seed(seed)
    sampler = torch.Generator().manual_seed(seed)
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    sac = SAC(obs_dim, action_dim, hidden, low, high, alpha=None)
    optimizer = make_optimizer(sac.parameters(), 3e-4, torch.device("cpu"))
    buffer = ReplayBuffer(min(env_steps, 1_000_000), obs_dim, action_dim)
    learning_starts = min(10_000, env_steps // 10)
    returns: list[float] = []
    callbacks.on_start({"step": 0, "total_steps": env_steps})
    obs, _ = env.reset(seed=episode_seed(seed, 0))
    episode_return = 0.0
    for step in range(1, env_steps + 1):
        if step <= learning_starts:
            action = low + (high - low) * torch.rand(action_dim, generator=sampler).numpy()
        else:
            with torch.no_grad():
                state = torch.as_tensor(obs, dtype=torch.float32)[None]
                action = sac.policy.sample(state)[0][0].numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, 0, action, reward, next_obs, terminated)
        obs, episode_return = next_obs, episode_return + float(reward)
        if step > learning_starts:
            batch = buffer.sample(batch_size, sampler)
            losses = sac.losses(
                batch.obs, batch.action, batch.reward, batch.next_obs, batch.terminated
            )
            optimizer.zero_grad(set_to_none=True)
            (losses.critic + losses.actor + losses.alpha).backward()
            optimizer.step()
            sac.soft_update()
        if terminated or truncated:
            returns.append(episode_return)
            callbacks.on_step(step, {"return": episode_return})
            obs, _ = env.reset(seed=episode_seed(seed, len(returns)))
            episode_return = 0.0
    callbacks.on_end(returns)
    return returns
