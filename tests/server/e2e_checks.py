"""What the Python end-to-end tests of `tandem serve` share (imported by *_test.py here).

check() records a failed check and lets the test go on, so that one run reports every failure;
FAILURES holds them. load_stubs() generates the gRPC client code of the server's protocols
(inference.GRPCInferenceService and grpc.health.v1.Health, from src/server/proto) into a
temporary folder with grpc_tools and imports it.
"""
import os
import subprocess
import sys

FAILURES = []


def check(condition, what, quiet=False):
    """Records `what` as failed unless `condition`; prints each check (failed ones only when quiet)."""
    if not condition or not quiet:
        print(("ok:   " if condition else "FAIL: ") + what, flush=True)
    if not condition:
        FAILURES.append(what)
    return condition


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
