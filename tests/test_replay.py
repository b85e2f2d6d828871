import numpy as np
import pytest
import torch

from skillforge.core.errors import CheckpointError
from skillforge.rl.replay import ReplayBuffer


def fill(buffer: ReplayBuffer, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        buffer.add(np.full(3, i), i % 4, np.full(2, -i), float(i), np.full(3, i + 1), i % 7 == 0)


def test_stores_and_samples_transitions_consistently():
    buffer = ReplayBuffer(100, obs_dim=3, action_dim=2)
    fill(buffer, 50)
    assert len(buffer) == 50
    batch = buffer.sample(64, torch.Generator().manual_seed(0))
    assert batch.obs.shape == (64, 3) and batch.action.shape == (64, 2)
    assert batch.skill.dtype == torch.int64 and batch.obs.dtype == torch.float32
    index = batch.reward.long()  # reward i marks transition i
    assert torch.equal(batch.obs[:, 0].long(), index)
    assert torch.equal(batch.next_obs[:, 0].long(), index + 1)
    assert torch.equal(batch.action[:, 0].long(), -index)
    assert torch.equal(batch.skill, index % 4)
    assert torch.equal(batch.terminated.bool(), index % 7 == 0)
    assert int(index.max()) < 50


def test_ring_overwrites_the_oldest():
    buffer = ReplayBuffer(10, obs_dim=3, action_dim=2)
    fill(buffer, 25)
    assert len(buffer) == 10
    rewards = set(buffer.sample(500, torch.Generator().manual_seed(1)).reward.long().tolist())
    assert rewards == set(range(15, 25))


def test_state_dict_round_trip_continues_identically():
    buffer = ReplayBuffer(10, obs_dim=3, action_dim=2)
    fill(buffer, 13)
    copy = ReplayBuffer(10, obs_dim=3, action_dim=2)
    copy.load_state_dict(buffer.state_dict())
    fill(buffer, 4, start=100)
    fill(copy, 4, start=100)
    for name in ("obs", "skill", "action", "reward", "next_obs", "terminated"):
        assert torch.equal(getattr(buffer, name), getattr(copy, name))
    assert (copy.position, copy.size) == (buffer.position, buffer.size)


def test_capacity_mismatch_is_refused():
    state = ReplayBuffer(10, 3, 2).state_dict()
    with pytest.raises(CheckpointError, match="capacity"):
        ReplayBuffer(20, 3, 2).load_state_dict(state)


def test_hopper_million_transitions_fit_well_under_a_gigabyte():
    buffer = ReplayBuffer(1_000_000, obs_dim=11, action_dim=3)
    assert buffer.nbytes() < 150 * 2**20  # float32 columns, integer skills
