"""Official checkpoints in the pose recipes: converted official pose weights evaluate with the pose
recipes (their model, without position bias, is used), and official weights initialise a recipe's backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures import SHARED, reference_state_dict
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core.engine import load_recipe
from hrformer_core.tasks import get_task

SAMPLE = SHARED / "data" / "coco-val-sample"
runner = CliRunner()


def require_sample() -> Path:
    if not (SAMPLE / "test_coco.json").is_file():
        pytest.skip(f"COCO sample not found at {SAMPLE} (it ships in the project's shared/ folder)")
    return SAMPLE


@pytest.fixture(scope="module")
def official_pose(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("official") / "hrt_tiny_coco_256x192.pth"
    torch.save({"state_dict": reference_state_dict("pose_t_256x192")}, path)  # official naming
    return path


def test_converted_official_pose_weights_evaluate_with_the_pose_recipe(official_pose: Path, tmp_path: Path) -> None:
    sample = require_sample()
    converted = tmp_path / "hrt_tiny.safetensors"
    result = runner.invoke(app, ["convert", str(official_pose), str(converted)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "eval"
    args = ["eval", "--recipe", "pose-t-256", "--weights", str(converted), "--out", str(out)]
    args += [f"data.val_ann={sample / 'test_coco.json'}", f"data.val_images={sample}", "data.root="]
    args += [f"data.val_boxes={sample / 'test_coco_det_AP_H_56.json'}", "train.workers=0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "rel_pos_bias=False (recipe: True)" in text and "the weights' model is used" in text
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["AP"] <= 1.0
    assert len(json.loads((out / "predictions.json").read_text())) > 0


def test_official_pose_weights_as_pretrained_keep_fresh_position_tables(official_pose: Path, capsys) -> None:
    recipe = load_recipe("pose-t-256", [f"model.pretrained={official_pose}"])
    task = get_task("pose")
    model = task.build_model(recipe)
    expected = reference_state_dict("pose_t_256x192")
    prefix = "backbone.stage2.0.branches.0.0.attn.attn."
    qkv = torch.cat([expected[f"{prefix}{name}_proj.weight"] for name in "qkv"])  # fused as the converter does
    torch.testing.assert_close(model.state_dict()["backbone.stage2.0.branches.0.0.attn.qkv.weight"], qkv)
    torch.testing.assert_close(model.state_dict()["backbone.conv1.weight"], expected["backbone.conv1.weight"])
    captured = capsys.readouterr()
    output = " ".join((captured.out + captured.err).split())
    assert "relative-position tables it lacks keep their initialisation" in output
    assert model.config.rel_pos_bias


def test_official_cls_weights_initialise_a_pose_backbone_with_their_tables(tmp_path: Path, capsys) -> None:
    path = tmp_path / "hrt_tiny.pth"
    state = reference_state_dict("cls_t_224")
    torch.save({"model": state}, path)
    model = get_task("pose").build_model(load_recipe("pose-t-256", [f"model.pretrained={path}"]))
    table = "backbone.stage2.0.branches.0.0.attn.relative_position_bias_table"
    torch.testing.assert_close(
        model.state_dict()[table], state["stage2.0.branches.0.0.attn.attn.relative_position_bias_table"]
    )
    captured = capsys.readouterr()
    output = " ".join((captured.out + captured.err).split())
    assert "tensors loaded" in output and "keep their initialisation" not in output
