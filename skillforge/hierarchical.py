"""Reusing frozen skills: a skill-action env wrapper and a DQN meta-controller over it.

The wrapper turns any task into a Discrete(N) problem: action k runs skill k for K env steps.
The meta-controller is Double DQN (van Hasselt et al. 2016) with a replay buffer: off-policy
replay makes the most of a few thousand decisions (N skills, K steps each), where PPO would
need many more, and Q(s, .) over N skills is a single forward pass.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Protocol

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from skillforge.callbacks import CallbackList
from skillforge.config import HierarchicalConfig
from skillforge.envs import episode_seed
from skillforge.errors import EnvError
from skillforge.nets import mlp
from skillforge.replay import ReplayBuffer
from skillforge.sac import make_optimizer


class SkillSet(Protocol):
    """Anything that runs frozen skills: a SkillLibrary, registry models, an ONNX session."""

    n_skills: int
    obs_dim: int
    action_dim: int

    def act(self, obs: np.ndarray, skill: int) -> np.ndarray:
        """Deterministic action of `skill` for one observation (obs_dim,)."""


class SkillActionWrapper(gym.Wrapper):
    """Action space Discrete(N): action k runs skill k for `skill_steps` env steps, stopping
    early at termination or truncation; the reward is the task's reward summed over them.

    The skills read the first `skills.obs_dim` entries of the task's observation; the
    meta-controller sees all of it. `info["env_steps"]` says how many env steps ran.
    """

    def __init__(self, env: gym.Env, skills: SkillSet, skill_steps: int) -> None:
        super().__init__(env)
        if skill_steps < 1:
            raise ValueError(f"skill_steps must be >= 1, got {skill_steps}")
        check_compatible(env, skills)
        self.skills = skills
        self.skill_steps = skill_steps
        self.action_space = gym.spaces.Discrete(skills.n_skills)
        self._obs: np.ndarray | None = None

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, skill):
        skill = int(skill)
        if not 0 <= skill < self.skills.n_skills:
            raise ValueError(f"skill {skill} out of range 0..{self.skills.n_skills - 1}")
        total_reward, terminated, truncated, info, steps = 0.0, False, False, {}, 0
        while steps < self.skill_steps and not (terminated or truncated):
            action = self.skills.act(self._obs[: self.skills.obs_dim], skill)
            self._obs, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            steps += 1
        info = {**info, "env_steps": steps}
        return self._obs, total_reward, terminated, truncated, info


def check_compatible(env: gym.Env, skills: SkillSet) -> None:
    """Refuse a library learned on an env whose observation or action shapes differ."""
    obs_dim = env.observation_space.shape[0]
    action_dim = env.action_space.shape[0] if env.action_space.shape else None
    if obs_dim < skills.obs_dim or action_dim != skills.action_dim:
        raise EnvError(
            f"the skills take observations of {skills.obs_dim} and give actions of "
            f"{skills.action_dim}, but the task has observations of {obs_dim} and actions of "
            f"{action_dim}: the library was learned on another environment"
        )


def parameter_hash(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer: equal before and after means frozen."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class MetaController(torch.nn.Module):
    """Q(s, k) for every skill k."""

    def __init__(self, obs_dim: int, n_skills: int, hidden: int) -> None:
        super().__init__()
        self.q = mlp(obs_dim, hidden, n_skills)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values, shape (batch, n_skills)."""
        return self.q(obs)

    @torch.no_grad()
    def choose(self, obs: np.ndarray) -> int:
        """The greedy skill for one observation."""
        return int(self(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())


def dqn_loss(online, target, batch, gamma: float) -> torch.Tensor:
    """Double DQN: the online net picks the next skill, the target net values it."""
    q = online(batch.obs).gather(1, batch.skill[:, None]).squeeze(1)  # (batch,)
    with torch.no_grad():
        next_skill = online(batch.next_obs).argmax(dim=1, keepdim=True)
        next_q = target(batch.next_obs).gather(1, next_skill).squeeze(1)
        q_target = batch.reward + gamma * (1.0 - batch.terminated) * next_q
    return F.smooth_l1_loss(q, q_target)


def train_meta_controller(
    env: SkillActionWrapper, config: HierarchicalConfig, callbacks=()
) -> MetaController:
    """Train a meta-controller on `env` for `config.total_steps` env steps.

    Callbacks get `on_step(env_steps, {"return": R, "episode_length": T})` after each episode.
    """
    callbacks = CallbackList(callbacks)
    torch.manual_seed(config.seed)
    sampler = torch.Generator().manual_seed(config.seed)
    obs_dim, n_skills = env.observation_space.shape[0], env.action_space.n
    online = MetaController(obs_dim, n_skills, config.hidden)
    target = copy.deepcopy(online).requires_grad_(False)
    optimizer = make_optimizer(online.parameters(), config.lr, torch.device("cpu"))
    buffer = ReplayBuffer(config.buffer_size, obs_dim, action_dim=0)
    callbacks.on_start({"step": 0, "total_steps": config.total_steps, "agent": online})

    env_steps, episode, decisions = 0, 0, 0
    obs, _ = env.reset(seed=episode_seed(config.seed, episode))
    episode_return, episode_length = 0.0, 0
    while env_steps < config.total_steps:
        progress = env_steps / max(1.0, config.exploration_fraction * config.total_steps)
        epsilon = max(config.epsilon_end, 1.0 - (1.0 - config.epsilon_end) * progress)
        explore = (
            decisions < config.learning_starts or float(torch.rand(1, generator=sampler)) < epsilon
        )
        if explore:
            skill = int(torch.randint(n_skills, (1,), generator=sampler))
        else:
            skill = online.choose(obs)
        next_obs, reward, terminated, truncated, info = env.step(skill)
        buffer.add(obs, skill, np.zeros(0), reward, next_obs, terminated)
        decisions += 1
        env_steps += info["env_steps"]
        episode_return += reward
        episode_length += info["env_steps"]
        obs = next_obs

        if decisions >= config.learning_starts and len(buffer) >= config.batch_size:
            loss = dqn_loss(online, target, buffer.sample(config.batch_size, sampler), config.gamma)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                torch._foreach_lerp_(
                    list(target.parameters()), list(online.parameters()), config.tau
                )

        if terminated or truncated:
            callbacks.on_step(
                env_steps, {"return": episode_return, "episode_length": episode_length}
            )
            episode += 1
            obs, _ = env.reset(seed=episode_seed(config.seed, episode))
            episode_return, episode_length = 0.0, 0
    callbacks.on_end(online)
    return online.eval()


def run_skill_policy(
    env: SkillActionWrapper,
    choose_skill,
    seed: int,
    episodes: int | None = None,
    env_steps: int | None = None,
    callbacks=(),
) -> list[float]:
    """Episode returns when `choose_skill(obs, rng)` picks every skill, for a number of
    `episodes` or until `env_steps` are spent. Reports each episode like the trainer."""
    callbacks = CallbackList(callbacks)
    rng = np.random.default_rng(seed)
    returns: list[float] = []
    steps = 0
    while (episodes is None or len(returns) < episodes) and (
        env_steps is None or steps < env_steps
    ):
        obs, _ = env.reset(seed=episode_seed(seed, len(returns)))
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(choose_skill(obs, rng))
            total += reward
            length += info["env_steps"]
            done = terminated or truncated
        steps += length
        returns.append(total)
        callbacks.on_step(steps, {"return": total, "episode_length": length})
    return returns
