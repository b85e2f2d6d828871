"""The meta-controller: Double DQN (van Hasselt et al. 2016) over the skill-action envs.

Off-policy replay makes the most of a few thousand decisions (N skills, K steps each),
where PPO would need many more, and Q(s, .) over N skills is a single forward pass.

It never deploys a policy worse than its own best skill: training starts by trying every
skill alone for one episode (those decisions go into the replay buffer like any other), and
ends by running the greedy meta-controller and the best of those skills on the same
validation episodes; if the skill does better, the meta-controller falls back to it. The
scan and the validation are paid from the same env-step budget, on seeds that neither the
training episodes nor the held-out evaluation use."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from skillforge.core.config import HierarchicalConfig
from skillforge.reuse.skill_actions import Decisions, SkillActionEnvs, run_skill_policy
from skillforge.rl.callbacks import CallbackList
from skillforge.rl.nets import mlp
from skillforge.rl.replay import ReplayBuffer
from skillforge.rl.sac import make_optimizer, soft_update

FALLBACK_PREFERENCE = 1e6
SCAN_SEED_OFFSET = 2_000_003  # the skill scan and the validation: seeds of their own
VALIDATION_SEED_OFFSET = 3_000_017


class MetaController(torch.nn.Module):
    """Q(s, k) for every skill k."""

    def __init__(self, obs_dim: int, n_skills: int, hidden: int) -> None:
        super().__init__()
        self.q = mlp(obs_dim, hidden, n_skills)
        self.register_buffer("preference", torch.zeros(n_skills))  # the fallback, if any
        self.reward_scale = 1.0
        """What the rewards were multiplied by in training: Q-values are in those units."""
        self.validation: dict[str, float] = {}
        """Mean validation returns of the greedy policy and of the best skill (if validated)."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values, shape (batch, n_skills) (a fallback skill outranks every other)."""
        return self.q(obs) + self.preference

    @property
    def fallback(self) -> int | None:
        """The skill deployed instead of the learned policy, if validation chose it."""
        return int(self.preference.argmax()) if bool(self.preference.any()) else None

    def fall_back_to(self, skill: int) -> None:
        """Always choose `skill` (its preference dwarfs any Q-value)."""
        with torch.no_grad():
            self.preference.zero_()
            self.preference[skill] = FALLBACK_PREFERENCE

    @torch.no_grad()
    def choose(self, obs: np.ndarray) -> np.ndarray:
        """The greedy skill for each observation (batch, obs_dim)."""
        return self(torch.as_tensor(obs, dtype=torch.float32)).argmax(dim=1).numpy()


def dqn_loss(online, target, batch, gamma: float, reward_scale: float = 1.0) -> torch.Tensor:
    """Double DQN: the online net picks the next skill, the target net values it."""
    q = online(batch.obs).gather(1, batch.skill[:, None]).squeeze(1)  # (batch,)
    with torch.no_grad():
        next_skill = online(batch.next_obs).argmax(dim=1, keepdim=True)
        next_q = target(batch.next_obs).gather(1, next_skill).squeeze(1)
        reward = reward_scale * batch.reward
        q_target = reward + gamma * (1.0 - batch.terminated) * next_q
    return F.smooth_l1_loss(q, q_target)


def reward_scale_for(rewards: torch.Tensor) -> float:
    """A factor that brings Q-values to the order of 10 (1 / (10 x mean |reward|), never
    above 1): dense locomotion rewards summed over K steps make Q-values of thousands, far
    outside the Huber loss's quadratic zone, and a meta-controller learns a few times
    better on Hopper with them scaled (greedy return about 740 instead of 250 at 100k
    steps). Rewards already small (mean magnitude per decision up to 0.1) are left as
    they are."""
    mean_magnitude = float(rewards.abs().mean()) if len(rewards) else 0.0
    return min(1.0, 1.0 / (10.0 * mean_magnitude)) if mean_magnitude > 0 else 1.0


