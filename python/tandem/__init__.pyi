"""Type stubs of the tandem package."""

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ._tandem import (Cancelled as Cancelled, DeviceError as DeviceError, Engine as Engine, Error as Error,
                      InternalError as InternalError, InvalidArgument as InvalidArgument,
                      InvalidModel as InvalidModel, OutOfMemory as OutOfMemory,
                      ParityViolation as ParityViolation, PreparedModel as PreparedModel, Timeout as Timeout,
                      Unavailable as Unavailable, Unsupported as Unsupported, __version__ as __version__,
                      interrupt_check_interval_ms as interrupt_check_interval_ms, interruptible as interruptible,
                      last_infer_ms as last_infer_ms,
                      set_interruptible as set_interruptible)

def get_available_providers() -> List[str]: ...

class SessionOptions:
    intra_op_num_threads: int
    inter_op_num_threads: int
    log_severity_level: int
    prepare_options: Dict[str, Any]
    def __init__(self) -> None: ...

class RunOptions:
    timeout_ms: float
    log_severity_level: int
    def __init__(self) -> None: ...

class NodeArg:
    name: str
    shape: List[Union[int, str, None]]
    type: str
    def __init__(self, name: str, shape: List[Union[int, str, None]], type: str) -> None: ...

class InferenceSession:
    def __init__(self, path_or_bytes: Union[str, bytes, "os.PathLike[str]"],
                 sess_options: Optional[SessionOptions] = None,
                 providers: Optional[Sequence[Any]] = None,
                 provider_options: Optional[Sequence[Dict[str, Any]]] = None,
                 **prepare_options: Any) -> None: ...
    def get_inputs(self) -> List[NodeArg]: ...
    def get_outputs(self) -> List[NodeArg]: ...
    def get_overridable_initializers(self) -> List[NodeArg]: ...
    def get_providers(self) -> List[str]: ...
    def run(self, output_names: Optional[Sequence[str]], input_feed: Mapping[str, Any],
            run_options: Optional[RunOptions] = None) -> List[np.ndarray]: ...
    @property
    def prepared(self) -> PreparedModel: ...
    @property
    def engine(self) -> Engine: ...
