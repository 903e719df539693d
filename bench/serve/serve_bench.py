#!/usr/bin/env python3
"""What `tandem serve` adds over the in-process engine, and how it behaves under load.

    python3 bench/serve/serve_bench.py [--tandem build/bin/tandem] [--out DIR] [--duration 10]
        [--phases overhead,throughput,batching,overload] [--overload-seconds 60] [--rounds 1]

Model: the PaddleOCR direction classifier (1x3x48x192) from models/, in a temporary model
repository. One engine thread per call (--engine-threads). The server is configured for the
concurrency the throughput phase measures, as docs/serving.md advises: --instances (8) engine calls
in flight, as many as the in-process run has callers, and --handler-threads (8) event loops, one
per connection (pass --instances 2 --handler-threads 0 for the server's defaults on 2 cores).
The server and the in-process runs
share one cache folder, so they compile the same timed kernel choices. Every figure comes from this run,
side by side:
  overhead    concurrency 1: p50 of the in-process engine call (`tandem soak --threads 1`)
              against p50 over REST binary and REST JSON (wrk) and gRPC (bench/serve/grpc_load.cpp,
              which writes each message in one write as gRPC's own clients do and reads
              grpc-status; and h2load, which writes 16 KB frames one by one, for comparison).
              Targets: binary and gRPC add <= 150 us, JSON <= 1 ms.
  throughput  concurrency 8: requests/s in process (`tandem soak --threads 8`) against REST
              binary and gRPC at the same engine threads. Target: >= 80%.
  batching    concurrency 16 over REST binary, without and with dynamic batching. Target:
              >= 1.3x the throughput, p99 < 10 ms.
  soak        (not in the default phases) --soak-seconds at half the sustainable rate, with
              --inject error=0.1 on the first route: the sustainable rate is measured first on
              that server (REST binary, concurrency 8), then open_loop.cpp (REST binary) and
              grpc_load.cpp --rate (gRPC) each pace a quarter of it, requests due at fixed times
              whatever the server does. Every request due must be answered with success (no
              other status, transport error or request left unanswered); RSS sampled every 10 s,
              growth per 10,000 requests after a warm-up of a tenth of the run (target < 1 MB).
              --soak-rate R paces R requests/s in all instead.
  overload    REST binary, open loop (bench/serve/open_loop.cpp: requests due at a fixed rate,
              latency from the moment each was due) at --overload-factor (10) x the sustainable
              rate for --overload-seconds, up to 512 connections, max_queue_size 4: every
              rejection a 503 with p99 < 5 ms, admitted p99 < 3x the unloaded p99, RSS sampled
              every second (bounded). A closed-loop client would measure its own concurrency
              instead (N connections at X answers/s wait N / X on average).
Results: DIR/results.json and DIR/summary.txt (default bench/results/<date>-serve).
Needs wrk, h2load (nghttp2-client), grpc_tools (python3-grpc-tools), numpy, and g++ with Boost's
headers for open_loop.cpp and libnghttp2-dev for grpc_load.cpp (both built here): scripts/setup.
"""
import argparse
import datetime
import json
import os
import pathlib
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
SHAPE = [1, 3, 48, 192]
WRK_LUA = """
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local h = os.getenv("BENCH_HEADER_LENGTH")
if h ~= nil and h ~= "" then wrk.headers["Inference-Header-Content-Length"] = h end
"""


def log(*a):
    print(*a, flush=True)


HANDLER_THREADS = 0  # tandem serve --handler-threads (0: its default)
JSON_DECODE_THREADS = -1  # tandem serve --json-decode-threads (-1: its default)


