"""The meta-controller: Double DQN (van Hasselt et al. 2016) over the skill-action envs, on
semi-Markov decisions (a decision runs its skill for a window of up to K env steps: its
reward is the window's discounted return, its bootstrap gamma^tau with tau the window's
length).

Off-policy replay makes the most of a few thousand decisions (N skills, K steps each),
where PPO would need many more, and Q(s, .) over N skills is a single forward pass.

It does not deploy a network that is not surely better than its own best skill
(`meta_selection`): training starts by choosing the best single skill on selection episodes
(the first round's decisions go into the replay buffer like any other), the greedy policy is
validated while it learns and the best network is kept, and that network is deployed only
if, on the second round's validation episodes, the lower end of its 99% confidence interval
beats the best single skill's mean by a margin; otherwise the best skill is (the same skill,
chosen the same way, as the best-skill baseline starts from). Every one of those env steps
is paid from the one budget, `total_steps`."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from skillforge.core.downstream_config import HierarchicalConfig
from skillforge.reuse.baselines import SECOND_ROUND, Selection, best_skill, selection_total
from skillforge.reuse.budget import TaskBudget
from skillforge.reuse.meta_diagnostics import MetaDiagnostics
from skillforge.reuse.meta_selection import Validation, skill_play, surely_better
from skillforge.reuse.phases import CallbacksFor, EpisodeCount, no_callbacks, phase
from skillforge.reuse.skill_actions import Decisions, SkillActionEnvs, run_skill_policy
from skillforge.rl.callbacks import CallbackList
from skillforge.rl.nets import mlp
from skillforge.rl.replay import ReplayBuffer
from skillforge.rl.sac import make_optimizer, soft_update, subnormals_flushed

LEARNER = "dueling-double-dqn-smdp"
"""The learner's name, logged with every run (runs of an earlier learner can be told apart)."""
FALLBACK_PREFERENCE = 1e6
REPORTS = 100
"""Diagnostics are reported this many times over the training budget."""


class MetaController(torch.nn.Module):
    """Q(s, k) for every skill k, a dueling network (Wang et al. 2016):
    Q = V(s) + A(s, k) - mean_k A(s, k), V and A the last of N + 1 outputs and the others.
    Locomotion rewards make V large (thousands on Hopper: every step alive pays) and the
    skills' differences small; learned apart, the differences are not drowned in the error
    of the common value."""

    def __init__(self, obs_dim: int, n_skills: int, hidden: int) -> None:
        super().__init__()
        self.q = mlp(obs_dim, hidden, n_skills + 1)
        self.register_buffer("preference", torch.zeros(n_skills))  # the fallback, if any
        self.reward_scale = 1.0
        """What the rewards were multiplied by in training: Q-values are in those units."""
        self.validation: dict[str, float] = {}
        """Mean validation returns (if validated): `best` of the kept network where it was
        chosen; `meta-controller` (it) and `best-skill` on the second validation episodes."""
        self.best_skill: int | None = None
        """The best single skill on the validation episodes (if validated)."""
        self.validation_curve: list[tuple[int, float]] = []
        """(training env steps, mean validation return of the greedy policy then)."""
        self.validation_env_steps = 0
        """Task env steps the validation episodes took (paid from the budget)."""
        self.task_env_steps = 0
        """Task env steps of training, selection and validation: the budget used."""
        self.choices: list[tuple[int, np.ndarray]] = []
        """(env steps, share of each skill among the decisions up to there), for the plot."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values, shape (batch, n_skills) (a fallback skill outranks every other)."""
        out = self.q(obs)
        value, advantage = out[:, -1:], out[:, :-1]
        return value + advantage - advantage.mean(dim=1, keepdim=True) + self.preference

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


def window_return(step_rewards: np.ndarray, gamma: float) -> np.ndarray:
    """The semi-Markov reward of each decision: its window's rewards discounted inside the
    window, sum_i gamma^i r_i over (lanes, K) step rewards (zeros after an episode ended)."""
    return step_rewards @ gamma ** np.arange(step_rewards.shape[1])


def dqn_loss(online, target, batch, gamma: float, reward_scale: float = 1.0):
    """Double DQN on semi-Markov decisions: the online net picks the next skill, the target
    net values it, discounted by gamma^tau with tau the env steps the decision really ran
    (its window's length, stored in the replay's action column: fewer than K where the
    episode was cut). Returns the loss, Q(s, k) and its target (batch,)."""
    q = online(batch.obs).gather(1, batch.skill[:, None]).squeeze(1)  # (batch,)
    with torch.no_grad():
        next_skill = online(batch.next_obs).argmax(dim=1, keepdim=True)
        next_q = target(batch.next_obs).gather(1, next_skill).squeeze(1)
        reward = reward_scale * batch.reward
        discount = gamma ** batch.action[:, 0]  # (batch,) gamma^tau
        q_target = reward + discount * (1.0 - batch.terminated) * next_q
    return F.smooth_l1_loss(q, q_target), q.detach(), q_target


