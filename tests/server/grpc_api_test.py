#!/usr/bin/env python3
"""End-to-end test of `tandem serve` over gRPC (inference.GRPCInferenceService).

Usage: python3 grpc_api_test.py REPO_ROOT TANDEM_BINARY

Builds a temporary model repository (the PaddleOCR direction classifier, a tiny Mul model and a
strict model that always fails), starts `tandem serve` on free loopback ports, and checks every
RPC (the statistics and repository extensions among them) and gRPC's health service
(grpc.health.v1, following readiness), that ModelInfer answers
bit-identically to `tandem run`, the error codes and messages of bad requests, that injected faults are covered by fallback (10,000 calls, none failed), that a
strict model's readiness follows its breaker, that SIGTERM while calls wait in a model's queue
loses none of them (exit 0), and that the benchmark's gRPC load client (bench/serve/grpc_load.cpp,
compiled here) counts calls by grpc-status as the server does. Servers are always stopped, even when a check fails.
Python client stubs are generated at run time from src/server/proto with grpc_tools.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc
import numpy as np

from e2e_checks import FAILURES, Served, check, load_stubs, write_mul_model

ROOT, TANDEM = sys.argv[1], sys.argv[2]
CLS_MODEL = os.path.join(ROOT, "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx")
CLS_ROUTES = ["cpu", "reference"]


def add_model(repo, name, model_writer, config=None):
    os.makedirs(os.path.join(repo, name, "1"))
    model_writer(os.path.join(repo, name, "1", "model.onnx"))
    if config is not None:
        with open(os.path.join(repo, name, "config.json"), "w") as f:
            json.dump(config, f)


def copy_cls(path):
    with open(CLS_MODEL, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())


def infer_request(pb, model, name, array, datatype="FP32"):
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
    request.raw_input_contents.append(array.tobytes())
    return request


def output_array(response, index=0):
    out = response.outputs[index]
    assert out.datatype == "FP32", out.datatype
    return np.frombuffer(response.raw_output_contents[index], dtype="<f4").reshape(list(out.shape))


def expect_error(what, call, code, message_part):
    try:
        call()
    except grpc.RpcError as e:
        details = e.details() or ""
        check(e.code() == code, "%s: %s (got %s: %s)" % (what, code.name, e.code().name, details))
        check(message_part in details and "\n" not in details,
              "%s: one-line message containing %r (got %r)" % (what, message_part, details))
        return
    check(False, "%s: expected %s, the call succeeded" % (what, code.name))


def test_rpcs_and_parity(pb, server, tmp):
    s = server.stub
    check(s.ServerLive(pb.ServerLiveRequest(), timeout=5).live, "ServerLive: live")
    check(s.ServerReady(pb.ServerReadyRequest(), timeout=5).ready, "ServerReady: ready")
    check(s.ModelReady(pb.ModelReadyRequest(name="cls"), timeout=5).ready, "ModelReady(cls): ready")
    meta = s.ServerMetadata(pb.ServerMetadataRequest(), timeout=5)
    check(meta.name == "tandem" and meta.version != "", "ServerMetadata: name tandem, a version (%s)" % meta.version)
    model = s.ModelMetadata(pb.ModelMetadataRequest(name="cls"), timeout=5)
    check(model.name == "cls" and list(model.versions) == ["1"], "ModelMetadata: name and versions %s" % model.versions)
    check([(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("x", "FP32", [1, 3, 48, 192])],
          "ModelMetadata: input x FP32 [1,3,48,192] (got %s)" % [(t.name, t.datatype, list(t.shape)) for t in model.inputs])
    check(len(model.outputs) == 1 and model.outputs[0].datatype == "FP32", "ModelMetadata: one FP32 output")

    x = np.random.default_rng(7).standard_normal((1, 3, 48, 192)).astype(np.float32)
    np.save(os.path.join(tmp, "x.npy"), x)
    out_dir = os.path.join(tmp, "run_out")
    # The same route chain as the model's config.json (a plain `tandem run` picks its own backend).
    subprocess.run([TANDEM, "run", CLS_MODEL, "--routes", ",".join(CLS_ROUTES), "--input", "x=" + os.path.join(tmp, "x.npy"),
                    "--output-dir", out_dir],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    expected = np.load(os.path.join(out_dir, model.outputs[0].name + ".npy"))

    request = infer_request(pb, "cls", "x", x)
    request.id = "req-1"
    response = s.ModelInfer(request, timeout=30)
    got = output_array(response)
    check(response.model_name == "cls" and response.model_version == "1" and response.id == "req-1",
          "ModelInfer: echoes model, version and id")
    check(response.outputs[0].name == model.outputs[0].name, "ModelInfer: output named as in the metadata")
    check(got.shape == expected.shape and got.tobytes() == expected.tobytes(),
          "ModelInfer: raw answer bit-identical to `tandem run` (%s vs %s)" % (got.ravel()[:4], expected.ravel()[:4]))

    typed = pb.ModelInferRequest(model_name="cls")
    tensor = typed.inputs.add(name="x", datatype="FP32", shape=[1, 3, 48, 192])
    tensor.contents.fp32_contents.extend(x.ravel().tolist())
    got_typed = output_array(s.ModelInfer(typed, timeout=30))
    check(got_typed.tobytes() == expected.tobytes(), "ModelInfer: typed contents give the same answer")

    # Many calls in flight at once (no server thread waits per call), some cancelled by the
    # client as soon as they are sent: every other one gets the same bits, and the server goes on.
    futures = [s.ModelInfer.future(request, timeout=60) for _ in range(48)]
    for f in futures[::6]:
        f.cancel()
    answered = [f.result() for f in futures if not f.cancelled()]
    # A call the first route did not answer in time (a slow sanitizer build) is answered by the
    # reference, whose sums round differently: those must agree to float32 rounding instead.
    served = [r.parameters["backend"].string_param for r in answered]
    same = sum(output_array(r).tobytes() == expected.tobytes() for r, b in zip(answered, served) if b == "cpu")
    close = sum(np.allclose(output_array(r), expected, rtol=1e-4, atol=1e-5) for r, b in zip(answered, served) if b != "cpu")
    check(same + close == len(answered) and len(answered) >= 40,
          "ModelInfer: %d of %d concurrent calls answered with the same bits (%d more by a fallback route, "
          "within rounding)" % (same, len(answered), close))
    check(output_array(s.ModelInfer(request, timeout=30)).tobytes() == expected.tobytes(),
          "ModelInfer: answers after cancelled calls")


def test_statistics_and_repository(pb, server):
    """The statistics and model-repository extensions, as Triton's gRPC clients call them."""
    s = server.stub
    before = s.ModelStatistics(pb.ModelStatisticsRequest(name="cls"), timeout=5).model_stats[0]
    x = np.zeros((1, 3, 48, 192), dtype=np.float32)
    for _ in range(3):
        s.ModelInfer(infer_request(pb, "cls", "x", x), timeout=30)
    after = s.ModelStatistics(pb.ModelStatisticsRequest(name="cls", version="1"), timeout=5).model_stats
    check(len(after) == 1 and after[0].name == "cls" and after[0].version == "1", "ModelStatistics: cls version 1")
    a = after[0]
    check(a.inference_count - before.inference_count == 3 and a.execution_count - before.execution_count == 3,
          "ModelStatistics: three more inferences and executions (%d, %d)" % (a.inference_count, a.execution_count))
    check(a.inference_stats.success.count - before.inference_stats.success.count == 3
          and a.inference_stats.compute_infer.ns > before.inference_stats.compute_infer.ns,
          "ModelStatistics: successes counted, compute time grew")
    check(a.last_inference >= int(time.time() * 1000) - 60000, "ModelStatistics: last_inference is recent")
    check([b.batch_size for b in a.batch_stats] == [1], "ModelStatistics: batch size 1 (%s)" % [b.batch_size for b in a.batch_stats])
    everything = s.ModelStatistics(pb.ModelStatisticsRequest(), timeout=5).model_stats
    check({m.name for m in everything} == {"cls", "strict"}, "ModelStatistics: every model when none is named")
    expect_error("ModelStatistics of an unknown model", lambda: s.ModelStatistics(
        pb.ModelStatisticsRequest(name="ghost"), timeout=5), grpc.StatusCode.NOT_FOUND, "ghost")
    index = s.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=5).models
    check({(m.name, m.version, m.state) for m in index} >= {("cls", "1", "READY")},
          "RepositoryIndex: cls 1 READY (%s)" % [(m.name, m.state) for m in index])
    check(s.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="cls"), timeout=120) is not None
          and s.ModelReady(pb.ModelReadyRequest(name="cls"), timeout=5).ready,
          "RepositoryModelLoad: answered, and cls is ready")
    bad = pb.RepositoryModelLoadRequest(model_name="cls")
    bad.parameters["config"].string_param = "{}"
    expect_error("RepositoryModelLoad with a config", lambda: s.RepositoryModelLoad(bad, timeout=5),
                 grpc.StatusCode.INVALID_ARGUMENT, "parameter 'config' is not supported")
    expect_error("RepositoryModelUnload of an unknown model", lambda: s.RepositoryModelUnload(
        pb.RepositoryModelUnloadRequest(model_name="ghost"), timeout=5), grpc.StatusCode.NOT_FOUND, "ghost")


