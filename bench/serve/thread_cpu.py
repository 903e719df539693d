#!/usr/bin/env python3
"""Where `tandem serve` spends its CPU under load: CPU time per answered request by thread role.

    python3 bench/serve/thread_cpu.py [--tandem build/bin/tandem] [--seconds 5] [--rounds 2]
        [--concurrency 8] [--instances N] [--handler-threads N] [--refusals] [--out FILE]

One server (the classifier, as in serve_bench.py: one engine thread per call, --instances
engine calls in flight)
is driven in turn by wrk (REST binary) and by grpc_load.cpp (gRPC), --rounds times each. For
every run it reads each thread's user+system time from /proc/PID/task/*/stat before and after,
groups the threads by name (tandem names its own: tandem-run computes, tandem-sched hands
requests to the engine and finishes them, tandem-http runs the REST event loops, tandem-grpc
takes gRPC ModelInfer calls; grpc++'s own threads keep their names), and
divides by the requests answered, and does the same with each thread's context switches
(voluntary and involuntary, /proc/PID/task/*/status). `idle` is the machine's idle share from
/proc/stat over the run; the load generator's own CPU is `client`. Needs the same tools as serve_bench.py.

--refusals measures what a refusal costs instead (overload: at F x a sustainable rate R, the
refusals alone take (F - 1) x R x that CPU). The model then runs on the reference backend
with one instance and no queue (max_queue_size 0), and another client keeps that instance busy
with 64-image requests (about a second each, on one core, counted under tandem-run), so the
server refuses nearly every request at once (503, RESOURCE_EXHAUSTED); `refused` is their share.
"""
import argparse
import collections
import json
import os
import pathlib
import resource
import sys
import tempfile
import threading
import urllib.request

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import serve_bench as sb  # noqa: E402


def thread_times(pid):
    """{tid: (name, cpu seconds)} of every thread of `pid` now."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[task.name] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def thread_switches(pid):
    """{tid: (name, voluntary + involuntary context switches)} of every thread of `pid` now."""
    out = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            status = dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines() if ":\t" in line)
        except OSError:  # the thread ended meanwhile
            continue
        out[task.name] = (status["Name"].strip(),
                          int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"]))
    return out


def per_role(before, after, answered, scale):
    """Each thread name's growth from `before` to `after`, times `scale`, per answered request."""
    by_role = collections.defaultdict(float)
    for tid, (name, value) in after.items():
        by_role[name] += value - before.get(tid, (name, 0))[1]
    return {k: round(scale * v / answered, 2 if scale == 1 else None) for k, v in
            sorted(by_role.items(), key=lambda kv: -kv[1]) if v > 0}


def machine_idle():
    fields = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(fields), fields[3] + fields[4]


class Holder:
    """With `active`: keeps the model's one instance busy, from a thread that sends 64-image REST
    binary requests one after another until the with-block ends."""

    def __init__(self, srv, x, output, active):
        self.active, self.stop = active, threading.Event()
        raw = np.repeat(x, 64, axis=0).tobytes()
        header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [64] + sb.SHAPE[1:],
                                         "parameters": {"binary_data_size": len(raw)}}],
                             "outputs": [{"name": output, "parameters": {"binary_data": True}}]}).encode()
        self.request = (f"http://127.0.0.1:{srv.http}/v2/models/cls/infer", header + raw, len(header))

    def _run(self):
        url, body, header_len = self.request
        while not self.stop.is_set():
            req = urllib.request.Request(url, data=body, headers={
                "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(header_len)})
            try:
                urllib.request.urlopen(req, timeout=120).read()
            except OSError:  # refused: the instance was taken by a one-image request; try again
                pass

    def __enter__(self):
        if self.active:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.active:
            self.stop.set()
            self.thread.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tandem", default=str(sb.ROOT / "build" / "bin" / "tandem"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--instances", type=int, default=8, help="the model's engine calls in flight")
    ap.add_argument("--handler-threads", type=int, default=8, help="tandem serve --handler-threads (0: its default)")
    ap.add_argument("--refusals", action="store_true", help="what a refused request costs (see above)")
    ap.add_argument("--out", help="also write the rows as JSON here")
    args = ap.parse_args()
    sb.HANDLER_THREADS = args.handler_threads

    import onnx
    output = onnx.load(str(sb.MODEL)).graph.output[0].name
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        x = np.random.default_rng(0).random(sb.SHAPE, dtype=np.float32)
        header_len = sb.make_bodies(work, x, output)
        config = {"input_shapes": {"x": sb.SHAPE}, "threads": 1, "instances": args.instances, "max_queue_size": 64,
                  "backends": ["cpu", "reference"]}
        if args.refusals:
            config = dict(config, input_shapes={"x": [-1] + sb.SHAPE[1:]}, instances=1, max_queue_size=0,
                          backends=["reference"])
        repo = sb.make_repo(work, "plain", config)
        with sb.Server(args.tandem, repo, work) as srv, Holder(srv, x, output, args.refusals):
            sb.grpc_load(srv.grpc, args.concurrency, 1, work)  # warm-up, and builds the client
            for r in range(args.rounds):
                for protocol in ("rest", "grpc"):
                    before, (total0, idle0) = thread_times(srv.proc.pid), machine_idle()
                    switches0 = thread_switches(srv.proc.pid)
                    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if protocol == "grpc":
                        res = sb.grpc_load(srv.grpc, args.concurrency, args.seconds, work)
                        answered, rps = res["calls"], res["ok_rps"]
                        refused = res["by_grpc_status"].get("8", {}).get("n", 0)
                    else:
                        res = sb.wrk(f"http://127.0.0.1:{srv.http}/v2/models/cls/infer", work / "body.bin",
                                     "application/octet-stream", header_len, args.concurrency, args.seconds, work)
                        answered, rps = res["rps"] * args.seconds, res["ok_rps"]
                        refused = res["non_2xx"]
                    after, (total1, idle1) = thread_times(srv.proc.pid), machine_idle()
                    switches1 = thread_switches(srv.proc.pid)
                    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    client = child1.ru_utime + child1.ru_stime - child0.ru_utime - child0.ru_stime
                    if args.refusals:
                        rps = answered / args.seconds
                    row = {"protocol": protocol, "round": r + 1, "answered_per_s": round(rps),
                           "refused_percent": min(100.0, round(100 * refused / max(1, answered), 1)),
                           "us_per_request": per_role(before, after, answered, 1e6),
                           "switches_per_request": per_role(switches0, switches1, answered, 1),
                           "client_us_per_request": round(1e6 * client / answered),
                           "idle_percent": round(100 * (idle1 - idle0) / max(1, total1 - total0), 1)}
                    rows.append(row)
                    roles = ", ".join(f"{k} {v}" for k, v in row["us_per_request"].items())
                    switches = ", ".join(f"{k} {v}" for k, v in row["switches_per_request"].items() if v >= 0.05)
                    what = f"answered {rps:.0f}/s, refused {row['refused_percent']}%" if args.refusals else f"{rps:.0f}/s"
                    print(f"{protocol:4s} round {r + 1}: {what}; us per request: {roles}; "
                          f"client {row['client_us_per_request']}; idle {row['idle_percent']}%; "
                          f"context switches per request: {switches}", flush=True)
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
