"""A library over HTTP: latency of one observation and throughput at batch 256.

    python benchmarks/bench_serve.py [--env Hopper-v5] [--skills 20] [--requests 2000]
                                      [--batch 256] [--no-mlflow]

An untrained library of the paper's size (2 x 300 units; weights do not change the timings)
is registered in a temporary store and served by `skillforge serve` and, for comparison, by
`mlflow models serve --env-manager local`, each a separate process on 127.0.0.1. One client
keeps one connection open (HTTP keep-alive) and sends MLflow's request
{"inputs": {"observation": [[...]], "skill": [k]}}: p50 and p99 of a single observation,
then observations/s with batches of 256 (every row its own skill). The same graph is also
timed in-process on onnxruntime and on PyTorch, which is why `skillforge serve` runs
onnxruntime. Prints a table and writes benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import torch
from bench_rollouts import make_library, register_in_store

from skillforge.app.completion import example_observations
from skillforge.skills.library import LibraryPolicy
from skillforge.skills.registered_graph import load_graph
from skillforge.store.ui_server import answers, free_port

RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"


def start(command: list[str], port: int, env: dict) -> subprocess.Popen:
    """A server process (its own process group) once it answers GET /ping on `port`."""
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not answers(f"http://127.0.0.1:{port}/ping"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            sys.exit(f"the server did not start: {process.stderr.read()[-2000:]}")
        time.sleep(0.5)
    return process


def stop(process: subprocess.Popen) -> None:
    """Stop a server process and everything it started."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def measure(port: int, observations: np.ndarray, n_skills: int, requests: int) -> dict:
    """p50/p99 ms of one observation, and observations/s in batches, over one connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    skills = np.arange(len(observations)) % n_skills

    def post(rows: slice) -> float:
        inputs = {"observation": observations[rows].tolist(), "skill": skills[rows].tolist()}
        body = json.dumps({"inputs": inputs})
        start = time.perf_counter()
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            sys.exit(f"HTTP {response.status}: {answer[:300]!r}")
        return time.perf_counter() - start

    for _ in range(100):  # warm-up
        post(slice(0, 1))
    n = len(observations)
    single = np.array([post(slice(i % n, i % n + 1)) for i in range(requests)])
    batches = max(20, requests // 20)
    batch_seconds = sum(post(slice(None)) for _ in range(batches))
    connection.close()
    return {
        "p50_ms": float(np.percentile(single, 50) * 1e3),
        "p99_ms": float(np.percentile(single, 99) * 1e3),
        f"batch_{len(observations)}_obs_per_s": len(observations) * batches / batch_seconds,
    }


def engine_us(library, graph, observations: np.ndarray, calls: int = 2000) -> dict:
    """Median µs per call of the library graph in-process: onnxruntime (the served model's
    checked graph) and PyTorch eager (one thread), for 1 and for all observations."""
    module = LibraryPolicy(library.policy, library.n_skills).eval()
    torch.set_num_threads(1)
    timings = {}
    for rows in (1, len(observations)):
        obs = observations[:rows]
        skills = np.arange(rows, dtype=np.int64) % library.n_skills
        for engine, call in (
            ("onnxruntime", lambda o=obs, s=skills: graph.run({"observation": o, "skill": s})),
            ("torch", lambda o=obs, s=skills: module(torch.from_numpy(o), torch.from_numpy(s))),
        ):
            with torch.no_grad():
                for _ in range(100):
                    call()
                samples = []
                for _ in range(calls if rows == 1 else calls // 10):
                    start = time.perf_counter()
                    call()
                    samples.append(time.perf_counter() - start)
            timings[f"{engine}, batch {rows}"] = float(np.median(samples) * 1e6)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--skills", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000, help="single-observation requests")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--no-mlflow", action="store_true", help="skip mlflow models serve")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    library = make_library(args.env, args.skills)
    rows = args.batch
    visited = example_observations(library, rows=64)  # (64, obs_dim) real states
    observations = np.resize(visited, (rows, library.spec.obs_dim)).astype(np.float32)
    bin_dir = Path(sys.executable).parent  # mlflow execs the environment's uvicorn
    results: dict = {"env": args.env, "skills": args.skills, "hidden": library.spec.hidden}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        store = register_in_store(library, folder)
        env = {**os.environ, "MLFLOW_TRACKING_URI": store}
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        mlflow.set_tracking_uri(store)
        results["in-process µs per call"] = engine_us(
            library, load_graph("models:/bench/1"), observations
        )
        servers = {
            "skillforge serve": [sys.executable, "-m", "cli.main", "serve", "models:/bench/1"]
        }
        if not args.no_mlflow:
            servers["mlflow models serve"] = [str(bin_dir / "mlflow"), "models", "serve"]
            servers["mlflow models serve"] += ["-m", "models:/bench/1", "--env-manager", "local"]
        for name, command in servers.items():
            port = free_port()
            flags = ["--port", str(port)] if name == "skillforge serve" else ["-p", str(port)]
            process = start([*command, *flags], port, env)
            try:
                results[name] = measure(port, observations, args.skills, args.requests)
            finally:
                stop(process)
    print(f"{args.env}, {args.skills} skills, hidden {library.spec.hidden}, HTTP keep-alive")
    for name in servers:
        figures = results[name]
        print(
            f"  {name:<20} one observation p50 {figures['p50_ms']:6.2f} ms  "
            f"p99 {figures['p99_ms']:6.2f} ms   batch {rows}: "
            f"{figures[f'batch_{rows}_obs_per_s']:9,.0f} obs/s"
        )
    engines = results["in-process µs per call"].items()
    print("  in-process, µs per call: " + ", ".join(f"{case} {us:,.0f}" for case, us in engines))
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
