"""A library over HTTP: latency of one observation, throughput at batch 256, and many
clients at once.

    python benchmarks/bench_serve.py [--env Hopper-v5] [--skills 20] [--requests 2000]
                                      [--batch 256] [--clients 16 64]
                                      [--concurrent-requests 1600] [--baseline DIR]
                                      [--no-mlflow]

An untrained library of the paper's size (2 x 300 units; weights do not change the timings)
is registered in a temporary store and served by `skillforge serve` and, for comparison, by
`mlflow models serve --env-manager local`, each a separate process on 127.0.0.1. One client
keeps one connection open (HTTP keep-alive) and sends MLflow's request
{"inputs": {"observation": [[...]], "skill": [k]}}: p50 and p99 of a single observation,
then observations/s with batches of 256 (every row its own skill). Then 16 and 64 clients
(threads) at once, each request one observation on a new connection, as most HTTP clients
send them: p50 and p99 from connect to answer, and observations/s over all clients.
`--baseline DIR` also measures the `skillforge serve` of another checkout in DIR (e.g.
`git archive <commit> | tar -x -C DIR`), in the same run. The same graph is also timed
in-process on onnxruntime and on PyTorch, which is why `skillforge serve` runs onnxruntime.
Prints a table and writes benchmarks/results/serve.json.
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
import threading
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


def start(command: list[str], port: int, env: dict, cwd: Path | None = None) -> subprocess.Popen:
    """A server process (its own process group) once it answers GET /ping on `port`."""
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
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


def measure_concurrent(
    port: int, observations: np.ndarray, n_skills: int, clients: int, requests: int
) -> dict:
    """p50/p99 ms (connect to answer) and observations/s of `clients` threads at once, each
    request one observation on a new connection; failed requests are counted, not timed."""
    bodies = [
        json.dumps({"inputs": {"observation": [row.tolist()], "skill": [i % n_skills]}})
        for i, row in enumerate(observations)
    ]
    latencies: list[float] = []
    failures: list[str] = []

    def client(first: int) -> None:
        for i in range(first, requests, clients):
            start = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                headers = {"Content-Type": "application/json"}
                connection.request("POST", "/invocations", bodies[i % len(bodies)], headers)
                response = connection.getresponse()
                answer = response.read()
            except OSError as error:
                failures.append(repr(error))
                continue
            finally:
                connection.close()
            if response.status != 200:
                failures.append(f"HTTP {response.status}: {answer[:300]!r}")
            else:
                latencies.append(time.perf_counter() - start)  # list.append is atomic

    threads = [threading.Thread(target=client, args=(first,)) for first in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    return {
        "requests": requests,
        "failed": len(failures),
        "first_failure": failures[0] if failures else None,
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3),
        "obs_per_s": len(latencies) / seconds,
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
    parser.add_argument("--clients", type=int, nargs="*", default=[16, 64])
    parser.add_argument(
        "--concurrent-requests", type=int, default=1600, help="requests per number of clients"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout whose skillforge serve is measured too"
    )
    parser.add_argument("--baseline-label", default="baseline", help="its name in the results")
    parser.add_argument("--note", help="said in the results, e.g. what else ran on the machine")
    parser.add_argument("--no-mlflow", action="store_true", help="skip mlflow models serve")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = os.getloadavg()[0]
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
        skillforge = [sys.executable, "-m", "cli.main", "serve", "models:/bench/1"]
        servers = {"skillforge serve": (skillforge, None)}
        if args.baseline:
            servers[f"skillforge serve, {args.baseline_label}"] = (skillforge, args.baseline)
        if not args.no_mlflow:
            mlflow_serve = [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/bench/1"]
            servers["mlflow models serve"] = ([*mlflow_serve, "--env-manager", "local"], None)
        for name, (command, checkout) in servers.items():
            port = free_port()
            flags = ["-p", str(port)] if name == "mlflow models serve" else ["--port", str(port)]
            server_env = {**env, "PYTHONPATH": str(checkout)} if checkout else env
            process = start([*command, *flags], port, server_env, cwd=checkout)
            try:
                results[name] = measure(port, observations, args.skills, args.requests)
                for clients in args.clients:
                    results[name][f"{clients} clients, new connections"] = measure_concurrent(
                        port, observations, args.skills, clients, args.concurrent_requests
                    )
            finally:
                stop(process)
    print(f"{args.env}, {args.skills} skills, hidden {library.spec.hidden}")
    for name in servers:
        figures = results[name]
        print(
            f"  {name}\n    one client, keep-alive: one observation p50 {figures['p50_ms']:6.2f} ms"
            f"  p99 {figures['p99_ms']:7.2f} ms   batch {rows}: "
            f"{figures[f'batch_{rows}_obs_per_s']:9,.0f} obs/s"
        )
        for clients in args.clients:
            many = figures[f"{clients} clients, new connections"]
            print(
                f"    {clients:>3} clients, new connections: p50 {many['p50_ms']:6.2f} ms  "
                f"p99 {many['p99_ms']:7.2f} ms   {many['obs_per_s']:9,.0f} obs/s"
                + (f"   {many['failed']} failed: {many['first_failure']}" if many["failed"] else "")
            )
    engines = results["in-process µs per call"].items()
    print("  in-process, µs per call: " + ", ".join(f"{case} {us:,.0f}" for case, us in engines))
    results["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": load,
    }
    if args.note:
        results["machine"]["note"] = args.note
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