def train_meta_controller(
    envs: SkillActionEnvs, config: HierarchicalConfig, callbacks=()
) -> MetaController:
    """Train a meta-controller on `envs` for `config.total_steps` env steps (all lanes):
    the skill scan, Double DQN, then the validation against the best skill (module doc).

    One gradient step per decision, as with a single env; callbacks get
    `on_step(env_steps, {"return": R, "episode_length": T})` after each episode.
    """
    callbacks = CallbackList(callbacks)
    torch.manual_seed(config.seed)
    sampler = torch.Generator().manual_seed(config.seed)
    obs_dim, n_skills = envs.observation_space.shape[0], envs.n_skills
    online = MetaController(obs_dim, n_skills, config.hidden)
    target = copy.deepcopy(online).requires_grad_(False)
    optimizer = make_optimizer(online.parameters(), config.lr, torch.device("cpu"))
    buffer = ReplayBuffer(config.buffer_size, obs_dim, action_dim=0)
    # reward_scale is fixed at the first update, from the random decisions before it
    counts: dict = {"env_steps": 0, "decisions": 0, "reward_scale": None}
    callbacks.on_start({"step": 0, "total_steps": config.total_steps, "agent": online})
    reported = _Offset(callbacks, counts)

    def epsilon_greedy(obs: np.ndarray, rng) -> np.ndarray:  # draws from `sampler`, not rng
        progress = counts["env_steps"] / max(1.0, config.exploration_fraction * config.total_steps)
        epsilon = max(config.epsilon_end, 1.0 - (1.0 - config.epsilon_end) * progress)
        if counts["decisions"] < config.learning_starts:
            epsilon = 1.0
        explore = torch.rand(len(obs), generator=sampler) < epsilon
        random_skills = torch.randint(n_skills, (len(obs),), generator=sampler)
        return torch.where(explore, random_skills, torch.from_numpy(online.choose(obs))).numpy()

    def record(decisions: Decisions) -> None:
        result = decisions.result
        for row, skill in enumerate(decisions.skills):
            next_obs, terminated = result.obs[row], result.terminated[row]
            buffer.add(decisions.obs[row], skill, (), result.reward[row], next_obs, terminated)
        counts["env_steps"] += int(result.env_steps.sum())

    def learn(decisions: Decisions) -> None:
        record(decisions)
        for _ in decisions.skills:
            counts["decisions"] += 1
            if counts["decisions"] >= config.learning_starts and len(buffer) >= config.batch_size:
                if counts["reward_scale"] is None:
                    counts["reward_scale"] = reward_scale_for(buffer.reward[: len(buffer)])
                batch = buffer.sample(config.batch_size, sampler)
                loss = dqn_loss(online, target, batch, config.gamma, counts["reward_scale"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                soft_update(target, online, config.tau)

    guard = config.validation_episodes > 0
    scan = _scan_skills(envs, config.seed + SCAN_SEED_OFFSET, record, reported) if guard else None
    reserve = 2 * config.validation_episodes * int(counts["env_steps"] / n_skills) if guard else 0
    budget = config.total_steps - counts["env_steps"] - reserve
    if budget > 0:
        reported.on_start({})
        run_skill_policy(
            envs,
            epsilon_greedy,
            config.seed,
            env_steps=budget,
            callbacks=[reported],
            on_decisions=learn,
        )
    online.reward_scale = counts["reward_scale"] or 1.0
    online.eval()
    if scan is not None:
        _validate(online, envs, int(scan.argmax()), config, record)
    callbacks.on_end(online)
    return online


class _Offset:
    """Reports episodes at the env steps spent so far in all phases (each phase's own
    count starts at zero)."""

    def __init__(self, callbacks: CallbackList, counts: dict) -> None:
        self.callbacks, self.counts, self.start = callbacks, counts, 0

    def on_start(self, info: dict) -> None:
        self.start = self.counts["env_steps"]

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.callbacks.on_step(self.start + step, metrics)


def _scan_skills(envs: SkillActionEnvs, seed: int, record, reported: _Offset) -> np.ndarray:
    """Every skill alone for one episode from the same start; returns (n_skills,) returns."""
    returns = np.zeros(envs.n_skills)
    for skill in range(envs.n_skills):
        reported.on_start({})
        episode = run_skill_policy(
            envs,
            lambda obs, rng, k=skill: np.full(len(obs), k),
            seed,
            episodes=1,
            callbacks=[reported],
            on_decisions=record,
        )
        returns[skill] = episode[0]
    return returns


def _validate(
    meta: MetaController, envs: SkillActionEnvs, best: int, config: HierarchicalConfig, record
) -> None:
    """The greedy meta-controller against skill `best` on the same validation episodes;
    the skill is deployed (`fall_back_to`) unless the meta-controller does at least as well."""
    seed, episodes = config.seed + VALIDATION_SEED_OFFSET, config.validation_episodes
    greedy = run_skill_policy(
        envs, lambda obs, rng: meta.choose(obs), seed, episodes, on_decisions=record
    )
    alone = run_skill_policy(
        envs, lambda obs, rng: np.full(len(obs), best), seed, episodes, on_decisions=record
    )
    meta.validation = {
        "meta-controller": float(np.mean(greedy)),
        "best-skill": float(np.mean(alone)),
    }
    if np.mean(greedy) < np.mean(alone):
        meta.fall_back_to(best)
