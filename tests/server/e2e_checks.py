"""What the Python end-to-end tests of `tandem serve` share (imported by *_test.py here).

Served runs `tandem serve` for a test. check() records a failed check and lets the test go on,
so that one run reports every failure; FAILURES holds them. load_stubs() generates the gRPC client code of the server's protocols
(inference.GRPCInferenceService and grpc.health.v1.Health, from src/server/proto) into a
temporary folder with grpc_tools and imports it. write_mul_model() writes a tiny model for
tests that need many fast calls.
"""
import json
import os
import subprocess
import sys
import time

import grpc
import onnx
from onnx import TensorProto, helper

FAILURES = []


def check(condition, what, quiet=False):
    """Records `what` as failed unless `condition`; prints each check (failed ones only when quiet)."""
    if not condition or not quiet:
        print(("ok:   " if condition else "FAIL: ") + what, flush=True)
    if not condition:
        FAILURES.append(what)
    return condition


def write_mul_model(path):
    """y = x * 2 over float[1,16]: fast enough for thousands of calls."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "mul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def load_stubs(root, tmp):
    """(inference messages, inference stubs) generated from ROOT/src/server/proto into TMP/stubs;
    health_pb2 and health_pb2_grpc become importable too."""
    out = os.path.join(tmp, "stubs")
    os.makedirs(out)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(root, "src", "server", "proto"),
                    "--python_out", out, "--grpc_python_out", out, "grpc_predict_v2.proto", "health.proto"], check=True)
    sys.path.insert(0, out)
    import grpc_predict_v2_pb2 as pb
    import grpc_predict_v2_pb2_grpc as pb_grpc
    return pb, pb_grpc


class Served:
    """`tandem serve` (the binary `tandem`) over `repo` on free loopback ports, with a gRPC channel
    and stub to it; ready (ServerReady) when the constructor returns, unless `wait_ready` is
    false. Stopped on exit, whatever happened."""

    def __init__(self, tandem, pb, pb_grpc, repo, tmp, name, extra_args=(), metrics=False, wait_ready=True):
        self.pb, self.ready_file = pb, os.path.join(tmp, name + ".ready.json")
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([tandem, "serve", "--model-repository", repo, "--http-port", "0", "--grpc-port",
                                      "0", "--metrics-port", "0" if metrics else "-1", "--ready-file", self.ready_file, *extra_args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.channel = None
        try:
            ports = self._wait_for_ports(30)
            self.metrics_port = ports.get("metrics", -1)
            self.http_port = ports["http"]
            self.grpc_port = ports["grpc"]
            self.channel = grpc.insecure_channel("127.0.0.1:%d" % ports["grpc"])
            self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
            deadline = time.monotonic() + 60
            while wait_ready and not self.stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready:
                if time.monotonic() > deadline:
                    raise RuntimeError("server '%s' not ready within 60 s" % name)
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def _wait_for_ports(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tandem serve exited with %d: %s" % (self.proc.returncode, self.tail()))
            try:
                with open(self.ready_file) as f:
                    return json.load(f)
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.05)
        raise RuntimeError("no ready file within %d s: %s" % (seconds, self.tail()))

    def tail(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-2000:]

    def stop(self):
        if self.channel is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
