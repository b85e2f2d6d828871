"""Refusals before anything is written: what this machine cannot hold or run."""

from __future__ import annotations

import math
import os

from skillforge.core.config import PretrainConfig
from skillforge.core.envs import make_env
from skillforge.core.errors import (
    ConfigError,
)
from skillforge.core.threads import free_cores_now
from skillforge.rl.features import feature_reader


def check_pretraining(config: PretrainConfig) -> None:
    """Everything about a pretraining run that can be refused before its run is created: it
    must learn something (`check_learning_starts`) and fit this machine (`check_resources`)."""
    check_learning_starts(config)
    check_resources(config)


def check_learning_starts(config: PretrainConfig) -> None:
    """Refuse a run that would end before its first gradient step: its skills would be the
    random networks they started as, registered as a finished library."""
    first_update = max(config.learning_starts + 1, config.batch_size)
    if config.total_steps >= first_update:
        return
    half = max(1, config.total_steps // 2)
    fix = " ".join(
        f"{option} {half}"
        for option, value in (
            ("--learning-starts", config.learning_starts + 1),
            ("--batch-size", config.batch_size),
        )
        if value > config.total_steps
    )
    raise ConfigError(
        f"--steps {config.total_steps:,} ends before the first gradient step (step "
        f"{first_update:,}: after --learning-starts {config.learning_starts:,} random steps, in "
        f"batches of --batch-size {config.batch_size}), so no skill would learn; pass e.g. "
        f"{fix}, or more --steps"
    )


def check_resources(config: PretrainConfig) -> None:
    """Refuse a configuration this machine cannot hold in memory (replay buffer, networks,
    a batch's activations), a device or thread count it cannot run, or a discriminator prior
    its env does not have, before anything starts."""
    from skillforge.rl.loop import resolve_device

    resolve_device(config.device)  # --device cuda without a CUDA device
    check_threads(config.threads)
    env = make_env(config.env_id)
    obs_dim = int(env.observation_space.shape[0])
    action_dim = int(env.action_space.shape[0])
    env.close()
    feature_reader(config.discriminator_features, config.env_id, obs_dim)  # fits this env?
    replay = config.buffer_size * (4 * (2 * obs_dim + action_dim + 2) + 8)
    hidden, inputs = config.hidden, obs_dim + config.n_skills
    layer = inputs * hidden + hidden * hidden
    parameters = layer + hidden * 2 * action_dim  # policy
    parameters += 4 * (layer + action_dim * hidden + hidden)  # twin critics and their targets
    parameters += obs_dim * hidden + hidden * hidden + hidden * config.n_skills  # discriminator
    networks = parameters * 4 * 4  # weights, gradients, two Adam moments
    activations = config.batch_size * (inputs + 4 * hidden + config.n_skills) * 4 * 8
    need = replay + networks + activations
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > 0.8 * have:
        raise ConfigError(
            f"this configuration needs about {need / 1e9:,.1f} GB of memory (replay buffer "
            f"{replay / 1e9:,.1f} GB, networks {networks / 1e9:,.1f} GB, a batch "
            f"{activations / 1e9:,.1f} GB) and this machine has {have / 1e9:,.1f} GB; "
            "lower --buffer-size, --skills, --hidden or --batch-size"
        )


def check_threads(threads: int) -> None:
    """Refuse a `--threads` below 0 or beyond what this machine can use (0: the free cores)."""
    cores = os.cpu_count() or 1
    if not 0 <= threads <= max(16, 4 * cores):
        raise ConfigError(
            f"--threads {threads} is not a thread count this machine can use ({cores} cores); "
            "use 0 (the cores other jobs leave free) or a number up to the cores"
        )


def use_threads(threads: int) -> None:
    """Give torch `threads` intra-op threads (0: the cores other jobs leave free now,
    `core.threads.free_cores_now`), and the ONNX sessions opened afterwards as many, after
    `check_threads`."""
    import torch

    check_threads(threads)
    torch.set_num_threads(threads or free_cores_now())


def check_store_timeout(store_timeout: float) -> None:
    if not (math.isfinite(store_timeout) and 0 <= store_timeout <= 7 * 24 * 3600):
        raise ConfigError(
            f"--store-timeout must be a number of seconds from 0 to one week, got {store_timeout}"
        )