class Server:
    """`tandem serve` on free loopback ports; always stopped (context manager)."""

    def __init__(self, tandem, repo, work, extra=()):
        self.ready_file = work / f"ready-{time.monotonic_ns()}.json"
        self.log_path = work / f"server-{time.monotonic_ns()}.log"
        self.args = [str(tandem), "serve", "--model-repository", str(repo), "--http-port", "0", "--grpc-port", "0",
                     "--metrics-port", "0", "--ready-file", str(self.ready_file), "--cache-dir", str(work / "cache"),
                     *extra]
        if HANDLER_THREADS:
            self.args += ["--handler-threads", str(HANDLER_THREADS)]
        if JSON_DECODE_THREADS >= 0:
            self.args += ["--json-decode-threads", str(JSON_DECODE_THREADS)]

    def __enter__(self):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tandem serve exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            if self.ready_file.exists():
                ports = json.loads(self.ready_file.read_text())
                self.http, self.grpc = ports["http"], ports["grpc"]
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{self.http}/v2/health/ready", timeout=2).status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("tandem serve did not become ready within 120 s")

    def rss_mb(self):
        for line in pathlib.Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return 0.0

    def metrics(self):
        return urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=5).read().decode()

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def make_repo(work, name, config):
    repo = work / name
    (repo / "cls" / "1").mkdir(parents=True)
    shutil.copy(MODEL, repo / "cls" / "1" / "model.onnx")
    (repo / "cls" / "config.json").write_text(json.dumps(config))
    return repo


def make_bodies(work, x, output):
    """REST JSON body, REST binary body asking for `output` as binary (returns the JSON header's
    length) and a gRPC frame (for grpc_load and h2load)."""
    raw = x.tobytes()
    js = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": SHAPE, "data": x.ravel().tolist()}]})
    (work / "body.json").write_text(js)
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": SHAPE,
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": output, "parameters": {"binary_data": True}}]}).encode()
    (work / "body.bin").write_bytes(header + raw)
    stubs = work / "stubs"
    stubs.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "src/server/proto"),
                    f"--python_out={stubs}", f"--grpc_python_out={stubs}", "grpc_predict_v2.proto"], check=True)
    sys.path.insert(0, str(stubs))
    import grpc_predict_v2_pb2 as pb
    req = pb.ModelInferRequest(model_name="cls")
    req.inputs.add(name="x", datatype="FP32", shape=SHAPE)
    req.raw_input_contents.append(raw)
    msg = req.SerializeToString()
    (work / "grpc.frame").write_bytes(b"\0" + struct.pack(">I", len(msg)) + msg)
    return len(header)


def wrk(url, body, content_type, header_length, concurrency, seconds, work):
    lua = work / "post.lua"
    lua.write_text(WRK_LUA)
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_CONTENT_TYPE=content_type,
               BENCH_HEADER_LENGTH=str(header_length or ""))
    threads = min(concurrency, 2)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(lua), url],
                         env=env, capture_output=True, text=True, check=True).stdout

    def ms(text):
        v, unit = float(re.match(r"([\d.]+)(\w+)", text).group(1)), re.match(r"([\d.]+)(\w+)", text).group(2)
        return v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    pct = {int(m.group(1)): ms(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\S+)", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    non_2xx = int(bad.group(1)) if bad else 0
    return {"p50_ms": pct.get(50), "p90_ms": pct.get(90), "p99_ms": pct.get(99), "rps": rps,
            "ok_rps": rps - non_2xx / seconds, "non_2xx": non_2xx, "socket_errors": errors.group(0) if errors else ""}


def h2load(url, data, headers, concurrency, seconds, work):
    logf = work / f"h2load-{time.monotonic_ns()}.log"
    cmd = ["h2load", "-c", str(concurrency), "-m", "1", "-D", str(seconds), "-d", str(data), f"--log-file={logf}"]
    for h in headers:
        cmd += ["-H", h]
    try:  # h2load can wait on connections the server never accepted after its duration ends
        out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30).stdout
    except subprocess.TimeoutExpired:
        out = "h2load stopped 30 s after its duration"
    rows = [line.split() for line in logf.read_text().splitlines() if line.strip()]
    lat = {}  # status -> latencies ms
    for r in rows:
        lat.setdefault(int(r[1]), []).append(int(r[2]) / 1e3)
    done = sum(len(v) for v in lat.values())
    return {"by_status": {s: {"n": len(v), "p50_ms": quantile(v, 0.5), "p99_ms": quantile(v, 0.99)}
                          for s, v in sorted(lat.items())},
            "rps": done / seconds, "summary": re.search(r"requests:.*", out).group(0) if "requests:" in out else out[-300:]}


def quantile(v, q):
    if not v:
        return None
    s = sorted(v)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


def round_tag(r, rounds):
    return f"round {r + 1}/{rounds}: " if rounds > 1 else ""


def medians(rounds, field):
    """Per key of each round's `field` dict, the median over the rounds; None for one round."""
    if len(rounds) < 2:
        return None
    return {k: statistics.median(x[field][k] for x in rounds) for k in rounds[0][field]}