def test_errors(pb, server):
    s = server.stub
    x = np.zeros((1, 3, 48, 192), np.float32)
    expect_error("unknown model", lambda: s.ModelInfer(infer_request(pb, "nope", "x", x), timeout=10),
                 grpc.StatusCode.NOT_FOUND, "nope")
    expect_error("ModelReady of an unknown model", lambda: s.ModelReady(pb.ModelReadyRequest(name="nope"), timeout=5),
                 grpc.StatusCode.NOT_FOUND, "nope")
    expect_error("a model name with a newline", lambda: s.ModelReady(pb.ModelReadyRequest(name="a\nb"), timeout=5),
                 grpc.StatusCode.NOT_FOUND, "a\\x0ab")
    expect_error("ModelMetadata of an unknown version",
                 lambda: s.ModelMetadata(pb.ModelMetadataRequest(name="cls", version="9"), timeout=5),
                 grpc.StatusCode.NOT_FOUND, "9")
    expect_error("bad datatype", lambda: s.ModelInfer(infer_request(pb, "cls", "x", x, "FP99"), timeout=10),
                 grpc.StatusCode.INVALID_ARGUMENT, "unknown datatype 'FP99'")
    short = pb.ModelInferRequest(model_name="cls")
    short.inputs.add(name="x", datatype="FP32", shape=[1, 3, 48, 192])
    short.raw_input_contents.append(b"\0" * 12)
    expect_error("byte count mismatch", lambda: s.ModelInfer(short, timeout=10), grpc.StatusCode.INVALID_ARGUMENT,
                 "expected 110592 bytes, got 12")
    expect_error("datatype the model does not take",
                 lambda: s.ModelInfer(infer_request(pb, "cls", "x", x.astype(np.float64), "FP64"), timeout=10),
                 grpc.StatusCode.INVALID_ARGUMENT, "x")
    expect_error("unknown input", lambda: s.ModelInfer(infer_request(pb, "cls", "img", x), timeout=10),
                 grpc.StatusCode.INVALID_ARGUMENT, "img")
    huge = pb.ModelInferRequest(model_name="cls")
    huge.inputs.add(name="x", datatype="FP32", shape=[1 << 40, 1 << 40])
    huge.raw_input_contents.append(b"")
    expect_error("overflowing shape", lambda: s.ModelInfer(huge, timeout=10), grpc.StatusCode.RESOURCE_EXHAUSTED,
                 "size limit")
    hurried = infer_request(pb, "cls", "x", x)
    hurried.parameters["timeout"].int64_param = 1  # microseconds: over before the engine starts
    expect_error("request timeout of 1 us", lambda: s.ModelInfer(hurried, timeout=10), grpc.StatusCode.DEADLINE_EXCEEDED,
                 "")
    check(s.ServerLive(pb.ServerLiveRequest(), timeout=5).live, "still live after the bad requests")


