"""METRA (skillforge.rl.metra): the paper's terms on hand-made numbers, and a known answer on a
point mass, where skills must travel far in different directions."""

import itertools

import numpy as np
import pytest
import torch
from helpers import tiny_config
from point_mass import ENV_ID, EPISODE_STEPS, STEP, final_positions

from skillforge.evaluation.report import frozen_library
from skillforge.rl import loop, metra
from skillforge.rl.checkpoint import load_checkpoint


def test_the_skill_code_is_the_zero_centred_one_hot():
    code = metra.skill_code(torch.tensor([0, 2]), 4)
    expected = torch.tensor([[0.75, -0.25, -0.25, -0.25], [-0.25, -0.25, 0.75, -0.25]])
    torch.testing.assert_close(code, expected)
    torch.testing.assert_close(code.sum(dim=1), torch.zeros(2))


def test_the_reward_is_the_step_in_phi_along_the_skill():
    phi_s = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    phi_next = torch.tensor([[0.5, 0.0], [1.0, 0.5], [-0.5, 0.0]])
    z = metra.skill_code(torch.tensor([0, 1, 0]), 2)  # [[.5, -.5], [-.5, .5], [.5, -.5]]
    reward = metra.intrinsic_reward(phi_s, phi_next, z)
    # along the skill: +; against it: -; scale: |step| x |z| x cos
    torch.testing.assert_close(reward, torch.tensor([0.25, -0.25, -0.25]))


def test_the_penalty_is_capped_by_the_slack_and_negative_past_one_unit():
    phi_s = torch.zeros(3, 2)
    phi_next = torch.tensor([[0.6, 0.0], [0.6, 0.8], [1.2, 1.6]])  # |step|^2: .36, 1, 4
    penalty = metra.constraint_penalty(phi_s, phi_next)
    torch.testing.assert_close(penalty, torch.tensor([metra.SLACK, 0.0, -3.0]))


@pytest.mark.parametrize("penalty, rises", [(-0.5, True), (metra.SLACK, False)])
def test_lambda_rises_while_the_constraint_is_violated_and_falls_once_it_holds(penalty, rises):
    log_lambda = torch.nn.Parameter(torch.tensor(np.log(metra.INITIAL_LAMBDA), dtype=torch.float32))
    optimizer = torch.optim.SGD([log_lambda], lr=0.1)
    before = float(log_lambda.detach())
    metra.lambda_loss(log_lambda, torch.full((8,), penalty)).backward()
    optimizer.step()
    assert (float(log_lambda.detach()) > before) == rises


def test_phi_ascends_the_reward_and_descends_the_violation():
    phi_next = torch.tensor([[2.0, 0.0]], requires_grad=True)  # |step|^2 = 4: violated
    z = metra.skill_code(torch.tensor([0]), 2)
    reward = metra.intrinsic_reward(torch.zeros(1, 2), phi_next, z)
    penalty = metra.constraint_penalty(torch.zeros(1, 2), phi_next)
    metra.phi_loss(reward, penalty, torch.tensor(30.0)).backward()
    # descent moves phi_next by -grad: a large lambda pulls the step back towards one unit
    assert phi_next.grad[0, 0] > 0


def test_point_mass_skills_travel_far_in_different_directions_within_one_unit_steps(tmp_path):
    config = tiny_config(
        env_id=ENV_ID,
        objective="metra",
        total_steps=12_000,
        hidden=64,
        batch_size=128,
        buffer_size=50_000,
        learning_starts=1_000,
        checkpoint_every=100_000,
        log_every=1_000,
        envs=4,
        updates_per_step=0.25,
        max_episode_steps=EPISODE_STEPS,
        alpha=0.01,
        lr=1e-3,
    )
    result = loop.train(config, str(tmp_path / "c.pt"))
    library = frozen_library(result.agent, result.spec)
    ends = np.array(
        [final_positions(lambda obs, k=k: library.act(obs, k), episodes=1)[0] for k in range(4)]
    )
    rng = np.random.default_rng(0)
    random_ends = final_positions(lambda obs: rng.uniform(-1, 1, 2), episodes=20)
    random_distance = np.linalg.norm(random_ends, axis=1).mean()  # about 0.4 m
    reach = STEP * EPISODE_STEPS  # 5 m along an axis
    distances = np.linalg.norm(ends, axis=1)
    assert distances.min() > 0.6 * reach > 5 * random_distance, (ends, random_distance)
    gaps = [np.linalg.norm(a - b) for a, b in itertools.combinations(ends, 2)]
    assert min(gaps) > 0.6 * reach, ends  # four skills, four different places
    # on the last batches, one step moves at most one unit in phi (within the slack)
    assert result.metrics["phi_step_squared"] <= 1 + metra.SLACK + 0.05


def test_phi_reads_observations_normalised_by_the_warm_ups_statistics(tmp_path):
    """Fixed at the first update, from the random warm-up's observations: a position that
    moves centimetres a step weighs as much in phi as a velocity that moves metres."""
    config = tiny_config(
        env_id=ENV_ID, objective="metra", total_steps=600, learning_starts=400, batch_size=32
    )
    result = loop.train(config, str(tmp_path / "c.pt"))
    # what the replay holds when the first update comes, at step 401
    warm_up = load_checkpoint(tmp_path / "c.pt")["replay"]["obs"][: config.learning_starts + 1]
    torch.testing.assert_close(result.agent.obs_mean, warm_up.mean(dim=0))
    torch.testing.assert_close(result.agent.obs_std, warm_up.std(dim=0))
    obs = torch.tensor([[1.0, -2.0]])
    expected = result.agent.phi((obs - warm_up.mean(dim=0)) / warm_up.std(dim=0))
    torch.testing.assert_close(result.agent.represent(obs), expected)
