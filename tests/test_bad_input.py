"""Bad input is reported in our words, never silently and never as library noise (issues 10 and 11).

Truncated and corrupt images (predict, train, eval), errors raised in DataLoader workers, more workers
than cores, foreign and malicious checkpoints, run folders of failed evaluations, a recipe key that would
be ignored, suggestions for a misspelt key, and where to get COCO.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import cv2
import engine_toy_task  # noqa: F401  (registers the "toy" task)
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core.data.images import UnreadableImage, read_image
from hrformer_core.engine import load_recipe, train
from hrformer_core.engine.loaders import available_cores, batches
from hrformer_core.errors import CheckpointError, DataError, UsageError
from hrformer_core.models import create_model
from hrformer_core.models.checkpoint import save_model
from hrformer_core.models.convert import load_checkpoint_file
from hrformer_core.predict.sources import FrameStream
from hrformer_core.tasks import get_task
from hrformer_core.tasks.pose.synthetic import generate_synthetic_pose

runner = CliRunner()
LIBRARY_NOISE = (
    "Premature end",
    "Corrupt JPEG",
    "libpng",
    "WARN",
    "findDecoder",
    "moov atom",
    "Original Traceback",
    "Caught",
)


def noise_in(text: str) -> list[str]:
    return [word for word in LIBRARY_NOISE if word in text]


def random_image(seed: int, size_hw: tuple[int, int] = (60, 80)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*size_hw, 3), dtype=np.uint8)


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_png(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the image data
    path.write_bytes(bytes(data))
    return path


# -- one image reader -------------------------------------------------------------------------------------


def test_read_image_names_the_problem_and_keeps_codec_noise_off_the_terminal(tmp_path, capfd):
    pixels = random_image(0)
    good = tmp_path / "good.jpg"
    assert cv2.imwrite(str(good), pixels)
    np.testing.assert_array_equal(read_image(good), cv2.cvtColor(cv2.imread(str(good)), cv2.COLOR_BGR2RGB))
    with_tail = tmp_path / "motion.jpg"  # bytes after the end-of-image marker, as a phone's motion photo
    with_tail.write_bytes(good.read_bytes() + b"\x00\x00\x00\x18ftypmp42 and a video")
    np.testing.assert_array_equal(read_image(with_tail), read_image(good))
    (tmp_path / "half.jpg").write_bytes(good.read_bytes())
    truncate(tmp_path / "half.jpg")
    damaged = bytearray(good.read_bytes())
    damaged[len(damaged) // 2 : len(damaged) // 2 + 40] = bytes(40)  # zeros inside the entropy-coded data
    (tmp_path / "damaged.jpg").write_bytes(bytes(damaged))
    assert cv2.imwrite(str(tmp_path / "bad.png"), pixels)
    corrupt_png(tmp_path / "bad.png")
    assert cv2.imwrite(str(tmp_path / "cut.png"), pixels)
    truncate(tmp_path / "cut.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    capfd.readouterr()

    expected = {
        "half.jpg": "truncated or corrupt JPEG",
        "damaged.jpg": "corrupt image data",
        "bad.png": "corrupt PNG: its IDAT chunk fails its CRC check",
        "cut.png": "truncated PNG",
        "empty.jpg": "empty file",
        "missing.jpg": "file not found",
    }
    for name, reason in expected.items():
        with pytest.raises(UnreadableImage, match=reason) as info:
            read_image(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    out, err = capfd.readouterr()
    assert noise_in(out + err) == []


def test_predict_skips_truncated_jpeg_corrupt_png_and_video_by_name(tmp_path, capfd):
    assert cv2.imwrite(str(tmp_path / "a_good.jpg"), random_image(1))
    assert cv2.imwrite(str(tmp_path / "b_half.jpg"), random_image(2))
    truncate(tmp_path / "b_half.jpg")
    assert cv2.imwrite(str(tmp_path / "c_bad.png"), random_image(3))
    corrupt_png(tmp_path / "c_bad.png")
    (tmp_path / "d_clip.mp4").write_bytes(b"not a video")
    stream = FrameStream([tmp_path])
    frames = list(stream)
    assert [frame.name for frame in frames] == ["a_good.jpg"]
    assert stream.report.images == 1
    skipped = dict(stream.report.skipped)
    assert set(skipped) == {str(tmp_path / name) for name in ("b_half.jpg", "c_bad.png", "d_clip.mp4")}
    assert skipped[str(tmp_path / "b_half.jpg")].startswith("truncated or corrupt JPEG")
    assert skipped[str(tmp_path / "c_bad.png")].startswith("corrupt PNG")
    out, err = capfd.readouterr()
    assert noise_in(out + err) == []
    assert f"skipped {tmp_path / 'b_half.jpg'}: truncated" in " ".join(err.split())


# -- evaluation on a COCO layout with unreadable images ---------------------------------------------------


@pytest.fixture
def mini_coco(tmp_path: Path) -> dict[str, Path]:
    """A 4-image COCO val set (synthetic people): one image missing, one a truncated JPEG; a pose model."""
    paths = generate_synthetic_pose(tmp_path / "coco", num_train=0, num_val=4, seed=3, image_size=(96, 96))
    images = json.loads(paths["val_ann"].read_text())["images"]
    missing = paths["val_images"] / images[1]["file_name"]
    half = paths["val_images"] / images[2]["file_name"]
    missing.unlink()
    truncate(half)
    torch.manual_seed(0)
    weights = save_model(
        create_model("hrformer-t", "pose", extra={"input_size": [64, 48]}), tmp_path / "pose.safetensors"
    )
    recipe = tmp_path / "mini.yaml"
    recipe.write_text(
        "task: pose\nname: mini\nmodel: {name: hrformer-t}\n"
        f"data: {{root: {paths['root']}, val_boxes: gt, input_size: [64, 48]}}\n"
        "train: {workers: 1}\neval: {batch_size: 8, flip_test: false}\n"
    )
    bad_ids = {images[1]["id"], images[2]["id"]}
    return {"recipe": recipe, "weights": weights, "missing": missing, "half": half, "ann": paths["val_ann"],
            "bad_ids": bad_ids}  # fmt: skip


def test_worker_error_arrives_as_one_line_naming_the_key_and_leaves_no_folder(mini_coco, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    args = ["eval", "--recipe", str(mini_coco["recipe"]), "--weights", str(mini_coco["weights"])]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    out, err = capfd.readouterr()
    text = result.output + out + err
    assert "error: 2 of 4 images under" in text and "raise data.max_bad_fraction" in text
    assert noise_in(text) == []
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in result.output
    assert not list((tmp_path / "runs" / "pose").iterdir())  # the failed eval left no folder


def test_tolerated_unreadable_images_are_left_out_of_eval_and_reported(mini_coco, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    args = ["eval", "--recipe", str(mini_coco["recipe"]), "--weights", str(mini_coco["weights"])]
    result = runner.invoke(app, [*args, "data.max_bad_fraction=0.5"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "pose" / "mini-eval"
    assert f"results: {Path('runs') / 'pose' / 'mini-eval'}" in result.output
    saved = json.loads((folder / "metrics.json").read_text())
    skipped = saved["skipped_images"]
    assert skipped["count"] == 2
    assert skipped["images"] == {
        str(mini_coco["missing"]): "file not found",
        str(mini_coco["half"]): "truncated or corrupt JPEG: the data ends before its end-of-image marker",
    }
    assert "2 image(s) could not be read and were left out" in " ".join(result.output.split())
    # No prediction for the unreadable images' people, and none duplicated from another image.
    annotations = json.loads(mini_coco["ann"].read_text())["annotations"]
    good_people = sum(1 for a in annotations if a["image_id"] not in mini_coco["bad_ids"])
    predictions = json.loads((folder / "predictions.json").read_text())
    assert len(predictions) == good_people
    assert {p["image_id"] for p in predictions}.isdisjoint(mini_coco["bad_ids"])
    out, err = capfd.readouterr()
    assert noise_in(result.output + out + err) == []


# -- DataLoader workers ------------------------------------------------------------------------------------

TOY = """\
task: toy
train:
  epochs: 1
  batch_size: 4
  workers: 64
  seed: 7
