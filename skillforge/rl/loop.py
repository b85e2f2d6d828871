"""The pretraining loop: collect experience with the skill-conditioned policy in one or more
env copies, update the objective (`skillforge.rl.objectives`: DIAYN or METRA) at its rate,
report and checkpoint through callbacks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from skillforge.core.config import PretrainConfig
from skillforge.core.envs import episode_seed, make_env
from skillforge.core.errors import ConfigError, TrainingInterrupted
from skillforge.core.threads import FreeCoreThreads
from skillforge.rl.callbacks import CallbackList
from skillforge.rl.checkpoint import save_checkpoint
from skillforge.rl.features import feature_reader
from skillforge.rl.metric_window import MetricWindow
from skillforge.rl.objectives import METRIC_NAMES, make_agent, update
from skillforge.rl.replay import ReplayBuffer
from skillforge.rl.sac import make_optimizer, subnormals_flushed
from skillforge.rl.signals import StopRequest
from skillforge.rl.spec import LibrarySpec
from skillforge.rl.training_state import Episode, TrainingState


@dataclass
class TrainResult:
    """What `train` returns: the trained agent and where its final checkpoint is."""

    agent: nn.Module
    spec: LibrarySpec
    step: int
    checkpoint_path: str
    config: PretrainConfig
    """The run's config as it ended (an episode budget fixes `total_steps`)."""
    metrics: dict[str, float] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA device; use cpu")
    return torch.device(name)