def test_injected_faults_are_covered(pb, pb_grpc, repo, tmp):
    calls, threads = 10000, 4
    failures, wrong, done = [], [], [0]
    lock = threading.Lock()
    with Served(TANDEM, pb, pb_grpc, repo, tmp, "faulty", ["--inject", "error=0.3"]) as server:
        def client(seed):
            rng = np.random.default_rng(seed)
            for _ in range(calls // threads):
                x = rng.standard_normal((1, 16)).astype(np.float32)
                try:
                    y = output_array(server.stub.ModelInfer(infer_request(pb, "mul", "x", x), timeout=30))
                    if not np.array_equal(y, x * 2):
                        with lock:
                            wrong.append(seed)
                except grpc.RpcError as e:
                    with lock:
                        failures.append("%s: %s" % (e.code().name, e.details()))
                with lock:
                    done[0] += 1

        started = time.monotonic()
        workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=300)
        elapsed = time.monotonic() - started
        check(not any(w.is_alive() for w in workers), "fault drill: every client finished within 300 s")
        check(done[0] == calls, "fault drill: %d of %d calls answered in %.1f s" % (done[0], calls, elapsed))
        check(not failures, "fault drill (error=0.3): 0 failed calls (got %d, first: %s)"
              % (len(failures), failures[:1]))
        check(not wrong, "fault drill: every answer is x * 2 (%d wrong)" % len(wrong))


