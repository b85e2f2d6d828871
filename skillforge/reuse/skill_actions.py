"""Frozen skills as actions: any task becomes a Discrete(N) problem where action k runs skill
k for K env steps, in several copies of the task at once with one batched skill call per
env step (`SkillActionEnvs`), or as a plain gymnasium wrapper (`SkillActionWrapper`)."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import gymnasium as gym
import numpy as np

from skillforge.core.envs import episode_seed
from skillforge.core.errors import EnvError
from skillforge.reuse.budget import TaskBudget
from skillforge.rl.callbacks import CallbackList


class SkillSet(Protocol):
    """Anything that runs frozen skills: a SkillLibrary, registry models, an ONNX session."""

    n_skills: int
    obs_dim: int
    action_dim: int

    def act(self, obs: np.ndarray, skills: np.ndarray) -> np.ndarray:
        """Deterministic actions (batch, action_dim) for observations (batch, obs_dim), each
        row with its own skill (batch,)."""


class SkillActionResult(NamedTuple):
    """What `SkillActionEnvs.step` returns, one row per stepped lane."""

    obs: np.ndarray  # (lanes, obs_dim) after the skill ran
    reward: np.ndarray  # (lanes,) the task's reward summed over the steps that ran
    step_rewards: np.ndarray  # (lanes, K) each step's reward; 0 after the episode ended
    terminated: np.ndarray  # (lanes,) bool
    truncated: np.ndarray  # (lanes,) bool
    env_steps: np.ndarray  # (lanes,) how many env steps ran: K, or fewer if the episode ended
    infos: list[dict]  # the task env's info of each lane's last step


class SkillActionEnvs:
    """Copies of a task ("lanes") in lockstep, each choosing among N frozen skills.

    `step(skills)` runs each lane's skill for `skill_steps` env steps, fewer if its episode
    ends; every env step of all running lanes is one batched `skills.act` call, so a policy
    call costs little next to the physics. The skills read the first `skills.obs_dim` entries
    of the task's observation; the meta-controller sees all of it. A lane whose episode ended
    steps again only after `reset(lane, seed)`.
    """

    def __init__(self, envs: list[gym.Env], skills: SkillSet, skill_steps: int) -> None:
        if skill_steps < 1:
            raise ValueError(f"skill_steps must be >= 1, got {skill_steps}")
        if not envs:
            raise ValueError("SkillActionEnvs needs at least one env")
        for env in envs:
            check_compatible(env, skills)
        self.envs, self.skills, self.skill_steps = envs, skills, skill_steps
        self.n_skills = skills.n_skills
        self.observation_space = float32_space(envs[0].observation_space)  # what `obs` holds
        self.obs = np.zeros((len(envs), self.observation_space.shape[0]), dtype=np.float32)
        self._ended = np.ones(len(envs), dtype=bool)

    def __enter__(self) -> SkillActionEnvs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def n_envs(self) -> int:
        return len(self.envs)

    def reset(self, lane: int, seed: int | None = None, **kwargs) -> tuple[np.ndarray, dict]:
        """Start a new episode in `lane`; its first observation and info."""
        obs, info = self.envs[lane].reset(seed=seed, **kwargs)
        self.obs[lane], self._ended[lane] = obs, False
        return self.obs[lane].copy(), info  # float32, as `step` gives

    def step(self, skills: np.ndarray, lanes: np.ndarray | None = None) -> SkillActionResult:
        """Run skill `skills[i]` in lane `lanes[i]` (default: every lane, in order)."""
        lanes = np.arange(self.n_envs) if lanes is None else np.asarray(lanes, dtype=np.int64)
        skills = np.asarray(skills, dtype=np.int64).reshape(-1)
        if skills.shape != lanes.shape:
            raise ValueError(f"{skills.size} skills for {lanes.size} lanes")
        if len(np.unique(lanes)) != len(lanes):
            raise ValueError(f"a lane can run one skill at a time, got lanes {lanes.tolist()}")
        if len(skills) and (skills.min() < 0 or skills.max() >= self.n_skills):
            raise ValueError(f"skill out of range 0..{self.n_skills - 1}: {skills.tolist()}")
        if self._ended[lanes].any():
            raise RuntimeError("reset a lane whose episode ended before stepping it again")
        step_rewards = np.zeros((len(lanes), self.skill_steps))
        terminated = np.zeros(len(lanes), dtype=bool)
        truncated = np.zeros(len(lanes), dtype=bool)
        env_steps = np.zeros(len(lanes), dtype=np.int64)
        running = np.ones(len(lanes), dtype=bool)
        infos: list[dict] = [{} for _ in lanes]
        for t in range(self.skill_steps):
            rows = np.flatnonzero(running)
            if not len(rows):
                break
            obs = self.obs[lanes[rows], : self.skills.obs_dim]
            actions = self.skills.act(obs, skills[rows])  # one call for every running lane
            for action, row in zip(actions, rows, strict=True):
                lane = lanes[row]
                obs, r, term, trunc, infos[row] = self.envs[lane].step(action)
                self.obs[lane] = obs
                step_rewards[row, t] = float(r)
                env_steps[row] += 1
                terminated[row], truncated[row] = term, trunc
                running[row] = not (term or trunc)
        self._ended[lanes] = terminated | truncated
        obs = self.obs[lanes]  # indexing with an array copies: the caller may keep it
        reward = step_rewards.sum(axis=1)
        return SkillActionResult(obs, reward, step_rewards, terminated, truncated, env_steps, infos)

    def close(self) -> None:
        for env in self.envs:
            env.close()


class SkillActionWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """One task as a gymnasium env with action space Discrete(N), for any discrete-action
    learner: action k runs skill k for `skill_steps` env steps (one lane of
    `SkillActionEnvs`), stopping early at termination or truncation; the reward is the
    task's reward summed over them; `info` is the task's info of the last step, with
    `info["env_steps"]` saying how many ran. Observations are the task's, as float32.
    Its arguments are recorded in the env's spec, so `gymnasium.make(env.spec)` makes it
    again."""

    def __init__(self, env: gym.Env, skills: SkillSet, skill_steps: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, skills=skills, skill_steps=skill_steps)
        gym.Wrapper.__init__(self, env)
        self.lanes = SkillActionEnvs([env], skills, skill_steps)
        self.action_space = gym.spaces.Discrete(skills.n_skills)
        self.observation_space = self.lanes.observation_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        return self.lanes.reset(0, seed=seed, options=options)

    def step(self, skill):
        result = self.lanes.step(np.array([int(skill)]))
        info = {**result.infos[0], "env_steps": int(result.env_steps[0])}
        terminated, truncated = bool(result.terminated[0]), bool(result.truncated[0])
        return result.obs[0], float(result.reward[0]), terminated, truncated, info


def float32_space(space: gym.spaces.Box) -> gym.spaces.Box:
    """`space` with float32 bounds and dtype: the observations the lanes hold and return."""
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    return gym.spaces.Box(low, high, space.shape, dtype=np.float32)


def check_compatible(env: gym.Env, skills: SkillSet) -> None:
    """Refuse a library learned on an env whose observation or action shapes differ."""
    obs_dim = env.observation_space.shape[0]
    action_dim = env.action_space.shape[0] if env.action_space.shape else None
    if obs_dim < skills.obs_dim or action_dim != skills.action_dim:
        raise EnvError(
            f"the skills take observations of {skills.obs_dim} and give actions of "
            f"{skills.action_dim}, but the task has observations of {obs_dim} and actions of "
            f"{action_dim}: the library was learned on another environment"
        )


class Decisions(NamedTuple):
    """One skill choice in each stepped lane and what came of it."""

    obs: np.ndarray  # (lanes, obs_dim) when the skills were chosen
    skills: np.ndarray  # (lanes,)
    result: SkillActionResult


def run_skill_policy(
    envs: SkillActionEnvs,
    choose_skills,
    seed: int,
    episodes: int | None = None,
    env_steps: int | None = None,
    callbacks=(),
    on_decisions=None,
    budget: TaskBudget | None = None,
) -> list[float]:
    """Episode returns when `choose_skills(obs (lanes, obs_dim), rng)` picks the skills, one
    call for every lane: `episodes` episodes, or episodes until `env_steps` env steps are
    spent or `budget` has none available (the episodes still running then are cut and not
    counted). Never more than `env_steps` nor than the budget's available steps: a decision
    is taken only where K steps are left (lanes beyond that wait).

    Episode j starts from `episode_seed(seed, j)`, in whichever lane is free first. Each
    finished episode is reported as `on_step(env steps so far, {"return", "episode_length"})`,
    the steps of this call, or the budget's used steps if there is a budget (it pays for
    every step), and every batch of choices as `on_progress(those steps)`;
    `on_decisions(Decisions)` sees every batch of choices (where a learner learns).
    """
    if episodes is None and env_steps is None and budget is None:
        raise ValueError("give episodes, env_steps, a budget, or several")
    callbacks = CallbackList(callbacks)
    rng = np.random.default_rng(seed)
    returns: list[float] = []
    total = np.zeros(envs.n_envs)
    length = np.zeros(envs.n_envs, dtype=np.int64)
    running = np.zeros(envs.n_envs, dtype=bool)
    started, steps = 0, 0

    def start(lane: int) -> None:
        nonlocal started
        if episodes is None or started < episodes:
            envs.reset(lane, seed=episode_seed(seed, started))
            total[lane], length[lane], running[lane] = 0.0, 0, True
            started += 1

    for lane in range(envs.n_envs):
        start(lane)

    def room() -> int:
        left = np.inf if env_steps is None else env_steps - steps
        return int(min(left, np.inf if budget is None else budget.available, 2**62))

    while running.any() and room() >= envs.skill_steps:
        lanes = np.flatnonzero(running)[: room() // envs.skill_steps]
        obs = envs.obs[lanes]  # a copy (array index): stays as chosen while the lanes step
        skills = np.asarray(choose_skills(obs, rng), dtype=np.int64).reshape(len(lanes))
        result = envs.step(skills, lanes)
        # counted lane after lane, as if they had run one after another
        origin = steps if budget is None else budget.used
        steps_after = origin + np.cumsum(result.env_steps)
        steps += int(result.env_steps.sum())
        if budget is not None:
            budget.spend(int(result.env_steps.sum()))
        total[lanes] += result.reward
        length[lanes] += result.env_steps
        if on_decisions is not None:
            on_decisions(Decisions(obs, skills, result))
        for row in np.flatnonzero(result.terminated | result.truncated):
            lane = lanes[row]
            returns.append(float(total[lane]))
            report = {"return": returns[-1], "episode_length": int(length[lane])}
            callbacks.on_step(int(steps_after[row]), report)
            running[lane] = False
            start(lane)
        callbacks.on_progress(int(steps_after[-1]))
    return returns
