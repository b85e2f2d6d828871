"""Networks: a tanh-Gaussian policy, twin critics fused into one batched module, a discriminator.

Every network takes a "state" vector. For DIAYN the state is the observation concatenated with
the one-hot skill; the SAC code never needs to know that.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Two hidden ReLU layers, as in the DIAYN paper."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, out_dim),
    )


class TanhGaussianPolicy(nn.Module):
    """pi(a|s): a Gaussian squashed by tanh, then scaled to the action bounds."""

    def __init__(
        self, state_dim: int, action_dim: int, hidden: int, action_low, action_high
    ) -> None:
        super().__init__()
        self.net = mlp(state_dim, hidden, 2 * action_dim)
        low = torch.as_tensor(action_low, dtype=torch.float32)
        high = torch.as_tensor(action_high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log standard deviation of the pre-tanh Gaussian."""
        mean, log_std = self.net(state).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action in env units and its log-probability, shape (batch,)."""
        mean, log_std = self(state)
        noise = torch.randn_like(mean)
        squashed = torch.tanh(mean + log_std.exp() * noise)
        # log N(pre_tanh; mean, std) - log|d action / d pre_tanh|, summed over action dims;
        # (pre_tanh - mean) / std is the noise itself
        gaussian_log_prob = -0.5 * noise.pow(2) - log_std - _HALF_LOG_2PI
        log_det = torch.log(self.action_scale * (1 - squashed.pow(2)) + 1e-6)
        log_prob = (gaussian_log_prob - log_det).sum(-1)
        return squashed * self.action_scale + self.action_bias, log_prob

    def explore(self, state: torch.Tensor) -> torch.Tensor:
        """The action of `sample` alone (same noise draw), for acting in the environment."""
        mean, log_std = self(state)
        squashed = torch.tanh(mean + log_std.exp() * torch.randn_like(mean))
        return squashed * self.action_scale + self.action_bias

    def deterministic(self, state: torch.Tensor) -> torch.Tensor:
        """The mode used by frozen skills: tanh of the mean, scaled to the bounds."""
        mean, _ = self(state)
        return torch.tanh(mean) * self.action_scale + self.action_bias


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class TwinCritic(nn.Module):
    """Q1 and Q2 as one module: each layer is a batched matmul over the pair (fewer kernels)."""

    def __init__(self, in_dim: int, hidden: int, n_critics: int = 2) -> None:
        super().__init__()
        sizes = [(in_dim, hidden), (hidden, hidden), (hidden, 1)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in sizes:
            bound = 1 / math.sqrt(fan_in)  # nn.Linear's default initialisation
            self.weights.append(nn.Parameter(_uniform((n_critics, fan_in, fan_out), bound)))
            self.biases.append(nn.Parameter(_uniform((n_critics, 1, fan_out), bound)))

    def forward(
        self, state: torch.Tensor, action: torch.Tensor, detach_weights: bool = False
    ) -> torch.Tensor:
        """Q values, shape (n_critics, batch). `detach_weights` lets gradients reach only the
        inputs (the actor loss needs dQ/da, not dQ/dtheta)."""
        weights, biases = list(self.weights), list(self.biases)
        if detach_weights:
            weights, biases = [w.detach() for w in weights], [b.detach() for b in biases]
        x = torch.cat([state, action], dim=-1).unsqueeze(0)  # (1, batch, in_dim)
        x = x.expand(weights[0].shape[0], -1, -1)  # (n_critics, batch, in_dim)
        for weight, bias in zip(weights[:-1], biases[:-1], strict=True):
            x = torch.baddbmm(bias, x, weight).relu_()  # in place: baddbmm keeps its inputs
        # one output unit: multiply-and-sum beats a batched matmul with a width-1 result
        return (x * weights[-1].mT).sum(-1) + biases[-1].squeeze(-1)


def _uniform(shape: tuple[int, ...], bound: float) -> torch.Tensor:
    return torch.empty(shape).uniform_(-bound, bound)


class Discriminator(nn.Module):
    """q(z|s): logits over skills from the state alone (no skill input, no action)."""

    def __init__(self, obs_dim: int, n_skills: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, n_skills)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch, n_skills)."""
        return self.net(obs)


def skill_state(obs: torch.Tensor, skill: torch.Tensor, n_skills: int) -> torch.Tensor:
    """Concatenate observations (batch, obs_dim) with one-hot skills -> (batch, obs+N)."""
    return torch.cat([obs, F.one_hot(skill, n_skills).to(obs.dtype)], dim=-1)