def test_sigterm_under_load(pb, pb_grpc, tmp):
    """SIGTERM while calls wait in a model's queue: every call admitted before it is answered,
    and the server exits 0."""
    repo = os.path.join(tmp, "slow_repo")
    # One instance; every call on its first route 200 ms late (abandoned at its budget and
    # answered by the reference), so the others queue up behind it.
    add_model(repo, "slow", write_mul_model, {"instances": 1, "fault_injection": "latency_ms=200"})
    calls = 6
    results = [None] * calls
    with Served(TANDEM, pb, pb_grpc, repo, tmp, "sigterm", ["--grace-seconds", "60"]) as server:
        def client(i):
            x = np.full((1, 16), float(i), dtype=np.float32)
            try:
                y = output_array(server.stub.ModelInfer(infer_request(pb, "slow", "x", x), timeout=120))
                results[i] = "ok" if np.array_equal(y, x * 2) else "wrong answer"
            except grpc.RpcError as e:
                results[i] = "%s: %s" % (e.code().name, e.details())

        workers = [threading.Thread(target=client, args=(i,)) for i in range(calls)]
        for w in workers:
            w.start()
        queued = 0
        deadline = time.monotonic() + 30
        while queued < 2 and time.monotonic() < deadline:
            with urllib.request.urlopen("http://127.0.0.1:%d/v2/models/slow/stats" % server.http_port, timeout=10) as r:
                queued = max(v["queued"] for v in json.load(r)["model_stats"])
            time.sleep(0.01)
        check(queued >= 2, "SIGTERM under load: calls queued up before the signal (%d)" % queued)
        server.proc.send_signal(signal.SIGTERM)
        try:
            rc = server.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            rc = "still running after 120 s"
        for w in workers:
            w.join(timeout=120)
        check(rc == 0, "SIGTERM under load: exit 0 (got %s): %s" % (rc, server.tail()[-400:] if rc != 0 else ""))
        check(results == ["ok"] * calls, "SIGTERM under load: every admitted call answered correctly (%s)" % results)


