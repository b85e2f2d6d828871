"""Soft actor-critic (Haarnoja et al. 2018), reward-agnostic: the caller supplies the reward.

DIAYN feeds it the discriminator's reward; the SAC baseline of `hierarchical` feeds it the
environment's. States are whatever the caller builds (DIAYN: observation + one-hot skill).
"""

from __future__ import annotations

import contextlib
import copy
from typing import NamedTuple

import torch
from torch import nn

from skillforge.core.config import PretrainConfig
from skillforge.rl.nets import TanhGaussianPolicy, TwinCritic
from skillforge.rl.spec import LibrarySpec


class SACLosses(NamedTuple):
    critic: torch.Tensor
    actor: torch.Tensor
    alpha: torch.Tensor
    log_pi: torch.Tensor  # (batch,) log pi(a|s) of fresh actions, for logging


class SAC(nn.Module):
    """Policy, twin critics with their targets, and the entropy coefficient alpha."""

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        hidden: int,
        action_low,
        action_high,
        gamma: float = 0.99,
        tau: float = 0.005,
        alpha: float | None = 0.1,
    ) -> None:
        super().__init__()
        self.gamma, self.tau = gamma, tau
        self.policy = TanhGaussianPolicy(state_dim, action_dim, hidden, action_low, action_high)
        self.critic = TwinCritic(state_dim + action_dim, hidden)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.learn_alpha = alpha is None
        if self.learn_alpha:
            self.log_alpha = nn.Parameter(torch.zeros(()))
        else:
            self.register_buffer("fixed_alpha", torch.tensor(float(alpha)))
        self.target_entropy = -float(action_dim)

    @property
    def alpha(self) -> torch.Tensor:
        """The entropy coefficient, detached from the graph."""
        return self.log_alpha.detach().exp() if self.learn_alpha else self.fixed_alpha

    def losses(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_state: torch.Tensor,
        terminated: torch.Tensor,
    ) -> SACLosses:
        """Critic, actor and temperature losses from the same parameters (one backward pass).

        As in the reference SAC implementation, all three use the parameters before this
        step's update. Truncated episodes were stored with terminated=0, so they bootstrap.
        """
        alpha = self.alpha
        with torch.no_grad():
            next_action, next_log_pi = self.policy.sample(next_state)
            next_q = self.target_critic(next_state, next_action).amin(dim=0)  # min of the twins
            soft_next_value = next_q - alpha * next_log_pi
            q_target = reward + self.gamma * (1.0 - terminated) * soft_next_value  # (batch,)
        q = self.critic(state, action)  # (2, batch)
        critic_loss = 0.5 * (q - q_target).pow(2).mean(dim=1).sum()

        new_action, log_pi = self.policy.sample(state)
        q_new = self.critic(state, new_action, detach_weights=True).amin(dim=0)
        actor_loss = (alpha * log_pi - q_new).mean()

        if self.learn_alpha:
            alpha_loss = -(self.log_alpha * (log_pi.detach() + self.target_entropy)).mean()
        else:
            alpha_loss = torch.zeros((), device=state.device)
        return SACLosses(critic_loss, actor_loss, alpha_loss, log_pi.detach())

    def soft_update(self) -> None:
        """theta_target <- (1 - tau) theta_target + tau theta."""
        soft_update(self.target_critic, self.critic, self.tau)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging of a target network: target <- (1 - tau) target + tau source."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def make_optimizer(parameters, lr: float, device: torch.device) -> torch.optim.Adam:
    """One Adam over every trainable tensor, fused into a few kernels where torch supports it."""
    params = [p for p in parameters if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


SUBNORMAL = 1e-39
"""Below float32's smallest normal number (1.2e-38)."""


def subnormals_flushed_now() -> bool:
    """Whether this thread flushes subnormal floats to zero (torch has no getter)."""
    return (torch.tensor([SUBNORMAL]) * 1.0).item() == 0.0


@contextlib.contextmanager
def subnormals_flushed():
    """While training (a context manager or a decorator): subnormal floats flushed to zero
    in this thread, then the thread's own setting back. Late in a run Adam's second moments
    of tiny gradients fall below 1.2e-38, and arithmetic on them is many times slower on x86
    (`benchmarks/bench_denormals.py`); numbers that small change no result, but code outside
    training (a user's, a test library's) may rely on them, so the setting does not leak."""
    before = subnormals_flushed_now()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def skill_sac(spec: LibrarySpec, config: PretrainConfig) -> SAC:
    """The SAC agent of a skill library: states are (observation, one-hot skill)."""
    return SAC(
        spec.obs_dim + spec.n_skills,
        spec.action_dim,
        config.hidden,
        spec.action_low,
        spec.action_high,
        gamma=config.gamma,
        tau=config.tau,
        alpha=config.alpha,
    )
