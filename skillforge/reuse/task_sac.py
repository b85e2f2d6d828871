"""SAC on a task's real reward: from scratch (the baseline), or starting from a frozen skill
(fine-tuning, DIAYN paper section 4.2.1). One loop serves both, so the two differ only in
where the policy starts.

Fine-tuning starts exactly at the skill: its policy is the library's network with the skill's
one-hot as a constant input, and with input weights for the task's extra observation entries
(goal, waypoint...) set to zero, so its first action is the skill's. It acts with that policy
from the first step (no random warm-up, which would forget nothing but waste the budget), and
while its fresh critics learn the skill's values (the first `learning_starts` updates) the
policy is held still: an untrained critic would otherwise pull it anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from skillforge.core.envs import EVAL_SEED_OFFSET, episode_seed
from skillforge.reuse.budget import TaskBudget
from skillforge.reuse.meta_selection import Validation
from skillforge.rl.callbacks import CallbackList
from skillforge.rl.nets import TanhGaussianPolicy
from skillforge.rl.replay import ReplayBuffer
from skillforge.rl.sac import SAC, make_optimizer, subnormals_flushed
from skillforge.skills.library import SkillLibrary


@dataclass(frozen=True)
class TaskSACSettings:
    """SAC's settings on a task; the same for the baseline and for fine-tuning."""

    hidden: int = 300
    batch_size: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    learning_starts: int = 10_000
    """Random steps before learning (from scratch); critic-only updates (fine-tuning)."""
    updates_per_step: float = 1.0
    """Gradient steps per env step, owed and taken whole (0.25: one every fourth step)."""


@dataclass
class TaskAgent:
    """A SAC agent and how it turns the task's observation into its input."""

    sac: SAC
    skill_code: np.ndarray  # (n_skills,) one-hot appended to the observation; (0,) from scratch
    from_skill: bool

    def state(self, obs: np.ndarray) -> np.ndarray:
        """The policy's input: the observation (batch or single), then the skill's one-hot."""
        obs = np.asarray(obs, dtype=np.float32)
        code = np.broadcast_to(self.skill_code, (*obs.shape[:-1], len(self.skill_code)))
        return np.concatenate([obs, code], axis=-1)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions (tanh of the mean), as a skill acts."""
        return self.sac.policy.deterministic(torch.from_numpy(self.state(obs))).numpy()

    def greedy_module(self) -> nn.Module:
        """The trained policy as a deployable module: task observation in, greedy action out."""
        return GreedyPolicy(self.sac.policy, self.skill_code).eval()


class GreedyPolicy(nn.Module):
    """A SAC policy with its constant skill input folded in: observation (batch, obs_dim) in,
    deterministic action (batch, action_dim) out."""

    def __init__(self, policy: TanhGaussianPolicy, skill_code: np.ndarray) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("skill_code", torch.as_tensor(skill_code, dtype=torch.float32)[None])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        code = self.skill_code.expand(obs.shape[0], -1)
        return self.policy.deterministic(torch.cat([obs, code], dim=-1))


def scratch_agent(env: gym.Env, settings: TaskSACSettings, seed: int) -> TaskAgent:
    """SAC with fresh networks on the task's observation drawn from `seed` (whatever ran
    before in the process), alpha learned from 1."""
    torch.manual_seed(seed)
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    sac = SAC(
        obs_dim,
        action_dim,
        settings.hidden,
        env.action_space.low,
        env.action_space.high,
        gamma=settings.gamma,
        tau=settings.tau,
        alpha=None,
    )
    return TaskAgent(sac, np.zeros(0, dtype=np.float32), from_skill=False)


def skill_agent(
    env: gym.Env, library: SkillLibrary, skill: int, settings: TaskSACSettings, alpha: float
) -> TaskAgent:
    """SAC whose policy is skill `skill` of `library` (the task may append observation
    entries: their input weights start at zero), alpha learned from the library's `alpha`."""
    spec = library.spec
    task_dim = env.observation_space.shape[0]
    sac = SAC(
        task_dim + spec.n_skills,
        spec.action_dim,
        spec.hidden,
        spec.action_low,
        spec.action_high,
        gamma=settings.gamma,
        tau=settings.tau,
        alpha=None,
    )
    with torch.no_grad():
        sac.log_alpha.fill_(math.log(max(alpha, 1e-3)))
        _load_widened(sac.policy, library.policy, spec.obs_dim, task_dim, spec.n_skills)
    code = np.zeros(spec.n_skills, dtype=np.float32)
    code[skill] = 1.0
    return TaskAgent(sac, code, from_skill=True)


def _load_widened(
    policy: TanhGaussianPolicy, skills: TanhGaussianPolicy, obs_dim: int, task_dim: int, n: int
) -> None:
    """Copy the skills' policy into `policy`, whose input is (task obs, one-hot) instead of
    (skill obs, one-hot): the columns of the task's extra entries stay zero."""
    state = {key: value.clone() for key, value in skills.state_dict().items()}
    first = state["net.0.weight"]  # (hidden, obs_dim + n)
    widened = torch.zeros(first.shape[0], task_dim + n)
    widened[:, :obs_dim] = first[:, :obs_dim]
    widened[:, task_dim:] = first[:, obs_dim:]
    state["net.0.weight"] = widened
    policy.load_state_dict(state)