def reward_scale_for(rewards: torch.Tensor) -> float:
    """A factor that brings Q-values to the order of 10 (1 / (10 x mean |reward|), never
    above 1): dense locomotion rewards summed over K steps make Q-values of thousands, far
    outside the Huber loss's quadratic zone, and a meta-controller learns a few times
    better on Hopper with them scaled (greedy return about 740 instead of 250 at 100k
    steps). Rewards already small (mean magnitude per decision up to 0.1) are left as
    they are."""
    mean_magnitude = float(rewards.abs().mean()) if len(rewards) else 0.0
    return min(1.0, 1.0 / (10.0 * mean_magnitude)) if mean_magnitude > 0 else 1.0


@subnormals_flushed()
def train_meta_controller(
    envs: SkillActionEnvs,
    config: HierarchicalConfig,
    callbacks=(),
    validation_envs: SkillActionEnvs | None = None,
    callbacks_for: CallbacksFor = no_callbacks,
) -> MetaController:
    """Train a meta-controller on `envs` with `config.total_steps` task env steps in all
    (`budget.TaskBudget`): with validation (`config.validation_episodes` > 0, on
    `validation_envs`, other copies of the task), the best single skill is chosen first
    (its first round's decisions go into the replay: every skill alone from the same starts),
    the greedy policy is validated every `config.validate_every` task env steps, and the kept
    network is compared with that skill at the end, all paid from the same budget; Double
    DQN trains on what they leave. The exploration rate decays from the first training
    decision over `config.exploration_fraction` of the steps then left.

    One gradient step per decision, as with a single env; callbacks get
    `on_step(task env steps, {"return": R, "episode_length": T})` after each training
    episode, `{"validation_return": R}` after each validation, and the diagnostics
    (`q_value`, `q_target`, `td_error` in reward units, `epsilon`, `replay_random_share`)
    `REPORTS` times in all. The selection and the final comparison are phases of their own
    (`callbacks_for`, `skillforge.reuse.phases`).
    """
    guard = config.validation_episodes > 0
    if guard and validation_envs is None:
        raise ValueError("validation_envs are needed when config.validation_episodes > 0")
    callbacks = CallbackList(callbacks)
    torch.manual_seed(config.seed)
    sampler = torch.Generator().manual_seed(config.seed)
    obs_dim, n_skills = envs.observation_space.shape[0], envs.n_skills
    online = MetaController(obs_dim, n_skills, config.hidden)
    target = copy.deepcopy(online).requires_grad_(False)
    optimizer = make_optimizer(online.parameters(), config.lr, torch.device("cpu"))
    # the action column of a decision holds its window's length tau (env steps)
    buffer = ReplayBuffer(config.buffer_size, obs_dim, action_dim=1)
    explored = np.zeros(config.buffer_size, dtype=bool)  # chosen at random, per replay row
    diagnostics = MetaDiagnostics(n_skills)
    budget = TaskBudget(config.total_steps)
    report_every = max(1, config.total_steps // REPORTS)
    # reward_scale is fixed at the first update, from the random decisions before it
    counts: dict = {"decisions": 0, "reward_scale": None, "next_report": 0}
    counts["epsilon"], counts["explore"] = 1.0, np.ones(envs.n_envs, dtype=bool)
    counts["explore_from"], counts["explore_over"] = 0, 1.0
    callbacks.on_start({"step": 0, "total_steps": config.total_steps, "agent": online})
    validation = (
        Validation(
            skill_play(validation_envs),
            config.validation_episodes,
            config.seed,
            config.validate_every,
            budget,
        )
        if guard
        else None
    )

    def greedy(obs: np.ndarray, rng) -> np.ndarray:
        return online.choose(obs)

    def epsilon_greedy(obs: np.ndarray, rng) -> np.ndarray:  # draws from `sampler`, not rng
        progress = (budget.used - counts["explore_from"]) / counts["explore_over"]
        epsilon = max(config.epsilon_end, 1.0 - (1.0 - config.epsilon_end) * progress)
        if counts["decisions"] < config.learning_starts:
            epsilon = 1.0
        explore = torch.rand(len(obs), generator=sampler) < epsilon
        random_skills = torch.randint(n_skills, (len(obs),), generator=sampler)
        counts["epsilon"], counts["explore"] = epsilon, explore.numpy()
        return torch.where(explore, random_skills, torch.from_numpy(online.choose(obs))).numpy()

    def record(decisions: Decisions, explore: np.ndarray) -> None:
        result = decisions.result
        rewards = window_return(result.step_rewards, config.gamma)
        for row, skill in enumerate(decisions.skills):
            explored[buffer.position] = explore[row]
            tau, next_obs, terminated = (
                result.env_steps[row],
                result.obs[row],
                result.terminated[row],
            )
            buffer.add(decisions.obs[row], skill, (tau,), rewards[row], next_obs, terminated)

    def update() -> None:
        if counts["reward_scale"] is None:
            counts["reward_scale"] = reward_scale_for(buffer.reward[: len(buffer)])
        batch = buffer.sample(config.batch_size, sampler)
        loss, q, q_target = dqn_loss(online, target, batch, config.gamma, counts["reward_scale"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        soft_update(target, online, config.tau)
        td_error = float((q - q_target).abs().mean())
        diagnostics.updated(float(q.mean()), float(q_target.mean()), td_error)

    def learn(decisions: Decisions) -> None:
        record(decisions, counts["explore"][: len(decisions.skills)])
        diagnostics.chose(decisions.skills)
        for _ in decisions.skills:
            counts["decisions"] += 1
            if counts["decisions"] >= config.learning_starts and len(buffer) >= config.batch_size:
                update()
        steps = budget.used
        if steps >= counts["next_report"]:
            counts["next_report"] = steps + report_every
            random_share = float(explored[: len(buffer)].mean())
            metrics = diagnostics.flush(steps, counts["reward_scale"] or 1.0)
            metrics.update(epsilon=counts["epsilon"], replay_random_share=random_share)
            callbacks.on_step(steps, metrics)
        if validation is not None and validation.due(steps):
            _report(callbacks, steps, validation.check(online, greedy, steps))

    def scanned(decisions: Decisions) -> None:
        record(decisions, np.zeros(len(decisions.skills), dtype=bool))

    selection = None
    if guard:
        episodes = config.validation_episodes
        with phase(callbacks_for, "selection", selection_total(n_skills, episodes)) as choosing:
            counted = [EpisodeCount(choosing)]
            selection = best_skill(envs, episodes, config.seed, scanned, budget, callbacks=counted)
        validation.reserve_for_the_end(selection.longest)
        reported = [callbacks, _ReserveFor(validation)]
    else:
        reported = [callbacks]
    counts["explore_from"] = budget.used
    counts["explore_over"] = max(1.0, config.exploration_fraction * budget.available)
    run_skill_policy(
        envs, epsilon_greedy, config.seed, callbacks=reported, on_decisions=learn, budget=budget
    )
    online.reward_scale = counts["reward_scale"] or 1.0
    online.choices = diagnostics.choices
    online.eval()
    if validation is not None:
        _deploy(online, validation, selection, greedy, callbacks, callbacks_for)
    online.task_env_steps = budget.used
    callbacks.on_end(online)
    return online


def _deploy(
    meta: MetaController,
    validation: Validation,
    skill: Selection,
    greedy,
    callbacks,
    callbacks_for: CallbacksFor,
) -> None:
    """Keep the best validated network (the last one is validated too), then deploy the best
    skill instead unless the network is surely better on the second validation episodes
    (`meta_selection.surely_better`)."""
    validation.budget.release()
    steps = validation.budget.used
    if not validation.curve or validation.curve[-1][0] != steps:
        _report(callbacks, steps, validation.check(meta, greedy, steps))
    if validation.best_state is not None:
        meta.load_state_dict(validation.best_state)
    total = SECOND_ROUND * validation.episodes  # as reserved for; played until the budget is spent
    with phase(callbacks_for, "validation", total) as comparing:
        kept, bound = validation.final_comparison(greedy, skill, [EpisodeCount(comparing)])
    meta.validation = {
        "best": validation.best_return,
        "meta-controller": kept,
        "meta-controller-lower-bound": bound,
        "best-skill": skill.mean,
    }
    meta.best_skill = skill.skill
    meta.validation_curve = validation.curve
    meta.validation_env_steps = validation.env_steps
    if not surely_better(bound, skill.mean):
        meta.fall_back_to(skill.skill)


def _report(callbacks, steps: int, validation_return: float | None) -> None:
    if validation_return is not None:  # None: the budget ended before any episode did
        callbacks.on_step(steps, {"validation_return": validation_return})


class _ReserveFor:
    """Grows the validation's reserve to the longest training episode seen."""

    def __init__(self, validation: Validation) -> None:
        self.validation = validation

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if "episode_length" in metrics:
            self.validation.reserve_for_the_end(int(metrics["episode_length"]))
