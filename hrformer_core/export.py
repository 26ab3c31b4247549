"""ONNX export with a parity check against PyTorch.

torch 2.13 offers two exporters: the torch.export-based one (`dynamo=True`, the default) needs the
`onnxscript` package, the TorchScript one (`dynamo=False`) needs nothing more and handles the window
attention as it is (`scaled_dot_product_attention` with its additive `attn_mask` becomes MatMul/Softmax
nodes), so we use the latter. Tracing fixes the spatial size (window padding is decided per size); only the
batch axis can stay dynamic. The exported file is checked with onnxruntime, when installed, before it is
moved into place: an export that disagrees with PyTorch by more than the tolerance is never written.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import HRFormerError, UsageError
from .models.weights import WeightsFile
from .tasks import load_task_model
from .utils.io import atomic_write
from .utils.sizes import parse_size

OPSET = 17
TOLERANCE = 1e-4


@dataclass
class ExportReport:
    path: Path
    task: str
    input_size: tuple[int, int]
    dynamic_batch: bool
    opset: int
    outputs: list[str]
    max_abs_diff: float | None  # None when onnxruntime is not installed
    checked_batch: int | None


def default_output(weights: WeightsFile) -> Path:
    """Beside a local weights file (same stem); in the working folder for Hub weights."""
    if weights.kind == "hub":
        return Path(weights.source.split("/")[-1].split("@")[0] + ".onnx")
    return weights.path.with_suffix(".onnx")


def export_onnx(
    weights: str | os.PathLike,
    output: str | os.PathLike | None = None,
    input_size: tuple[int, int] | str | None = None,
    dynamic_batch: bool = False,
    opset: int = OPSET,
    tolerance: float = TOLERANCE,
) -> ExportReport:
    """Export a model to ONNX, check it with onnxruntime (when installed) and write it atomically."""
    if importlib.util.find_spec("onnx") is None:
        raise UsageError("ONNX export needs the onnx package: pip install 'hrformer[onnx]'")
    task, model, loaded = load_task_model(weights)
    size = parse_size(input_size) if input_size is not None else task.default_input_size(loaded)
    path = Path(output) if output is not None else default_output(loaded)
    names = list(task.output_names(loaded))
    example = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    axes = {name: {0: "batch"} for name in ["images", *names]} if dynamic_batch else None
    report = ExportReport(path, task.name, size, dynamic_batch, opset, names, None, None)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # The tracer warns about every Python-level shape test and that the TorchScript exporter is legacy;
            # both are expected here (fixed spatial size, exporter chosen on purpose, see the module docstring).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=False,
                input_names=["images"],
                output_names=names,
                dynamic_axes=axes,
                opset_version=opset,
            )
        if importlib.util.find_spec("onnxruntime") is not None:
            report.checked_batch = 2 if dynamic_batch else 1
            report.max_abs_diff = onnx_parity(model, tmp, size, report.checked_batch)
            if report.max_abs_diff > tolerance:
                raise HRFormerError(
                    f"ONNX export of {loaded.source} differs from PyTorch by {report.max_abs_diff:.3g} "
                    f"(tolerance {tolerance:g}); nothing written to {path}"
                )

    atomic_write(path, write)
    return report


def onnx_parity(model: torch.nn.Module, onnx_path: str | os.PathLike, size: tuple[int, int], batch: int = 1) -> float:
    """Largest absolute difference between onnxruntime and PyTorch outputs on a random batch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected, strict=True))
