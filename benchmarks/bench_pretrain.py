"""Pretraining throughput: skillforge's DIAYN update loop against Stable-Baselines3 SAC.

    python benchmarks/bench_pretrain.py [--steps 1500] [--repeats 3] [--json PATH]

Both run Hopper-v5 with the same SAC settings (hidden 300x300, batch 256, one gradient step
per environment step, alpha 0.1, 1M-transition buffer). Each repetition runs in a fresh
subprocess, skillforge and SB3 alternating, so that machine noise hits both alike; a run during
which other processes used more than `--max-background` of the cores is measured again. A run first
collects `--learning-starts` random steps and does `--warmup-updates` updates; only the next
`--steps` environment steps (each with its update) are timed.

The ceiling: skillforge's update is dominated by matrix multiplications, whose FLOPs follow
from the layer sizes alone. The fraction of the ceiling is (env steps/s x GFLOP per update) /
(fp32 matmul GFLOP/s measured here), i.e. how much of the machine's matmul throughput the whole
loop (environment, acting, sampling, update) turns into useful work.

Needs the `bench` extra: pip install -e ".[bench]" (stable-baselines3).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV_ID = "Hopper-v5"
N_SKILLS = 20
HIDDEN = 300
BATCH = 256
ALPHA = 0.1
BUFFER = 1_000_000
LOG_EVERY = 100  # skillforge reports (and is timed) every this many steps
DEFAULT_JSON = Path(__file__).parent / "results" / "pretrain.json"


# ----------------------------------------------------------------------------- FLOP model


def linear_flops(batch: int, fan_in: int, fan_out: int) -> int:
    """One matmul (batch x fan_in) @ (fan_in x fan_out): 2 FLOPs per multiply-add."""
    return 2 * batch * fan_in * fan_out


def mlp_flops(batch: int, sizes: list[int], *, weight_grad: bool, input_grad: str) -> int:
    """Forward, and the backward matmuls autograd runs: weight gradients of every layer if
    `weight_grad`; input gradients of no layer ("none"), of every layer but the first
    ("hidden", the input needs none) or of every layer ("all", the input needs one)."""
    layers = list(zip(sizes[:-1], sizes[1:], strict=True))
    total = sum(linear_flops(batch, i, o) for i, o in layers)  # forward
    if weight_grad:
        total += sum(linear_flops(batch, i, o) for i, o in layers)
    if input_grad != "none":
        grad_layers = layers if input_grad == "all" else layers[1:]
        total += sum(linear_flops(batch, i, o) for i, o in grad_layers)
    return total


def update_flops(obs_dim: int, action_dim: int, n_skills: int, hidden: int, batch: int) -> dict:
    """Matmul FLOPs of one skillforge DIAYN update, per network pass."""
    state = obs_dim + n_skills
    policy = [state, hidden, hidden, 2 * action_dim]
    critic = [state + action_dim, hidden, hidden, 1]
    discriminator = [obs_dim, hidden, hidden, n_skills]
    twin = 2
    return {
        "discriminator q(z|s') fwd+bwd": mlp_flops(
            batch, discriminator, weight_grad=True, input_grad="hidden"
        ),
        "policy pi(.|s') fwd (target action)": mlp_flops(
            batch, policy, weight_grad=False, input_grad="none"
        ),
        "target critics Q'(s',a') fwd": twin
        * mlp_flops(batch, critic, weight_grad=False, input_grad="none"),
        "critics Q(s,a) fwd+bwd": twin
        * mlp_flops(batch, critic, weight_grad=True, input_grad="hidden"),
        "policy pi(.|s) fwd+bwd": mlp_flops(batch, policy, weight_grad=True, input_grad="hidden"),
        "critics Q(s,pi(s)) fwd+bwd (dQ/da only)": twin
        * mlp_flops(batch, critic, weight_grad=False, input_grad="all"),
    }


# ----------------------------------------------------------------------------- matmul ceiling


def matmul_peak(seconds: float = 0.5) -> dict[str, float]:
    """Best fp32 GFLOP/s of torch matmuls on all cores, for the update's shapes and a big one."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    shapes = {
        f"({BATCH}x{HIDDEN})@({HIDDEN}x{HIDDEN})": ((BATCH, HIDDEN), (HIDDEN, HIDDEN)),
        f"2x({BATCH}x{HIDDEN})@({HIDDEN}x{HIDDEN}) bmm": ((2, BATCH, HIDDEN), (2, HIDDEN, HIDDEN)),
        f"({HIDDEN}x{BATCH})@({BATCH}x{HIDDEN})": ((HIDDEN, BATCH), (BATCH, HIDDEN)),
        "(2048x2048)@(2048x2048)": ((2048, 2048), (2048, 2048)),
    }
    result = {}
    for name, (a_shape, b_shape) in shapes.items():
        a, b = torch.randn(a_shape), torch.randn(b_shape)
        out = torch.matmul(a, b)
        flops = 2 * out.numel() * a_shape[-1]
        best = 0.0
        for _ in range(5):  # best of 5 bursts: the ceiling, not the average under noise
            reps, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds / 5 or reps < 3:
                torch.matmul(a, b, out=out)
                reps += 1
            best = max(best, flops * reps / elapsed / 1e9)
        result[name] = best
    return result


