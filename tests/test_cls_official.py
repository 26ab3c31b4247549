"""An official classification checkpoint on one path: `hrformer convert`, `hrformer eval` on a small ImageNet
folder tree (a corrupt JPEG left out, top-1/top-5/loss against a forward pass done here), then the converted
file as `model.pretrained=` of a pose and a segmentation recipe, with the backbone tensors it loaded counted.

The checkpoint is the golden fixture's HRFormer-T (official cls naming, filled by the fixture README's rule);
the tests skip when the shared fixtures are absent."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fixtures import reference_state_dict
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core import load_model
from hrformer_core.engine import load_recipe
from hrformer_core.models.checkpoint import read_checkpoint
from hrformer_core.tasks import get_task
from hrformer_core.tasks.cls import augment
from hrformer_core.tasks.cls.synthetic import render

runner = CliRunner()
FOLDERS = ["n01440764", "n01443537", "n01484850"]
SIZE = (32, 32)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official checkpoint (`{"model": state_dict}`, as the official cls code saves it), converted by the CLI."""
    folder = tmp_path_factory.mktemp("official")
    torch.save({"model": reference_state_dict("cls_t_224")}, folder / "hrt_tiny.pth")
    result = runner.invoke(app, ["convert", str(folder / "hrt_tiny.pth"), str(folder / "hrt_tiny.safetensors")])
    assert result.exit_code == 0, result.output
    _, config, metadata = read_checkpoint(folder / "hrt_tiny.safetensors")
    assert (config.task, config.name, config.num_classes) == ("cls", "hrformer-t", 1000)
    assert metadata["converted_from"] == "hrt_tiny.pth"
    return folder / "hrt_tiny.safetensors"


def write_tree(root: Path) -> dict[Path, int]:
    """3 classes x 2 images in train/ and val/, a LOC_synset_mapping.txt; the val images with their labels."""
    val: dict[Path, int] = {}
    for split in ("train", "val"):
        for label, folder in enumerate(FOLDERS):
            (root / split / folder).mkdir(parents=True)
            rng = np.random.default_rng([label, len(split)])
            for i in range(2):
                path = root / split / folder / f"{folder}_{i}.JPEG"
                assert cv2.imwrite(str(path), render(label, rng, 48))
                if split == "val":
                    val[path] = label
    (root / "LOC_synset_mapping.txt").write_text("n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\n")
    return val


def test_converted_official_checkpoint_evaluates_on_a_folder_tree(converted: Path, tmp_path: Path) -> None:
    val = write_tree(tmp_path / "data")
    corrupt = tmp_path / "data" / "val" / FOLDERS[1] / f"{FOLDERS[1]}_1.JPEG"
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    del val[corrupt]
    out = tmp_path / "eval"
    args = [
        "eval",
        "--recipe",
        "cls-t",
        "--weights",
        str(converted),
        "--out",
        str(out),
        f"data.root={tmp_path / 'data'}",
    ]
    result = runner.invoke(app, [*args, "data.input_size=[32,32]", "train.workers=0", "eval.batch_size=4"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "num_classes=1000 (recipe: 3)" in text and "the weights' model is used" in text
    report = json.loads((out / "metrics.json").read_text())
    assert report["skipped_images"]["count"] == 1 and str(corrupt) in report["skipped_images"]["images"]
    metrics = report["metrics"]

    # The same numbers by hand: the converted model on the readable images' test crops.
    model = load_model(converted)
    transform = augment.TestTransform(SIZE)  # (imported by module: pytest would collect Test*)
    images = [transform(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), None) for p in val]
    with torch.no_grad():
        logits = model(torch.from_numpy(np.stack(images)))
    labels = torch.tensor(list(val.values()))
    top5 = logits.topk(5, dim=1).indices
    assert metrics["samples"] == len(val) == 5
    assert metrics["top1"] == pytest.approx(100 * (top5[:, 0] == labels).float().mean().item())
    assert metrics["top5"] == pytest.approx(100 * (top5 == labels[:, None]).any(1).float().mean().item())
    assert metrics["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    names = [(row["class"], row["name"], row["samples"]) for row in metrics["per_class_accuracy"]]
    assert names == [(FOLDERS[0], "tench", 2), (FOLDERS[1], "goldfish", 1), (FOLDERS[2], "great white shark", 2)]


@pytest.mark.parametrize(
    ("recipe", "overrides"),
    [("pose-t-256", []), ("seg-s-ocr-cityscapes", ["model.name=hrformer-t"])],
)
def test_converted_official_checkpoint_initialises_pose_and_seg_backbones(
    converted: Path, recipe: str, overrides: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    loaded_recipe = load_recipe(recipe, [*overrides, f"model.pretrained={converted}"])
    task = get_task(loaded_recipe.task)
    task.configure(loaded_recipe)
    model = task.build_model(loaded_recipe)
    captured = capsys.readouterr()
    output = " ".join((captured.out + captured.err).split())

    source = {k: v for k, v in read_checkpoint(converted)[0].items() if k.startswith("backbone.")}
    own = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    shared = own.keys() & source.keys()
    assert shared == own.keys()  # every backbone tensor of the pose/seg model comes from the checkpoint
    for key in shared:
        torch.testing.assert_close(own[key], source[key], rtol=0, atol=0, msg=key)
    counted = re.search(r"(\d+) of (\d+) tensors loaded, (\d+) of the file's ignored", output)
    assert counted is not None, output
    assert tuple(map(int, counted.groups())) == (len(shared), len(own), len(source.keys() - own.keys()))
    assert "keep their initialisation" not in output  # the cls checkpoint has the position tables
    assert model.config.task == loaded_recipe.task and model.config.rel_pos_bias
