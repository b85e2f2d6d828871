"""Subnormal floats and the SAC update: why training flushes them to zero.

    python benchmarks/bench_denormals.py [--obs 110] [--actions 8] [--hidden 256]
                                         [--updates 200] [--repeats 3] [--checkpoint PATH]

Late in a long run Adam's second moments of tiny gradients fall below float32's smallest
normal number (1.2e-38); x86 then takes a slow path for every operation on them. This times
one thread's Adam step and whole SAC update (`skillforge.rl.sac`, the sizes of
`ant-navigation`'s SAC from scratch by default) with gradients of ordinary size, and with
gradients of 1e-21 (their squares, in Adam's second moment, are subnormal), each with
subnormals kept (torch's default) and flushed (what training sets). With
`--checkpoint` (a pretraining run's `checkpoint.pt`, e.g. a long run's under
`checkpoints/<name>/`), also the share of Adam's second moments that are subnormal in it and
the run's own update (`skillforge.rl.objectives.update`, its batch size, batches from its
replay) restored from it, kept and flushed in turn. Prints milliseconds per step, the median
of `--repeats`, and writes them to `benchmarks/results/denormals.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from skillforge.core.config import PretrainConfig
from skillforge.rl.checkpoint import load_checkpoint
from skillforge.rl.loop import new_training_state
from skillforge.rl.objectives import update
from skillforge.rl.sac import SAC, make_optimizer
from skillforge.rl.spec import LibrarySpec

SMALLEST_NORMAL = torch.finfo(torch.float32).tiny

DEFAULT_JSON = Path(__file__).parent / "results" / "denormals.json"


def milliseconds(args: argparse.Namespace, gradient: float, flush: bool, whole: bool) -> float:
    """Median time of one Adam step (or one whole update) after Adam has seen `gradient`."""
    torch.manual_seed(0)
    sac = SAC(args.obs, args.actions, args.hidden, -np.ones(args.actions), np.ones(args.actions))
    optimizer = make_optimizer(sac.parameters(), 3e-4, torch.device("cpu"))
    torch.set_flush_denormal(flush)
    params = [p for p in sac.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.full_like(p, gradient)
    for _ in range(5):
        optimizer.step()  # Adam's moments now hold gradient and its square
    batch = [torch.randn(256, args.obs), torch.rand(256, args.actions) * 2 - 1]
    batch += [torch.randn(256), torch.randn(256, args.obs), torch.zeros(256)]
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for _ in range(args.updates):
            if whole:
                losses = sac.losses(*batch)
                optimizer.zero_grad(set_to_none=False)
                (losses.critic + losses.actor).backward()
                for p in params:  # the gradients late in a run: as tiny as asked
                    p.grad.fill_(gradient)
            optimizer.step()
        times.append((time.perf_counter() - started) / args.updates * 1000)
    return statistics.median(times)


def checkpoint_updates(path: Path, updates: int, repeats: int) -> dict:
    """A pretraining checkpoint: how many of Adam's second moments are subnormal, and its
    update's milliseconds with subnormals kept and flushed (each repeat from the saved state,
    the two interleaved)."""
    saved = load_checkpoint(path)
    torch.set_flush_denormal(False)  # flushed, a subnormal would compare equal to zero
    moments = [s["exp_avg_sq"] for s in saved["optimizer"]["state"].values() if "exp_avg_sq" in s]
    subnormal = sum(int(((m != 0) & (m.abs() < SMALLEST_NORMAL)).sum()) for m in moments)
    config = PretrainConfig.from_dict(saved["config"])
    times: dict[str, list[float]] = {"kept": [], "flushed": []}
    for _ in range(repeats):
        for flush in (False, True):
            run = new_training_state(config, LibrarySpec.from_dict(saved["spec"]))
            run.load_state_dict(saved)
            torch.set_flush_denormal(flush)
            batches = [run.buffer.sample(config.batch_size, run.sampler) for _ in range(updates)]
            started = time.perf_counter()
            for batch in batches:
                update(run.agent, run.optimizer, batch)
            elapsed = (time.perf_counter() - started) / updates * 1000
            times["flushed" if flush else "kept"].append(elapsed)
    return {
        "library": config.name,
        "env_steps": int(saved["step"]),
        "subnormal_second_moments": round(subnormal / sum(m.numel() for m in moments), 4),
        "ms": {how: round(statistics.median(values), 3) for how, values in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obs", type=int, default=110)
    parser.add_argument("--actions", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", type=Path, help="a pretraining run's checkpoint.pt")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {"obs": args.obs, "actions": args.actions, "hidden": args.hidden, "ms": {}}
    for what, whole in (("adam_step", False), ("sac_update", True)):
        for gradient in (1e-3, 1e-21):
            for flush in (False, True):
                ms = milliseconds(args, gradient, flush, whole)
                key = f"{what}/gradient={gradient:g}/{'flushed' if flush else 'kept'}"
                results["ms"][key] = round(ms, 3)
                print(f"{key}: {ms:.2f} ms", flush=True)
    if args.checkpoint:
        results["checkpoint"] = checkpoint_updates(args.checkpoint, args.updates, args.repeats)
        print(json.dumps(results["checkpoint"]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
