"""A replay buffer of preallocated float32 arrays (skills stored as integers, not one-hot)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from skillforge.core.errors import CheckpointError


class Batch(NamedTuple):
    """A sampled minibatch; every tensor has the batch as its first dimension."""

    obs: torch.Tensor  # (batch, obs_dim)
    skill: torch.Tensor  # (batch,) int64
    action: torch.Tensor  # (batch, action_dim)
    reward: torch.Tensor  # (batch,) extrinsic reward (DIAYN ignores it)
    next_obs: torch.Tensor  # (batch, obs_dim)
    terminated: torch.Tensor  # (batch,) 1.0 where the MDP ended; truncation is not termination
    next_features: torch.Tensor | None = None  # (batch, feature_dim): q(z|s')'s input, if a prior


class ReplayBuffer:
    """Ring buffer. Arrays are torch CPU tensors with numpy views: numpy for cheap single-row
    writes from the env loop, torch for indexed batch reads.

    The float columns are slices of one (capacity, width) table, so that a minibatch is one
    row gather (and one host-to-device copy) instead of one per column."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, feature_dim: int = 0) -> None:
        self.capacity = capacity
        # float columns of the table: obs, action, next_obs, reward, terminated[, next_features]
        self._widths = [obs_dim, action_dim, obs_dim, 1, 1] + ([feature_dim] if feature_dim else [])
        self.table = torch.zeros(capacity, sum(self._widths))
        columns = self.table.split(self._widths, dim=1)
        self.obs, self.action, self.next_obs, reward, terminated = columns[:5]
        self.reward, self.terminated = reward.squeeze(1), terminated.squeeze(1)
        self.next_features = columns[5] if feature_dim else None
        self.skill = torch.zeros(capacity, dtype=torch.int64)
        self._columns = ("obs", "skill", "action", "reward", "next_obs", "terminated")
        if feature_dim:
            self._columns += ("next_features",)
        self._views = {name: getattr(self, name).numpy() for name in self._columns}
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self, obs, skill: int, action, reward: float, next_obs, terminated: bool, next_features=None
    ) -> None:
        """Store one transition (with the discriminator's features of `next_obs` when the
        buffer keeps them), overwriting the oldest when full."""
        i = self.position
        views = self._views
        views["obs"][i] = obs
        views["skill"][i] = skill
        views["action"][i] = action
        views["reward"][i] = reward
        views["next_obs"][i] = next_obs
        views["terminated"][i] = terminated
        if next_features is not None:
            views["next_features"][i] = next_features
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> Batch:
        """Uniformly sample `batch_size` stored transitions (with replacement)."""
        index = torch.randint(self.size, (batch_size,), generator=generator)
        rows = self.table.index_select(0, index).to(device)
        obs, action, next_obs, reward, terminated, *features = rows.split(self._widths, dim=1)
        skill = self.skill.index_select(0, index).to(device)
        return Batch(
            obs,
            skill,
            action,
            reward.squeeze(1),
            next_obs,
            terminated.squeeze(1),
            features[0] if features else None,
        )

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """The filled part of the buffer plus its cursor (for checkpoints)."""
        state: dict[str, torch.Tensor | int] = {
            name: getattr(self, name)[: self.size].clone() for name in self._columns
        }
        state.update(position=self.position, size=self.size, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore from `state_dict`; shapes must match this buffer."""
        size = int(state["size"])
        if int(state["capacity"]) != self.capacity or size > self.capacity:
            raise CheckpointError(
                f"replay buffer capacity mismatch: checkpoint {state['capacity']}, "
                f"config {self.capacity}"
            )
        for name in self._columns:
            column = state[name]
            target = getattr(self, name)
            if column.shape[1:] != target.shape[1:] or column.shape[0] != size:
                raise CheckpointError(f"replay buffer column {name!r} has the wrong shape")
            target[:size] = column
        self.size = size
        self.position = int(state["position"])

    def nbytes(self) -> int:
        """Bytes held by the preallocated arrays."""
        return sum(int(np.asarray(view).nbytes) for view in self._views.values())