"""


def test_workers_are_capped_at_the_cores_and_said_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    (tmp_path / "toy.yaml").write_text(TOY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(load_recipe(tmp_path / "toy.yaml"), project=tmp_path / "runs")
    assert [str(w.message) for w in caught if "worker" in str(w.message)] == []
    lines = [line for line in capsys.readouterr().err.splitlines() if "train.workers=64" in line]
    assert lines == ["train.workers=64: this process has 2 CPU core(s), so 2 DataLoader worker(s) are used"]


class _FailsAtTwo(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        if index == 2:
            raise DataError("item 2 cannot be read; raise data.max_bad_fraction to skip it")
        return index


def test_an_error_in_a_dataloader_worker_keeps_its_class_and_one_line_message():
    loader = torch.utils.data.DataLoader(_FailsAtTwo(), batch_size=1, num_workers=1)
    seen = []
    with pytest.raises(DataError) as info:
        seen.extend(int(batch) for batch in batches(loader))
    assert seen == [0, 1]
    assert type(info.value) is DataError
    assert str(info.value) == "item 2 cannot be read; raise data.max_bad_fraction to skip it"


def test_cores_are_shared_among_the_ranks_of_a_node(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert available_cores() == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert available_cores() == 1


# -- checkpoints -------------------------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_foreign_and_malicious_checkpoints_are_refused_in_our_words(tmp_path):
    random_bytes = tmp_path / "not-a-checkpoint.pth"
    random_bytes.write_bytes(bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tolist()))
    marker = tmp_path / "code-ran"
    plain = tmp_path / "evil.pth"
    plain.write_bytes(pickle.dumps({"state_dict": _RunsCode(marker)}, protocol=4))
    zipped = tmp_path / "evil-zip.pth"
    torch.save({"state_dict": _RunsCode(marker)}, zipped)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError) as foreign:
            load_checkpoint_file(random_bytes)
        refusals = []
        for path in (plain, zipped):
            with pytest.raises(CheckpointError) as info:
                load_checkpoint_file(path)
            refusals.append(str(info.value))
    assert caught == []
    assert str(foreign.value) == (
        f"{random_bytes}: not a PyTorch checkpoint (neither torch's zip format nor a pickle); "
        "expected an official HRFormer or mmpose .pth (a state dict of tensors)"
    )
    assert not marker.exists()
    for message in refusals:
        assert "refused for safety" in message and "expected an official HRFormer or mmpose .pth" in message
        assert "weights_only" not in message and "False" not in message and "Re-running" not in message


# -- run folders -------------------------------------------------------------------------------------------


def test_eval_prints_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toy.yaml").write_text(TOY.replace("workers: 64", "workers: 0"))
    run = train(load_recipe(tmp_path / "toy.yaml"), project=tmp_path / "runs").run_dir
    result = runner.invoke(
        app, ["eval", "--recipe", "toy.yaml", "--weights", str(run / "weights" / "last.safetensors")]
    )
    assert result.exit_code == 0, result.output
    folder = Path("runs") / "toy" / "toy-eval"
    lines = result.output.strip().splitlines()
    assert lines[-2] == f"results: {folder}"
    assert lines[-1].startswith(f"report: {folder / 'report.md'}")  # the run's report, written into its folder
    assert json.loads((tmp_path / folder / "metrics.json").read_text())["skipped_images"] == {"count": 0, "images": {}}


# -- recipe keys -------------------------------------------------------------------------------------------


def test_data_root_with_the_synthetic_set_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HRFORMER_CACHE", str(tmp_path / "cache"))  # nothing may be generated anyway
    torch.manual_seed(0)
    weights = save_model(
        create_model("hrformer-t", "pose", extra={"input_size": [128, 96]}), tmp_path / "w.safetensors"
    )
    args = ["eval", "--recipe", "quickstart", "--weights", str(weights), "data.root=/some/coco"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert (
        "error: data.root=/some/coco and data.synthetic=true: the synthetic set would be used and data.root "
        "ignored; add data.synthetic=false to use data.root" in " ".join(result.output.split())
    )
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()


def test_misspelt_key_is_matched_by_its_last_component():
    with pytest.raises(UsageError, match=r"unknown recipe key 'train\.lrr'; did you mean train\.optimizer\.lr\?"):
        load_recipe("quickstart", ["train.lrr=1"])


def test_missing_coco_says_how_to_point_at_it_and_where_to_get_it(tmp_path):
    recipe = load_recipe("pose-b-384", [f"data.root={tmp_path / 'coco'}"])
    with pytest.raises(DataError) as info:
        get_task("pose").build_train_dataset(recipe)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'coco'}: dataset folder not found; expected the COCO layout")
    for text in (
        "data.root=",
        "HRFORMER_COCO=",
        "https://cocodataset.org/#download",
        "COCO_val2017_detections_AP_H_56_person.json",
        "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch#data-preparation",
    ):
        assert text in message
    assert "\n" not in message
