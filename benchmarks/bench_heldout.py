"""Does the held-out evaluation measure what training measures? log q(z|s) three ways.

    python benchmarks/bench_heldout.py [--episodes 3] [LIBRARY_FILE ...]

Training reports log q(z|s') on replay samples: states reached with *sampled* actions,
which the discriminator has been fitted to. `skillforge evaluate` reports it on held-out
episodes of the *deterministic* skills (the mean action), which is how skills are reused.
Both use the state after each step. For each shipped library (exports/libraries/*.pt by
default) and for two tiny Pendulum libraries trained here (1,500 and 8,000 steps, with the
training's own last log q(z|s)), this runs the same held-out seeds with both kinds of
action and prints mean log q(z|s) (chance -ln N) and discriminator accuracy (chance 1/N);
it writes benchmarks/results/heldout.json.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from skillforge.evaluation.measures import discriminator_scores
from skillforge.evaluation.rollouts import rollout_skills
from skillforge.skills.library import SkillLibrary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "heldout.json"


def sampled_actions(library: SkillLibrary, seed: int):
    """`act(obs, rows)` drawing from each skill's tanh-Gaussian, as during training."""
    generator = torch.Generator().manual_seed(seed)
    dim, n = library.spec.obs_dim, library.n_skills

    @torch.no_grad()
    def act(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        state = np.zeros((len(obs), dim + n), dtype=np.float32)
        state[:, :dim] = obs
        state[np.arange(len(obs)), dim + rows] = 1.0
        mean, log_std = library.policy(torch.from_numpy(state))
        noise = torch.randn(mean.shape, generator=generator)
        squashed = torch.tanh(mean + log_std.exp() * noise)
        policy = library.policy
        return (squashed * policy.action_scale + policy.action_bias).numpy()

    return act


def measure(library: SkillLibrary, episodes: int, seed: int) -> dict[str, dict[str, float]]:
    results = {}
    for kind, act in (
        ("deterministic", library.act),
        ("sampled", sampled_actions(library, seed)),
    ):
        rollouts = rollout_skills(library, episodes, seed, act=act)
        scores, _ = discriminator_scores(
            library.discriminator, rollouts.observations, library.n_skills
        )
        results[kind] = {
            "log_q_z": scores["log_q_z"],
            "discriminator_accuracy": scores["discriminator_accuracy"],
            "mean_return": float(rollouts.returns.mean()),
        }
    return results


def tiny_library(steps: int, folder: Path) -> tuple[SkillLibrary, float]:
    """A Pendulum library of 4 skills trained `steps` steps, and its last training log q."""
    from skillforge.core.config import PretrainConfig
    from skillforge.rl.loop import train

    config = PretrainConfig(
        env_id="Pendulum-v1", n_skills=4, total_steps=steps, hidden=32, batch_size=32,
        buffer_size=10_000, learning_starts=100, checkpoint_every=steps, threads=1,
        device="cpu", name=f"tiny-{steps}",
    )  # fmt: skip
    result = train(config, str(folder / f"tiny-{steps}.pt"))
    library = SkillLibrary.from_checkpoint(result.checkpoint_path)
    return library, result.metrics["log_q_z"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("libraries", nargs="*", type=Path)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tiny", action="store_true", help="skip the tiny libraries")
    args = parser.parse_args()
    files = args.libraries or sorted((ROOT / "exports" / "libraries").glob("*.pt"))
    torch.set_num_threads(1)
    libraries = [(path.stem, SkillLibrary.from_checkpoint(path), None) for path in files]
    with tempfile.TemporaryDirectory() as folder:
        for steps in () if args.no_tiny else (1_500, 8_000):
            library, training_log_q = tiny_library(steps, Path(folder))
            libraries.append((library.name, library, training_log_q))
    report = {}
    for name, library, training_log_q in libraries:
        results = measure(library, args.episodes, args.seed)
        chance = -math.log(library.n_skills)
        report[name] = {"env_id": library.spec.env_id, "chance_log_q_z": chance, **results}
        if training_log_q is not None:
            report[name]["training_log_q_z"] = training_log_q
            print(f"{name:<14} training      log q(z|s) {training_log_q:8.3f}")
        for kind, row in results.items():
            print(
                f"{name:<14} {kind:<13} log q(z|s) {row['log_q_z']:8.3f} "
                f"(chance {chance:.3f})  accuracy {row['discriminator_accuracy']:.2f}  "
                f"return {row['mean_return']:9.1f}"
            )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