def new_training_state(config: PretrainConfig, spec: LibrarySpec) -> TrainingState:
    """A fresh run's state: networks, optimiser, empty replay, generators seeded."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    agent = make_agent(spec, config).to(device)
    return TrainingState(
        config=config,
        spec=spec,
        agent=agent,
        optimizer=make_optimizer(agent.parameters(), config.lr, device),
        buffer=ReplayBuffer(config.buffer_size, spec.obs_dim, spec.action_dim, spec.feature_dim),
        sampler=torch.Generator().manual_seed(config.seed),
        window=MetricWindow(METRIC_NAMES[config.objective], device),
        device=device,
    )


def make_training_envs(config: PretrainConfig) -> list[gym.Env]:
    """`config.envs` copies of the env, episodes cut at `config.max_episode_steps` if set."""
    limit = {"max_episode_steps": config.max_episode_steps} if config.max_episode_steps else {}
    return [make_env(config.env_id, **limit) for _ in range(config.envs)]


@subnormals_flushed()
def train(
    config: PretrainConfig,
    checkpoint_path: str,
    callbacks=(),
    resume_state: dict | None = None,
) -> TrainResult:
    """Pretrain a skill library with `config.objective`; resume exactly from `resume_state`.

    `config.envs` copies of the env step in lockstep (one batched policy call); gradient
    steps are owed at `config.updates_per_step` per env step and taken whole."""
    if config.threads:
        torch.set_num_threads(config.threads)
    else:
        callbacks = [FreeCoreThreads(config.batch_size * config.hidden**2), *callbacks]
    callbacks = CallbackList(callbacks)
    envs = make_training_envs(config)
    obs_dim = int(envs[0].observation_space.shape[0])
    features = feature_reader(config.discriminator_features, config.env_id, obs_dim)
    spec = LibrarySpec.from_env(
        config.env_id,
        envs[0],
        config.n_skills,
        config.hidden,
        config.discriminator_features,
        features.dim if features is not None else 0,
    )
    run = new_training_state(config, spec)
    if resume_state is not None:
        run.load_state_dict(resume_state)
    else:
        run.episodes = [Episode() for _ in envs]
        for episode in run.episodes:
            run.start_episode(episode)
    observations = np.stack(
        [
            _reset_env(env, config.seed, episode)
            for env, episode in zip(envs, run.episodes, strict=True)
        ]
    )
    agent, buffer, device = run.agent, run.buffer, run.device

    policy_input = np.zeros((len(envs), spec.obs_dim + spec.n_skills), dtype=np.float32)
    callbacks.on_start(
        {
            "step": run.step,
            "total_steps": config.total_steps,
            "total_episodes": config.total_episodes,
            "episodes": run.finished_episodes,
            "spec": spec,
            "agent": agent,
            "label": config.objective.upper(),
            "total_seconds": config.total_minutes * 60,
            "seconds": run.seconds,
        }
    )

    def checkpoint() -> str:
        run.assert_finite()
        path = str(save_checkpoint(run.state_dict(), checkpoint_path))
        callbacks.on_checkpoint(path, run.step)
        return path

    last_checkpoint_step = run.step
    ended: list[int] = []  # envs whose episode ended this step
    clock = time.perf_counter() - run.seconds  # training time continues across sessions
    with StopRequest() as stop:
        while not config.budget_reached(run.step, run.finished_episodes, run.seconds):
            actions = _actions(run, observations, policy_input)
            for i, (env, episode, action) in enumerate(
                zip(envs, run.episodes, actions, strict=True)
            ):
                next_obs, reward, terminated, truncated, _ = env.step(action)
                seen = features.read(env.unwrapped, next_obs) if features is not None else None
                buffer.add(
                    observations[i], episode.skill, action, reward, next_obs, terminated, seen
                )
                episode.actions.append(action)
                episode.extrinsic_return += float(reward)
                observations[i] = next_obs
                if terminated or truncated:  # truncation is stored as not terminated: bootstrapped
                    run.window.episode_done(
                        episode.skill, episode.extrinsic_return, len(episode.actions)
                    )
                    ended.append(i)
            previous, step = run.step, run.step + len(envs)
            run.step = step

            if step > config.learning_starts and len(buffer) >= config.batch_size:
                if run.gradient_steps == 0 and hasattr(agent, "fit_normaliser"):
                    agent.fit_normaliser(buffer.obs[: len(buffer)].to(device))  # the warm-up
                run.update_credit += config.updates_per_step * len(envs)
                while run.update_credit >= 1.0:
                    run.update_credit -= 1.0
                    batch = buffer.sample(config.batch_size, run.sampler, device)
                    run.window.add(update(agent, run.optimizer, batch))
                    run.gradient_steps += 1
            for i in ended:  # after the updates: the sampler's order of the one-env loop
                run.start_episode(run.episodes[i])
                observations[i] = _reset_env(envs[i], config.seed, run.episodes[i])
            ended.clear()
            run.seconds = time.perf_counter() - clock

            done = config.budget_reached(step, run.finished_episodes, run.seconds)
            if done and step < config.total_steps:  # the episode or time budget ended it
                config = run.config = config.replace(total_steps=step)
            if _crossed(previous, step, config.log_every) or done:
                report = run.window.report(step)
                counts = {"episodes": run.finished_episodes, "gradient_steps": run.gradient_steps}
                callbacks.on_step(step, {**report, **counts})
            if _crossed(previous, step, config.checkpoint_every):
                checkpoint()
                last_checkpoint_step = step
            if stop:
                path = checkpoint() if last_checkpoint_step != step else checkpoint_path
                _close(envs)
                raise TrainingInterrupted(step, path)

    path = checkpoint() if last_checkpoint_step != run.step else checkpoint_path
    _close(envs)
    result = TrainResult(agent, spec, run.step, path, config, run.window.last_report)
    callbacks.on_end(result)
    return result


def _actions(run: TrainingState, observations: np.ndarray, policy_input: np.ndarray) -> np.ndarray:
    """One action per env: uniformly random during the warm-up, else the policy's sample."""
    spec = run.spec
    if run.step < run.config.learning_starts:
        low, high = spec.action_low_array, spec.action_high_array
        uniform = [torch.rand(spec.action_dim, generator=run.sampler).numpy() for _ in observations]
        return (low + (high - low) * np.stack(uniform)).astype(np.float32)
    policy_input[:, : spec.obs_dim] = observations
    policy_input[:, spec.obs_dim :] = 0.0
    skills = [episode.skill for episode in run.episodes]
    policy_input[np.arange(len(skills)), spec.obs_dim + np.array(skills)] = 1.0
    with torch.no_grad():
        state = torch.from_numpy(policy_input).to(run.device)
        return run.agent.sac.policy.explore(state).cpu().numpy()


def _crossed(previous: int, step: int, every: int) -> bool:
    """True when a multiple of `every` lies in (previous, step]."""
    return step // every > previous // every


def _close(envs: list[gym.Env]) -> None:
    for env in envs:
        env.close()


def _reset_env(env, seed: int, episode: Episode) -> np.ndarray:
    """Reset with the episode's own seed and replay its actions so far (exact resume)."""
    obs, _ = env.reset(seed=episode_seed(seed, episode.index))
    episode.extrinsic_return = 0.0
    for action in episode.actions:
        obs, reward, *_ = env.step(action)
        episode.extrinsic_return += float(reward)
    return obs
