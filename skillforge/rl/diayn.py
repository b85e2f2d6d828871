"""DIAYN: Diversity Is All You Need (Eysenbach et al. 2018, arXiv 1802.06070).

A skill z ~ p(z) = Uniform(N) is drawn at the start of each episode and kept fixed. A
discriminator q(z|s) learns to tell which skill reached a state; the skill-conditioned
policy pi(a|s,z) is trained by SAC to maximise the pseudo-reward

    r(s', z) = log q(z|s') - log p(z)

so every skill seeks states the others do not visit. The environment's reward is never
used for learning (it is only logged, per skill, as "extrinsic return"). The loop that
collects experience and calls `update` is `skillforge.rl.loop.train`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skillforge.core.config import PretrainConfig
from skillforge.rl.nets import Discriminator, skill_state
from skillforge.rl.replay import Batch
from skillforge.rl.sac import skill_sac
from skillforge.rl.spec import LibrarySpec

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
        self.sac = skill_sac(spec, config)
        self.discriminator = Discriminator(
            spec.discriminator_input_dim, spec.n_skills, config.hidden
        )

    def losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed loss of one DIAYN step and its metrics, shape (len(METRIC_NAMES),)."""
        seen = batch.next_obs if batch.next_features is None else batch.next_features  # a prior
        logits = self.discriminator(seen)  # (batch, n_skills)
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
