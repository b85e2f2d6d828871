"""What many env steps per gradient step buys DIAYN: the same wall-clock, two ways of spending it.

    python benchmarks/bench_collection.py [--env hopper] [--minutes 10] [--skills 20]
        [--store runs/collection]

Two `skillforge pretrain ENV --minutes M --threads 1` runs side by side (one core each, so
both see the same machine): DIAYN's default collection (1 env, one update per env step, the
paper's) and `--envs 8 --updates-per-step 0.125` (8 env copies in lockstep, one update per 8
env steps). Each library is evaluated on 5 held-out episodes per skill; the records in
`benchmarks/results/collection.json` hold env steps, gradient steps, held-out discriminator
accuracy, log q(z|s), effective skills, coverage (and the random policy's) and the best
skill's return.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "collection.json"
SETTINGS = {"default": [], "envs8-ups0.125": ["--envs", "8", "--updates-per-step", "0.125"]}
MEASURES = {
    "accuracy": "eval/discriminator_accuracy",
    "log_q": "eval/log_q_z",
    "effective_skills": "eval/effective_skills",
    "coverage": "eval/coverage_bins",
    "random_coverage": "eval/random_coverage_bins",
    "best_skill_return": "eval/best_skill_return",
    "gradient_steps": "gradient_steps",
}


def command(env: str, setting: str, skills: int, minutes: float, uri: str) -> list[str]:
    """The `skillforge pretrain` command of one setting."""
    return [
        *(sys.executable, "-m", "cli.main", "pretrain", env, "--skills", str(skills)),
        *("--minutes", str(minutes), "--threads", "1", "--no-video", "--eval-every", "0"),
        *("--eval-episodes", "5", "--name", f"collection-{env}-{setting}"),
        *("--tracking-uri", uri, *SETTINGS[setting]),
    ]


def record(env: str, setting: str, minutes: float, uri: str) -> dict:
    """One finished library's figures, from its MLflow run."""
    from mlflow.tracking import MlflowClient

    from skillforge.store import tracking

    info = tracking.find_library(f"collection-{env}-{setting}", uri)
    run = MlflowClient(uri).get_run(info.run_id)
    figures = {k: round(run.data.metrics.get(m, float("nan")), 3) for k, m in MEASURES.items()}
    steps = int(run.data.tags[tracking.TAG_TOTAL_STEPS])
    return {
        "env": info.env_id,
        "setting": setting,
        "minutes": minutes,
        "env_steps": steps,
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--skills", type=int, default=20)
    parser.add_argument("--store", default="runs/collection")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    stores = {setting: Path(args.store).resolve() / setting for setting in SETTINGS}
    uris = {setting: f"sqlite:///{store / 'mlflow.db'}" for setting, store in stores.items()}
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    runs = []
    for setting, store in stores.items():  # a store each: two writers never share a database
        store.mkdir(parents=True, exist_ok=True)
        runs.append(
            subprocess.Popen(
                command(args.env, setting, args.skills, args.minutes, uris[setting]),
                cwd=store,
                env=env,
                stdout=subprocess.DEVNULL,
            )
        )
    if any(run.wait() != 0 for run in runs):
        sys.exit("a pretraining run failed; its output is above")
    records = [record(args.env, setting, args.minutes, uris[setting]) for setting in SETTINGS]
    args.json.write_text(json.dumps({"runs": records}, indent=1) + "\n")
    for r in records:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
