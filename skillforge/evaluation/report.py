"""One evaluation of a library: every skill run deterministically on held-out seeds,
measured (and filmed); also as a training callback every N steps."""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from skillforge.core.envs import make_env
from skillforge.core.errors import ConfigError, EnvError
from skillforge.core.positions import position_probe
from skillforge.evaluation.measures import coverage_bins, discriminator_scores
from skillforge.evaluation.rollouts import random_policy_paths, rollout_skills
from skillforge.evaluation.travel import travel_metrics
from skillforge.skills.library import SkillLibrary

DEFAULT_EPISODES = 5


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
    random_trajectories: list[np.ndarray] = field(default_factory=list)  # random policy's
    dt: float | None = None  # seconds per env step (for speeds)
    travels: bool = False  # positions are places (displacement and speed are measured)
    frames: list[list[np.ndarray]] = field(default_factory=list)  # per skill (with video)
    frame_seconds: float = 0.0  # playback time of one frame
    notes: list[str] = field(default_factory=list)  # e.g. why there is no video
    artifacts: list[str] = field(default_factory=list)  # files logged, e.g. "plots/x.png"
    # the library's training curve: (episodes, running log q(z|s)), see running_log_q.py
    running_log_q: list[tuple[int, float]] = field(default_factory=list)

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
        if self.travels and any(self.trajectories):
            metrics.update(travel_metrics(self.trajectories, self.dt))
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
    dt = check_env(library)
    notes: list[str] = []
    filmer = None
    if video:
        from skillforge.evaluation import video as video_module

        problem = video_module.rendering_problem(env_id, frame_size)
        if problem is None:
            settings = video_module.ClipSettings.for_env(
                env_id, frame_size, max_frames, clips=library.n_skills
            )
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
    random_paths: list[np.ndarray] = []
    if probe is not None:
        all_positions = [p for skill in rollouts.positions for p in skill]
        coverage = coverage_bins(all_positions, probe.bin_size)
        random_paths = list(random_policy_paths(env_id, library.n_skills, episodes, seed))
        random_coverage = coverage_bins(random_paths, probe.bin_size)
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
        random_trajectories=random_paths,
        travels=probe is not None and probe.travels,
        dt=dt,
        frames=filmer.clips() if filmer is not None else [],
        frame_seconds=filmer.frame_seconds if filmer is not None else 0.0,
        notes=notes,
    )


def check_env(library: SkillLibrary) -> float | None:
    """Refuse, in one line, a library whose environment cannot be made here; else the env's
    seconds per step (None if it does not say)."""
    try:
        env = make_env(library.spec.env_id)
        dt = getattr(env.unwrapped, "dt", None)
        env.close()
        return dt
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


def frozen_library(agent, spec, name: str = "") -> SkillLibrary:
    """A CPU copy of a training agent's policy and discriminator (DIAYN's; METRA has none) as
    a library (the agent's own networks keep training, untouched: no requires_grad or device
    change)."""
    policy = copy.deepcopy(agent.sac.policy).cpu()
    discriminator = getattr(agent, "discriminator", None)
    if discriminator is not None:
        discriminator = copy.deepcopy(discriminator).cpu()
    return SkillLibrary(spec, policy, discriminator, name=name)


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