# ----------------------------------------------------------------------------- workers


def cpu_ticks() -> tuple[int, int] | None:
    """(busy ticks of the whole machine, ticks of this process) from /proc; None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        with open("/proc/self/stat") as own:
            mine = own.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return busy, int(mine[11]) + int(mine[12])  # utime + stime


def background_share(start: tuple[int, int] | None, end: tuple[int, int] | None, seconds: float):
    """Share of the machine's cores that other processes used while we were timed."""
    if start is None or end is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK") * seconds * (os.cpu_count() or 1)
    return max(0.0, ((end[0] - start[0]) - (end[1] - start[1])) / ticks)


def run_skillforge(args) -> dict:
    """Time skillforge.rl.loop.train through its callback: wall time between two reports."""
    from skillforge.core.config import PretrainConfig
    from skillforge.rl.loop import train

    timed_from = args.learning_starts + args.warmup_updates
    timed_to = timed_from + args.steps
    times: dict[int, float] = {}
    ticks: dict[int, tuple[int, int] | None] = {}

    class Clock:
        def on_step(self, step: int, metrics: dict) -> None:
            times[step], ticks[step] = time.perf_counter(), cpu_ticks()

    config = PretrainConfig(
        env_id=ENV_ID,
        n_skills=N_SKILLS,
        hidden=HIDDEN,
        batch_size=BATCH,
        alpha=ALPHA,
        buffer_size=BUFFER,
        learning_starts=args.learning_starts,
        total_steps=timed_to,
        seed=args.seed,
        device="cpu",
        log_every=LOG_EVERY,
        checkpoint_every=10 * timed_to,  # only the final checkpoint, after the timed window
    )
    with tempfile.TemporaryDirectory() as folder:
        train(config, str(Path(folder) / "bench.pt"), [Clock()])
    return _result(
        args.steps, times[timed_from], times[timed_to], ticks[timed_from], ticks[timed_to]
    )


