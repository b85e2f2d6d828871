"""DIAYN: Diversity Is All You Need (Eysenbach et al. 2018, arXiv 1802.06070).

A skill z ~ p(z) = Uniform(N) is drawn at the start of each episode and kept fixed. A
discriminator q(z|s) learns to tell which skill reached a state; the skill-conditioned
policy pi(a|s,z) is trained by SAC to maximise the pseudo-reward

    r(s', z) = log q(z|s') - log p(z)

so every skill seeks states the others do not visit. The environment's reward is never
used for learning (it is only logged, per skill, as "extrinsic return").
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from skillforge.callbacks import CallbackList
from skillforge.checkpoint import save_checkpoint
from skillforge.config import PretrainConfig
from skillforge.envs import episode_seed, make_env
from skillforge.errors import (
    CheckpointError,
    ConfigError,
    TrainingDiverged,
    TrainingInterrupted,
)
from skillforge.library import LibrarySpec
from skillforge.nets import Discriminator, skill_state
from skillforge.replay import Batch, ReplayBuffer
from skillforge.sac import SAC, make_optimizer
from skillforge.signals import StopRequest

METRIC_NAMES = (
    "discriminator_loss",
    "discriminator_accuracy",
    "log_q_z",
    "intrinsic_reward",
    "critic_loss",
    "actor_loss",
    "alpha",
    "entropy",
)


class DIAYN(nn.Module):
    """The SAC agent over (observation, one-hot skill) plus the discriminator q(z|s)."""

    def __init__(self, spec: LibrarySpec, config: PretrainConfig) -> None:
        super().__init__()
        self.n_skills = spec.n_skills
        self.log_p_z = -math.log(spec.n_skills)  # uniform prior p(z) = 1/N
        self.sac = SAC(
            spec.obs_dim + spec.n_skills,
            spec.action_dim,
            config.hidden,
            spec.action_low,
            spec.action_high,
            gamma=config.gamma,
            tau=config.tau,
            alpha=config.alpha,
        )
        self.discriminator = Discriminator(spec.obs_dim, spec.n_skills, config.hidden)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed loss of one DIAYN step and its metrics, shape (len(METRIC_NAMES),)."""
        logits = self.discriminator(batch.next_obs)  # (batch, n_skills)
        log_q_z = logits.log_softmax(dim=-1).gather(1, batch.skill[:, None]).squeeze(1)
        intrinsic_reward = log_q_z.detach() - self.log_p_z  # r = log q(z|s') - log p(z)
        discriminator_loss = -log_q_z.mean()  # maximum likelihood of the true skill

        state = skill_state(batch.obs, batch.skill, self.n_skills)
        next_state = skill_state(batch.next_obs, batch.skill, self.n_skills)
        sac = self.sac.losses(state, batch.action, intrinsic_reward, next_state, batch.terminated)
        total = sac.critic + sac.actor + sac.alpha + discriminator_loss

        accuracy = (logits.argmax(dim=-1) == batch.skill).float().mean()
        metrics = torch.stack(
            [
                discriminator_loss,
                accuracy,
                log_q_z.mean(),
                intrinsic_reward.mean(),
                sac.critic,
                sac.actor,
                self.sac.alpha,
                -sac.log_pi.mean(),
            ]
        )
        return total, metrics.detach()


