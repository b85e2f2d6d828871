"""Properties of the learning rules that would break if an equation were wrong."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from helpers import tiny_config
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

from skillforge.reuse.meta_controller import dqn_loss
from skillforge.rl import loop
from skillforge.rl.checkpoint import load_checkpoint
from skillforge.rl.nets import TanhGaussianPolicy
from skillforge.rl.replay import Batch


def test_tanh_gaussian_log_probability_equals_torch_distributions():
    torch.manual_seed(0)
    low, high = (-2.0, -0.5, 0.0), (2.0, 1.5, 3.0)
    policy = TanhGaussianPolicy(5, 3, 16, low, high)
    state = torch.randn(64, 5)
    torch.manual_seed(1)
    action, log_prob = policy.sample(state)
    mean, log_std = policy(state)
    squash = TransformedDistribution(
        Normal(mean, log_std.exp()),
        [TanhTransform(), AffineTransform(policy.action_bias, policy.action_scale)],
    )
    torch.manual_seed(1)  # the same noise: the distribution's own sample is the action
    expected_action = squash.rsample()
    expected = squash.log_prob(expected_action).sum(-1)
    assert torch.allclose(action, expected_action, atol=1e-5)
    # the policy adds 1e-6 inside the log-determinant for stability: equal well within 1e-3
    assert torch.allclose(log_prob, expected, atol=1e-3, rtol=1e-4)


def test_double_dqn_target_masks_terminal_decisions():
    torch.manual_seed(0)
    online, target = torch.nn.Linear(2, 3), torch.nn.Linear(2, 3)
    with torch.no_grad():
        target.bias.fill_(1000.0)  # a bootstrapped value would dominate the loss
    obs = torch.randn(4, 2)
    batch = Batch(
        obs=obs,
        skill=torch.tensor([0, 1, 2, 0]),
        action=torch.zeros(4, 1),
        reward=torch.tensor([1.0, -2.0, 0.5, 3.0]),
        next_obs=torch.randn(4, 2),
        terminated=torch.ones(4),
    )
    q = online(obs).gather(1, batch.skill[:, None]).squeeze(1)
    loss, q_chosen, q_target = dqn_loss(online, target, batch, gamma=0.99, reward_scale=0.5)
    assert torch.allclose(loss, F.smooth_l1_loss(q, 0.5 * batch.reward))  # target = r only
    assert torch.equal(q_chosen, q.detach()) and torch.equal(q_target, 0.5 * batch.reward)
    alive = batch._replace(terminated=torch.zeros(4))
    assert dqn_loss(online, target, alive, gamma=0.99, reward_scale=0.5)[0] > 100 * loss


def stored_transitions(config, tmp_path):
    """The replay buffer of a finished run, from its checkpoint."""
    path = loop.train(config, str(tmp_path / "run.pt")).checkpoint_path
    return load_checkpoint(path)["replay"]


def test_time_limit_truncation_is_stored_as_not_terminated(tmp_path):
    """Pendulum never terminates; its 200-step TimeLimit truncates. The loop must store
    those last transitions as not terminated (SAC bootstraps through them)."""
    replay = stored_transitions(tiny_config(total_steps=450), tmp_path)
    obs, next_obs = replay["obs"].numpy(), replay["next_obs"].numpy()
    episode_ends = [199, 399]  # the env was reset after these rows
    for row in episode_ends:
        assert not np.allclose(next_obs[row], obs[row + 1])  # a new episode began
    assert replay["terminated"].sum() == 0


def test_termination_is_stored_where_the_episode_ended(tmp_path):
    """Hopper falls under random actions: every terminated row ends an episode, and the
    next row starts a new one."""
    replay = stored_transitions(tiny_config(env_id="Hopper-v5", total_steps=300), tmp_path)
    terminated = np.flatnonzero(replay["terminated"].numpy())
    assert len(terminated) >= 3
    obs, next_obs = replay["obs"].numpy(), replay["next_obs"].numpy()
    for row in terminated[terminated < len(obs) - 1]:
        assert not np.allclose(next_obs[row], obs[row + 1])
    continuing = np.setdiff1d(np.arange(len(obs) - 1), terminated)
    assert np.allclose(next_obs[continuing], obs[continuing + 1])
