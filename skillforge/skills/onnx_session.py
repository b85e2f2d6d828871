"""An onnxruntime session on the CPU, quiet, for skills exported to ONNX."""

from __future__ import annotations

from pathlib import Path


def onnx_session(path: str | Path, threads: int = 0):
    """An `onnxruntime.InferenceSession` of `path` (threads 0: onnxruntime's default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
