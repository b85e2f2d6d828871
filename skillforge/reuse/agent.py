"""The hierarchical agent as one stateless step: the meta-controller and its frozen skills,
what a robot or a server runs after `skillforge hierarchical`.

The hold state goes in and comes out with every step, so whoever serves the agent keeps
nothing between calls: `skill`, the skill being run, and `steps_left`, how many env steps it
still has (0 at the start of an episode). With none left the meta-controller picks the greedy
skill, which then runs for `skill_steps` steps, this one included: the same actions as the
skill-action envs of training and evaluation (`run_skill_policy` with `meta.choose`).
"""

from __future__ import annotations

import torch
from torch import nn

from skillforge.reuse.meta_controller import MetaController
from skillforge.skills.library import LibraryPolicy

AGENT_INPUTS = ("observation", "skill", "steps_left")
AGENT_OUTPUTS = ("action", "next_skill", "next_steps_left")


class HierarchicalAgent(nn.Module):
    """observation (batch, obs_dim) float32, skill (batch,) int64 and steps_left (batch,)
    int64 in; action (batch, action_dim), next_skill and next_steps_left (batch,) out, the
    state to send with the next observation of the same episode."""

    def __init__(
        self,
        meta_controller: MetaController,
        skills: LibraryPolicy,
        skill_steps: int,
        skill_obs_dim: int,
    ) -> None:
        super().__init__()
        self.meta_controller, self.skills = meta_controller, skills
        self.skill_steps = skill_steps
        self.skill_obs_dim = skill_obs_dim
        """The skills see the first `skill_obs_dim` entries of the task's observation."""

    def forward(
        self, obs: torch.Tensor, skill: torch.Tensor, steps_left: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        choose = steps_left <= 0  # (batch,) rows whose skill has run its K steps
        skill = torch.where(choose, self.meta_controller(obs).argmax(dim=1), skill)
        steps_left = torch.where(choose, torch.full_like(steps_left, self.skill_steps), steps_left)
        action = self.skills(obs[:, : self.skill_obs_dim], skill)  # (batch, action_dim)
        return action, skill, steps_left - 1
