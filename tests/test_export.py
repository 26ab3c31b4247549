"""`hrformer export --format onnx`: the exported graph agrees with PyTorch, including the masked attention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core import load_model
from hrformer_core.errors import HRFormerError
from hrformer_core.export import export_onnx
from hrformer_core.models import create_model
from hrformer_core.models.checkpoint import save_model

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package (pip install 'hrformer[onnx]')")
onnxruntime = pytest.importorskip("onnxruntime", reason="the parity check needs onnxruntime")
runner = CliRunner()
SMALL = {"num_modules": (1, 1, 1, 1)}  # hrformer-t with one module per stage: all block types, faster tracing



def run_onnx(path: Path, x: torch.Tensor) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x.numpy()})


def test_pose_with_shifted_windows_and_position_bias_exports_with_dynamic_batch(tmp_path):
    # Shifted windows + relative-position bias: SDPA gets a (batch*windows, heads, L, L) additive mask.
    torch.manual_seed(0)
    model = create_model(
        "hrformer-t", "pose", shifted_windows=True, rel_pos_bias=True, extra={"input_size": [64, 48]}, **SMALL
    )
    weights = save_model(model, tmp_path / "pose.safetensors")
    report = export_onnx(weights, dynamic_batch=True)
    assert report.path == tmp_path / "pose.onnx" and report.path.is_file()
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4 and report.checked_batch == 2
    onnx.checker.check_model(onnx.load(str(report.path)))
    x = torch.randn(3, 3, 64, 48)
    with torch.no_grad():
        expected = load_model(weights)(x)
    (heatmaps,) = run_onnx(report.path, x)
    assert heatmaps.shape == (3, 17, 16, 12)
    np.testing.assert_allclose(heatmaps, expected.numpy(), atol=1e-4, rtol=0)


def test_segmentation_exports_both_outputs_at_a_chosen_size(tmp_path):
    torch.manual_seed(0)
    weights = save_model(create_model("hrformer-t", "seg", num_classes=4, **SMALL), tmp_path / "seg.safetensors")
    out = tmp_path / "exported" / "seg.onnx"
    report = export_onnx(weights, out, input_size="64x96")
    assert report.outputs == ["aux_logits", "logits"] and report.input_size == (64, 96)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        aux, logits = load_model(weights)(x)
    got_aux, got_logits = run_onnx(out, x)
    np.testing.assert_allclose(got_logits, logits.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got_aux, aux.numpy(), atol=1e-4, rtol=0)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 64, 96]  # no --dynamic-batch: batch fixed at 1


def test_disagreement_above_tolerance_fails_and_writes_nothing(tmp_path):
    weights = save_model(create_model("hrformer-t", "cls", num_classes=3, **SMALL), tmp_path / "cls.safetensors")
    with pytest.raises(HRFormerError, match=r"differs from PyTorch by .* \(tolerance 1e-12\); nothing written"):
        export_onnx(weights, input_size="64", tolerance=1e-12)
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*.tmp"))


def test_cli_export(tmp_path):
    weights = save_model(create_model("hrformer-t", "cls", num_classes=3, **SMALL), tmp_path / "cls.safetensors")
    out = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", str(weights), "--format", "onnx", "--input-size", "64x64", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "max |onnxruntime - torch|" in result.output and "1x3x64x64" in result.output
    bad = runner.invoke(app, ["export", str(weights), "--format", "tflite"])
    assert bad.exit_code == 2 and "expected onnx" in bad.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nope.safetensors")])
    assert missing.exit_code == 2 and "nope.safetensors" in missing.output
    size = runner.invoke(app, ["export", str(weights), "--input-size", "64by64"])
    assert size.exit_code == 2 and "expected HxW" in size.output
