"""Does the meta-controller at least match its own best skill? The table of issue 15.

    python benchmarks/bench_meta_controller.py [--store DIR] [--library NAME]
        [--steps 200000] [--seeds 0,1,2] [--skill-steps 10,50] [--eval-episodes 20]
        [--validation-episodes 2] [--jobs 2]

On the library's own env and real reward (Hopper-v5 for the default library: 20 skills,
2 x 300 units, `skillforge pretrain hopper --steps 100000`, imported from
`exports/libraries/<library>.pt` when the store lacks it), for every K and seed:
`skillforge hierarchical --steps STEPS --skill-steps K --seed S --baselines best-skill
--eval-episodes 20`. Both final returns are greedy on the same 20 held-out test episodes
(5, the command's default, let one fall in a learned policy swing its mean by 10%). The best
skill is the one chosen on selection episodes apart from the test episodes (the skill the
meta-controller falls back to); the best skill in hindsight, chosen on the test episodes
themselves, is recorded too. The meta-controller is also reported by its best validation
return and by what it deployed (its network, or its best skill when validation preferred
that). Both methods pay every task env step (selection, validation, training) from the same
`--steps` and record what they used (`task_env_steps`); a run whose two differ by more than
1% is refused. Every run's curves and `plots/meta_controller.png`
are in the store. Writes `benchmarks/results/meta_controller.json`, one record per run,
keeping the records of an earlier (interrupted) call.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "meta_controller.json"
SHIPPED = Path(__file__).parent.parent / "exports" / "libraries"


def ensure_library(name: str, store: str) -> None:
    """The library in the store, imported from its shipped file if it is not there yet."""
    from skillforge.core.errors import SkillforgeError
    from skillforge.store.tracking import find_library

    try:
        find_library(name, store)
    except SkillforgeError:
        from skillforge.app.library_file import import_library

        import_library(SHIPPED / f"{name}.pt", name=name, tracking_uri=store)


def run_one(job: tuple[str, str, int, int, int, int, int]) -> dict:
    """One hierarchical run, in its own process with one torch thread."""
    import torch

    from skillforge import HierarchicalConfig, train_hierarchical

    torch.set_num_threads(1)
    library, store, steps, skill_steps, seed, eval_episodes, validation_episodes = job
    started = time.perf_counter()
    config = HierarchicalConfig(
        skill_steps=skill_steps,
        total_steps=steps,
        seed=seed,
        skills_from="checkpoint",
        baselines=("best-skill",),
        eval_episodes=eval_episodes,
        validation_episodes=validation_episodes,
    )
    result = train_hierarchical(library, config, store)
    from skillforge.reuse.budget import check_equal_experience

    check_equal_experience(result.task_env_steps, f"K={skill_steps} seed {seed}")
    meta = result.meta_controller
    from mlflow.tracking import MlflowClient

    metrics = MlflowClient(store).get_run(result.run_id).data.metrics
    record = {
        "library": library,
        "skill_steps": skill_steps,
        "seed": seed,
        "env_steps": steps,
        "eval_episodes": eval_episodes,
        "meta-controller": result.final_returns["meta-controller"],
        "best-skill": result.final_returns["best-skill"],
        "best-skill-in-hindsight": metrics["hindsight_return/best-skill"],
        "deployed": "network" if meta.fallback is None else f"skill {meta.fallback}",
        "best_validation_return": meta.validation["best"],
        "validation_curve": meta.validation_curve,
        "validation_env_steps": meta.validation_env_steps,
        "validation_episodes": validation_episodes,
        "task_env_steps": result.task_env_steps,
        "run_id": result.run_id,
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    print(
        f"K={skill_steps} seed {seed}: meta-controller {record['meta-controller']:.1f} "
        f"({record['deployed']}), best skill {record['best-skill']:.1f} "
        f"({record['minutes']} min)",
        flush=True,
    )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="runs/meta-controller", help="MLflow store folder")
    parser.add_argument("--library", default="hopper-default")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--skill-steps", default="10,50")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument(
        "--validation-episodes",
        type=int,
        default=2,
        help="paid from --steps: every skill plays this many in the selection",
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", default=str(RESULTS))
    args = parser.parse_args()
    # a kill ends the benchmark through the pool's exit, which stops its runs with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = Path(args.store).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # checkpoints and mlruns of the store live next to it
    store = f"sqlite:///{folder / 'mlflow.db'}"
    ensure_library(args.library, store)
    out = Path(args.json)
    earlier = json.loads(out.read_text())["runs"] if out.is_file() else []
    # runs from before every task env step was counted are kept, not compared
    uncounted = [r for r in earlier if "task_env_steps" not in r]
    done = [r for r in earlier if "task_env_steps" in r]
    finished = {
        (r["library"], r["env_steps"], r["skill_steps"], r["seed"], r["eval_episodes"])
        for r in done
    }
    jobs = [
        (
            args.library,
            store,
            args.steps,
            int(k),
            int(seed),
            args.eval_episodes,
            args.validation_episodes,
        )
        for k in args.skill_steps.split(",")
        for seed in args.seeds.split(",")
        if (args.library, args.steps, int(k), int(seed), args.eval_episodes) not in finished
    ]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        try:
            for record in pool.imap_unordered(run_one, jobs):
                done.append(record)
                out.parent.mkdir(exist_ok=True)
                out.write_text(json.dumps({"runs": uncounted + done}, indent=1) + "\n")
        except ValueError as error:  # unequal task experience
            raise SystemExit(f"error: {error}") from None
    print("| library | K | seed | meta-controller | deployed | best skill | in hindsight |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(done, key=lambda r: (r["library"], r["skill_steps"], r["seed"])):
        print(
            f"| {r['library']} | {r['skill_steps']} | {r['seed']} | {r['meta-controller']:,.0f} | "
            f"{r['deployed']} | {r['best-skill']:,.0f} | {r['best-skill-in-hindsight']:,.0f} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
