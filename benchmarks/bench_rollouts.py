"""Rollout throughput: evaluation (all skills in lockstep, one batched policy call per step)
and the meta-controller's skill-action lanes, against the raw env step rate.

    python benchmarks/bench_rollouts.py [--env Hopper-v5] [--skills 20] [--steps N]
                                         [--episodes E] [--envs M] [--repeats R]

Untrained networks of the default size (300x300) do the acting: the cost per step does not
depend on the weights. The lanes run with the skills from the checkpoint (PyTorch) and from
the Model Registry (the library model, registered in a temporary store and loaded as
`hierarchical --skills-from registry` loads it). Prints env steps/s for each and the
fraction of the raw rate, each the median of `--repeats` runs, every run against the raw
rate measured just before it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skillforge.app.completion import example_observations
from skillforge.app.graph_models import register_library_model
from skillforge.core.config import PretrainConfig
from skillforge.core.envs import make_env
from skillforge.evaluation.rollouts import rollout_skills
from skillforge.reuse.skill_actions import SkillActionEnvs, SkillSet, run_skill_policy
from skillforge.rl.diayn import DIAYN
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import SkillLibrary
from skillforge.skills.sources import LibrarySkills, RegistrySkills
from skillforge.store import tracking

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


def skill_action_rate(skills: SkillSet, env_id: str, steps: int, n_envs: int, skill_steps=10):
    """Env steps/s of the meta-controller's rollouts: a random skill every K steps in each of
    `n_envs` lanes, one batched skill call per env step."""
    envs = [make_env(env_id) for _ in range(n_envs)]
    lanes = SkillActionEnvs(envs, skills, skill_steps)
    done = []
    start = time.perf_counter()
    run_skill_policy(
        lanes,
        lambda obs, rng: rng.integers(skills.n_skills, size=len(obs)),
        seed=0,
        env_steps=steps,
        on_decisions=lambda decisions: done.append(int(decisions.result.env_steps.sum())),
    )
    return sum(done) / (time.perf_counter() - start)


def register_in_store(library: SkillLibrary, folder: str) -> str:
    """Register `library`'s library model in a fresh store in `folder`; its tracking URI."""
    import mlflow

    uri = f"sqlite:///{folder}/mlflow.db"
    client = tracking.connect(uri)
    run_id = client.create_run(tracking.ensure_experiment(client, "bench")).info.run_id
    with mlflow.start_run(run_id=run_id):
        register_library_model(client, library, run_id, example_observations(library))
    return uri


def registry_skills(library: SkillLibrary, folder: str) -> RegistrySkills:
    """`library` registered in a fresh store in `folder`, loaded back as hierarchical does."""
    return RegistrySkills.load(library.name, library.spec, register_in_store(library, folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--skills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--episodes", type=int, default=10, help="per skill, for evaluation")
    parser.add_argument("--envs", type=int, default=8, help="lanes of the meta-controller")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    torch.set_num_threads(1)
    library = make_library(args.env, args.skills)
    with tempfile.TemporaryDirectory(prefix="bench-rollouts-") as folder:
        sources = {
            "checkpoint": LibrarySkills(library),
            "registry": registry_skills(library, folder),
        }
        cases = {
            f"evaluation ({args.skills} skills batched)": lambda: evaluation_rate(
                library, args.episodes
            )
        }
        for source, skills in sources.items():
            for n_envs in (1, args.envs):
                name = f"lanes, {source} (K=10, {n_envs} env{'s' * (n_envs > 1)})"
                cases[name] = lambda s=skills, n=n_envs: skill_action_rate(
                    s, args.env, args.steps, n
                )
        # each case right after a raw measurement of its own: on a shared machine the load
        # changes from minute to minute, and the fraction of a pair is what stays comparable
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, measure in cases.items():
                raw = raw_env_rate(args.env, args.steps)
                samples[name].append((measure(), raw))
    print(
        f"{args.env}, {args.skills} skills, hidden 300, torch threads 1, median of "
        f"{args.repeats} (each against the raw step rate measured just before it)"
    )
    results = {"env": args.env, "skills": args.skills, "repeats": args.repeats}
    for name, pairs in samples.items():
        rate = float(np.median([rate for rate, _ in pairs]))
        fraction = float(np.median([rate / raw for rate, raw in pairs]))
        raw = float(np.median([raw for _, raw in pairs]))
        results[name] = {"env_steps_per_s": rate, "fraction_of_raw": fraction, "raw": raw}
        print(f"  {name:<38} {rate:9,.0f} env steps/s   {fraction:6.1%} of raw ({raw:,.0f}/s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
