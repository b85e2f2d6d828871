"""Rollout throughput: evaluation (all skills in lockstep, one batched policy call per step)
and the skill-action wrapper, against the raw env step rate.

    python benchmarks/bench_rollouts.py [--env Hopper-v5] [--skills 20] [--steps N] [--episodes E]

Untrained networks of the default size (300x300) do the acting: the cost per step does not
depend on the weights. Prints env steps/s for each and the fraction of the raw rate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from skillforge.config import PretrainConfig
from skillforge.diayn import DIAYN
from skillforge.envs import make_env
from skillforge.evaluate import rollout_skills
from skillforge.hierarchical import SkillActionWrapper
from skillforge.library import LibrarySpec, SkillLibrary
from skillforge.skill_sources import LibrarySkills

DEFAULT_JSON = Path(__file__).parent / "results" / "rollouts.json"


def raw_env_rate(env_id: str, steps: int) -> float:
    """Env steps/s with actions drawn in advance (no policy at all)."""
    env = make_env(env_id)
    actions = np.random.default_rng(0).uniform(
        env.action_space.low, env.action_space.high, (steps, env.action_space.shape[0])
    )
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def make_library(env_id: str, n_skills: int) -> SkillLibrary:
    env = make_env(env_id)
    spec = LibrarySpec.from_env(env_id, env, n_skills, hidden=300)
    agent = DIAYN(spec, PretrainConfig(env_id=env_id, n_skills=n_skills))
    return SkillLibrary(spec, agent.sac.policy, agent.discriminator, name="bench")


def evaluation_rate(library: SkillLibrary, episodes: int) -> float:
    """Env steps/s of `rollout_skills`: every skill for `episodes` episodes, all at once."""
    start = time.perf_counter()
    rollouts = rollout_skills(library, episodes=episodes, seed=0)
    return sum(len(obs) for obs in rollouts.observations) / (time.perf_counter() - start)


def wrapper_rate(library: SkillLibrary, steps: int, skill_steps: int = 10) -> float:
    """Env steps/s through the skill-action wrapper (one env, one skill at a time)."""
    env = SkillActionWrapper(make_env(library.spec.env_id), LibrarySkills(library), skill_steps)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    done, start = 0, time.perf_counter()
    while done < steps:
        _, _, terminated, truncated, info = env.step(int(rng.integers(library.n_skills)))
        done += info["env_steps"]
        if terminated or truncated:
            env.reset()
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--skills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--episodes", type=int, default=10, help="per skill, for evaluation")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    torch.set_num_threads(1)
    library = make_library(args.env, args.skills)
    raw = raw_env_rate(args.env, args.steps)
    rates = {
        "raw env": raw,
        f"evaluation ({args.skills} skills batched)": evaluation_rate(library, args.episodes),
        "skill-action wrapper (K=10)": wrapper_rate(library, args.steps),
    }
    print(f"{args.env}, {args.skills} skills, hidden 300, torch threads 1")
    for name, rate in rates.items():
        print(f"  {name:<34} {rate:9,.0f} env steps/s   {rate / raw:6.1%} of raw")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"env": args.env, "skills": args.skills, **rates}, indent=2))


if __name__ == "__main__":
    main()
