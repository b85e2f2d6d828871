"""METRA: Metric-Aware Abstraction (Park, Rybkin, Levine, ICLR 2024, arXiv 2310.08887).

A representation phi: S -> R^D is learned under the constraint that one environment step
moves at most one unit in it,

    ||phi(s') - phi(s)||^2 <= 1   for every transition (s, s'),

so distances in phi-space are (bounded by) temporal distances. A skill z is a direction in
that space; the policy pi(a|s,z) is trained by SAC to move far along it:

    r(s, s', z) = (phi(s') - phi(s))^T z.

For D discrete skills, z is the zero-centred one-hot code (one-hot minus 1/D), so each skill
moves towards its own axis and away from the others. The constraint is enforced by dual
gradient descent with slack eps: phi maximises

    E[ (phi(s') - phi(s))^T z + lambda * min(eps, 1 - ||phi(s') - phi(s)||^2) ],

and lambda = exp(log_lambda) (initially 30) minimises lambda * E[min(eps, 1 - ||...||^2)]:
it grows while steps in phi-space are longer than one unit and shrinks once they fit. Skills
spread out as far as the dynamics allow, with no hand-picked prior. The environment's reward
is never used for learning. The loop that collects experience is `skillforge.rl.loop.train`.

phi reads the observation normalised by the mean and spread of the random warm-up's
observations, fixed when learning starts (the authors use preset statistics of each env):
otherwise a position, which moves a few centimetres a step, is drowned by velocities that
change by metres per second, and phi never finds the one direction along which skills can
travel without bound.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skillforge.core.config import PretrainConfig
from skillforge.rl.nets import mlp, skill_state
from skillforge.rl.replay import Batch
from skillforge.rl.sac import skill_sac
from skillforge.rl.spec import LibrarySpec

INITIAL_LAMBDA = 30.0
SLACK = 1e-3
MIN_STD = 1e-2
"""Smallest spread phi's normaliser divides by (an observation entry the warm-up kept still)."""

METRIC_NAMES = (
    "phi_step_squared",
    "constraint_penalty",
    "lambda",
    "intrinsic_reward",
    "phi_loss",
    "critic_loss",
    "actor_loss",
    "alpha",
    "entropy",
)


def skill_code(skill: torch.Tensor, n_skills: int) -> torch.Tensor:
    """The zero-centred one-hot code of discrete skills: one-hot minus 1/D, (batch, D)."""
    return nn.functional.one_hot(skill, n_skills).float() - 1.0 / n_skills


def intrinsic_reward(phi_s: torch.Tensor, phi_next: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """r = (phi(s') - phi(s))^T z: how far one step moved along the skill's direction."""
    return ((phi_next - phi_s) * z).sum(dim=-1)


def constraint_penalty(phi_s: torch.Tensor, phi_next: torch.Tensor) -> torch.Tensor:
    """min(eps, 1 - ||phi(s') - phi(s)||^2): negative where a step is longer than one unit."""
    step_squared = (phi_next - phi_s).pow(2).sum(dim=-1)
    return (1.0 - step_squared).clamp(max=SLACK)


def phi_loss(reward: torch.Tensor, penalty: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """phi ascends the reward plus the penalty weighted by the (fixed) multiplier lambda."""
    return -(reward + lam.detach() * penalty).mean()


def lambda_loss(log_lambda: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """Dual descent: lambda rises while the constraint is violated (mean penalty < 0)."""
    return log_lambda * penalty.detach().mean()


class METRA(nn.Module):
    """The SAC agent over (observation, one-hot skill), the representation phi and lambda."""

    def __init__(self, spec: LibrarySpec, config: PretrainConfig) -> None:
        super().__init__()
        self.n_skills = spec.n_skills
        self.sac = skill_sac(spec, config)
        self.phi = mlp(spec.obs_dim, config.hidden, spec.n_skills)  # D = number of skills
        self.log_lambda = nn.Parameter(torch.tensor(math.log(INITIAL_LAMBDA)))
        self.register_buffer("obs_mean", torch.zeros(spec.obs_dim))
        self.register_buffer("obs_std", torch.ones(spec.obs_dim))

    def fit_normaliser(self, observations: torch.Tensor) -> None:
        """Fix phi's input statistics from the warm-up's observations, (n, obs_dim)."""
        self.obs_mean.copy_(observations.mean(dim=0))
        self.obs_std.copy_(observations.std(dim=0).clamp(min=MIN_STD))

    def represent(self, obs: torch.Tensor) -> torch.Tensor:
        """phi(s) of observations (batch, obs_dim) -> (batch, D)."""
        return self.phi((obs - self.obs_mean) / self.obs_std)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed loss of one METRA step and its metrics, shape (len(METRIC_NAMES),)."""
        z = skill_code(batch.skill, self.n_skills)  # (batch, D)
        phi_s, phi_next = self.represent(batch.obs), self.represent(batch.next_obs)  # (batch, D)
        reward = intrinsic_reward(phi_s, phi_next, z)
        penalty = constraint_penalty(phi_s, phi_next)
        lam = self.log_lambda.exp()
        representation_loss = phi_loss(reward, penalty, lam)
        dual_loss = lambda_loss(self.log_lambda, penalty)

        state = skill_state(batch.obs, batch.skill, self.n_skills)
        next_state = skill_state(batch.next_obs, batch.skill, self.n_skills)
        sac = self.sac.losses(state, batch.action, reward.detach(), next_state, batch.terminated)
        total = sac.critic + sac.actor + sac.alpha + representation_loss + dual_loss

        metrics = torch.stack(
            [
                (phi_next - phi_s).pow(2).sum(dim=-1).mean(),
                penalty.mean(),
                lam,
                reward.mean(),
                representation_loss,
                sac.critic,
                sac.actor,
                self.sac.alpha,
                -sac.log_pi.mean(),
            ]
        )
        return total, metrics.detach()
