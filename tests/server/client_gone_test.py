#!/usr/bin/env python3
"""End-to-end test: requests whose clients went away are not computed.

Usage: python3 client_gone_test.py REPO_ROOT TANDEM_BINARY

A model whose every engine call takes 40 ms (injected latency) serves one call at a time. While
one request runs, four more are sent over gRPC and cancelled (a client's timeout or cancel),
and four over REST on connections that are then closed. None of the eight is computed: each
completes with 499 (gRPC CANCELLED) when the model's instance frees, the model's stats count
them as `client_gone`, the request counters show them by protocol, the request that stayed is
answered, and the server keeps serving.

Then a lone REST connection (its event loop has no other, so the loop's own thread makes the
engine call) asks a model whose calls take 2 s and hangs up: the call is cancelled within a
fraction of that, not computed to the end. The server is always stopped.
"""
import json
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

from e2e_checks import FAILURES, Served, check, load_stubs, write_mul_model

ROOT, TANDEM = sys.argv[1], sys.argv[2]
GONE = 4  # requests per protocol whose client leaves


def stats(port, model="slow"):
    with urllib.request.urlopen("http://127.0.0.1:%d/v2/models/%s/stats" % (port, model), timeout=10) as r:
        return json.load(r)["model_stats"][0]


def wait_for(what, predicate, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return check(False, "%s within %d s" % (what, seconds))


def request_counts(port):
    """{(protocol, code): count} from the server's request counter."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("tandem_server_requests_total{"):
            labels, value = line[len("tandem_server_requests_total{"):].split("} ")
            fields = dict(kv.split("=") for kv in labels.split(","))
            counts[(fields["protocol"].strip('"'), fields["code"].strip('"'))] = int(float(value))
    return counts


def rest_body():
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 16],
                                   "data": [float(i) for i in range(16)]}]}).encode()


def rest_request(model="slow"):
    body = rest_body()
    head = ("POST /v2/models/%s/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (model, len(body))).encode()
    return head + body


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pb, pb_grpc = load_stubs(ROOT, tmp)
        repo = os.path.join(tmp, "repo")
        os.makedirs(os.path.join(repo, "slow", "1"))
        write_mul_model(os.path.join(repo, "slow", "1", "model.onnx"))
        with open(os.path.join(repo, "slow", "config.json"), "w") as f:
            json.dump({"backends": ["cpu", "reference"], "fault_injection": "latency_ms=40", "instances": 1,
                       "max_queue_size": 16}, f)
        os.makedirs(os.path.join(repo, "slower", "1"))
        write_mul_model(os.path.join(repo, "slower", "1", "model.onnx"))
        with open(os.path.join(repo, "slower", "config.json"), "w") as f:
            json.dump({"backends": ["cpu", "reference"], "fault_injection": "latency_ms=2000", "instances": 1}, f)
        x = np.arange(16, dtype=np.float32).reshape(1, 16)

        def grpc_request():
            request = pb.ModelInferRequest(model_name="slow")
            request.inputs.add(name="x", datatype="FP32", shape=[1, 16])
            request.raw_input_contents.append(x.tobytes())
            return request

        with Served(TANDEM, pb, pb_grpc, repo, tmp, "gone") as served:
            port = served.http_port
            before = request_counts(port)

            # gRPC: one call holds the instance; four more queue behind it and are cancelled.
            held = served.stub.ModelInfer.future(grpc_request())
            wait_for("the held gRPC call in flight", lambda: stats(port)["in_flight"] == 1)
            leaving = [served.stub.ModelInfer.future(grpc_request()) for _ in range(GONE)]
            wait_for("the gRPC calls queued", lambda: stats(port)["queued"] + stats(port)["in_flight"] >= GONE + 1)
            for call in leaving:
                call.cancel()
            answer = held.result(timeout=30)
            y = np.frombuffer(answer.raw_output_contents[0], dtype="<f4").reshape(1, 16)
            check(np.array_equal(y, x * 2), "gRPC: the call that stayed is answered")
            check(all(call.cancelled() for call in leaving), "gRPC: the cancelled calls report cancelled")
            wait_for("gRPC: %d requests counted as client_gone" % GONE, lambda: stats(port)["client_gone"] == GONE)

            # REST: the same over four connections closed after sending their requests.
            result = {}

            def stay():
                req = urllib.request.Request("http://127.0.0.1:%d/v2/models/slow/infer" % port, data=rest_body(),
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=30) as r:
                    result["status"], result["body"] = r.status, json.load(r)

            stayer = threading.Thread(target=stay)
            stayer.start()
            wait_for("the held REST request in flight", lambda: stats(port)["in_flight"] == 1)
            sockets = []
            for _ in range(GONE):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(rest_request())
                sockets.append(s)
            wait_for("the REST requests queued", lambda: stats(port)["queued"] + stats(port)["in_flight"] >= GONE + 1)
            for s in sockets:
                s.close()
            stayer.join(timeout=30)
            check(result.get("status") == 200 and result["body"]["outputs"][0]["data"] == [2.0 * i for i in range(16)],
                  "REST: the request that stayed is answered (%s)" % result.get("status"))
            wait_for("REST: %d more requests counted as client_gone" % GONE, lambda: stats(port)["client_gone"] == 2 * GONE)

            s = stats(port)
            check(s["succeeded"] == 2 and s["failed"] == 2 * GONE,
                  "only the requests that stayed were answered (succeeded %d, failed %d)" % (s["succeeded"], s["failed"]))
            after = request_counts(port)
            for protocol in ("grpc", "rest"):
                gone = after.get((protocol, "499"), 0) - before.get((protocol, "499"), 0)
                check(gone == GONE, "%s: %d requests counted with code 499 (got %d)" % (protocol, GONE, gone))
            answer = served.stub.ModelInfer(grpc_request(), timeout=30)
            check(len(answer.raw_output_contents) == 1, "the server serves on after clients went away")

            # A lone REST connection: the engine call runs on its event loop's thread.
            lone = socket.create_connection(("127.0.0.1", port), timeout=10)
            lone.sendall(rest_request("slower"))
            wait_for("the lone request in flight", lambda: stats(port, "slower")["in_flight"] == 1)
            left_at = time.monotonic()
            lone.close()
            wait_for("the lone request's call cancelled", lambda: stats(port, "slower")["client_gone"] == 1)
            cancelled_after = time.monotonic() - left_at
            s = stats(port, "slower")
            check(s["client_gone"] == 1 and s["succeeded"] == 0 and cancelled_after < 1.5,
                  "REST, lone connection: the call is cancelled when the client hangs up (client_gone %d, succeeded "
                  "%d, after %.2f s of the call's 2 s)" % (s["client_gone"], s["succeeded"], cancelled_after))
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
