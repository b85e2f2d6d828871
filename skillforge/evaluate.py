"""Skill evaluation: every skill run deterministically on held-out seeds, measured, drawn, filmed.

The measures (logged as `eval/<name>` by `log_report`, compared by `skillforge library compare`):

| measure | meaning |
|---|---|
| `discriminator_accuracy` | how often argmax q(z|s) names the skill that reached s (chance 1/N) |
| `log_q_z` | mean log q(z|s) on the rollouts (chance -ln N, perfect 0) |
| `mutual_information_bound` | E[log q(z|s)] + ln N, a lower bound on I(S;Z) in nats |
| `mutual_information_fraction` | the bound divided by ln N: 0 chance, 1 perfect |
| `effective_skills` | exp(entropy of the predicted-skill histogram): N if all are recognised |
| `return/skill_NN`, `return_std/skill_NN` | extrinsic return of skill NN over the episodes |
| `best_skill_return`, `best_skill` | the skill with the highest mean return |
| `coverage_bins` | distinct bins of the agent's position visited over all rollouts (table below) |
| `random_coverage_bins` | the same for a uniformly random policy, same number of episodes |

Every skill weighs the same in the discriminator measures (the expectation is over the
uniform p(z)), however long its episodes are.

Where the agent is, for coverage (`POSITIONS`, keyed by the env id without its version):

| environment | position | bin |
|---|---|---|
| Hopper, HalfCheetah, Walker2d | x of the torso, `data.qpos[0]` | 1 m |
| Ant, Humanoid, Swimmer (move in the plane) | x-y of the torso, `data.qpos[:2]` | 1 m x 1 m |
| BipedalWalker(Hardcore) | x of the hull, `hull.position.x` (Box2D units ~ m) | 1 |
| LunarLander(Continuous) | x-y of the lander, `lander.position` (Box2D units) | 1 x 1 |
| MountainCarContinuous | car position, observation[0] (track -1.2 ... 0.6) | 0.1 |
| Pendulum | pole angle atan2(sin, cos) from the observation | pi/8 rad (16 bins) |

Other environments have no coverage measure (reported as missing).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skillforge.envs import episode_seed, make_env
from skillforge.errors import ConfigError, EnvError
from skillforge.library import SkillLibrary

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse a training episode's seed
RANDOM_POLICY_STREAM = 7  # the random baseline's action generator: its own stream of the seed
DEFAULT_EPISODES = 5


@dataclass(frozen=True)
class PositionProbe:
    """Where the agent is, for state coverage: `read(env.unwrapped, observation)` -> (dims,)."""

    what: str
    bin_size: float
    read: Callable[[Any, np.ndarray], np.ndarray]


def _qpos(dims: int) -> Callable[[Any, np.ndarray], np.ndarray]:
    return lambda env, obs: np.array(env.data.qpos[:dims], dtype=np.float64)


def _body(name: str, dims: int) -> Callable[[Any, np.ndarray], np.ndarray]:
    return lambda env, obs: np.array(tuple(getattr(env, name).position)[:dims], dtype=np.float64)


_X = _qpos(1)
_XY = _qpos(2)
POSITIONS: dict[str, PositionProbe] = {
    "Hopper": PositionProbe("torso x (m)", 1.0, _X),
    "HalfCheetah": PositionProbe("torso x (m)", 1.0, _X),
    "Walker2d": PositionProbe("torso x (m)", 1.0, _X),
    "Ant": PositionProbe("torso x-y (m)", 1.0, _XY),
    "Humanoid": PositionProbe("torso x-y (m)", 1.0, _XY),
    "Swimmer": PositionProbe("tip x-y (m)", 1.0, _XY),
    "BipedalWalker": PositionProbe("hull x", 1.0, _body("hull", 1)),
    "BipedalWalkerHardcore": PositionProbe("hull x", 1.0, _body("hull", 1)),
    "LunarLander": PositionProbe("lander x-y", 1.0, _body("lander", 2)),
    "LunarLanderContinuous": PositionProbe("lander x-y", 1.0, _body("lander", 2)),
    "MountainCarContinuous": PositionProbe(
        "car position", 0.1, lambda env, obs: np.array(obs[:1], dtype=np.float64)
    ),
    "Pendulum": PositionProbe(
        "pole angle (rad)",
        math.pi / 8,
        lambda env, obs: np.array([math.atan2(float(obs[1]), float(obs[0]))]),
    ),
}


def position_probe(env_id: str) -> PositionProbe | None:
    """The coverage probe of an env id (`Hopper-v5` -> the `Hopper` row), None if unknown."""
    family = env_id.split(":")[-1].rsplit("-v", 1)[0]
    return POSITIONS.get(family)


def coverage_bins(positions: list[np.ndarray], bin_size: float) -> int:
    """Distinct bins of side `bin_size` visited by any of the (T, dims) position arrays."""
    if not positions:
        return 0
    cells = np.floor(np.concatenate(positions) / bin_size).astype(np.int64)  # (points, dims)
    return len(np.unique(cells, axis=0))


@dataclass
class SkillRollouts:
    """Deterministic rollouts of every skill: returns and the states they visited."""

    returns: np.ndarray  # (n_skills, episodes) extrinsic return
    lengths: np.ndarray  # (n_skills, episodes) steps per episode
    observations: list[np.ndarray] = field(default_factory=list)  # per skill, (T, obs_dim)
    positions: list[list[np.ndarray]] = field(default_factory=list)  # per skill, episode: (T+1, d)

    @property
    def mean_returns(self) -> np.ndarray:
        return self.returns.mean(axis=1)


def _rollout(
    env_id: str,
    n: int,
    episodes: int,
    seed: int,
    act: Callable[[np.ndarray, np.ndarray], np.ndarray],
    probe: PositionProbe | None,
    filmer=None,
) -> SkillRollouts:
    """N envs in lockstep for `episodes` episodes: one `act(obs (active, obs_dim), rows)` call
    per step. Episode e resets every env with the same held-out seed. `filmer`, a
    `video.Filmer`, films episode 0."""
    envs = [filmer.make_env() if filmer else make_env(env_id) for _ in range(n)]
    returns = np.zeros((n, episodes))
    lengths = np.zeros((n, episodes), dtype=np.int64)
    visited: list[list[np.ndarray]] = [[] for _ in range(n)]
    positions: list[list[np.ndarray]] = [[] for _ in range(n)]

    def record(row: int, obs: np.ndarray, trace: list[np.ndarray], episode: int, t: int) -> None:
        if probe is not None:
            trace.append(probe.read(envs[row].unwrapped, obs))
        if filmer is not None and episode == 0:
            filmer.capture(row, envs[row], t)

    try:
        for episode in range(episodes):
            reset_seed = episode_seed(seed + EVAL_SEED_OFFSET, episode)
            obs = np.stack([env.reset(seed=reset_seed)[0] for env in envs]).astype(np.float32)
            traces: list[list[np.ndarray]] = [[] for _ in range(n)]
            for row in range(n):
                record(row, obs[row], traces[row], episode, 0)
            running = np.ones(n, dtype=bool)
            while running.any():
                active = np.flatnonzero(running)
                actions = act(obs[active], active)  # one batched call for every running skill
                for i, row in enumerate(active):
                    next_obs, reward, terminated, truncated, _ = envs[row].step(actions[i])
                    returns[row, episode] += reward
                    lengths[row, episode] += 1
                    visited[row].append(next_obs.astype(np.float32))
                    obs[row] = next_obs
                    record(row, next_obs, traces[row], episode, int(lengths[row, episode]))
                    if terminated or truncated:
                        running[row] = False
            for row in range(n):
                if traces[row]:
                    positions[row].append(np.stack(traces[row]))
    finally:
        for env in envs:
            env.close()
    return SkillRollouts(returns, lengths, [np.stack(v) for v in visited], positions)


def rollout_skills(
    library: SkillLibrary, episodes: int = 1, seed: int = 0, filmer=None
) -> SkillRollouts:
    """Run each skill for `episodes` episodes; all skills step together (batched policy)."""
    env_id = library.spec.env_id
    return _rollout(
        env_id, library.n_skills, episodes, seed, library.act, position_probe(env_id), filmer
    )


@lru_cache(maxsize=32)
def random_policy_coverage(env_id: str, n_envs: int, episodes: int, seed: int) -> int | None:
    """Coverage of a uniformly random policy over `n_envs` x `episodes` episodes on the same
    held-out seeds as the skills (cached: it depends on nothing a training run changes)."""
    probe = position_probe(env_id)
    if probe is None:
        return None
    env = make_env(env_id)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    rng = np.random.default_rng([seed, RANDOM_POLICY_STREAM])

    def act(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, size=(len(rows), len(low))).astype(np.float32)

    rollouts = _rollout(env_id, n_envs, episodes, seed, act, probe)
    return coverage_bins([p for skill in rollouts.positions for p in skill], probe.bin_size)


def discriminator_scores(
    discriminator: torch.nn.Module, observations: list[np.ndarray], n_skills: int
) -> tuple[dict[str, float], np.ndarray]:
    """Measures of q(z|s) on states visited by each skill (`observations[k]`, (T_k, obs_dim)).

    Each skill weighs 1/N, as under the uniform prior p(z). Returns the measures and the
    confusion matrix (n_skills, n_skills): row k is how q classifies skill k's states.
    """
    log_q_z = np.zeros(n_skills)
    confusion = np.zeros((n_skills, n_skills))
    with torch.no_grad():
        for skill, states in enumerate(observations):
            logits = discriminator(torch.as_tensor(states, dtype=torch.float32))
            log_q = logits.double().log_softmax(dim=-1)  # (T_k, n_skills)
            log_q_z[skill] = log_q[:, skill].mean().item()
            predicted = log_q.argmax(dim=-1)
            confusion[skill] = torch.bincount(predicted, minlength=n_skills).double().numpy()
            confusion[skill] /= len(states)
    predicted_share = confusion.mean(axis=0)  # histogram of predicted skills, (n_skills,)
    nonzero = predicted_share[predicted_share > 0]
    ln_n = math.log(n_skills)
    bound = float(log_q_z.mean()) + ln_n
    scores = {
        "discriminator_accuracy": float(np.trace(confusion) / n_skills),
        "log_q_z": float(log_q_z.mean()),
        "mutual_information_bound": bound,
        "mutual_information_fraction": bound / ln_n,
        "effective_skills": float(np.exp(-(nonzero * np.log(nonzero)).sum())),
    }
    return scores, confusion


@dataclass
class EvaluationReport:
    """Everything one evaluation measured; `metrics()` is what goes to MLflow as `eval/...`."""

    library: str
    env_id: str
    n_skills: int
    episodes: int
    seed: int
    returns: np.ndarray  # (n_skills, episodes)
    lengths: np.ndarray  # (n_skills, episodes)
    scores: dict[str, float]  # discriminator measures (empty without a discriminator)
    confusion: np.ndarray | None  # (n_skills, n_skills)
    coverage: int | None
    random_coverage: int | None
    position: str  # what coverage measures, e.g. "torso x (m)"; "" if not measured
    bin_size: float  # side of a coverage bin
    trajectories: list[list[np.ndarray]]  # per skill, per episode: (T+1, 1 or 2) positions
    frames: list[list[np.ndarray]] = field(default_factory=list)  # per skill (with video)
    frame_seconds: float = 0.0  # playback time of one frame
    notes: list[str] = field(default_factory=list)  # e.g. why there is no video
    artifacts: list[str] = field(default_factory=list)  # files logged, e.g. "plots/x.png"

    @property
    def coverage_of(self) -> str:
        """What a coverage bin is, e.g. "torso x (m), bins of 1"."""
        return f"{self.position}, bins of {self.bin_size:.3g}" if self.position else ""

    def metrics(self) -> dict[str, float]:
        means, stds = self.returns.mean(axis=1), self.returns.std(axis=1)
        metrics = {
            "episodes": float(self.episodes),
            "best_skill_return": float(means.max()),
            "best_skill": float(means.argmax()),
            "mean_skill_return": float(means.mean()),
            "episode_length": float(self.lengths.mean()),
        }
        metrics.update({f"return/skill_{k:02d}": float(v) for k, v in enumerate(means)})
        metrics.update({f"return_std/skill_{k:02d}": float(v) for k, v in enumerate(stds)})
        metrics.update(self.scores)
        if self.coverage is not None:
            metrics["coverage_bins"] = float(self.coverage)
        if self.random_coverage is not None:
            metrics["random_coverage_bins"] = float(self.random_coverage)
        return metrics


def evaluate(
    library: SkillLibrary,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    video: bool = False,
    frame_size: int = 128,
    max_frames: int = 100,
) -> EvaluationReport:
    """Run every skill deterministically for `episodes` episodes on held-out seeds and measure
    it; with `video`, also film episode 0 of each skill (no video, and a note, if the machine
    cannot render)."""
    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    env_id = library.spec.env_id
    check_env(library)
    notes: list[str] = []
    filmer = None
    if video:
        from skillforge import video as video_module

        problem = video_module.rendering_problem(env_id, frame_size)
        if problem is None:
            settings = video_module.ClipSettings.for_env(env_id, frame_size, max_frames)
            filmer = video_module.Filmer(env_id, library.n_skills, settings)
        else:
            notes.append(f"no video: {problem}")
    with _torch_threads(1):  # batches of N rows: more threads only contend for the cores
        rollouts = rollout_skills(library, episodes, seed, filmer)
    scores, confusion = {}, None
    if library.discriminator is not None:
        scores, confusion = discriminator_scores(
            library.discriminator, rollouts.observations, library.n_skills
        )
    probe = position_probe(env_id)
    coverage = random_coverage = None
    if probe is not None:
        all_positions = [p for skill in rollouts.positions for p in skill]
        coverage = coverage_bins(all_positions, probe.bin_size)
        random_coverage = random_policy_coverage(env_id, library.n_skills, episodes, seed)
    return EvaluationReport(
        library=library.name,
        env_id=env_id,
        n_skills=library.n_skills,
        episodes=episodes,
        seed=seed,
        returns=rollouts.returns,
        lengths=rollouts.lengths,
        scores=scores,
        confusion=confusion,
        coverage=coverage,
        random_coverage=random_coverage,
        position=probe.what if probe is not None else "",
        bin_size=probe.bin_size if probe is not None else 0.0,
        trajectories=rollouts.positions,
        frames=filmer.clips() if filmer is not None else [],
        frame_seconds=filmer.frame_seconds if filmer is not None else 0.0,
        notes=notes,
    )


def check_env(library: SkillLibrary) -> None:
    """Refuse, in one line, a library whose environment cannot be made here."""
    try:
        make_env(library.spec.env_id).close()
    except EnvError as error:
        name = library.name or library.spec.env_id
        raise EnvError(f"cannot evaluate library {name}: {error}") from None


@contextmanager
def _torch_threads(threads: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def evaluate_library(library: SkillLibrary, episodes: int = 1, seed: int = 0) -> dict[str, float]:
    """The metrics every library carries (logged with an `eval/` prefix by the pipeline)."""
    return evaluate(library, episodes, seed).metrics()


def write_files(
    report: EvaluationReport,
    folder: str | Path,
    history: dict[str, list[tuple[int, float]]] | None = None,
) -> list[Path]:
    """The report's pictures (`plots/*.png`) and videos (`videos/*.gif`) under `folder`.

    `history` holds metric histories by name (`log_q_z`, `discriminator_accuracy` of training,
    `eval/log_q_z` ... of earlier evaluations) for the learning curve; None leaves it out.
    """
    from skillforge import plots

    folder = Path(folder)
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    title = f"{report.library}: {report.env_id}, {report.n_skills} skills"
    files = []
    if report.confusion is not None:
        files.append(
            plots.confusion_matrix(
                report.confusion,
                folder / "plots" / "confusion_matrix.png",
                title,
                report.scores["discriminator_accuracy"],
            )
        )
    files.append(
        plots.return_distribution(report.returns, folder / "plots" / "skill_returns.png", title)
    )
    if any(report.trajectories):
        files.append(
            plots.trajectories(
                report.trajectories,
                folder / "plots" / "trajectories.png",
                title,
                _coverage_caption(report),
                report.position,
            )
        )
    if history is not None:
        files.append(
            plots.learning_curve(
                history, folder / "plots" / "learning_curve.png", title, report.n_skills
            )
        )
    if report.frames:
        from skillforge import video

        (folder / "videos").mkdir(exist_ok=True)
        for skill, frames in enumerate(report.frames):
            path = folder / "videos" / f"skill_{skill:02d}.gif"
            files.append(video.write_gif(frames, path, report.frame_seconds))
        grid = folder / "videos" / "all_skills.gif"
        files.append(video.write_grid_gif(report.frames, grid, report.frame_seconds))
    return files


def _coverage_caption(report: EvaluationReport) -> str:
    if report.coverage is None:
        return ""
    return (
        f"coverage: {report.coverage} bins of size {report.bin_size:.3g} visited "
        f"(uniformly random policy: {report.random_coverage})"
    )


def evaluate_and_log(
    client,
    run_id: str,
    library: SkillLibrary,
    step: int,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    video: bool = True,
) -> EvaluationReport:
    """Evaluate `library`, then log its measures (`eval/...` at `step`), pictures and videos
    to its MLflow run `run_id`. What `skillforge evaluate` and the end of pretraining do."""
    import tempfile

    from skillforge import tracking

    report = evaluate(library, episodes, seed, video=video)
    history = {}
    for key in ("log_q_z", "discriminator_accuracy"):  # training batches, then held-out
        history[key] = tracking.metric_history(client, run_id, key)
        earlier = tracking.metric_history(client, run_id, f"eval/{key}")
        history[f"eval/{key}"] = [(s, v) for s, v in earlier if s != step]
        history[f"eval/{key}"].append((step, report.scores.get(key, math.nan)))
    with tempfile.TemporaryDirectory(prefix="skillforge-eval-") as folder:
        files = write_files(report, folder, history)
        report.artifacts = [str(path.relative_to(folder)) for path in files]
        tracking.log_evaluation(
            client, run_id, report.metrics(), step, folder, coverage_of=report.coverage_of
        )
    return report


def evaluate_stored(
    reference: str | None,
    tracking_uri: str | None = None,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    video: bool = True,
    on_start: Callable | None = None,
):
    """`skillforge evaluate`: evaluate a stored library (name, run id, or None for the latest)
    and log everything to its own run, at its current step. `on_start(info)` is called once
    the library is found and loadable. Returns (LibraryInfo, report)."""
    from skillforge import pipeline, tracking

    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    client = tracking.connect(tracking_uri)
    info = tracking.find_library(reference, tracking_uri)
    library = pipeline.load_library(info.run_id, tracking_uri)
    library.name = info.name
    check_env(library)
    if on_start is not None:
        on_start(info)
    report = evaluate_and_log(client, info.run_id, library, info.step, episodes, seed, video)
    return info, report


def frozen_library(agent, spec, name: str = "") -> SkillLibrary:
    """A CPU copy of a training agent's policy and discriminator as a library (the agent's
    own networks keep training, untouched: no requires_grad or device change)."""
    policy = copy.deepcopy(agent.sac.policy).cpu()
    discriminator = copy.deepcopy(agent.discriminator).cpu()
    return SkillLibrary(spec, policy, discriminator, name=name)


def mlflow_periodic_evaluation(
    client, run_id: str, every: int, episodes: int = 1, seed: int = 0, name: str = ""
) -> PeriodicEvaluation:
    """A `PeriodicEvaluation` that logs its measures (`eval/...`, no files) to run `run_id`."""
    from skillforge import tracking

    def log(report: EvaluationReport, step: int) -> None:
        tracking.log_evaluation(
            client, run_id, report.metrics(), step, coverage_of=report.coverage_of
        )

    return PeriodicEvaluation(every, log, episodes, seed, name)


class PeriodicEvaluation:
    """Training callback: evaluate the skills every `every` environment steps (no video) and
    hand the report to `on_report(report, step)` (e.g. `tracking.log_evaluation`). It reads
    the agent's networks through a copy and uses no random generator of training, so a run
    with it ends with exactly the weights of a run without it."""

    def __init__(
        self,
        every: int,
        on_report: Callable[[EvaluationReport, int], None],
        episodes: int = 1,
        seed: int = 0,
        name: str = "",
    ) -> None:
        if every < 0:
            raise ConfigError(f"--eval-every must be >= 0 (0: only at the end), got {every}")
        self.every, self.on_report = every, on_report
        self.episodes, self.seed, self.name = episodes, seed, name
        self.agent = self.spec = None
        self.last_step = self.total_steps = 0

    def on_start(self, info: dict) -> None:
        self.agent, self.spec = info["agent"], info["spec"]
        self.last_step, self.total_steps = int(info["step"]), int(info["total_steps"])

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        due = self.every > 0 and step // self.every > self.last_step // self.every
        self.last_step = step
        if not due or step >= self.total_steps:  # the final evaluation is the pipeline's
            return
        library = frozen_library(self.agent, self.spec, self.name)
        self.on_report(evaluate(library, self.episodes, self.seed), step)
