"""The MLflow model of a library or a hierarchical agent: its ONNX graph run by onnxruntime,
every request checked first.

MLflow logs this file as the model's code (models from code): it travels with the model and
imports nothing from skillforge, so a registered library or agent runs wherever MLflow, numpy
and onnxruntime are installed (`mlflow models serve -m models:/<library>/1 --env-manager
local`); `skillforge serve` and the registry's skill sets run the same checks. Nothing in
skillforge imports it: MLflow loads it, and `unwrap_python_model().graph` is the `CheckedGraph`.

The inputs are the graph's named tensors, one row per observation, e.g. observation float32
(batch, obs_dim) and skill int64 (batch,); the graph's metadata `input_ranges` (JSON) gives the
inclusive range of each integer input. onnxruntime runs one thread per call: the fastest for
one observation and for a batch of 256 alike here (concurrent requests run side by side).
A request that does not fit (an input missing or unknown, a wrong width, a ragged batch, a
fraction, an index out of range, NaN or infinity) is a ValueError with a one-line message;
through MLflow an MlflowException(INVALID_PARAMETER_VALUE), which a served model answers with
HTTP 400.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64}


class CheckedGraph:
    """An ONNX graph on onnxruntime (CPU) that refuses inputs it was not made for."""

    def __init__(self, path: str) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        self.path = path
        self.session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        # name -> (dtype, shape after the batch dimension)
        self.inputs = {
            node.name: (DTYPES[node.type], tuple(node.shape[1:]))
            for node in self.session.get_inputs()
        }
        self.outputs = [node.name for node in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        ranges = json.loads(self.metadata.get("input_ranges", "{}"))
        self.ranges = {name: tuple(bounds) for name, bounds in ranges.items()}

    def run(self, request: dict) -> np.ndarray | dict[str, np.ndarray]:
        """The graph's output for a checked request: one array, or a dict of arrays by name
        when the graph has several outputs."""
        outputs = self.session.run(self.outputs, self.check(request))
        return outputs[0] if len(outputs) == 1 else dict(zip(self.outputs, outputs, strict=True))

    def check(self, request: dict) -> dict[str, np.ndarray]:
        """The request's inputs as the arrays the graph takes, or a ValueError saying what
        is wrong with them."""
        names = ", ".join(self.inputs)
        if not isinstance(request, dict):
            raise ValueError(f"send the inputs by name ({names}), one row per observation")
        missing = [name for name in self.inputs if name not in request]
        unknown = [str(name) for name in request if name not in self.inputs]
        if missing or unknown:
            what = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"
            raise ValueError(f"{what}; the inputs are {names}")
        arrays = {name: self._array(name, request[name]) for name in self.inputs}
        rows = {name: len(array) for name, array in arrays.items()}
        if len(set(rows.values())) > 1:
            counts = ", ".join(f"{name} {count}" for name, count in rows.items())
            raise ValueError(f"every input needs one row per observation, got {counts}")
        return arrays

    def _array(self, name: str, value) -> np.ndarray:
        dtype, tail = self.inputs[name]
        try:
            array = np.asarray(value)
        except ValueError:  # numpy refuses ragged nested lists
            raise ValueError(f"{name} is ragged: every row needs the same length") from None
        if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name} must hold numbers only")
        shape = ["batch", *tail]
        sizes = zip(tail, array.shape[1:], strict=False)
        if array.ndim != len(shape) or any(isinstance(a, int) and a != b for a, b in sizes):
            raise ValueError(f"{name} must have shape {shape}, got {list(array.shape)}")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        if dtype is np.int64:
            if not np.issubdtype(array.dtype, np.integer) and (array != np.round(array)).any():
                raise ValueError(f"{name} must hold whole numbers")
            low, high = self.ranges.get(name, (None, None))
            if low is not None and array.size and (array.min() < low or array.max() > high):
                bad = array[(array < low) | (array > high)][0]
                raise ValueError(f"{name} {bad:g} out of range {low}..{high}")
        return array.astype(dtype, copy=False)


class GraphModel(mlflow.pyfunc.PythonModel):
    """The pyfunc face of a `CheckedGraph`: `predict({"observation": ..., "skill": ...})`."""

    # the inputs are named tensors, checked by the signature and by CheckedGraph: no
    # validation from type hints (without this MLflow advises adding them at every load)
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        self.graph = CheckedGraph(context.artifacts["graph"])

    def predict(self, context, model_input, params=None):
        try:
            return self.graph.run(model_input)
        except ValueError as error:
            raise MlflowException.invalid_parameter_value(str(error)) from None


mlflow.models.set_model(GraphModel())
