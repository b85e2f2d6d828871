"""Any module as one checked ONNX graph with named inputs and outputs (the hierarchical
agent): written, read back by onnxruntime, and compared with PyTorch output by output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from skillforge.core.errors import ExportError, first_line
from skillforge.export.formats import save_onnx
from skillforge.export.parity import PARITY_TOLERANCE
from skillforge.skills.onnx_session import onnx_session


def save_checked_onnx(
    module: nn.Module,
    inputs: dict[str, np.ndarray],
    path: Path,
    metadata: dict[str, str],
    output_names: tuple[str, ...],
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Write `module` to `path` as ONNX (inputs named and ordered as `inputs`, a dynamic
    batch) and compare its outputs with PyTorch's on every row of `inputs`, the first row
    alone and then the rest as one batch: float outputs within `tolerance`, integer outputs
    exactly. Returns the largest float difference; a failed check is an ExportError."""
    names = tuple(inputs)
    example = tuple(torch.from_numpy(array[:2]) for array in inputs.values())
    try:
        save_onnx(module, example, path, metadata, names, output_names)
        session = onnx_session(path)
    except Exception as error:  # the exporter's own failures: one line
        raise ExportError(f"ONNX export of {path.name} failed: {first_line(error)}") from None
    with torch.no_grad():
        expected = module(*(torch.from_numpy(array) for array in inputs.values()))
    parts = [
        session.run(list(output_names), {name: array[rows] for name, array in inputs.items()})
        for rows in (slice(0, 1), slice(1, None))
    ]
    worst = 0.0
    for index, (name, reference) in enumerate(zip(output_names, expected, strict=True)):
        reference = reference.numpy()
        actual = np.concatenate([part[index] for part in parts])
        if actual.shape != reference.shape:
            raise ExportError(
                f"{path.name}: {name} has shape {actual.shape}, not {reference.shape}"
            )
        diff = float(np.max(np.abs(actual.astype(np.float64) - reference))) if actual.size else 0.0
        exact = np.issubdtype(reference.dtype, np.integer)
        if not np.isfinite(diff) or diff > (0 if exact else tolerance):
            raise ExportError(
                f"parity check failed: {name} of {path.name} differs from PyTorch by {diff:.3g} "
                f"(max abs) on {len(reference):,} rows"
            )
        worst = max(worst, 0.0 if exact else diff)
    return worst
