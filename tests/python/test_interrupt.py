"""Deadlines and Ctrl-C on long calls."""

import _thread
import threading
import time

import numpy as np
import pytest

import tandem
import models


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    path = models.matmul_chain(tmp_path_factory.mktemp("slow") / "chain.onnx", n=256, depth=30)
    engine = tandem.Engine(threads=1)
    model = engine.prepare(path, routes=["reference"], warmup_runs=0, unmeasured_budget_ms=600000)
    x = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    t0 = time.perf_counter()
    model.infer({"x": x})
    return model, x, time.perf_counter() - t0


def test_deadline_raises_timeout(slow):
    model, x, once = slow
    with pytest.raises(tandem.Timeout):
        model.infer({"x": x}, deadline_ms=max(1.0, once * 1000 / 20))


def test_ctrl_c_interrupts_a_running_call(slow):
    model, x, once = slow
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    if once < 0.1:
        pytest.skip(f"the slow model takes only {once:.3f} s here")
    timer = threading.Timer(min(0.05, once / 4), _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        for _ in range(5):  # the interrupt lands during one of these
            model.infer({"x": x})
    elapsed = time.perf_counter() - t0
    timer.join()
    # Control came back well before the call could have finished on its own.
    assert elapsed < once * 0.9 + 0.3
    # The model keeps working afterwards.
    out = model.infer({"x": x})
    assert out["y"].shape == (256, 256)
