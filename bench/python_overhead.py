#!/usr/bin/env python3
"""What the Python bindings add to a call, and how they scale over Python threads.

    PYTHONPATH=build/python python3 bench/python_overhead.py [--iters 400] [--seconds 3]

Model: the PaddleOCR direction classifier (1x3x48x192), one engine thread per call.
1. Overhead: p50 of session.run() measured in Python minus p50 of the same engine call made
   from C++ and timed by its C++ caller, in interleaved blocks so both see the same machine.
   Also, stricter, the p50 of per-call differences between session.run() and the engine's own
   clock for the same call (tandem.last_infer_ms(), which excludes the call's entry and exit):
   as the
   bindings call it by default (checking for Ctrl-C while the engine waits), and with the
   Ctrl-C check off. For reference it
   also prints `tandem bench --threads 1` (the CLI's compiled-model loop, no engine) when the
   CLI is built.
   The same difference on a one-node model shows the bindings' own cost with warm caches.
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


def overhead(iters, interruptible, block=25):
    """Interleaved blocks of `block` calls each: session.run timed in Python, and the same engine
    call made from C++ (PreparedModel._time_engine_calls) timed by its C++ caller, so that both
    see the same machine. Returns (run p50, C++ call p50, engine-clock p50, per-call difference
    between session.run and the engine's own clock p50), all in microseconds."""
    tandem.set_interruptible(interruptible)
    sess = session()
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    for _ in range(20):
        sess.run(None, {name: x})
    sess.prepared._time_engine_calls({name: x}, 20)
    walls, cpp, engine, diffs = [], [], [], []
    for _ in range(max(1, iters // block)):
        for _ in range(block):
            t0 = time.perf_counter_ns()
            sess.run(None, {name: x})
            wall = (time.perf_counter_ns() - t0) / 1e3
            inner = tandem.last_infer_ms() * 1e3  # the same call, timed inside the engine
            walls.append(wall)
            engine.append(inner)
            diffs.append(wall - inner)
        cpp.extend(sess.prepared._time_engine_calls({name: x}, block))
    tandem.set_interruptible(True)
    return statistics.median(walls), statistics.median(cpp), statistics.median(engine), statistics.median(diffs)


def tiny_overhead(iters):
    """The same difference on a one-node model (Add of two 2x3 floats): the bindings' own cost
    with warm caches, without a 1 ms convolution network evicting them between calls."""
    from onnx import TensorProto, helper
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "a"], ["y"])], "add", [a], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = tandem.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = tandem.InferenceSession(model.SerializeToString(), sess_options=opts, routes=["cpu", "reference"])
    feed = {"a": np.ones((2, 3), np.float32)}
    for _ in range(100):
        sess.run(None, feed)
    diffs = []
    for _ in range(iters):
        t0 = time.perf_counter_ns()
        sess.run(None, feed)
        diffs.append((time.perf_counter_ns() - t0) / 1e3 - tandem.last_infer_ms() * 1e3)
    return statistics.median(diffs)


def cli_bench():
    cli = ROOT / "build" / "bin" / "tandem"
    if not cli.exists():
        return None
    out = ROOT / "build" / "python_overhead_cli.json"
    subprocess.run([str(cli), "bench", str(MODEL), "--backend", "cpu", "--threads", "1", "--iters", "200",
                    "--shape", "x=" + "x".join(map(str, SHAPE)),
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
        run_p50, cpp_p50, engine_p50, diff_p50 = overhead(args.iters, interruptible)
        label = "default, Ctrl-C checked" if interruptible else "Ctrl-C check off"
        print(f"overhead ({label}): session.run p50 {run_p50:8.1f} us, C++ engine call p50 {cpp_p50:8.1f} us, "
              f"adds {run_p50 - cpp_p50:6.1f} us (target <= 30 us); vs the engine's own clock "
              f"(p50 {engine_p50:.1f} us, stricter: excludes the call's entry and exit) per-call p50 {diff_p50:6.1f} us")
    print(f"overhead on a one-node model (warm caches): per-call difference p50 {tiny_overhead(args.iters * 5):6.1f} us")
    cli = cli_bench()
    if cli:
        print(f"tandem bench --threads 1 (compiled model, no engine): p50 {cli['p50_ms'] * 1e3:8.1f} us, "
              f"p90 {cli['p90_ms'] * 1e3:8.1f} us")
    one = throughput(1, args.seconds)
    four = throughput(4, args.seconds)
    print(f"throughput: 1 Python thread {one:7.1f} calls/s, 4 Python threads {four:7.1f} calls/s, "
          f"ratio {four / one:4.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
