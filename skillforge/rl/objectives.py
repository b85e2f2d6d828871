"""The skill-discovery objectives behind one small interface the training loop calls.

Each objective is an `nn.Module` with a `sac` (the skill-conditioned SAC agent) and a
`losses(batch) -> (loss, metrics)` method; `update` takes one gradient step on any of them.
DIAYN (`skillforge.rl.diayn`) rewards skills that can be told apart; METRA
(`skillforge.rl.metra`) rewards skills that travel far in a temporal-distance space.
"""

from __future__ import annotations

import torch
from torch import nn

from skillforge.core.config import PretrainConfig
from skillforge.rl import diayn, metra
from skillforge.rl.replay import Batch
from skillforge.rl.spec import LibrarySpec

AGENTS = {"diayn": diayn.DIAYN, "metra": metra.METRA}
METRIC_NAMES = {"diayn": diayn.METRIC_NAMES, "metra": metra.METRIC_NAMES}


def make_agent(spec: LibrarySpec, config: PretrainConfig) -> nn.Module:
    """The untrained agent of `config.objective`."""
    return AGENTS[config.objective](spec, config)


def update(agent: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch) -> torch.Tensor:
    """One gradient step on every network, then the soft target update. Returns metrics."""
    loss, metrics = agent.losses(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    agent.sac.soft_update()
    return metrics
