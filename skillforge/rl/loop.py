"""The pretraining loop: collect experience with the skill-conditioned policy, update DIAYN
(`skillforge.rl.diayn`) once per environment step, report and checkpoint through callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from skillforge.core.config import PretrainConfig
from skillforge.core.envs import episode_seed, make_env
from skillforge.core.errors import ConfigError, TrainingInterrupted
from skillforge.rl.callbacks import CallbackList
from skillforge.rl.checkpoint import save_checkpoint
from skillforge.rl.diayn import DIAYN, METRIC_NAMES, update
from skillforge.rl.features import feature_reader
from skillforge.rl.metric_window import MetricWindow
from skillforge.rl.replay import ReplayBuffer
from skillforge.rl.sac import make_optimizer
from skillforge.rl.signals import StopRequest
from skillforge.rl.spec import LibrarySpec
from skillforge.rl.training_state import Episode, TrainingState


@dataclass
class TrainResult:
    """What `train` returns: the trained agent and where its final checkpoint is."""

    agent: DIAYN
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
    agent = DIAYN(spec, config).to(device)
    return TrainingState(
        config=config,
        spec=spec,
        agent=agent,
        optimizer=make_optimizer(agent.parameters(), config.lr, device),
        buffer=ReplayBuffer(config.buffer_size, spec.obs_dim, spec.action_dim, spec.feature_dim),
        sampler=torch.Generator().manual_seed(config.seed),
        window=MetricWindow(METRIC_NAMES, device),
        device=device,
    )


def train(
    config: PretrainConfig,
    checkpoint_path: str,
    callbacks=(),
    resume_state: dict | None = None,
) -> TrainResult:
    """Pretrain a skill library with DIAYN; resume exactly from `resume_state` if given."""
    callbacks = CallbackList(callbacks)
    if config.threads:
        torch.set_num_threads(config.threads)
    env = make_env(config.env_id)
    obs_dim = int(env.observation_space.shape[0])
    features = feature_reader(config.discriminator_features, config.env_id, obs_dim)
    spec = LibrarySpec.from_env(
        config.env_id,
        env,
        config.n_skills,
        config.hidden,
        config.discriminator_features,
        features.dim if features is not None else 0,
    )
    run = new_training_state(config, spec)
    if resume_state is not None:
        run.load_state_dict(resume_state)
    else:
        run.episode.next(run.sampler, config.n_skills)
    obs = _reset_env(env, config.seed, run.episode)
    agent, buffer, episode, device = run.agent, run.buffer, run.episode, run.device

    policy_input = np.zeros(spec.obs_dim + spec.n_skills, dtype=np.float32)  # (obs, one-hot z)
    callbacks.on_start(
        {"step": run.step, "total_steps": config.total_steps, "spec": spec, "agent": agent}
    )

    def checkpoint() -> str:
        run.assert_finite()
        path = str(save_checkpoint(run.state_dict(), checkpoint_path))
        callbacks.on_checkpoint(path, run.step)
        return path

    last_checkpoint_step = run.step
    with StopRequest() as stop:
        while not config.budget_reached(run.step, episode.index):
            if run.step < config.learning_starts:
                low, high = spec.action_low_array, spec.action_high_array
                uniform = torch.rand(spec.action_dim, generator=run.sampler).numpy()
                action = low + (high - low) * uniform
            else:
                policy_input[: spec.obs_dim] = obs
                policy_input[spec.obs_dim :] = 0.0
                policy_input[spec.obs_dim + episode.skill] = 1.0
                with torch.no_grad():
                    policy_state = torch.from_numpy(policy_input).to(device)[None]
                    action = agent.sac.policy.explore(policy_state)[0].cpu().numpy()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            seen = features.read(env.unwrapped, next_obs) if features is not None else None
            buffer.add(obs, episode.skill, action, reward, next_obs, terminated, seen)
            episode.actions.append(np.asarray(action, dtype=np.float32))
            episode.extrinsic_return += float(reward)
            obs = next_obs
            run.step += 1
            step = run.step

            if step > config.learning_starts and len(buffer) >= config.batch_size:
                batch = buffer.sample(config.batch_size, run.sampler, device)
                run.window.add(update(agent, run.optimizer, batch))

            if terminated or truncated:  # truncation is stored as not terminated: bootstrapped
                run.window.episode_done(
                    episode.skill, episode.extrinsic_return, len(episode.actions)
                )
                episode.next(run.sampler, config.n_skills)
                obs = _reset_env(env, config.seed, episode)

            done = config.budget_reached(step, episode.index)
            if done and step < config.total_steps:  # the episode budget ended it
                config = run.config = config.replace(total_steps=step)
            if step % config.log_every == 0 or done:
                callbacks.on_step(step, {**run.window.report(step), "episodes": episode.index})
            if step % config.checkpoint_every == 0:
                checkpoint()
                last_checkpoint_step = step
            if stop:
                path = checkpoint() if last_checkpoint_step != step else checkpoint_path
                env.close()
                raise TrainingInterrupted(step, path)

    path = checkpoint() if last_checkpoint_step != run.step else checkpoint_path
    env.close()
    result = TrainResult(agent, spec, run.step, path, config, run.window.last_report)
    callbacks.on_end(result)
    return result


def _reset_env(env, seed: int, episode: Episode) -> np.ndarray:
    """Reset with the episode's own seed and replay its actions so far (exact resume)."""
    obs, _ = env.reset(seed=episode_seed(seed, episode.index))
    episode.extrinsic_return = 0.0
    for action in episode.actions:
        obs, reward, *_ = env.step(action)
        episode.extrinsic_return += float(reward)
    return obs