def grpc_requests_counted(server):
    """The server's gRPC request counters by HTTP-equivalent code."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % server.metrics_port, timeout=10) as r:
        text = r.read().decode()
    counted = {}
    for line in text.splitlines():
        if line.startswith('tandem_server_requests_total{protocol="grpc",'):
            code = line.split('code="')[1].split('"')[0]
            counted[code] = float(line.rsplit(" ", 1)[1])
    return counted


def test_load_client_counts_what_the_server_answered(pb, server, tmp):
    """bench/serve/grpc_load.cpp, which the serve benchmark's gRPC figures come from: its calls
    by grpc-status agree with the server's own counters."""
    client = os.path.join(tmp, "grpc_load")
    subprocess.run(["g++", "-O2", "-std=c++20", os.path.join(ROOT, "bench", "serve", "grpc_load.cpp"), "-o", client,
                    "-lnghttp2"], check=True)
    x = np.random.default_rng(5).random((1, 3, 48, 192), dtype=np.float32)
    for model, code, http in (("cls", "0", "200"), ("no-such-model", "5", "404")):
        frame = os.path.join(tmp, model + ".frame")
        message = infer_request(pb, model, "x", x).SerializeToString()
        with open(frame, "wb") as f:
            f.write(b"\0" + len(message).to_bytes(4, "big") + message)
        before = grpc_requests_counted(server).get(http, 0)
        run = subprocess.run([client, "--port", str(server.grpc_port), "--path", "/inference.GRPCInferenceService/ModelInfer",
                              "--frame", frame, "--seconds", "1", "--connections", "2"], capture_output=True, text=True,
                             timeout=60)
        counted = grpc_requests_counted(server).get(http, 0) - before
        result = json.loads(run.stdout) if run.returncode == 0 else {}
        calls = result.get("by_grpc_status", {}).get(code, {}).get("n", 0)
        check(run.returncode == 0 and result["transport_errors"] == 0 and calls > 0
              and set(result["by_grpc_status"]) == {code},
              "grpc_load on %s: every call ended with grpc-status %s (%s %s)" % (model, code, run.stdout.strip(),
                                                                               run.stderr.strip()))
        # Calls still open at the end are answered and counted by the server, not by the client.
        check(calls <= counted <= calls + 2, "grpc_load on %s: %d calls, the server counted %d" % (model, calls, counted))
    # Paced (the soak's load): exactly the calls due in the run, each counted once it closes.
    frame = os.path.join(tmp, "cls.frame")
    before = grpc_requests_counted(server).get("200", 0)
    run = subprocess.run([client, "--port", str(server.grpc_port), "--path", "/inference.GRPCInferenceService/ModelInfer",
                          "--frame", frame, "--seconds", "1", "--connections", "2", "--rate", "40"],
                         capture_output=True, text=True, timeout=60)
    counted = grpc_requests_counted(server).get("200", 0) - before
    result = json.loads(run.stdout) if run.returncode == 0 else {}
    check(run.returncode == 0 and result["due"] == 40 and result["started"] == 40 and result["calls"] == 40
          and result["by_grpc_status"].get("0", {}).get("n") == 40 and counted == 40,
          "grpc_load --rate 40 for 1 s: 40 calls due, started and answered OK, 40 counted by the server (%s %s; %d)"
          % (run.stdout.strip(), run.stderr.strip(), counted))
    run = subprocess.run([client, "--port", str(server.grpc_port), "--path", "/x"], capture_output=True, text=True)
    check(run.returncode == 2 and "required" in run.stderr, "grpc_load without its options: exit 2 and why (%d)"
          % run.returncode)


def test_requests_are_counted(server):
    counted = grpc_requests_counted(server)
    check(counted.get("200", 0) >= 5 and counted.get("404", 0) >= 4 and counted.get("400", 0) >= 4
          and counted.get("504", 0) >= 1 and counted.get("413", 0) >= 1, "metrics count gRPC requests by HTTP-equivalent code (%s)" % counted)


def health_check(server, service):
    """grpc.health.v1.Health/Check: "SERVING", "NOT_SERVING", or the error's code name."""
    import health_pb2
    import health_pb2_grpc
    stub = health_pb2_grpc.HealthStub(server.channel)
    try:
        status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        return health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    except grpc.RpcError as e:
        return e.code().name


def test_health_service(server):
    import health_pb2
    import health_pb2_grpc
    for service in ("", "inference.GRPCInferenceService", "cls", "cls/1"):
        check(health_check(server, service) == "SERVING", "health Check(%r): SERVING" % service)
    for service in ("nope", "cls/7", "inference.Other"):
        check(health_check(server, service) == "NOT_FOUND", "health Check(%r): NOT_FOUND" % service)
    try:
        next(health_pb2_grpc.HealthStub(server.channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=5))
        code = "OK"
    except grpc.RpcError as e:
        code = e.code().name
    check(code == "UNIMPLEMENTED", "health Watch: UNIMPLEMENTED (got %s)" % code)


