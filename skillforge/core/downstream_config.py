"""Configuration of the commands that reuse a library: `hierarchical`, `finetune`, `serve`.

Like `skillforge.core.config`, one frozen dataclass each, validated on construction, and
nothing heavy imported (the CLI validates options before loading torch).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from skillforge.core.config import positive_finite, require, require_updates_per_step

SKILL_SOURCES = ("registry", "onnx", "checkpoint")
BASELINE_NAMES = ("best-skill", "random-skills", "sac")


@dataclass(frozen=True)
class HierarchicalConfig:
    """A meta-controller (Double DQN) choosing among frozen skills every `skill_steps` steps."""

    task: str = ""
    """Task name or env id; empty uses the library's own env with its real reward."""
    skill_steps: int = 10
    """K: env steps a chosen skill runs before the next choice (DIAYN's cheetah task: 10)."""
    total_steps: int = 100_000
    """Task env steps (not decisions) each method may take on the task's reward, everything
    included: skill selection, validation, training (pretraining is not counted)."""
    seed: int = 0
    """Seeds the network, exploration and every episode reset."""
    hidden: int = 256
    """Units in each of the two hidden layers of the Q-network."""
    batch_size: int = 64
    """Decisions per gradient step."""
    lr: float = 3e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount per env step: a decision whose skill ran tau steps is discounted by
    gamma^tau (semi-Markov), its rewards by gamma^i inside the window."""
    tau: float = 0.005
    """Polyak rate of the target Q-network."""
    buffer_size: int = 100_000
    """Replay capacity in decisions."""
    learning_starts: int = 256
    """Random decisions before the first gradient step."""
    epsilon_end: float = 0.05
    """Final exploration rate (linear decay from 1.0)."""
    exploration_fraction: float = 0.3
    """Fraction of the training steps (what the selection and the end's validation leave)
    over which epsilon decays, from the first training decision."""
    skills_from: str = "registry"
    """Where the frozen skills come from: registry, onnx or checkpoint."""
    baselines: tuple[str, ...] = ()
    """Any of best-skill, random-skills, sac, each with the same task env-step budget."""
    meta_controller: bool = True
    """Train the meta-controller; False runs only the baselines (so that SAC from scratch,
    the longest, can run apart: in another session, on another machine)."""
    eval_episodes: int = 5
    """Greedy episodes to measure the final meta-controller (and each skill for best-skill)."""
    envs: int = 8
    """Copies of the task stepped in lockstep: one batched skill call per env step for all."""
    validation_episodes: int = 8
    """Validation episodes (seeds of their own): the best single skill is chosen first (every
    skill on this many, the two best on three times as many others), the greedy
    meta-controller (and SAC from scratch) is checked on them every `validate_every` steps,
    the best network kept, and deployed only if surely better than that skill on the
    others, else the skill is. 0 turns validation off. Every validation and selection step
    is paid from `total_steps`: the network trains on what they leave."""
    validate_every: int = 20_000
    """Task env steps between validations of the greedy policy (and one at the end)."""
    sac_updates_per_step: float = 1.0
    """Gradient steps of the SAC baseline per task env step (SAC's own: 1; fewer makes a
    budget of millions of steps affordable on a CPU, at the cost of a weaker baseline)."""

    def __post_init__(self) -> None:
        require(self.skill_steps >= 1, f"--skill-steps must be >= 1, got {self.skill_steps}")
        require(self.total_steps >= 1, f"--steps must be positive, got {self.total_steps}")
        require(0 <= self.seed < 2**63, f"--seed must be in [0, 2^63), got {self.seed}")
        require(1 <= self.hidden <= 8192, f"hidden must be in [1, 8192], got {self.hidden}")
        require(self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}")
        require(positive_finite(self.lr), f"lr must be a positive number, got {self.lr}")
        require(0 <= self.gamma < 1, f"gamma must be in [0, 1), got {self.gamma}")
        require(0 < self.tau <= 1, f"tau must be in (0, 1], got {self.tau}")
        require(self.buffer_size >= self.batch_size, "buffer_size must be >= batch_size")
        require(self.learning_starts >= 0, "learning_starts must be >= 0")
        require(0 <= self.epsilon_end <= 1, "epsilon_end must be in [0, 1]")
        require(0 < self.exploration_fraction <= 1, "exploration_fraction must be in (0, 1]")
        require(
            self.skills_from in SKILL_SOURCES,
            f"--skills-from must be one of {', '.join(SKILL_SOURCES)}, got {self.skills_from!r}",
        )
        unknown = [name for name in self.baselines if name not in BASELINE_NAMES]
        require(
            not unknown,
            f"unknown baseline {', '.join(unknown)}; choose from {', '.join(BASELINE_NAMES)}",
        )
        require(
            self.meta_controller or self.baselines,
            "--no-meta-controller runs only the baselines: name them with --baselines",
        )
        require(self.eval_episodes >= 1, f"--eval-episodes must be >= 1, got {self.eval_episodes}")
        require(1 <= self.envs <= 256, f"--envs must be in [1, 256], got {self.envs}")
        require(
            0 <= self.validation_episodes <= 100,
            f"--validation-episodes must be in [0, 100], got {self.validation_episodes}",
        )
        require(
            self.validate_every >= 1, f"--validate-every must be >= 1, got {self.validate_every}"
        )
        require_updates_per_step(self.sac_updates_per_step, "--sac-updates-per-step")

    def to_params(self) -> dict[str, str]:
        """Flat string params, as logged to MLflow."""
        params = dataclasses.asdict(self)
        params["baselines"] = ",".join(self.baselines) or "none"
        return {key: str(value) for key, value in params.items()}


FINETUNE_BASELINES = ("sac",)


@dataclass(frozen=True)
class FinetuneConfig:
    """SAC on a task's real reward starting from one frozen skill (DIAYN section 4.2.1)."""

    task: str = ""
    """Task name or env id; empty uses the library's own env with its real reward."""
    skill: str = "best"
    """The skill to start from: an index, or best (the highest mean return on selection
    episodes of the task, apart from the test episodes)."""
    total_steps: int = 100_000
    """Task env steps each method may take on the task's reward, everything included: the
    skill's selection, validation, fine-tuning (pretraining is not counted)."""
    seed: int = 0
    """Seeds the networks, exploration and every episode reset."""
    batch_size: int = 256
    """Transitions per gradient step (fine-tuning and SAC from scratch alike)."""
    lr: float = 3e-4
    """Adam learning rate."""
    learning_starts: int = 10_000
    """Random steps before SAC from scratch learns; critic-only updates of fine-tuning."""
    baselines: tuple[str, ...] = ()
    """sac: SAC from scratch with the same networks and settings, at the same budget."""
    eval_episodes: int = 5
    """Greedy held-out episodes for the final returns (the same for every method)."""
    validation_episodes: int = 8
    """Validation episodes (seeds of their own, apart from the test episodes), as in
    `hierarchical`: `best` is chosen on them (every skill on this many, the two best on three
    times as many others), the greedy policy (and SAC from scratch) is checked on them every
    `validate_every` steps and the best kept, and the fine-tuned policy is deployed only if
    surely better than the skill it started from on the others, else that skill is. 0 turns
    validation off. Every step of it is paid from `total_steps`."""
    validate_every: int = 20_000
    """Task env steps between validations of the greedy policy (and one at the end)."""
    updates_per_step: float = 1.0
    """Gradient steps per task env step, of fine-tuning and of SAC from scratch alike."""

    def __post_init__(self) -> None:
        skill = str(self.skill).strip().lower()
        require(
            skill == "best" or (skill.isdigit() and int(skill) < 10_000),
            f"--skill must be a skill index or 'best', got {self.skill!r}",
        )
        object.__setattr__(self, "skill", skill)
        require(self.total_steps >= 1, f"--steps must be positive, got {self.total_steps}")
        require(0 <= self.seed < 2**63, f"--seed must be in [0, 2^63), got {self.seed}")
        require(self.batch_size >= 1, f"--batch-size must be positive, got {self.batch_size}")
        require(positive_finite(self.lr), f"--lr must be a positive number, got {self.lr}")
        require(self.learning_starts >= 0, "--learning-starts must be >= 0")
        unknown = [name for name in self.baselines if name not in FINETUNE_BASELINES]
        require(
            not unknown,
            f"unknown baseline {', '.join(unknown)}; choose from {', '.join(FINETUNE_BASELINES)}",
        )
        require(self.eval_episodes >= 1, f"--eval-episodes must be >= 1, got {self.eval_episodes}")
        require(
            0 <= self.validation_episodes <= 100,
            f"--validation-episodes must be in [0, 100], got {self.validation_episodes}",
        )
        require(
            self.validate_every >= 1, f"--validate-every must be >= 1, got {self.validate_every}"
        )
        require_updates_per_step(self.updates_per_step, "--updates-per-step")
        # fine-tuning updates after a warm-up of min(learning_starts, steps / 10) steps and
        # holds the policy still for learning_starts critic-only updates
        held = math.ceil(self.learning_starts / self.updates_per_step)
        moves_at = min(self.learning_starts, self.total_steps // 10) + held + 1
        suggested = max(1, int(self.total_steps // 4 * self.updates_per_step))
        require(
            self.total_steps >= moves_at,
            f"--steps {self.total_steps:,} ends before the fine-tuned policy first moves (step "
            f"{moves_at:,}: its critics learn alone for --learning-starts "
            f"{self.learning_starts:,} updates first), so the skill would come back unchanged; "
            f"pass e.g. --learning-starts {suggested:,}, or more --steps",
        )

    def to_params(self) -> dict[str, str]:
        """Flat string params, as logged to MLflow."""
        params = dataclasses.asdict(self)
        params["baselines"] = ",".join(self.baselines) or "none"
        return {key: str(value) for key, value in params.items()}


def parse_baselines(text: str) -> tuple[str, ...]:
    """`best-skill,random-skills,sac` -> a tuple; 'none' or '' -> ()."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    return () if names in ((), ("none",)) else names


@dataclass(frozen=True)
class ServeConfig:
    """`skillforge serve`: a registered library or agent over HTTP."""

    host: str = "127.0.0.1"
    """Address to listen on; anything but loopback lets anyone who reaches the port use it."""
    port: int = 5001
    """TCP port (the MLflow UI takes 5000)."""

    def __post_init__(self) -> None:
        require(0 < self.port < 65536, f"--port must be in 1..65535, got {self.port}")
        require(bool(self.host.strip()), "--host must name an address, e.g. 127.0.0.1")
