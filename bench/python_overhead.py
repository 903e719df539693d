#!/usr/bin/env python3
"""What the Python bindings add to a call, and how they scale over Python threads.

    PYTHONPATH=build/python python3 bench/python_overhead.py [--iters 400] [--seconds 3]

Model: the PaddleOCR direction classifier (1x3x48x192), one engine thread per call.
1. Overhead: p50 of session.run() measured in Python, minus p50 of the engine's own infer()
   latency for the same calls (its telemetry histogram, recorded inside the C++ call), with
   Ctrl-C handling on (main-thread calls go through a helper thread) and off. For reference it
   also prints `tandem bench --threads 1` (the CLI's compiled-model loop, no engine) when the
   CLI is built.
2. Scaling: calls per second with 4 Python threads sharing one session vs 1 thread.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "python"))

import numpy as np  # noqa: E402

import tandem  # noqa: E402

MODEL = ROOT / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
SHAPE = (1, 3, 48, 192)


def session():
    opts = tandem.SessionOptions()
    opts.intra_op_num_threads = 1
    return tandem.InferenceSession(str(MODEL), sess_options=opts, providers=["CPUExecutionProvider"],
                                   routes=["cpu", "reference"])


def overhead(iters, interruptible):
    tandem.set_interruptible(interruptible)
    sess = session()
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    for _ in range(20):
        sess.run(None, {name: x})
    before = sess.prepared.telemetry()["latency"]["count"]
    walls = []
    for _ in range(iters):
        t0 = time.perf_counter_ns()
        sess.run(None, {name: x})
        walls.append((time.perf_counter_ns() - t0) / 1e3)
    tel = sess.prepared.telemetry()
    assert tel["latency"]["count"] == before + iters
    # The histogram holds the warm-up calls too (20 of them); its p50 is within 1.6% of the true one.
    engine_p50_us = tel["latency"]["p50"] * 1e3
    run_p50_us = statistics.median(walls)
    tandem.set_interruptible(True)
    return run_p50_us, engine_p50_us


def cli_bench():
    cli = ROOT / "build" / "bin" / "tandem"
    if not cli.exists():
        return None
    out = ROOT / "build" / "python_overhead_cli.json"
    subprocess.run([str(cli), "bench", str(MODEL), "--backend", "cpu", "--threads", "1", "--iters", "200",
                    "--no-progress", "--json", str(out)], check=True, capture_output=True)
    return json.loads(out.read_text())


def throughput(n_threads, seconds):
    sess = session()
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    for _ in range(10):
        sess.run(None, {name: x})
    counts = [0] * n_threads
    stop = time.perf_counter() + seconds

    def work(k):
        while time.perf_counter() < stop:
            sess.run(None, {name: x})
            counts[k] += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    if not MODEL.exists():
        sys.exit(f"{MODEL} missing: run scripts/setup")
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} (other work shares it)")
    for interruptible in (True, False):
        run_p50, engine_p50 = overhead(args.iters, interruptible)
        label = "Ctrl-C handling on " if interruptible else "Ctrl-C handling off"
        print(f"overhead ({label}): session.run p50 {run_p50:8.1f} us, engine infer p50 {engine_p50:8.1f} us, "
              f"difference {run_p50 - engine_p50:6.1f} us (target <= 30 us)")
    cli = cli_bench()
    if cli:
        lat = cli.get("latency_ms") or cli.get("latency") or {}
        print(f"tandem bench --threads 1 (compiled model, no engine): {json.dumps(lat)[:200]}")
    one = throughput(1, args.seconds)
    four = throughput(4, args.seconds)
    print(f"throughput: 1 Python thread {one:7.1f} calls/s, 4 Python threads {four:7.1f} calls/s, "
          f"ratio {four / one:4.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
