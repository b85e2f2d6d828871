"""An onnxruntime session on the CPU, quiet, for skills exported to ONNX."""

from __future__ import annotations

from pathlib import Path


def onnx_session(path: str | Path, threads: int | None = None):
    """An `onnxruntime.InferenceSession` of `path` with `threads` intra-op threads (None: as
    many as torch uses, which `--threads` sets)."""
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = torch.get_num_threads() if threads is None else threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
