"""Golden outputs of the reference code through our converter, and the checkpoint format's errors."""

from __future__ import annotations

import json

import pytest
import torch
from fixtures import reference_io, reference_state_dict, require_fixtures
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core import load_model
from hrformer_core.errors import CheckpointError
from hrformer_core.models import create_model
from hrformer_core.models.checkpoint import save_model
from hrformer_core.models.convert import convert_state_dict, load_checkpoint_file
from hrformer_core.models.registry import build_model

runner = CliRunner()


def run_converted(stem: str, state_dict: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    converted, report = convert_state_dict(state_dict)
    model = build_model(report.config)
    model.load_state_dict(converted, strict=True)
    model.eval()
    with torch.no_grad():
        out = model(reference_io(stem)["input"])
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize(
    ("stem", "model", "rpe"),
    [
        ("pose_t_256x192", "hrformer-t", False),
        ("pose_t_250x190", "hrformer-t", False),
        ("pose_t_rpe_256x192", "hrformer-t", True),
        ("cls_t_224", "hrformer-t", True),
    ],
)
def test_golden_outputs_1e6(stem: str, model: str, rpe: bool) -> None:
    state = reference_state_dict(stem)
    _, report = convert_state_dict(state)
    assert report.config.name == model and report.config.rel_pos_bias is rpe
    (out,) = run_converted(stem, state)
    expected = reference_io(stem)["output"]
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() <= 1e-6


def test_golden_segmentation_1e5() -> None:
    stem = "seg_b_ocr_w7_256x256"
    aux, logits = run_converted(stem, reference_state_dict(stem))
    io = reference_io(stem)
    assert (aux - io["output_aux"]).abs().max().item() <= 1e-5
    assert (logits - io["output"]).abs().max().item() <= 1e-5


def mmpose_state_dict(stem: str) -> dict[str, torch.Tensor]:
    """The official-named fixture weights renamed and fused into mmpose 1.x keys (fixture `mmpose1_key`)."""
    spec = json.loads((require_fixtures() / f"{stem}.keys.json").read_text())["keys"]
    official = reference_state_dict(stem)
    fused: dict[str, list[tuple[int, torch.Tensor]]] = {}
    out = {}
    for entry in spec:
        target, value = entry["mmpose1_key"], official[entry["key"]]
        if "mmpose1_dim0_slice" in entry:
            fused.setdefault(target, []).append((entry["mmpose1_dim0_slice"][0], value))
        else:
            out[target] = value
    for key, parts in fused.items():
        out[key] = torch.cat([v for _, v in sorted(parts, key=lambda p: p[0])], 0)
    return out


def test_mmpose_naming_gives_same_outputs() -> None:
    stem = "pose_t_256x192"
    sd = mmpose_state_dict(stem)
    assert any(k.endswith("attn.attn.qkv.weight") for k in sd) and any(k.startswith("head.final_layer") for k in sd)
    # mmpose 1.x applies the bias: zero the tables to reproduce the official (bias-free) outputs.
    sd = {k: (torch.zeros_like(v) if k.endswith("relative_position_bias_table") else v) for k, v in sd.items()}
    converted, report = convert_state_dict(sd)
    assert report.source_naming == "mmpose" and report.config.rel_pos_bias
    (out,) = run_converted(stem, sd)
    assert (out - reference_io(stem)["output"]).abs().max().item() <= 1e-6


@pytest.mark.parametrize("layout", ["state_dict", "model", "module", "bare"])
def test_checkpoint_layouts_and_cli(tmp_path, layout: str) -> None:
    stem = "pose_t_256x192"
    sd = reference_state_dict(stem)
    if layout == "module":
        obj = {"state_dict": {f"module.{k}": v for k, v in sd.items()}}
    elif layout == "bare":
        obj = sd
    else:
        obj = {layout: sd, "meta": {"epoch": 210}}
    src, dst = tmp_path / "official.pth", tmp_path / "ours.safetensors"
    torch.save(obj, src)
    result = runner.invoke(app, ["convert", str(src), str(dst)])
    assert result.exit_code == 0, result.output
    assert "hrformer-t" in result.output and "never applied" in result.output
    model = load_model(dst)
    with torch.no_grad():
        out = model(reference_io(stem)["input"])
    assert (out - reference_io(stem)["output"]).abs().max().item() <= 1e-6


def test_save_load_roundtrip_is_strict(tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("hrformer-t", task="cls", num_classes=7).eval()
    path = save_model(model, tmp_path / "w.safetensors", {"note": "hi"})
    loaded = load_model(path)
    assert loaded.config == model.config
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    other = create_model("hrformer-s", task="cls", num_classes=7)
    from hrformer_core.models.checkpoint import load_state_dict_strict

    with pytest.raises(CheckpointError, match=r"missing|shape mismatches"):
        load_state_dict_strict(other, model.state_dict(), "w.safetensors")


def test_bad_checkpoints_have_clear_errors(tmp_path) -> None:
    truncated = tmp_path / "truncated.pth"
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"a": torch.zeros(1000)}}, good)
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"truncated.pth: a damaged or truncated PyTorch checkpoint"):
        load_checkpoint_file(truncated)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, foreign)
    with pytest.raises(CheckpointError, match="cannot tell the task"):
        convert_state_dict(load_checkpoint_file(foreign))
    not_tensors = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_tensors)
    with pytest.raises(CheckpointError, match="no state dict found"):
        load_checkpoint_file(not_tensors)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="junk.safetensors: not a readable safetensors"):
        load_model(junk)
    result = runner.invoke(app, ["convert", str(tmp_path / "missing.pth"), str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2
