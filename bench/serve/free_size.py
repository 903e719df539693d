#!/usr/bin/env python3
"""`tandem serve` and a model with free image dims: the PP-OCRv4 detector at many sizes.

    python3 bench/serve/free_size.py [--tandem build/bin/tandem] [--sizes 640x640,960x1280,...]
        [--passes 2] [--instance-cache-mb N] [--out FILE]

The detector (models/, from scripts/setup) is served with no config, so its image dims stay
free and every request brings its own size. Each pass sends one REST binary request per size,
one at a time, and prints its status and latency; at the end the model's stats (which route
answered, fallbacks) and the server's RSS. --instance-cache-mb sets TANDEM_CPU_INSTANCE_CACHE_MB
for the server (the cpu backend's bound on what its cached per-size plans hold). Sizes that are
not multiples of 32 do not fit the model: they are answered 400 (dims that cannot broadcast).
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import serve_bench as sb  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
DETECTOR = ROOT / "models" / "ch_PP-OCRv4_det_infer.onnx"
DEFAULT_SIZES = "640x640,960x1280,640x608,736x736,1088x1920,1080x1920"


def infer(port, height, width, seed):
    """(HTTP status, milliseconds) of one binary REST request for a random image."""
    x = np.random.default_rng(seed).random((1, 3, height, width), dtype=np.float32)
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": "sigmoid_0.tmp_0", "parameters": {"binary_data": True}}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/det/infer", data=header + x.tobytes(),
                                 headers={"Inference-Header-Content-Length": str(len(header)),
                                          "Content-Type": "application/octet-stream"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        e.read()
        status = e.code
    return status, (time.monotonic() - t0) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default=str(ROOT / "build" / "bin" / "tandem"))
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="HEIGHTxWIDTH,... (one request each per pass)")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--instance-cache-mb", type=float, default=0, help="0: the backend's default")
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args()
    if not DETECTOR.exists():
        sys.exit(f"free_size: {DETECTOR} is missing (scripts/setup fetches it)")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",") if s]
    if args.instance_cache_mb > 0:
        os.environ["TANDEM_CPU_INSTANCE_CACHE_MB"] = str(args.instance_cache_mb)
    results = {"sizes": [], "passes": args.passes}
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        (work / "repo" / "det" / "1").mkdir(parents=True)
        (work / "repo" / "det" / "1" / "model.onnx").symlink_to(DETECTOR)
        with sb.Server(args.tandem, work / "repo", work) as srv:
            rss_start = srv.rss_mb()
            for p in range(args.passes):
                for i, (h, w) in enumerate(sizes):
                    status, ms = infer(srv.http, h, w, seed=p * len(sizes) + i)
                    print(f"pass {p + 1}  {h}x{w}: {status}  {ms:.1f} ms", flush=True)
                    results["sizes"].append({"pass": p + 1, "size": f"{h}x{w}", "status": status, "ms": ms})
            with urllib.request.urlopen(f"http://127.0.0.1:{srv.http}/v2/models/det/stats", timeout=30) as r:
                stats = json.load(r)["model_stats"][0]
            results.update(served_by=stats["served_by"], fallbacks=stats["fallbacks"], failed=stats["failed"],
                           rss_start_mb=rss_start, rss_end_mb=srv.rss_mb())
    print(f"served by {results['served_by']}, fallbacks {results['fallbacks']}, failed {results['failed']}; "
          f"RSS {results['rss_start_mb']:.0f} -> {results['rss_end_mb']:.0f} MB")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
