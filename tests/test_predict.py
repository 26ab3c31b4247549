"""`hrformer predict` and `hrformer_core.predict.predict`: geometry, files written, JSON contents, errors.

Models are tiny random hrformer-t networks at 64x48 (pose) or 64x64 (seg, cls): the numbers they predict are
meaningless, so the checks are on structure, ranges and bookkeeping; the crop -> heatmap -> image geometry
is checked exactly with a one-keypoint network that puts its heatmap peak on the crop's brightest pixel.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core.errors import UsageError
from hrformer_core.models import create_model, model_config
from hrformer_core.models.checkpoint import save_model
from hrformer_core.models.weights import resolve_weights
from hrformer_core.predict import FrameStream, predict, prepare
from hrformer_core.predict.sources import Frame
from hrformer_core.tasks import PredictOptions
from hrformer_core.tasks.pose.detectors import BoxesFile
from hrformer_core.tasks.pose.predictor import PosePredictor
from hrformer_core.utils.sizes import parse_size

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COCO_SAMPLE = SHARED / "data" / "coco-val-sample"
DETECTIONS = COCO_SAMPLE / "test_coco_det_AP_H_56.json"

runner = CliRunner()



def require_coco_sample() -> Path:
    if not DETECTIONS.is_file():
        pytest.skip(f"COCO sample not found at {COCO_SAMPLE} (it ships in the project's shared/ folder)")
    return COCO_SAMPLE


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    return {
        "pose": save_model(
            create_model("hrformer-t", "pose", extra={"input_size": [64, 48]}), folder / "pose.safetensors"
        ),
        "seg": save_model(
            create_model("hrformer-t", "seg", num_classes=5, extra={"input_size": [64, 64]}), folder / "seg.safetensors"
        ),
        "cls": save_model(
            create_model("hrformer-t", "cls", num_classes=7, extra={"input_size": [64, 64]}), folder / "cls.safetensors"
        ),
    }


def write_image(path: Path, seed: int, size_hw: tuple[int, int] = (72, 96)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (*size_hw, 3), dtype=np.uint8))
    return path


def read_json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def kept_detections(image_id: int, threshold: float) -> list[dict]:
    detections = read_json(DETECTIONS)
    return [
        d
        for d in detections
        if d["image_id"] == image_id and d.get("category_id", 1) == 1 and d["score"] >= threshold and d["bbox"][2] > 0
    ]


# --- geometry -------------------------------------------------------------------------------------------


class BrightestPoint(nn.Module):
    """A one-keypoint 'pose network': a Gaussian heatmap (sigma 2) on the input's brightest pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.config = model_config("hrformer-t", "pose", num_keypoints=1, extra={"input_size": [64, 48]})
        self.unused = nn.Parameter(torch.zeros(()))  # gives the module a device
        self.peaks: list[tuple[int, int]] = []  # where the spot was in each crop (input pixels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        index = x.sum(1).flatten(1).argmax(1)
        self.peaks += [(int(i % width), int(i // width)) for i in index]
        px, py = (index % width).float() / 4, (index // width).float() / 4  # input pixels -> heatmap pixels
        ys, xs = torch.arange(height // 4).float(), torch.arange(width // 4).float()
        d2 = (xs[None, None, :] - px[:, None, None]) ** 2 + (ys[None, :, None] - py[:, None, None]) ** 2
        return torch.exp(-d2 / 8.0)[:, None]


@pytest.mark.parametrize("flip", [False, True])
def test_keypoints_map_back_to_image_pixels(flip):
    image = np.zeros((160, 200, 3), np.uint8)
    spots = [(70.0, 60.0), (150.0, 120.0)]
    for x, y in spots:
        cv2.circle(image, (int(x), int(y)), 3, (255, 255, 255), -1)
    image = cv2.GaussianBlur(image, (9, 9), 2)
    # Boxes sized so the padded crop is exactly 48x64 pixels: one heatmap pixel = 4 image pixels.
    boxes = np.array([[x - 19.2, y - 25.6 + 6, 38.4, 51.2] for x, y in spots])
    network = BrightestPoint()
    options = PredictOptions(
        (64, 48), batch_size=1, flip=flip, task_options={"detector": lambda img: (boxes, np.array([0.9, 0.8]))}
    )
    predictor = PosePredictor(network, network.config, (64, 48), options)

    (result,) = list(predictor([Frame(image, Path("spots.png"), Path("spots.png"))]))
    assert result.boxes.tolist() == boxes.tolist()
    if not flip:  # the crop is the box grown x1.25 around its centre: the spot sits 6 px above the crop centre
        assert network.peaks == [(24, 26), (24, 26)]
    np.testing.assert_allclose(result.keypoints[:, 0, :2], np.array(spots), atol=1.5)
    assert np.all(result.keypoints[:, 0, 2] > 0.5)


def test_parse_size():
    assert parse_size("256x192") == (256, 192)
    assert parse_size("224") == (224, 224)
    assert parse_size([64, 48]) == (64, 48)
    with pytest.raises(UsageError, match="expected HxW in pixels"):
        parse_size("256by192")


# --- Python API on real COCO photos ------------------------------------------------------------------


def test_predict_api_on_coco_sample_with_detector_boxes(weights):
    sample = require_coco_sample()
    images = sorted(sample.glob("*.jpg"))
    results = list(predict(images, weights["pose"], boxes=BoxesFile(DETECTIONS), box_threshold=0.5, batch_size=4))
    assert [r.frame.name for r in results] == [p.name for p in images]
    for result in results:
        expected = kept_detections(int(Path(result.frame.name).stem), 0.5)
        assert result.image_id == int(Path(result.frame.name).stem)
        assert result.num_people == len(expected)
        np.testing.assert_allclose(result.boxes, [d["bbox"] for d in expected])
        height, width = result.frame.image.shape[:2]
        kpts = result.keypoints
        assert kpts.shape == (len(expected), 17, 3)
        assert np.all((kpts[..., 0] >= 0) & (kpts[..., 0] <= width - 1))
        assert np.all((kpts[..., 1] >= 0) & (kpts[..., 1] <= height - 1))
        assert np.all((kpts[..., 2] >= 0) & (kpts[..., 2] <= 1))
        assert np.all((result.scores >= 0) & (result.scores <= 1))
        assert np.all(result.scores <= result.box_scores + 1e-12)  # box score x mean keypoint score


def test_batching_does_not_change_results(weights):
    sample = require_coco_sample()
    images = sorted(sample.glob("*.jpg"))[:2]
    one = list(predict(images, weights["pose"], boxes=BoxesFile(DETECTIONS), box_threshold=0.9, batch_size=1))
    many = list(predict(images, weights["pose"], boxes=DETECTIONS, box_threshold=0.9, batch_size=16))
    for a, b in zip(one, many, strict=True):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)


# --- CLI: files and JSON --------------------------------------------------------------------------------


def test_cli_on_coco_sample_writes_images_json_and_coco_results(weights, tmp_path):
    sample = require_coco_sample()
    args = ["predict", str(sample), "-w", str(weights["pose"]), "--boxes", str(DETECTIONS)]
    result = runner.invoke(app, [*args, "--project", str(tmp_path), "--name", "coco", "--box-threshold", "0.5"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "coco"
    names = sorted(p.name for p in sample.glob("*.jpg"))
    assert sorted(p.name for p in (out / "vis").iterdir()) == names
    for name in names:
        annotated = cv2.imread(str(out / "vis" / name))
        original = cv2.imread(str(sample / name))
        assert annotated.shape == original.shape and not np.array_equal(annotated, original)
    per_image = {name: read_json(out / "json" / f"{name}.json") for name in names}
    coco = read_json(out / "predictions.json")
    total = 0
    for name, record in per_image.items():
        image_id = int(Path(name).stem)
        expected = kept_detections(image_id, 0.5)
        assert record["image_id"] == image_id and record["file_name"] == name
        assert len(record["people"]) == len(expected)
        np.testing.assert_allclose([p["bbox"] for p in record["people"]], [d["bbox"] for d in expected], atol=0.01)
        for person in record["people"]:
            assert len(person["keypoints"]) == 17
            assert all(0 <= x < record["width"] and 0 <= y < record["height"] for x, y, _ in person["keypoints"])
            assert all(0 <= s <= 1 for _, _, s in person["keypoints"])
        total += len(expected)
    assert len(coco) == total
    assert {c["image_id"] for c in coco} <= {int(Path(n).stem) for n in names}
    assert all(c["category_id"] == 1 and len(c["keypoints"]) == 51 and c["file_name"] in names for c in coco)
    run = read_json(out / "run.json")
    assert run["summary"]["people"] == total and run["summary"]["images"] == 4
    assert [s["path"] for s in run["summary"]["skipped"]] == [
        str(sample / "test_coco.json"),
        str(sample / "test_coco_det_AP_H_56.json"),
    ]
    assert run["weights"]["kind"] == "safetensors" and run["input_size"] == [64, 48]
    assert "people found" in result.output and str(total) in result.output and "images/s" in result.output
    # never overwrite: the same name gives a new folder
    again = runner.invoke(app, [*args, "--project", str(tmp_path), "--name", "coco", "--box-threshold", "0.99"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "coco-2" / "predictions.json").is_file()
    assert len(read_json(out / "predictions.json")) == total


def test_cli_nested_same_names_corrupt_image_and_video(weights, tmp_path):
    data = tmp_path / "data"
    write_image(data / "a" / "x.png", 1)
    write_image(data / "b" / "x.png", 2)
    (data / "b" / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    video = data / "clips" / "walk.mp4"
    video.parent.mkdir()
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 4.0, (80, 60))
    for i in range(5):
        writer.write(np.full((60, 80, 3), 40 * i, np.uint8))
    writer.release()

    result = runner.invoke(
        app,
        ["predict", str(data), "-w", str(weights["pose"]), "--detector", "whole-image"]
        + ["--project", str(tmp_path), "--name", "run"],
    )
    assert result.exit_code == 0, result.output
    assert "whole-image" in result.output and "corrupt.jpg" in result.output
    out = tmp_path / "run"
    for sub in ("a", "b"):
        record = read_json(out / "json" / sub / "x.png.json")
        assert record["file_name"] == f"{sub}/x.png" and len(record["people"]) == 1
        assert cv2.imread(str(out / "vis" / sub / "x.png")).shape == (72, 96, 3)
    assert read_json(out / "json" / "a" / "x.png.json") != read_json(out / "json" / "b" / "x.png.json")

    capture = cv2.VideoCapture(str(out / "vis" / "clips" / "walk.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 5
    video_records = read_json(out / "json" / "clips" / "walk.mp4.json")
    assert [r["frame"] for r in video_records] == list(range(5))
    assert all(len(r["people"]) == 1 for r in video_records)

    run = read_json(out / "run.json")["summary"]
    assert (run["images"], run["videos"], run["frames"], run["people"]) == (2, 1, 7, 7)
    reason = "truncated or corrupt JPEG: the data ends before its end-of-image marker"
    assert run["skipped"] == [{"path": str(data / "b" / "corrupt.jpg"), "reason": reason}]
    assert len(read_json(out / "predictions.json")) == 7
    assert not list(out.rglob("*.partial*")) and not list(out.rglob("*.tmp"))


def test_cli_segmentation_and_classification(weights, tmp_path):
    image = write_image(tmp_path / "scene.jpg", 3, size_hw=(50, 90))
    for mode in ("whole", "slide"):
        result = runner.invoke(
            app,
            ["predict", str(image), "-w", str(weights["seg"]), "--seg-mode", mode]
            + ["--project", str(tmp_path), "--name", mode],
        )
        assert result.exit_code == 0, result.output
        out = tmp_path / mode
        labels = cv2.imread(str(out / "labels" / "scene.jpg.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == (50, 90) and labels.max() < 5
        record = read_json(out / "json" / "scene.jpg.json")
        counts = dict(zip(*np.unique(labels, return_counts=True), strict=True))
        assert record["class_pixels"] == {str(k): int(v) for k, v in counts.items()}
        assert record["labels_png"] == "labels/scene.jpg.png"
        assert cv2.imread(str(out / "vis" / "scene.jpg")).shape == (50, 90, 3)

    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"class-{i}" for i in range(7)))
    result = runner.invoke(
        app,
        ["predict", str(image), "-w", str(weights["cls"]), "--class-names", str(names), "--task", "cls"]
        + ["--project", str(tmp_path), "--name", "cls"],
    )
    assert result.exit_code == 0, result.output
    topk = read_json(tmp_path / "cls" / "json" / "scene.jpg.json")["topk"]
    scores = [t["score"] for t in topk]
    assert len(topk) == 5 and scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6
    assert all(t["label"] == f"class-{t['class_id']}" for t in topk)


def test_cli_no_save_prints_only(weights, tmp_path):
    image = write_image(tmp_path / "in" / "p.png", 4)
    result = runner.invoke(
        app,
        ["predict", str(image), "-w", str(weights["pose"]), "--detector", "whole-image", "--no-save"]
        + ["--project", str(tmp_path / "out")],
    )
    assert result.exit_code == 0, result.output
    assert "p.png: 1 people" in result.output and "(not saved)" in result.output
    assert not (tmp_path / "out").exists()


# --- CLI: errors ----------------------------------------------------------------------------------------


def test_cli_errors_are_one_line_with_exit_2(weights, tmp_path):
    missing = runner.invoke(app, ["predict", str(tmp_path / "ghost.jpg"), "-w", str(weights["pose"])])
    assert missing.exit_code == 2 and "ghost.jpg' does not exist" in missing.output

    image = write_image(tmp_path / "p.png", 5)
    no_weights = runner.invoke(app, ["predict", str(image)])
    assert no_weights.exit_code == 2
    assert (
        "no weights given" in no_weights.output
        and "hrformer convert" in no_weights.output
        and "hf://" in no_weights.output
    )

    (tmp_path / "empty").mkdir()
    empty = runner.invoke(
        app, ["predict", str(tmp_path / "empty"), "-w", str(weights["pose"]), "--project", str(tmp_path / "o")]
    )
    assert empty.exit_code == 2 and "no readable images or videos" in empty.output
    assert not (tmp_path / "o").exists()

    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF....AVI garbage")
    video = runner.invoke(app, ["predict", str(broken), "-w", str(weights["pose"])])
    assert video.exit_code == 2 and "cannot open video" in video.output and "broken.avi" in video.output

    wrong_task = runner.invoke(app, ["predict", str(image), "-w", str(weights["pose"]), "--task", "seg"])
    assert wrong_task.exit_code == 2 and "a pose model" in wrong_task.output

    for assert_no_traceback in (missing, no_weights, empty, video, wrong_task):
        assert "Traceback" not in assert_no_traceback.output


def test_cli_boxes_for_other_images_warns_naming_them(weights, tmp_path):
    require_coco_sample()
    write_image(tmp_path / "imgs" / "holiday.png", 6)
    write_image(tmp_path / "imgs" / "garden.png", 7)
    result = runner.invoke(
        app,
        ["predict", str(tmp_path / "imgs"), "-w", str(weights["pose"]), "--boxes", str(DETECTIONS)]
        + ["--project", str(tmp_path), "--name", "r"],
    )
    assert result.exit_code == 0, result.output
    assert "has no boxes for 2 image(s)" in result.output
    assert "garden.png" in result.output and "holiday.png" in result.output
    run = read_json(tmp_path / "r" / "run.json")["summary"]
    assert run["people"] == 0 and "has no boxes for 2 image(s)" in run["warnings"][0]


def test_official_pth_is_converted_on_the_fly(tmp_path):
    from fixtures import reference_state_dict

    state = reference_state_dict("pose_t_256x192")  # official key names; skips without shared fixtures
    pth = tmp_path / "official.pth"
    torch.save({"state_dict": state}, pth)
    image = write_image(tmp_path / "p.png", 8)
    result = runner.invoke(
        app,
        ["predict", str(image), "-w", str(pth), "--input-size", "64x48", "--project", str(tmp_path), "--name", "o"],
    )
    assert result.exit_code == 0, result.output
    assert "converted official.pth" in result.output and "hrformer convert" in result.output
    assert read_json(tmp_path / "o" / "run.json")["weights"]["kind"] == "pth"


def test_run_folder_prefers_best_weights(weights, tmp_path):
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last.safetensors").write_bytes(weights["cls"].read_bytes())
    assert resolve_weights(run).task == "cls"
    (run / "weights" / "best.safetensors").write_bytes(weights["pose"].read_bytes())
    loaded = resolve_weights(run)
    assert loaded.task == "pose" and loaded.path.name == "best.safetensors" and loaded.kind == "run"
    with pytest.raises(Exception, match="run folder without weights/best.safetensors"):
        resolve_weights(tmp_path)


def test_frame_stream_is_lazy(weights, tmp_path):
    """Predictions stream: the first result arrives before later images are even read."""
    for i in range(3):
        write_image(tmp_path / f"{i}.png", i)
    stream = FrameStream([tmp_path])
    results = prepare(weights["pose"], PredictOptions(batch_size=1))(stream)
    next(results)
    assert stream.report.images == 1


def test_ctrl_c_keeps_what_was_predicted(weights, tmp_path, monkeypatch):
    """A webcam stream ends with Ctrl-C: the frames so far still make a playable video and valid JSON."""
    video = tmp_path / "cam.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 4.0, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    (tmp_path / "stopping_detector.py").write_text(
        "calls = 0\n"
        "def detect(image):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    if calls == 4:\n"
        "        raise KeyboardInterrupt\n"
        "    return [[0, 0, image.shape[1], image.shape[0]]], [1.0]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "stopping_detector", raising=False)
    result = runner.invoke(
        app,
        ["predict", str(video), "-w", str(weights["pose"]), "--detector", "stopping_detector:detect", "-b", "1"]
        + ["--project", str(tmp_path), "--name", "cam"],
    )
    assert result.exit_code == 0, result.output
    assert "stopped by Ctrl-C after 3" in result.output
    capture = cv2.VideoCapture(str(tmp_path / "cam" / "vis" / "cam.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 3
    assert [r["frame"] for r in read_json(tmp_path / "cam" / "json" / "cam.mp4.json")] == [0, 1, 2]
    assert len(read_json(tmp_path / "cam" / "predictions.json")) == 3