@subnormals_flushed()
def train_task_sac(
    agent: TaskAgent,
    env: gym.Env,
    budget: TaskBudget,
    seed: int,
    settings: TaskSACSettings,
    callbacks=(),
    validation: Validation | None = None,
) -> list[float]:
    """Train `agent` on `env` until `budget` has no step available; returns the training
    episodes' returns (each also reported as `on_step(task env steps, {"return",
    "episode_length", "gradient_steps"})`; every step as `on_progress(task env steps)`).
    With `validation` (paying from the same budget), the greedy policy is checked every
    `validation.every` task env steps and at the end (until the budget is spent where no
    comparison follows), and the best policy is kept; the end's checks are reserved for as
    the longest episode seen grows."""
    callbacks = CallbackList(callbacks)
    torch.manual_seed(seed)
    sampler = torch.Generator().manual_seed(seed)
    sac = agent.sac
    state_dim = sac.policy.net[0].in_features
    action_dim = env.action_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    optimizer = make_optimizer(sac.parameters(), settings.lr, torch.device("cpu"))
    buffer = ReplayBuffer(min(budget.limit, 1_000_000), state_dim, action_dim)
    warm_up = min(settings.learning_starts, budget.available // 10)
    returns: list[float] = []
    callbacks.on_start({"step": budget.used, "total_steps": budget.limit})
    obs, _ = env.reset(seed=episode_seed(seed, 0))
    episode_return, episode_length, updates, step, owed = 0.0, 0, 0, 0, 0.0
    while budget.available >= 1:
        step += 1
        budget.spend(1)
        state = agent.state(obs)
        if step <= warm_up and not agent.from_skill:
            action = low + (high - low) * torch.rand(action_dim, generator=sampler).numpy()
        else:
            with torch.no_grad():
                action = sac.policy.explore(torch.from_numpy(state)[None])[0].numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(state, 0, action, reward, agent.state(next_obs), terminated)
        obs = next_obs
        episode_return += float(reward)
        episode_length += 1
        if step > warm_up:
            owed += settings.updates_per_step
        while owed >= 1:
            owed -= 1
            hold_policy = agent.from_skill and updates < settings.learning_starts
            _update(sac, optimizer, buffer.sample(settings.batch_size, sampler), hold_policy)
            updates += 1
        if terminated or truncated:
            returns.append(episode_return)
            report = {
                "return": episode_return,
                "episode_length": episode_length,
                "gradient_steps": updates,
            }
            callbacks.on_step(budget.used, report)
            if validation is not None:
                validation.reserve_for_the_end(episode_length)
            obs, _ = env.reset(seed=episode_seed(seed, len(returns)))
            episode_return, episode_length = 0.0, 0
        if validation is not None and validation.due(budget.used):
            _check(agent, validation, callbacks)
        callbacks.on_progress(budget.used)
    if validation is not None:
        validation.budget.release()
        _check(agent, validation, callbacks, until_spent=not validation.compares)
        if validation.best_state is not None:
            sac.policy.load_state_dict(validation.best_state)
    callbacks.on_end(returns)
    return returns


def _update(sac: SAC, optimizer: torch.optim.Optimizer, batch, hold_policy: bool) -> None:
    """One gradient step; the critics' alone while the policy is held still."""
    losses = sac.losses(batch.obs, batch.action, batch.reward, batch.next_obs, batch.terminated)
    loss = losses.critic if hold_policy else losses.critic + losses.actor + losses.alpha
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    sac.soft_update()


def _check(agent: TaskAgent, validation: Validation, callbacks, until_spent: bool = False) -> None:
    steps = validation.budget.used
    mean = validation.check(agent.sac.policy, agent.act, steps, until_spent)
    if mean is not None:  # None: the budget ended before any episode did
        callbacks.on_step(steps, {"validation_return": mean})


def greedy_play(make_env: Callable[[], gym.Env]):
    """`Validation.play` on a task: `act(obs)` gives actions."""

    def play(act, seed: int, episodes: int | None, budget: TaskBudget, callbacks=()) -> list[float]:
        return held_out_returns(make_env, act, seed, episodes, 0, budget, callbacks)

    return play


def held_out_returns(
    make_env: Callable[[], gym.Env],
    act: Callable[[np.ndarray], np.ndarray],
    seed: int,
    episodes: int | None,
    offset: int = EVAL_SEED_OFFSET,
    budget: TaskBudget | None = None,
    callbacks=(),
) -> list[float]:
    """Returns of `act` (observation -> action, greedy) on held-out episodes run to their end:
    episode j starts from `episode_seed(seed + offset, j)`, like every method's (by default
    the test episodes). With a `budget`, every step is paid from it and the episodes stop
    when it has none available (the one cut is not returned; `episodes` None: until then).
    Each episode done is reported as `on_progress(episodes so far)`."""
    callbacks = CallbackList(callbacks)
    env = make_env()
    returns = []
    try:
        episode = 0
        while episodes is None or episode < episodes:
            obs, _ = env.reset(seed=episode_seed(seed + offset, episode))
            total, done = 0.0, False
            while not done:
                if budget is not None:
                    if budget.available < 1:
                        return returns
                    budget.spend(1)
                obs, reward, terminated, truncated, _ = env.step(act(obs))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
            callbacks.on_progress(len(returns))
            episode += 1
    finally:
        env.close()
    return returns