def soak(tandem, threads, engine_threads, seconds, work):
    j = work / f"soak-{threads}.json"
    subprocess.run([str(tandem), "soak", str(MODEL), "--shape", "x=" + "x".join(map(str, SHAPE)), "--threads", str(threads),
                    "--engine-threads", str(engine_threads), "--duration", str(seconds), "--json", str(j), "--quiet",
                    "--backend", "cpu", "--cache-dir", str(work / "cache")], check=True, capture_output=True)
    return json.loads(j.read_text())


def build_client(source, work, libs=()):
    """Compiles bench/serve/SOURCE.cpp into WORK once; returns the binary."""
    binary = work / source
    if not binary.exists():
        subprocess.run(["g++", "-O2", "-std=c++20", str(ROOT / "bench/serve" / f"{source}.cpp"), "-o", str(binary),
                        "-pthread", *libs], check=True)
    return binary


def grpc_load(port, concurrency, seconds, work):
    """Closed-loop unary ModelInfer calls from bench/serve/grpc_load.cpp: calls completed within
    `seconds`, their rate, and p50/p99 by grpc-status (0: OK)."""
    client = build_client("grpc_load", work, ["-lnghttp2"])
    out = subprocess.run([str(client), "--port", str(port), "--path", "/inference.GRPCInferenceService/ModelInfer",
                          "--frame", str(work / "grpc.frame"), "--seconds", str(seconds), "--connections",
                          str(concurrency)], capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    r = json.loads(out)
    ok = r["by_grpc_status"].get("0", {})
    return dict(r, ok_rps=ok.get("n", 0) / seconds, p50_ms=ok.get("p50_ms"), p99_ms=ok.get("p99_ms"),
                failed=r["calls"] - ok.get("n", 0))


class Sampler:
    """Calls `fn` every `period` seconds on a thread while the with-block runs; `values` holds
    what it returned, the first taken at once."""

    def __init__(self, fn, period):
        self.fn, self.period, self.values = fn, period, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        while not self.stop.is_set():
            self.values.append(self.fn())
            self.stop.wait(self.period)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def soak_phase(args, work, base, header_len, say):
    """The soak (see the module's doc): results, and one summary line through `say`."""
    cfg = dict(base, max_queue_size=4096)
    repo = make_repo(work, "soak", cfg)
    with Server(args.tandem, repo, work, extra=("--inject", "error=0.1")) as srv:
        infer = f"http://127.0.0.1:{srv.http}/v2/models/cls/infer"
        sustain = None
        rate = args.soak_rate
        if rate <= 0:
            sustain = wrk(infer, work / "body.bin", "application/octet-stream", header_len, 8, args.duration,
                          work)["ok_rps"]
            rate = sustain / 2
        rest_client = build_client("open_loop", work)
        grpc_client = build_client("grpc_load", work, ["-lnghttp2"])
        seconds = args.soak_seconds
        share = f"{rate / 2:.1f}"
        t0 = time.time()

        def sample():  # (seconds since start, RSS MB, successful answers counted by the server so far)
            answered = sum(int(m.group(1)) for m in re.finditer(
                r'tandem_server_requests_total\{[^}]*code="200"[^}]*\}\s+(\d+)', srv.metrics()))
            return time.time() - t0, srv.rss_mb(), answered
        with Sampler(sample, 10.0) as sampler:
            rest = subprocess.Popen([str(rest_client), "--port", str(srv.http), "--path", "/v2/models/cls/infer",
                                     "--body", str(work / "body.bin"), "--header", "Content-Type: application/octet-stream",
                                     "--header", f"Inference-Header-Content-Length: {header_len}", "--rate", share,
                                     "--seconds", str(seconds), "--connections", "32"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            grpc = subprocess.Popen([str(grpc_client), "--port", str(srv.grpc), "--path",
                                     "/inference.GRPCInferenceService/ModelInfer", "--frame", str(work / "grpc.frame"),
                                     "--seconds", str(seconds), "--connections", "16", "--rate", share],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            rest_out, rest_err = rest.communicate()
            grpc_out, grpc_err = grpc.communicate()
        samples = sampler.values + [sample()]
        if rest.returncode != 0 or grpc.returncode != 0:
            raise RuntimeError(f"soak clients failed: {rest_err.strip()} {grpc_err.strip()}")
        r, g = json.loads(rest_out), json.loads(grpc_out)
        rest_ok = r["by_status"].get("200", {}).get("n", 0)
        grpc_ok = g["by_grpc_status"].get("0", {}).get("n", 0)
        due = r["due"] + g["due"]
        failed = due - rest_ok - grpc_ok  # every other status, error, or request left unanswered
        warm = [x for x in samples if x[0] >= seconds / 10] or samples
        grown_mb = warm[-1][1] - warm[0][1]
        counted = max(1, warm[-1][2] - warm[0][2])
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{srv.http}/v2/models/cls/stats", timeout=5).read())
        head = f"soak {seconds} s at {rate:.0f} req/s" + (
            f" (half of REST binary's {sustain:.0f}/s at concurrency 8)" if sustain else "")
        say(head + f", with error=0.1 injected: {due} requests due, {rest_ok + grpc_ok} succeeded, {failed} failed "
            f"(REST binary: {r['due']} due, by status { {k: v['n'] for k, v in r['by_status'].items()} }, "
            f"p99 {r['by_status'].get('200', {}).get('p99_ms')} ms, {r['errors']} transport errors; gRPC: "
            f"{g['due']} due, by grpc-status { {k: v['n'] for k, v in g['by_grpc_status'].items()} }, p99 "
            f"{g['by_grpc_status'].get('0', {}).get('p99_ms')} ms, {g['transport_errors']} transport errors); "
            f"RSS {warm[0][1]:.1f} -> {warm[-1][1]:.1f} MB after warm-up over {counted} requests "
            f"({grown_mb / counted * 1e4:+.3f} MB per 10,000)")
        return {"rate_rps": rate, "sustainable_rps": sustain, "seconds": seconds, "rest_binary": r, "grpc": g,
                "due": due, "failed": failed, "rss_samples": samples, "rss_growth_mb_per_10k": grown_mb / counted * 1e4,
                "stats": stats}


def grpc_headers():
    return ["content-type: application/grpc", "te: trailers"]


def grpc_ok_count(server):
    m = re.search(r'tandem_server_requests_total\{[^}]*protocol="grpc"[^}]*code="200"[^}]*\}\s+(\d+)', server.metrics())
    return int(m.group(1)) if m else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tandem", default=str(ROOT / "build" / "bin" / "tandem"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / f"{datetime.date.today()}-serve"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--engine-threads", type=int, default=1)
    ap.add_argument("--phases", default="overhead,throughput,batching,overload")
    ap.add_argument("--overload-seconds", type=int, default=60)
    ap.add_argument("--overload-factor", type=float, default=10.0, help="offered rate / sustainable rate")
    ap.add_argument("--soak-seconds", type=int, default=3600)
    ap.add_argument("--instances", type=int, default=8,
                    help="the model's engine calls in flight (config.json `instances`; the in-process runs use as "
                         "many callers as the phase's concurrency)")
    ap.add_argument("--handler-threads", type=int, default=8, help="tandem serve --handler-threads (0: its default)")
    ap.add_argument("--json-decode-threads", type=int, default=-1,
                    help="tandem serve --json-decode-threads (-1: its default)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="overhead and throughput: measure in process and over the network this many times in turn "
                         "(the VMs' speed drifts between runs; each round compares figures taken minutes apart at most)")
    ap.add_argument("--soak-rate", type=float, default=0,
                    help="soak: requests/s over both protocols (0: half the sustainable rate, measured first)")
    args = ap.parse_args()
    global HANDLER_THREADS, JSON_DECODE_THREADS
    HANDLER_THREADS = args.handler_threads
    JSON_DECODE_THREADS = args.json_decode_threads
    phases = args.phases.split(",")
    import numpy as np
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"machine": f"{os.cpu_count()} cpus", "engine_threads": args.engine_threads, "instances": args.instances,
               "duration_s": args.duration}
    lines = []

    def say(s):
        log(s)
        lines.append(s)

    import onnx
    output = onnx.load(str(MODEL)).graph.output[0].name
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
        header_len = make_bodies(work, x, output)
        base = {"input_shapes": {"x": SHAPE}, "threads": args.engine_threads, "instances": args.instances,
                "max_queue_size": 64,
                "backends": ["cpu", "reference"]}
        repo = make_repo(work, "plain", base)
        d = args.duration
        with Server(args.tandem, repo, work) as srv:
            infer = f"http://127.0.0.1:{srv.http}/v2/models/cls/infer"
            grpc_url = f"http://127.0.0.1:{srv.grpc}/inference.GRPCInferenceService/ModelInfer"
            if "overhead" in phases:
                rounds = []
                for r in range(args.rounds):
                    inproc = soak(args.tandem, 1, args.engine_threads, d, work)
                    b = wrk(infer, work / "body.bin", "application/octet-stream", header_len, 1, d, work)
                    j = wrk(infer, work / "body.json", "application/json", None, 1, d, work)
                    g = grpc_load(srv.grpc, 1, d, work)
                    before = grpc_ok_count(srv)
                    h = h2load(grpc_url, work / "grpc.frame", grpc_headers(), 1, d, work)
                    h_ok = grpc_ok_count(srv) - before
                    base_ms = inproc["latency_ms"]["p50"] if "latency_ms" in inproc else inproc.get("p50_ms")
                    g50 = g["p50_ms"]
                    h50 = h["by_status"].get(200, {}).get("p50_ms")
                    rounds.append({"in_process": inproc, "rest_binary": b, "rest_json": j, "grpc": g, "grpc_h2load": h,
                                   "grpc_h2load_ok": h_ok,
                                   "added_us": {"rest_binary": (b["p50_ms"] - base_ms) * 1e3,
                                                "rest_json": (j["p50_ms"] - base_ms) * 1e3,
                                                "grpc": (g50 - base_ms) * 1e3, "grpc_h2load": (h50 - base_ms) * 1e3}})
                    say(f"{round_tag(r, args.rounds)}concurrency 1, p50: in-process {base_ms:.3f} ms; REST binary {b['p50_ms']:.3f} ms "
                        f"(+{(b['p50_ms'] - base_ms) * 1e3:.0f} us); REST JSON {j['p50_ms']:.3f} ms (+{(j['p50_ms'] - base_ms) * 1e3:.0f} us); "
                        f"gRPC {g50:.3f} ms (+{(g50 - base_ms) * 1e3:.0f} us, {g['failed']} failed); "
                        f"gRPC from h2load {h50:.3f} ms (+{(h50 - base_ms) * 1e3:.0f} us, {h_ok} ok)")
                results["overhead"] = rounds[0] if len(rounds) == 1 else {"rounds": rounds}
                m = medians(rounds, "added_us")
                if m:
                    say(f"concurrency 1, median of {len(rounds)} rounds, p50 added: REST binary +{m['rest_binary']:.0f} us; "
                        f"REST JSON +{m['rest_json']:.0f} us; gRPC +{m['grpc']:.0f} us (h2load +{m['grpc_h2load']:.0f} us)")
            if "throughput" in phases:
                rounds = []
                for r in range(args.rounds):
                    inproc8 = soak(args.tandem, 8, args.engine_threads, d, work)
                    b8 = wrk(infer, work / "body.bin", "application/octet-stream", header_len, 8, d, work)
                    g8 = grpc_load(srv.grpc, 8, d, work)
                    before = grpc_ok_count(srv)
                    h8 = h2load(grpc_url, work / "grpc.frame", grpc_headers(), 8, d, work)
                    h8_ok = grpc_ok_count(srv) - before
                    r0 = inproc8["requests_per_second"]
                    h8_rps = h8_ok / d  # answered OK by the server (h2load cannot read grpc-status)
                    rounds.append({"in_process": inproc8, "rest_binary": b8, "grpc": g8, "grpc_h2load": h8,
                                   "grpc_h2load_ok_rps": h8_rps,
                                   "share": {"rest_binary": b8["rps"] / r0, "grpc": g8["ok_rps"] / r0,
                                             "grpc_h2load": h8_rps / r0}})
                    say(f"{round_tag(r, args.rounds)}concurrency 8, req/s: in-process {r0:.0f}; REST binary {b8['rps']:.0f} ({b8['rps'] / r0:.0%}); "
                        f"gRPC {g8['ok_rps']:.0f} OK ({g8['ok_rps'] / r0:.0%}, {g8['failed']} failed); "
                        f"gRPC from h2load {h8_rps:.0f} answered OK ({h8_rps / r0:.0%})")
                results["throughput"] = rounds[0] if len(rounds) == 1 else {"rounds": rounds}
                m = medians(rounds, "share")
                if m:
                    say(f"concurrency 8, median of {len(rounds)} rounds, share of in process: REST binary {m['rest_binary']:.0%}; "
                        f"gRPC {m['grpc']:.0%} (h2load {m['grpc_h2load']:.0%})")
        if "overload" in phases:
            # A short queue (4 per model): admitted requests wait at most a few service times.
            repo_o = make_repo(work, "overload", dict(base, max_queue_size=4))
            with Server(args.tandem, repo_o, work) as srv:
                infer = f"http://127.0.0.1:{srv.http}/v2/models/cls/infer"
                u = wrk(infer, work / "body.bin", "application/octet-stream", header_len, 1, d, work)
                sustain = wrk(infer, work / "body.bin", "application/octet-stream", header_len, 8, d, work)["ok_rps"]
                # Open loop: requests are due at factor x sustainable whatever the server does.
                client = build_client("open_loop", work)
                rate = args.overload_factor * sustain
                with Sampler(srv.rss_mb, 1.0) as rss:
                        run = subprocess.run([str(client), "--port", str(srv.http), "--path", "/v2/models/cls/infer",
                                          "--body", str(work / "body.bin"), "--header",
                                          "Content-Type: application/octet-stream",
                                          "--header", f"Inference-Header-Content-Length: {header_len}", "--rate",
                                          f"{rate:.0f}", "--seconds", str(args.overload_seconds), "--connections", "512"],
                                         capture_output=True, text=True, check=True)
                rss = rss.values
                o = json.loads(run.stdout)
                o["by_status"] = {int(k): v for k, v in o["by_status"].items()}
                o["rps"] = o["sent"] / args.overload_seconds
                ok = o["by_status"].get(200, {})
                rej = o["by_status"].get(503, {})
                results["overload"] = {"unloaded": u, "sustainable_rps": sustain, "offered_rps": o["rps"], "result": o,
                                       "rss_mb": {"first": rss[0] if rss else None, "max": max(rss) if rss else None,
                                                  "last": rss[-1] if rss else None}, "alive": srv.proc.poll() is None}
                say(f"overload {args.overload_seconds} s, open loop: offered {o['rps']:.0f} req/s "
                    f"({o['rps'] / sustain:.1f}x the sustainable {sustain:.0f}); {ok.get('n', 0)} admitted, p99 "
                    f"{ok.get('p99_ms')} ms (unloaded p99 {u['p99_ms']} ms); {rej.get('n', 0)} rejected with 503, p99 "
                    f"{rej.get('p99_ms')} ms; unanswered {o['unanswered']}, transport errors {o['errors']}, "
                    f"{o['connections_opened']} connections; other statuses "
                    f"{ {s_: v['n'] for s_, v in o['by_status'].items() if s_ not in (200, 503)} }; "
                    f"RSS {results['overload']['rss_mb']} MB; server alive: {results['overload']['alive']}")
        if "batching" in phases:
            res = {}
            # Batching needs the batch dim left free (-1); the image size stays fixed. Both runs alike.
            free = dict(base, input_shapes={"x": [-1] + SHAPE[1:]})
            for label, cfg in (("off", free), ("on", dict(free, dynamic_batching={
                    "max_batch_size": 8, "max_queue_delay_us": 2000, "preferred_batch_sizes": [4, 8]}))):
                repo_b = make_repo(work, f"batch-{label}", cfg)
                with Server(args.tandem, repo_b, work) as srv:
                    infer = f"http://127.0.0.1:{srv.http}/v2/models/cls/infer"
                    res[label] = wrk(infer, work / "body.bin", "application/octet-stream", header_len, 16, d, work)
            results["batching"] = res
            say(f"concurrency 16, REST binary: no batching {res['off']['rps']:.0f} req/s p99 {res['off']['p99_ms']:.2f} ms; "
                f"batching {res['on']['rps']:.0f} req/s p99 {res['on']['p99_ms']:.2f} ms "
                f"({res['on']['rps'] / res['off']['rps']:.2f}x)")
        if "soak" in phases:
            results["soak"] = soak_phase(args, work, base, header_len, say)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    log(f"wrote {out_dir}/results.json and summary.txt")


if __name__ == "__main__":
    main()