def update(agent: DIAYN, optimizer: torch.optim.Optimizer, batch: Batch) -> torch.Tensor:
    """One gradient step on every network, then the soft target update. Returns metrics."""
    loss, metrics = agent.losses(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    agent.sac.soft_update()
    return metrics


@dataclass
class TrainResult:
    """What `train` returns: the trained agent and where its final checkpoint is."""

    agent: DIAYN
    spec: LibrarySpec
    step: int
    checkpoint_path: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class _Episode:
    """Counters that a checkpoint must carry to continue mid-episode."""

    index: int = -1
    skill: int = 0
    actions: list[np.ndarray] = field(default_factory=list)
    extrinsic_return: float = 0.0


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA device; use cpu")
    return torch.device(name)


def train(
    config: PretrainConfig,
    checkpoint_path: str,
    callbacks=(),
    resume_state: dict | None = None,
) -> TrainResult:
    """Pretrain a skill library with DIAYN; resume exactly from `resume_state` if given."""
    callbacks = CallbackList(callbacks)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    sampler = torch.Generator().manual_seed(config.seed)  # replay indices, skills, warm-up

    env = make_env(config.env_id)
    spec = LibrarySpec.from_env(config.env_id, env, config.n_skills, config.hidden)
    agent = DIAYN(spec, config).to(device)
    optimizer = make_optimizer(agent.parameters(), config.lr, device)
    buffer = ReplayBuffer(config.buffer_size, spec.obs_dim, spec.action_dim)
    episode, step = _Episode(), 0
    if resume_state is not None:
        step = _restore(resume_state, agent, optimizer, buffer, sampler, episode, device)
    else:
        _next_episode(episode, sampler, config.n_skills)
    obs = _reset_env(env, config.seed, episode)

    policy_input = np.zeros(spec.obs_dim + spec.n_skills, dtype=np.float32)
    window = _MetricWindow(len(METRIC_NAMES), device)
    if resume_state is not None and "metric_window" in resume_state:
        window.load_state_dict(resume_state["metric_window"], step)
    callbacks.on_start(
        {"step": step, "total_steps": config.total_steps, "spec": spec, "agent": agent}
    )

    def checkpoint() -> str:
        _assert_finite(agent, step)
        state = _checkpoint_state(config, spec, step, episode, agent, optimizer, buffer, sampler)
        state["metric_window"] = window.state_dict()  # the next report averages the same steps
        path = str(save_checkpoint(state, checkpoint_path))
        callbacks.on_checkpoint(path, step)
        return path

    last_checkpoint_step = step
    with StopRequest() as stop:
        while step < config.total_steps:
            if step < config.learning_starts:
                low, high = spec.action_low_array, spec.action_high_array
                action = low + (high - low) * torch.rand(spec.action_dim, generator=sampler).numpy()
            else:
                policy_input[: spec.obs_dim] = obs
                policy_input[spec.obs_dim :] = 0.0
                policy_input[spec.obs_dim + episode.skill] = 1.0
                with torch.no_grad():
                    state = torch.from_numpy(policy_input).to(device)[None]
                    action = agent.sac.policy.explore(state)[0].cpu().numpy()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add(obs, episode.skill, action, reward, next_obs, terminated)
            episode.actions.append(np.asarray(action, dtype=np.float32))
            episode.extrinsic_return += float(reward)
            obs = next_obs
            step += 1

            if step > config.learning_starts and len(buffer) >= config.batch_size:
                batch = buffer.sample(config.batch_size, sampler, device)
                window.add(update(agent, optimizer, batch))

            if terminated or truncated:
                window.episode_done(episode.skill, episode.extrinsic_return, len(episode.actions))
                _next_episode(episode, sampler, config.n_skills)
                obs = _reset_env(env, config.seed, episode)

            if step % config.log_every == 0 or step == config.total_steps:
                callbacks.on_step(step, window.report(step))
            if step % config.checkpoint_every == 0:
                checkpoint()
                last_checkpoint_step = step
            if stop:
                path = checkpoint() if last_checkpoint_step != step else checkpoint_path
                env.close()
                raise TrainingInterrupted(step, path)

    path = checkpoint() if last_checkpoint_step != step else checkpoint_path
    env.close()
    result = TrainResult(agent, spec, step, path, window.last_report)
    callbacks.on_end(result)
    return result


def _next_episode(episode: _Episode, sampler: torch.Generator, n_skills: int) -> None:
    """Draw z ~ Uniform(N) for a new episode."""
    episode.index += 1
    episode.skill = int(torch.randint(n_skills, (1,), generator=sampler))
    episode.actions = []
    episode.extrinsic_return = 0.0


def _reset_env(env, seed: int, episode: _Episode) -> np.ndarray:
    """Reset with the episode's own seed and replay its actions so far (exact resume)."""
    obs, _ = env.reset(seed=episode_seed(seed, episode.index))
    episode.extrinsic_return = 0.0
    for action in episode.actions:
        obs, reward, *_ = env.step(action)
        episode.extrinsic_return += float(reward)
    return obs


class _MetricWindow:
    """Averages of update metrics and episode statistics since the last report."""

    def __init__(self, n_metrics: int, device: torch.device) -> None:
        self.device = device
        self.n_metrics = n_metrics
        self.last_report: dict[str, float] = {}
        self._reset(time.perf_counter(), None)

    def _reset(self, now: float, step: int | None) -> None:
        self.sums = torch.zeros(self.n_metrics, device=self.device)
        self.updates = 0
        self.returns: dict[int, list[float]] = defaultdict(list)
        self.lengths: list[int] = []
        self.started, self.start_step = now, step

    def state_dict(self) -> dict:
        """The window so far, for checkpoints: after a resume the next report averages the
        same updates and episodes as an uninterrupted run (its timing restarts)."""
        return {
            "sums": self.sums.cpu(),
            "updates": self.updates,
            "returns": {int(skill): list(returns) for skill, returns in self.returns.items()},
            "lengths": list(self.lengths),
            "timed": self.start_step is not None,
        }

    def load_state_dict(self, state: dict, step: int) -> None:
        try:
            self.sums = state["sums"].to(self.device).reshape(self.n_metrics)
            self.updates = int(state["updates"])
            returns = {int(k): [float(r) for r in v] for k, v in state["returns"].items()}
            self.returns = defaultdict(list, returns)
            self.lengths = [int(length) for length in state["lengths"]]
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as error:
            raise CheckpointError(f"checkpoint has an unreadable metric window ({error})") from None
        if state.get("timed"):
            self.started, self.start_step = time.perf_counter(), step

    def add(self, metrics: torch.Tensor) -> None:
        self.sums += metrics  # stays on the device: no synchronisation per step
        self.updates += 1

    def episode_done(self, skill: int, extrinsic_return: float, length: int) -> None:
        self.returns[skill].append(extrinsic_return)
        self.lengths.append(length)

    def report(self, step: int) -> dict[str, float]:
        now = time.perf_counter()
        report: dict[str, float] = {}
        if self.updates:
            means = (self.sums / self.updates).tolist()
            for name, value in zip(METRIC_NAMES, means, strict=True):
                if not math.isfinite(value):
                    raise TrainingDiverged(f"{name} became {value} by step {step:,}")
                report[name] = value
        if self.start_step is not None and now > self.started:
            report["steps_per_second"] = (step - self.start_step) / (now - self.started)
        if self.lengths:
            all_returns = [r for returns in self.returns.values() for r in returns]
            report["extrinsic_return"] = float(np.mean(all_returns))
            report["episode_length"] = float(np.mean(self.lengths))
            for skill, returns in self.returns.items():
                report[f"extrinsic_return/skill_{skill:02d}"] = float(np.mean(returns))
        self.last_report = report
        self._reset(now, step)
        return report


def _assert_finite(agent: DIAYN, step: int) -> None:
    """Refuse to checkpoint NaN or inf weights (the previous checkpoint stays the last good)."""
    for name, tensor in agent.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise TrainingDiverged(f"weights {name} became non-finite by step {step:,}")


def _checkpoint_state(config, spec, step, episode, agent, optimizer, buffer, sampler) -> dict:
    from skillforge import __version__

    state = {
        "skillforge_version": __version__,
        "config": config.to_dict(),
        "spec": spec.to_dict(),
        "step": step,
        "episode": {
            "index": episode.index,
            "skill": episode.skill,
            "actions": torch.as_tensor(np.array(episode.actions, dtype=np.float32)).reshape(
                len(episode.actions), spec.action_dim
            ),
        },
        "agent": agent.state_dict(),
        "optimizer": optimizer.state_dict(),
        "replay": buffer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "sampler_rng": sampler.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _restore(state, agent, optimizer, buffer, sampler, episode, device) -> int:
    try:
        agent.load_state_dict(state["agent"])
        optimizer.load_state_dict(state["optimizer"])
        buffer.load_state_dict(state["replay"])
        torch.set_rng_state(state["torch_rng"])
        sampler.set_state(state["sampler_rng"])
        if "cuda_rng" in state and device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        episode.index = int(state["episode"]["index"])
        episode.skill = int(state["episode"]["skill"])
        episode.actions = list(state["episode"]["actions"].numpy())
        return int(state["step"])
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(f"checkpoint does not fit this configuration ({error})") from None
