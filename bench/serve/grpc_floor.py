#!/usr/bin/env python3
"""What grpc++ alone costs per ModelInfer call on this machine, against the server's targets.

    python3 bench/serve/grpc_floor.py [--tandem build/bin/tandem] [--seconds 5] [--rounds 2]
        [--out FILE]

build/bin/tandem_grpc_echo (bench/serve/grpc_echo.cpp) is grpc++ answering every ModelInfer at
once, on the thread that read it, without an engine. Per round, grpc_load
(bench/serve/grpc_load.cpp) sends it the classifier's 110 KB request at concurrency 1 and 8:
the p50, the calls per second, the CPU time per call of the echo (/proc/PID/stat) and of
grpc_load (its rusage), and the machine's idle share. In the same round `tandem soak` measures
the engine in process (the classifier, one engine thread per call, concurrency 1 and 8): its
p50, rate and CPU per request.

What the figures bound, for a gRPC server that does at least what the echo does:
  - at concurrency 1, the echo's p50 (a whole round trip of the request and its answer) is the
    least a call can add over the in-process engine call (the target: 150 us);
  - at concurrency 8 the load generator shares the machine with the server, so a call costs at
    least engine + echo + client CPU, and the share of the in-process rate cannot exceed
    engine / (engine + echo + client) (the target: 80%).
Needs libnghttp2-dev, grpc_tools and numpy (scripts/setup).
"""
import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import serve_bench as sb  # noqa: E402


def process_cpu_s(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def machine_idle():
    fields = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(fields), fields[3] + fields[4]


class Echo:
    """tandem_grpc_echo on a free port until the with-block ends."""

    def __init__(self, binary):
        self.binary = binary

    def __enter__(self):
        self.proc = subprocess.Popen([str(self.binary), "0"], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline().split()[1])  # "listening PORT"
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(echo, drive):
    """Runs `drive()` -> (calls, p50 ms) against `echo`; CPU per call in us and idle share."""
    server0, client0, (total0, idle0) = process_cpu_s(echo.proc.pid), children_cpu_s(), machine_idle()
    seconds0 = time.monotonic()
    calls, p50 = drive()
    seconds = time.monotonic() - seconds0
    server, client, (total1, idle1) = process_cpu_s(echo.proc.pid) - server0, children_cpu_s() - client0, machine_idle()
    return {"p50_ms": p50, "calls": calls, "calls_per_s": round(calls / seconds),
            "server_us_per_call": round(1e6 * server / max(1, calls), 1),
            "client_us_per_call": round(1e6 * client / max(1, calls), 1),
            "idle_percent": round(100 * (idle1 - idle0) / max(1, total1 - total0), 1)}


def in_process(tandem, threads, seconds, work):
    """`tandem soak` at `threads`: p50, rate, and CPU per request without the process's start
    (loading and compiling, measured by a soak of one request)."""
    cpu0 = children_cpu_s()
    sb.soak(tandem, 1, 1, 0.001, work)
    cpu1 = children_cpu_s()
    s = sb.soak(tandem, threads, 1, seconds, work)
    cpu = children_cpu_s() - cpu1 - (cpu1 - cpu0)
    return {"p50_ms": s["latency_ms"]["p50"], "requests_per_s": round(s["requests_per_second"]),
            "us_per_request": round(1e6 * cpu / max(1, s["requests"]), 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tandem", default=str(sb.ROOT / "build" / "bin" / "tandem"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", help="also write the rounds as JSON here")
    args = ap.parse_args()
    grpc_echo = pathlib.Path(args.tandem).with_name("tandem_grpc_echo")
    import onnx
    output = onnx.load(str(sb.MODEL)).graph.output[0].name
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        x = np.random.default_rng(0).random(sb.SHAPE, dtype=np.float32)
        sb.make_bodies(work, x, output)
        sb.build_client("grpc_load", work, ["-lnghttp2"])
        for r in range(args.rounds):
            row = {"in_process": {c: in_process(args.tandem, c, args.seconds, work) for c in (1, 8)}}
            with Echo(grpc_echo) as echo:
                for c in (1, 8):
                    def drive(c=c):
                        g = sb.grpc_load(echo.port, c, args.seconds, work)
                        return g["calls"], g["p50_ms"]
                    row[f"grpc_c{c}"] = measure(echo, drive)
            engine_us = row["in_process"][8]["us_per_request"]
            m = row["grpc_c8"]
            m["ceiling_share"] = round(engine_us / (engine_us + m["server_us_per_call"] + m["client_us_per_call"]), 3)
            rounds.append(row)
            ip = row["in_process"]
            print(f"round {r + 1}: in process p50 {ip[1]['p50_ms']:.3f} ms, {ip[8]['requests_per_s']}/s at 8 threads, "
                  f"{engine_us:.0f} us CPU per request", flush=True)
            c1, c8 = row["grpc_c1"], row["grpc_c8"]
            print(f"  grpc++ echo: concurrency 1 p50 {c1['p50_ms']:.3f} ms; concurrency 8 {c8['calls_per_s']}/s, "
                  f"CPU per call: echo {c8['server_us_per_call']:.0f} us, grpc_load {c8['client_us_per_call']:.0f} us, "
                  f"idle {c8['idle_percent']}%; ceiling at concurrency 8: {100 * c8['ceiling_share']:.0f}% "
                  f"of the in-process rate", flush=True)
    if len(rounds) > 1:
        p50 = statistics.median(row["grpc_c1"]["p50_ms"] for row in rounds)
        share = statistics.median(row["grpc_c8"]["ceiling_share"] for row in rounds)
        print(f"median of {len(rounds)} rounds: the echo's p50 at concurrency 1 {1e3 * p50:.0f} us (the least a call "
              f"adds); ceiling at concurrency 8 {100 * share:.0f}% of the in-process rate")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(rounds, indent=1) + "\n")


if __name__ == "__main__":
    main()
