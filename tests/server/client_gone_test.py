#!/usr/bin/env python3
"""End-to-end test: requests whose clients went away are not computed.

Usage: python3 client_gone_test.py REPO_ROOT TANDEM_BINARY

The model runs a large convolution (then a global average) on the reference backend alone (about 340 million
multiply-adds: some 0.3 s a call in a release build, seconds under a sanitizer; the last resort
has no time budget, so a call runs to its end) and serves one call at a time. While one request
runs, four more are sent over gRPC and cancelled (a client's timeout or cancel), and four over
REST on connections that are then closed. None of the eight is computed: each completes with
499 (gRPC CANCELLED) when the model's instance frees, the model's stats count them as
`client_gone`, the request counters show them by protocol, the request that stayed is answered,
and the server keeps serving.

Then a lone REST connection (its event loop has no other, so the loop's own thread makes the
engine call) hangs up while its call runs: the call is cancelled, not computed to the end.
The server is always stopped.
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
import onnx
from onnx import TensorProto, helper

from e2e_checks import FAILURES, Served, check, load_stubs

ROOT, TANDEM = sys.argv[1], sys.argv[2]
GONE = 4  # requests per protocol whose client leaves
CHANNELS, SIDE = 32, 192
X = np.zeros((1, CHANNELS, SIDE, SIDE), dtype=np.float32)
Y = np.zeros((1, CHANNELS, 1, 1), dtype=np.float32)  # the answer to X


def write_conv_model(path):
    """y = GlobalAveragePool(Conv(x, w)), 3x3, padding 1, over float[1, CHANNELS, SIDE, SIDE]."""
    w = np.random.default_rng(7).uniform(-0.1, 0.1, (CHANNELS, CHANNELS, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(Y.shape))],
                              [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def stats(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/v2/models/slow/stats" % port, timeout=30) as r:
        return json.load(r)["model_stats"][0]


def wait_for(what, predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return check(False, "%s within %d s" % (what, seconds))


def request_counts(port):
    """{(protocol, code): count} from the server's request counter."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        text = r.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("tandem_server_requests_total{"):
            labels, value = line[len("tandem_server_requests_total{"):].split("} ")
            fields = dict(kv.split("=") for kv in labels.split(","))
            key = (fields["protocol"].strip('"'), fields["code"].strip('"'))
            counts[key] = counts.get(key, 0) + float(value)
    return counts


def rest_body():
    """(headers, body) of a binary REST request for X."""
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(X.shape),
                                     "parameters": {"binary_data_size": X.nbytes}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    return {"Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream"}, header + X.tobytes()


def rest_request():
    headers, body = rest_body()
    head = "POST /v2/models/slow/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n" % len(body)
    head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
    return head.encode() + body


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pb, pb_grpc = load_stubs(ROOT, tmp)
        repo = os.path.join(tmp, "repo")
        os.makedirs(os.path.join(repo, "slow", "1"))
        write_conv_model(os.path.join(repo, "slow", "1", "model.onnx"))
        with open(os.path.join(repo, "slow", "config.json"), "w") as f:
            json.dump({"backends": ["reference"], "instances": 1, "max_queue_size": 16}, f)

        def grpc_request():
            request = pb.ModelInferRequest(model_name="slow")
            request.inputs.add(name="x", datatype="FP32", shape=list(X.shape))
            request.raw_input_contents.append(X.tobytes())
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
            answer = held.result(timeout=120)
            check(answer.raw_output_contents[0] == Y.tobytes(), "gRPC: the call that stayed is answered")
            check(all(call.cancelled() for call in leaving), "gRPC: the cancelled calls report cancelled")
            wait_for("gRPC: %d requests counted as client_gone" % GONE, lambda: stats(port)["client_gone"] == GONE)

            # REST: the same over four connections closed after sending their requests.
            result = {}

            def stay():
                headers, body = rest_body()
                req = urllib.request.Request("http://127.0.0.1:%d/v2/models/slow/infer" % port, data=body,
                                             headers=headers)
                with urllib.request.urlopen(req, timeout=120) as r:
                    result["status"], result["body"] = r.status, r.read()

            stayer = threading.Thread(target=stay)
            stayer.start()
            wait_for("the held REST request in flight", lambda: stats(port)["in_flight"] == 1)
            sockets = []
            for _ in range(GONE):
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
                s.sendall(rest_request())
                sockets.append(s)
            wait_for("the REST requests queued", lambda: stats(port)["queued"] + stats(port)["in_flight"] >= GONE + 1)
            for s in sockets:
                s.close()
            stayer.join(timeout=120)
            check(result.get("status") == 200 and result["body"].endswith(Y.tobytes()),
                  "REST: the request that stayed is answered (%s)" % result.get("status"))
            wait_for("REST: %d more requests counted as client_gone" % GONE, lambda: stats(port)["client_gone"] == 2 * GONE)

            s = stats(port)
            check(s["succeeded"] == 2 and s["failed"] == 2 * GONE,
                  "only the requests that stayed were answered (succeeded %d, failed %d)" % (s["succeeded"], s["failed"]))
            after = request_counts(port)
            for protocol in ("grpc", "rest"):
                gone = after.get((protocol, "499"), 0) - before.get((protocol, "499"), 0)
                check(gone == GONE, "%s: %d requests counted with code 499 (got %d)" % (protocol, GONE, gone))
            answer = served.stub.ModelInfer(grpc_request(), timeout=120)
            check(len(answer.raw_output_contents) == 1, "the server serves on after clients went away")

            # A lone REST connection: the engine call runs on its event loop's thread.
            lone = socket.create_connection(("127.0.0.1", port), timeout=30)
            lone.sendall(rest_request())
            wait_for("the lone request in flight", lambda: stats(port)["in_flight"] == 1)
            lone.close()
            wait_for("the lone request's call cancelled", lambda: stats(port)["client_gone"] == 2 * GONE + 1)
            s = stats(port)
            check(s["client_gone"] == 2 * GONE + 1 and s["succeeded"] == 3,
                  "REST, lone connection: the call is cancelled when the client hangs up (client_gone %d, succeeded "
                  "%d)" % (s["client_gone"], s["succeeded"]))
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
