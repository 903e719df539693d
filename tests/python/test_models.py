"""The PaddleOCR models: session outputs bit-identical to `tandem run --output-dir`.

The cpu backend's float results depend on how a model was compiled (for fixed input shapes
or not, with how many threads), so the session is prepared as the CLI compiles: for the
input's shape (`input_shapes`), compared with `tandem run --backend cpu`. Both share one cache
folder: the cpu backend chooses some kernels by timing them at compile, and on a busy machine
two processes could time differently; the second takes the first one's kept choices.
"""

import subprocess

import numpy as np
import pytest

import tandem

CASES = [
    ("ch_PP-OCRv4_det_infer.onnx", (1, 3, 160, 160)),
    ("ch_PP-OCRv4_rec_infer.onnx", (1, 3, 48, 160)),
    ("ch_ppocr_mobile_v2.0_cls_infer.onnx", (1, 3, 48, 192)),
]


@pytest.mark.parametrize("model,shape", CASES, ids=[c[0].split("_infer")[0] for c in CASES])
def test_bit_identical_to_cli(tmp_path, models_dir, cli, model, shape):
    path = models_dir / model
    if not path.exists():
        pytest.skip(f"{path} missing (scripts/setup fetches it)")
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    cache = tmp_path / "cache"
    pairs = [({"input_shapes": {"x": list(shape)}}, ["--backend", "cpu", "--cache-dir", str(cache)])]
    for k, (prepare_options, cli_args) in enumerate(pairs):
        so = tandem.SessionOptions()
        so.cache_dir = str(cache)
        sess = tandem.InferenceSession(str(path), so, providers=["CPUExecutionProvider"], **prepare_options)
        (inp,) = sess.get_inputs()
        assert inp.name == "x" and inp.type == "tensor(float)" and len(inp.shape) == 4
        out_dir = tmp_path / f"out{k}"
        subprocess.run([str(cli), "run", str(path), *cli_args, "--input", "x=" + str(tmp_path / "x.npy"),
                        "--output-dir", str(out_dir)], check=True, capture_output=True)
        got = sess.run(None, {"x": x})
        outs = sess.get_outputs()
        assert len(got) == len(outs) == 1
        for o, y in zip(outs, got):
            want = np.load(out_dir / f"{o.name}.npy")
            assert y.dtype == want.dtype and y.shape == want.shape
            assert y.tobytes() == want.tobytes(), f"{model}: output {o.name} differs from `tandem run {cli_args}`"