def test_health_of_a_server_that_is_not_ready(pb, pb_grpc, tmp):
    """An empty repository is never ready: ServerReady false, and the health service agrees."""
    repo = os.path.join(tmp, "empty_repo")
    os.makedirs(repo)
    with Served(TANDEM, pb, pb_grpc, repo, tmp, "empty", wait_ready=False) as server:
        check(not server.stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready, "empty repository: not ready")
        for service in ("", "inference.GRPCInferenceService"):
            check(health_check(server, service) == "NOT_SERVING", "empty repository: health Check(%r) NOT_SERVING"
                  % service)


def test_strict_readiness_follows_the_breaker(pb, server):
    s = server.stub
    ready = lambda: s.ModelReady(pb.ModelReadyRequest(name="strict"), timeout=5).ready
    check(ready(), "strict model: ready before any call")
    check(health_check(server, "strict") == "SERVING", "strict model: health SERVING before any call")
    x = np.ones((1, 16), np.float32)
    codes = []
    for _ in range(50):
        try:
            s.ModelInfer(infer_request(pb, "strict", "x", x), timeout=10)
            codes.append("OK")
        except grpc.RpcError as e:
            codes.append(e.code().name)
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                break
    check("OK" not in codes, "strict model: every call fails with error=1.0 and no fallback (%s)" % codes[:3])
    check(codes[-1] == "UNAVAILABLE", "strict model: its breaker opens, calls get UNAVAILABLE (after %d calls)" % len(codes))
    check(not ready(), "strict model: not ready while its breaker is open")
    check(health_check(server, "strict") == "NOT_SERVING", "strict model: health NOT_SERVING while its breaker is open")
    check(s.ModelReady(pb.ModelReadyRequest(name="cls"), timeout=5).ready, "the other models stay ready")
    check(health_check(server, "") == "SERVING", "the server stays SERVING (the strict model is not required)")
    deadline = time.monotonic() + 15
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    check(ready(), "strict model: ready again once the breaker's cooldown has passed")
    check(health_check(server, "strict") == "SERVING", "strict model: health SERVING again")


def main():
    with tempfile.TemporaryDirectory(prefix="tandem-grpc-test-") as tmp:
        pb, pb_grpc = load_stubs(ROOT, tmp)
        repo = os.path.join(tmp, "repo")
        add_model(repo, "cls", copy_cls, {"input_shapes": {"x": [1, 3, 48, 192]}, "backends": CLS_ROUTES})
        add_model(repo, "strict", write_mul_model,
                  {"strict": True, "fault_injection": "error=1.0", "required": False,
                   "breaker": {"min_requests": 4, "window_size": 10, "cooldown_ms": 2000, "max_cooldown_ms": 2000}})
        with Served(TANDEM, pb, pb_grpc, repo, tmp, "main", metrics=True) as server:
            try:
                test_rpcs_and_parity(pb, server, tmp)
                test_statistics_and_repository(pb, server)
                test_errors(pb, server)
                test_health_service(server)
                test_requests_are_counted(server)
                test_strict_readiness_follows_the_breaker(pb, server)
                test_load_client_counts_what_the_server_answered(pb, server, tmp)
            except Exception:
                print("server log:\n" + server.tail())
                raise

        fault_repo = os.path.join(tmp, "fault_repo")
        add_model(fault_repo, "mul", write_mul_model)
        test_injected_faults_are_covered(pb, pb_grpc, fault_repo, tmp)
        test_health_of_a_server_that_is_not_ready(pb, pb_grpc, tmp)
        test_sigterm_under_load(pb, pb_grpc, tmp)

    if FAILURES:
        print("%d check(s) failed:\n  %s" % (len(FAILURES), "\n  ".join(FAILURES)))
        return 1
    print("all gRPC checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
