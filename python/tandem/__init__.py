"""tandem: an ONNX inference engine with routes, fallback, deadlines and telemetry.

Two ways in:

* ONNX Runtime's session API, so that existing scripts work by changing the import::

      import tandem as ort
      sess = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
      name = sess.get_inputs()[0].name
      (y,) = sess.run(None, {name: x})

* tandem's own API::

      engine = tandem.Engine(threads=1)
      model = engine.prepare("model.onnx", routes=["cpu", "reference"], strict=True)
      outputs = model.infer({"x": x}, deadline_ms=50)      # dict name -> numpy array

Arrays: C-contiguous inputs of the model's dtype are used in place (no copy); outputs are
numpy arrays over tandem's own buffers (no copy). bfloat16 outputs come back as float32, and a
bfloat16 input accepts float arrays. Errors are subclasses of :class:`tandem.Error`, one per
tandem status code. Calls release the GIL; sessions and prepared models are thread-safe.
See docs/python.md.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from ._tandem import (  # noqa: F401  (re-exported)
    Cancelled,
    DeviceError,
    Engine,
    Error,
    InternalError,
    InvalidArgument,
    InvalidModel,
    OutOfMemory,
    ParityViolation,
    PreparedModel,
    Timeout,
    Unavailable,
    Unsupported,
    __version__,
    interrupt_check_interval_ms,
    interruptible,
    last_infer_ms,
    set_interruptible,
)

__all__ = [
    "Engine", "PreparedModel", "InferenceSession", "SessionOptions", "RunOptions", "NodeArg",
    "Error", "InvalidArgument", "InvalidModel", "Unsupported", "DeviceError", "Timeout",
    "OutOfMemory", "ParityViolation", "Cancelled", "Unavailable", "InternalError",
    "get_available_providers", "set_interruptible", "interruptible", "interrupt_check_interval_ms", "last_infer_ms", "__version__",
]

# ONNX Runtime provider names -> tandem backend names.
_PROVIDER_BACKENDS = {
    "CPUExecutionProvider": "cpu",
    "DnnlExecutionProvider": "cpu",
}


def _backends_from_providers(providers: Optional[Sequence[Any]]) -> Optional[List[str]]:
    if providers is None:
        return None
    out: List[str] = []
    for p in providers:
        if isinstance(p, (tuple, list)):  # (name, options), as ONNX Runtime accepts
            p = p[0]
        if not isinstance(p, str):
            raise InvalidArgument(f"provider names must be strings, got {type(p).__name__}")
        backend = _PROVIDER_BACKENDS.get(p, p)
        if backend.endswith("ExecutionProvider"):
            raise InvalidArgument(f"provider {p!r} is not available in tandem "
                                  f"(available: {', '.join(get_available_providers())})")
        if backend not in out:
            out.append(backend)
    return out


def get_available_providers() -> List[str]:
    """Provider names tandem understands: ONNX Runtime's CPU provider and tandem's backends."""
    return ["CPUExecutionProvider", "cpu", "reference"]


class SessionOptions:
    """The ONNX Runtime session options tandem honours (others are accepted and ignored).

    intra_op_num_threads: threads per backend (0: the backend default).
    prepare_options: extra tandem prepare options (dict), e.g. {"strict": True}.
    cache_dir: tandem's cache folder (Engine's cache_dir): prepare's measurements and the
        kernel choices the backends time, shared by every process that names it, so that
        they compile alike and give the same bits. None: nothing kept.
    """

    def __init__(self) -> None:
        self.intra_op_num_threads: int = 0
        self.cache_dir: Optional[str] = None
        self.inter_op_num_threads: int = 0
        self.log_severity_level: int = 2
        self.prepare_options: Dict[str, Any] = {}


class RunOptions:
    """Per-call options. timeout_ms: deadline of the call (0: the model's default)."""

    def __init__(self) -> None:
        self.timeout_ms: float = 0
        self.log_severity_level: int = 2


class NodeArg:
    """An input or output as ONNX Runtime describes it: name, shape, type."""

    __slots__ = ("name", "shape", "type")

    def __init__(self, name: str, shape: List[Union[int, str, None]], type: str) -> None:
        self.name = name
        self.shape = shape
        self.type = type

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


def _node_args(infos: Iterable[Dict[str, Any]], inputs: bool) -> List[NodeArg]:
    out = []
    for i in infos:
        if inputs and not i["required"]:
            continue  # initializer-backed inputs are not listed, as in ONNX Runtime
        shape = i["shape"] if i["shape"] is not None else []
        out.append(NodeArg(i["name"], list(shape), i["ort_type"]))
    return out


class InferenceSession:
    """ONNX Runtime's InferenceSession on a tandem engine.

    path_or_bytes: model file (str or os.PathLike) or serialized model bytes.
    providers: ONNX Runtime names ("CPUExecutionProvider" -> tandem's cpu backend) or tandem
        backend names ("cpu", "reference"), in preference order; None: every backend.
    sess_options: a SessionOptions.
    Extra keyword arguments are tandem prepare options (see Engine.prepare).
    """

    def __init__(self, path_or_bytes: Union[str, bytes, "os.PathLike[str]"],
                 sess_options: Optional[SessionOptions] = None,
                 providers: Optional[Sequence[Any]] = None,
                 provider_options: Optional[Sequence[Dict[str, Any]]] = None,
                 **prepare_options: Any) -> None:
        opts = sess_options or SessionOptions()
        backends = _backends_from_providers(providers)
        cache_dir = getattr(opts, "cache_dir", None)
        self._engine = Engine(backends=backends, threads=int(opts.intra_op_num_threads or 0),
                              cache_dir=None if cache_dir is None else os.fspath(cache_dir))
        po = dict(getattr(opts, "prepare_options", {}) or {})
        po.update(prepare_options)
        self._model = self._engine.prepare(path_or_bytes, **po)
        schema = self._model.io_schema
        self._inputs = _node_args(schema["inputs"], inputs=True)
        self._outputs = _node_args(schema["outputs"], inputs=False)
        self._providers = list(providers) if providers is not None else get_available_providers()

    def get_inputs(self) -> List[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> List[NodeArg]:
        return list(self._outputs)

    def get_overridable_initializers(self) -> List[NodeArg]:
        return []

    def get_providers(self) -> List[str]:
        return list(self._providers)

    def run(self, output_names: Optional[Sequence[str]], input_feed: Dict[str, Any],
            run_options: Optional[RunOptions] = None) -> List[Any]:
        """Runs the model; returns the outputs named (None or empty: all, declared order) as arrays."""
        timeout = getattr(run_options, "timeout_ms", 0) if run_options is not None else 0
        return self._model.run(output_names or None, input_feed, timeout if timeout else None)

    @property
    def prepared(self) -> PreparedModel:
        """The tandem PreparedModel behind the session."""
        return self._model

    @property
    def engine(self) -> Engine:
        return self._engine
