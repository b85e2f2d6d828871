"""The reuse benchmark's libraries and tasks (`bench_reuse.py`): which library each task
reuses, at what task env-step budget and K, with how many validation and test episodes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Library:
    """A library the benchmark reuses: shipped in `exports/libraries/<name>.pt`, or
    pretrained with these settings (small networks: this is a 2-core CPU budget)."""

    name: str
    env: str
    skills: int
    steps: int
    features: str = "all"
    objective: str = "diayn"
    hidden: int = 128
    batch_size: int = 128
    learning_starts: int = 5_000

    @property
    def label(self) -> str:
        """The objective, with its prior: `metra`, `diayn`, `diayn+x`."""
        return self.objective + ("" if self.features == "all" else f"+{self.features}")


@dataclass(frozen=True)
class Task:
    """A downstream task, the library it reuses, its env-step budget and K; the validation
    episodes (the best skill's selection and every check) are paid from the budget, so a
    small budget takes few; the test episodes every method is scored on are not."""

    name: str
    library: Library
    env_steps: int
    skill_steps: int
    validation_episodes: int = 2
    eval_episodes: int = 5
    checks: int = 4
    """Validations of the greedy policy over the budget (and one at the end)."""
    sac_updates_per_step: float = 1.0
    """Gradient steps per task env step of SAC from scratch and of fine-tuning."""
    also: tuple[Library, ...] = ()
    """Other libraries whose meta-controller, skills and fine-tuning are compared with the
    first's (SAC from scratch, which uses no library, runs with the first's)."""
    sac_apart: bool = False
    """SAC from scratch runs as a job of its own (`hierarchical --no-meta-controller
    --baselines sac`), not after the meta-controller in the same run: where a seed's run
    would not fit in one working session."""

    @property
    def libraries(self) -> tuple[Library, ...]:
        return (self.library, *self.also)


HOPPER = Library("hopper", "Hopper-v5", 10, 60_000)
DEFAULTS = {"batch_size": 256, "learning_starts": 10_000}
"""Every shipped library's but the small ones: each objective's own defaults."""
METRA_HALFCHEETAH = Library(  # shipped; made with --minutes 35 (431,688 env steps)
    "metra-halfcheetah", "HalfCheetah-v5", 16, 431_688, objective="metra", hidden=256, **DEFAULTS
)
METRA_ANT = Library(  # shipped; made with --minutes 90 (1,824,800 env steps)
    "metra-ant", "Ant-v5", 8, 1_824_800, objective="metra", hidden=256, **DEFAULTS
)
DIAYN_X_HALFCHEETAH = Library(  # shipped; bench_travel.py's DIAYN + prior, --minutes 35
    "diayn-x-halfcheetah", "HalfCheetah-v5", 16, 78_456, "x", hidden=300, **DEFAULTS
)
DIAYN_XY_ANT = Library(  # shipped; bench_travel.py's DIAYN + prior, --minutes 90
    "diayn-xy-ant", "Ant-v5", 8, 275_966, "xy", hidden=300, **DEFAULTS
)
MOUNTAINCAR_X = Library("mountaincar-x", "MountainCarContinuous-v0", 10, 60_000, features="x")
TASKS = {
    task.name: task
    for task in (
        Task("Hopper-v5", HOPPER, 20_000, 10),
        Task(
            "halfcheetah-goal",
            METRA_HALFCHEETAH,
            300_000,
            50,
            validation_episodes=4,
            eval_episodes=20,
            also=(DIAYN_X_HALFCHEETAH,),
        ),
        Task(
            "ant-navigation",
            METRA_ANT,
            2_000_000,
            5,
            validation_episodes=4,
            eval_episodes=10,
            checks=20,
            sac_updates_per_step=0.25,  # one per step is ~6 h per seed on one core
            also=(DIAYN_XY_ANT,),
            sac_apart=True,  # ~1 h 50 min alone, after the meta-controller's ~70 min
        ),
        Task(
            "halfcheetah-hurdle",
            METRA_HALFCHEETAH,
            300_000,
            10,
            validation_episodes=4,
            eval_episodes=10,
            checks=6,
        ),
        Task("MountainCarContinuous-v0", MOUNTAINCAR_X, 30_000, 50),
    )
}


def with_budget(env_steps: int | None) -> None:
    """Every task at `env_steps` task env steps instead of its own (a quick check), if given."""
    if env_steps:
        for name, task in TASKS.items():
            TASKS[name] = dataclasses.replace(task, env_steps=env_steps)
