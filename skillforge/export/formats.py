"""The file formats: ONNX (torch.onnx's dynamo exporter) and TorchScript, each with a writer
and a runner that reads the file back for the parity check."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skillforge.core.errors import ExportError
from skillforge.core.versions import package_versions
from skillforge.skills.onnx_session import onnx_session

FORMATS = ("onnx", "torchscript")


ONNX_OPSET = 18
"""The oldest opset the exporter writes; onnxruntime >= 1.14 runs it."""


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")


@contextlib.contextmanager
def _quiet_exporter():
    """The exporters warn about deprecations and optional packages (torchvision): not ours."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def save_onnx(
    module: nn.Module,
    args: tuple,
    path: Path,
    metadata: dict[str, str],
    input_names: Sequence[str] = ("observation", "skill"),
    output_names: Sequence[str] = ("action",),
) -> None:
    """Write `module` called on `args` to `path` as ONNX, every input and output with a
    dynamic batch dimension, `metadata` in the file (its `description` as doc string).
    The inputs are named after the first `len(args)` of `input_names`."""
    import onnx

    batch = torch.export.Dim("batch")
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=list(input_names[: len(args)]),
            output_names=list(output_names),
            dynamic_shapes=tuple({0: batch} for _ in args),
            external_data=False,
            verbose=False,
        )
    model = program.model_proto
    props = {prop.key: prop.value for prop in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, **metadata})
    model.doc_string = metadata["description"]
    onnx.checker.check_model(model)
    onnx.save(model, path)


def onnx_runner(path: Path) -> Callable[..., np.ndarray]:
    session = onnx_session(path)
    names = [node.name for node in session.get_inputs()]

    def run(*arrays: np.ndarray) -> np.ndarray:
        return session.run(["action"], dict(zip(names, arrays, strict=True)))[0]

    return run


def save_torchscript(module: nn.Module, args: tuple, path: Path, metadata: dict[str, str]) -> None:
    with _quiet_exporter(), torch.no_grad():
        traced = torch.jit.trace(module, args)
        torch.jit.save(traced, str(path), _extra_files={"metadata.json": json.dumps(metadata)})


def torchscript_runner(path: Path) -> Callable[..., np.ndarray]:
    with _quiet_exporter():
        module = torch.jit.load(str(path), map_location="cpu")

    @torch.no_grad()
    def run(*arrays: np.ndarray) -> np.ndarray:
        return module(*(torch.from_numpy(array) for array in arrays)).numpy()

    return run


def format_versions(fmt: str) -> dict[str, str | int]:
    """skillforge's and the exporter's versions, recorded in the manifest."""
    packages = ("torch", "onnx", "onnxruntime") if fmt == "onnx" else ("torch",)
    versions: dict[str, str | int] = dict(package_versions(packages))
    if fmt == "onnx":
        versions["opset"] = ONNX_OPSET
    return versions
