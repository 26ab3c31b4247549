"""The seg task end to end: training lowers the loss, `hrformer eval` writes mIoU, official weights evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from fixtures import reference_state_dict
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core import load_model
from hrformer_core.engine import load_recipe, train
from hrformer_core.tasks import get_task
from hrformer_core.tasks.seg.synthetic import generate_synthetic_seg

runner = CliRunner()
TINY = [
    "data.synthetic=false", "data.layout=folder", "data.num_classes=7", "data.crop_size=[64,64]",
    "model.ocr_mid_channels=16", "model.ocr_key_channels=8", "train.batch_size=4", "train.workers=0",
    "train.max_steps=6", "train.eval_interval_steps=6", "train.channels_last=false", "train.max_time_minutes=null",
    "train.optimizer.lr=3e-3", "train.schedule.warmup_iters=0", "eval.batch_size=2",
]  # fmt: skip


def test_training_lowers_the_loss_and_eval_writes_miou(tmp_path: Path) -> None:
    root = generate_synthetic_seg(tmp_path / "scenes", 4, 2, 0, (64, 64))
    recipe = load_recipe("seg-quickstart", [f"data.root={root}", *TINY])
    task = get_task("seg")
    task.configure(recipe)
    batch = task.collate([task.build_val_dataset(recipe)[i] for i in range(2)])
    torch.manual_seed(0)
    result = train(recipe, project=tmp_path / "runs")
    trained = load_model(result.run_dir / "weights" / "last.safetensors").eval()
    torch.manual_seed(0)
    untrained = task.build_model(recipe).eval()
    with torch.no_grad():
        before, _ = task.loss(untrained, batch)
        after, _ = task.loss(trained, batch)
    assert float(after) < 0.9 * float(before)
    out = tmp_path / "eval"
    args = [
        "eval",
        "--recipe",
        str(result.run_dir / "recipe.yaml"),
        "--weights",
        str(result.run_dir),
        "--out",
        str(out),
    ]
    outcome = runner.invoke(app, [*args, "eval.ms=true", "eval.flip=true"])
    assert outcome.exit_code == 0, outcome.output
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["mIoU"] <= 1.0 and metrics["images"] == 2
    assert [row["class"] for row in metrics["per_class"]] == [f"class {i}" for i in range(7)]
    assert "mIoU" in (out / "per_class_iou.md").read_text()


def test_official_checkpoint_converts_and_evaluates_on_cityscapes_tree(tmp_path: Path) -> None:
    state = reference_state_dict("seg_b_ocr_w7_256x256")
    src, dst = tmp_path / "official.pth", tmp_path / "ours.safetensors"
    # As openseg saves it: the DDP-wrapped state dict ("module." keys) under "state_dict".
    torch.save({"state_dict": {f"module.{key}": value for key, value in state.items()}}, src)
    outcome = runner.invoke(app, ["convert", str(src), str(dst)])
    assert outcome.exit_code == 0, outcome.output
    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        name = "aachen_000000_000019"
        image = root / "leftImg8bit" / split / "aachen" / f"{name}_leftImg8bit.png"
        label = root / "gtFine" / split / "aachen" / f"{name}_gtFine_labelIds.png"
        image.parent.mkdir(parents=True)
        label.parent.mkdir(parents=True)
        cv2.imwrite(str(image), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(label), rng.choice([0, 7, 8, 26, 33], (64, 64)).astype(np.uint8))
    out = tmp_path / "eval"
    args = ["eval", "--recipe", "seg-b-ocr-cityscapes", "--weights", str(dst), "--out", str(out)]
    outcome = runner.invoke(app, [*args, f"data.root={root}", "train.workers=0"])
    assert outcome.exit_code == 0, outcome.output
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["images"] == 1 and 0.0 <= metrics["mIoU"] <= 1.0
    names = [row["class"] for row in metrics["per_class"]]
    assert (names[0], names[13], names[18], len(names)) == ("road", "car", "bicycle", 19)