def run_sb3(args) -> dict:
    """Time SB3 SAC.learn through a callback called after every environment step."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    timed_from = args.learning_starts + args.warmup_updates
    timed_to = timed_from + args.steps
    times: dict[int, float] = {}
    ticks: dict[int, tuple[int, int] | None] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in (timed_from, timed_to):
                times[self.num_timesteps] = time.perf_counter()
                ticks[self.num_timesteps] = cpu_ticks()
            return True

    model = SAC(
        "MlpPolicy",
        gym.make(ENV_ID),
        policy_kwargs={"net_arch": [HIDDEN, HIDDEN]},
        batch_size=BATCH,
        train_freq=1,
        gradient_steps=1,
        learning_starts=args.learning_starts,
        ent_coef=ALPHA,
        buffer_size=BUFFER,
        device="cpu",
        seed=args.seed,
        verbose=0,
    )
    model.learn(timed_to, callback=Clock())
    return _result(
        args.steps, times[timed_from], times[timed_to], ticks[timed_from], ticks[timed_to]
    )


def _result(steps: int, start: float, end: float, ticks_start, ticks_end) -> dict:
    import torch

    return {
        "steps_per_second": steps / (end - start),
        "background_cpu": background_share(ticks_start, ticks_end, end - start),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "torch_threads": torch.get_num_threads(),
    }


WORKERS = {"skillforge": run_skillforge, "sb3": run_sb3}


def spawn(worker: str, args) -> dict:
    """One measured run in a fresh interpreter (clean caches, threads, RSS)."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        worker,
        "--steps",
        str(args.steps),
        "--learning-starts",
        str(args.learning_starts),
        "--warmup-updates",
        str(args.warmup_updates),
        "--seed",
        str(args.seed),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- report


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="timed env steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, interleaved")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument("--learning-starts", type=int, default=1000, help="random steps first")
    parser.add_argument("--warmup-updates", type=int, default=300, help="untimed updates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-background",
        type=float,
        default=0.1,
        help="re-measure a run if other processes used more than this share of the cores",
    )
    parser.add_argument("--attempts", type=int, default=3, help="tries per run (busy machine)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    # skillforge is timed between its periodic reports: align the window to them
    args.steps = max(LOG_EVERY, round(args.steps / LOG_EVERY) * LOG_EVERY)
    args.warmup_updates = max(LOG_EVERY, round(args.warmup_updates / LOG_EVERY) * LOG_EVERY)
    args.learning_starts = max(BATCH, round(args.learning_starts / LOG_EVERY) * LOG_EVERY)

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return

    import gymnasium as gym
    import torch

    env = gym.make(ENV_ID)
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    flops = update_flops(obs_dim, action_dim, N_SKILLS, HIDDEN, BATCH)
    gflop_per_update = sum(flops.values()) / 1e9

    print(
        f"{ENV_ID}: obs {obs_dim}, actions {action_dim}, {N_SKILLS} skills, hidden {HIDDEN}, "
        f"batch {BATCH}, 1 update/step, alpha {ALPHA}; torch {torch.__version__}, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"timed: {args.steps} env steps per run after {args.learning_starts} random steps "
        f"and {args.warmup_updates} warm-up updates; {args.repeats} runs each, interleaved"
    )
    print("\nmatmul FLOPs of one skillforge update (analytic, from layer sizes):")
    for name, value in flops.items():
        print(f"  {name:42s} {value / 1e9:6.3f} GFLOP")
    print(f"  {'total':42s} {gflop_per_update:6.3f} GFLOP")

    peaks = matmul_peak()
    runs: dict[str, list[dict]] = {name: [] for name in WORKERS}
    for repeat in range(args.repeats):
        for name in WORKERS:
            for attempt in range(1, args.attempts + 1):
                run = spawn(name, args)
                busy = run["background_cpu"]
                note = "" if busy is None else f"  (other processes: {busy:.0%} of the cores)"
                print(
                    f"run {repeat + 1}/{args.repeats} {name:10s} "
                    f"{run['steps_per_second']:7.1f} env steps/s{note}",
                    flush=True,
                )
                if busy is None or busy <= args.max_background or attempt == args.attempts:
                    break
                print("  machine busy: measuring again")
            runs[name].append(run)
    later = matmul_peak()  # the best of before and after: a busy machine only lowers it
    peaks = {name: max(value, later[name]) for name, value in peaks.items()}
    ceiling = max(peaks.values())
    print("\nfp32 matmul throughput on this machine (best of 5 bursts, all threads):")
    for name, value in peaks.items():
        print(f"  {name:42s} {value:6.1f} GFLOP/s")
    print(f"  ceiling: {ceiling:.1f} GFLOP/s = {ceiling / gflop_per_update:.0f} updates/s at most")

    rates = {name: summary([r["steps_per_second"] for r in rs]) for name, rs in runs.items()}
    ratio = rates["skillforge"]["median"] / rates["sb3"]["median"]
    fraction = {
        key: value * gflop_per_update / ceiling for key, value in rates["skillforge"].items()
    }
    print("\nenv steps/s (one gradient step each)      min   median      max   peak RSS")
    for name, rate in rates.items():
        rss = max(r["peak_rss_mib"] for r in runs[name])
        print(
            f"  {name:36s} {rate['min']:7.1f}  {rate['median']:7.1f}  {rate['max']:7.1f}"
            f"  {rss:6.0f} MiB"
        )
    print(f"  skillforge / SB3 (medians)           {ratio:7.2f}x")
    print(
        f"  skillforge fraction of the matmul ceiling: median {fraction['median']:.0%} "
        f"(min {fraction['min']:.0%}, max {fraction['max']:.0%})"
    )
    # SB3 does the same SAC matmuls without the discriminator's
    sb3_gflop = gflop_per_update - flops["discriminator q(z|s') fwd+bwd"] / 1e9
    sb3_fraction = rates["sb3"]["median"] * sb3_gflop / ceiling
    triple = 3 * rates["sb3"]["median"] * gflop_per_update / ceiling
    print(
        f"  SB3 fraction of the ceiling ({sb3_gflop:.3f} GFLOP/update): median {sb3_fraction:.0%};"
        f" 3x SB3 would need {triple:.0%} of the ceiling"
    )
    buffer_mib = BUFFER * ((2 * obs_dim + action_dim + 2) * 4 + 8) / 2**20
    print(
        f"  (peak RSS per process, {BUFFER:,}-transition buffer: skillforge's {buffer_mib:.0f} MiB "
        "are written on allocation, SB3's numpy zeros only as it fills)"
    )

    result = {
        "env_id": ENV_ID,
        "settings": {
            "n_skills": N_SKILLS,
            "hidden": HIDDEN,
            "batch_size": BATCH,
            "alpha": ALPHA,
            "buffer_size": BUFFER,
            "updates_per_step": 1,
            "timed_steps": args.steps,
            "learning_starts": args.learning_starts,
            "warmup_updates": args.warmup_updates,
            "repeats": args.repeats,
            "max_background": args.max_background,
        },
        "machine": {"cores": os.cpu_count(), "torch": torch.__version__},
        "gflop_per_update": gflop_per_update,
        "gflop_breakdown": {name: value / 1e9 for name, value in flops.items()},
        "matmul_gflops": peaks,
        "matmul_ceiling_gflops": ceiling,
        "steps_per_second": rates,
        "runs": runs,
        "ratio_skillforge_over_sb3": ratio,
        "fraction_of_ceiling": fraction,
        "sb3_fraction_of_ceiling": sb3_fraction,
        "three_times_sb3_needs_fraction_of_ceiling": triple,
        "peak_rss_mib": {name: max(r["peak_rss_mib"] for r in rs) for name, rs in runs.items()},
        "skillforge_buffer_mib": buffer_mib,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
