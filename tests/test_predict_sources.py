"""Prediction inputs and person boxes: what is read, skipped, named and matched (no model needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrformer_core.errors import DataError, UsageError
from hrformer_core.predict.sources import FrameStream
from hrformer_core.tasks.pose.detectors import (
    BoxesFile,
    CallableDetector,
    HogDetector,
    WholeImage,
    build_detector,
    hog_available,
    keep_boxes,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COCO_SAMPLE = SHARED / "data" / "coco-val-sample"


def write_image(path: Path, value: int, size_hw: tuple[int, int] = (40, 50)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((*size_hw, 3), value, np.uint8))
    return path


def write_video(path: Path, frames: int, size_wh: tuple[int, int] = (64, 48), fps: float = 5.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size_wh)
    for i in range(frames):
        writer.write(np.full((size_wh[1], size_wh[0], 3), 30 * i, np.uint8))
    writer.release()
    return path


def test_folder_is_recursive_keeps_relative_paths_and_counts_skipped(tmp_path):
    write_image(tmp_path / "a" / "x.png", 10)
    write_image(tmp_path / "b" / "x.png", 200)
    (tmp_path / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.json").write_text("{}")
    stream = FrameStream([tmp_path])
    frames = list(stream)
    assert [f.relative.as_posix() for f in frames] == ["a/x.png", "b/x.png"]
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 200]  # distinct files, not one read twice
    assert frames[0].image.shape == (40, 50, 3) and frames[0].image.dtype == np.uint8
    assert stream.report.images == 2
    skipped = dict(stream.report.skipped)
    assert set(skipped) == {str(tmp_path / "b" / "broken.jpg"), str(tmp_path / "notes.json")}
    assert "corrupt" in skipped[str(tmp_path / "b" / "broken.jpg")]


def test_images_are_rgb(tmp_path):
    path = tmp_path / "red.png"
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(path), bgr)
    (frame,) = FrameStream([path])
    assert frame.image[0, 0].tolist() == [255, 0, 0]


def test_several_sources_are_named_relative_to_their_common_folder(tmp_path):
    write_image(tmp_path / "one" / "x.png", 1)
    write_image(tmp_path / "two" / "x.png", 2)
    frames = list(FrameStream([tmp_path / "one", tmp_path / "two" / "x.png"]))
    assert [f.relative.as_posix() for f in frames] == ["one/x.png", "two/x.png"]


def test_glob_and_list_file(tmp_path):
    write_image(tmp_path / "data" / "s1" / "a.png", 1)
    write_image(tmp_path / "data" / "s2" / "b.png", 2)
    write_image(tmp_path / "data" / "s2" / "c.jpg", 3)
    frames = list(FrameStream([str(tmp_path / "data" / "**" / "*.png")]))
    assert [f.relative.as_posix() for f in frames] == ["s1/a.png", "s2/b.png"]

    listing = tmp_path / "data" / "list.txt"
    listing.write_text("# chosen images\ns2/c.jpg\n\ns1/a.png\n")
    frames = list(FrameStream([listing]))
    assert [f.relative.as_posix() for f in frames] == ["s2/c.jpg", "s1/a.png"]

    listing.write_text("s1/a.png\ns1/missing.png\n")
    with pytest.raises(UsageError, match=r"list.txt:2: listed source 's1/missing.png' does not exist"):
        FrameStream([listing])


def test_missing_source_and_bad_webcam_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="nowhere.jpg' does not exist"):
        FrameStream([tmp_path / "nowhere.jpg"])
    with pytest.raises(UsageError, match="matches no files"):
        FrameStream([str(tmp_path / "*.png")])
    with pytest.raises(UsageError, match="webcam:N"):
        FrameStream(["webcam:front"])
    with pytest.raises(UsageError, match="no source given"):
        FrameStream([])


def test_empty_folder_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    stream = FrameStream([tmp_path / "empty"])
    with pytest.raises(DataError, match="no readable images or videos in .*empty"):
        list(stream)


def test_video_streams_every_frame_with_its_rate(tmp_path):
    video = write_video(tmp_path / "clip.mp4", frames=7)
    stream = FrameStream([video])
    frames = list(stream)
    assert [f.frame_index for f in frames] == list(range(7))
    assert all(f.is_video and f.relative == Path("clip.mp4") and f.fps == pytest.approx(5.0) for f in frames)
    assert frames[0].image.shape == (48, 64, 3)
    assert stream.report.videos == 1


def test_unopenable_video_is_an_error_alone_and_skipped_in_a_folder(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match=r"cannot open video .*bad.mp4"):
        FrameStream([bad])
    write_image(tmp_path / "ok.png", 5)
    stream = FrameStream([tmp_path])
    assert [f.relative.as_posix() for f in stream] == ["ok.png"]
    assert stream.report.skipped == [(str(bad), "unreadable video")]


def test_absent_webcam_is_a_clear_error():
    with pytest.raises(DataError, match="cannot open webcam 99"):
        list(FrameStream(["webcam:99"]))


# --- person boxes ------------------------------------------------------------------------------------------


def test_keep_boxes_drops_low_scores_and_empty_boxes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 10]], dtype=float)
    kept, scores = keep_boxes(boxes, np.array([0.9, 0.1, 0.95]), threshold=0.3)
    assert kept.tolist() == [[0, 0, 10, 10]] and scores.tolist() == [0.9]


def test_whole_image_box():
    boxes, scores = WholeImage()(np.zeros((30, 40, 3), np.uint8))
    assert boxes.tolist() == [[0, 0, 40, 30]] and scores.tolist() == [1.0]


def test_coco_boxes_by_numeric_file_name_and_by_annotation_file():
    if not COCO_SAMPLE.is_dir():
        pytest.skip(f"COCO sample not found at {COCO_SAMPLE} (it ships in the project's shared/ folder)")
    dets_path = COCO_SAMPLE / "test_coco_det_AP_H_56.json"
    dets = json.loads(dets_path.read_text())
    expected = [d for d in dets if d["image_id"] == 785 and d.get("category_id", 1) == 1]
    by_stem = BoxesFile(dets_path)
    boxes, scores = by_stem.boxes_for("000000000785.jpg")
    assert boxes.tolist() == [d["bbox"] for d in expected]
    assert scores.tolist() == [d["score"] for d in expected]
    assert by_stem.image_id("000000000785.jpg") == 785
    assert by_stem.boxes_for("holiday.jpg") is None  # not a COCO name, not covered

    by_annotations = BoxesFile(dets_path, COCO_SAMPLE / "test_coco.json")
    assert by_annotations.boxes_for("000000000785.jpg")[0].tolist() == boxes.tolist()
    assert by_annotations.boxes_for("000000000000.jpg") is None  # not in the annotation file


def test_boxes_file_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        BoxesFile(tmp_path / "missing.json")
    bad = tmp_path / "dets.json"
    bad.write_text(json.dumps({"image_id": 1}))
    with pytest.raises(DataError, match="top level is dict; expected a COCO detections list"):
        BoxesFile(bad)
    bad.write_text(json.dumps([{"image_id": 1, "bbox": [1, 2, 3]}]))
    with pytest.raises(DataError, match=r"entry 0 bbox \[1, 2, 3\] is not \[x, y, w, h\]"):
        BoxesFile(bad)
    bad.write_text(json.dumps([{"image_id": 1, "bbox": [1, 2, 3, 4], "category_id": 3}]))
    assert BoxesFile(bad).boxes_for("1.jpg") is None  # only person boxes count


def test_callable_detector_from_a_module(tmp_path, monkeypatch):
    (tmp_path / "my_people.py").write_text(
        "def detect(image):\n    return [[1, 2, 3, 4], [5, 6, 7, 8]], [0.5, 0.9]\n"
        "def broken(image):\n    return [[1, 2, 3, 4]], [0.5, 0.9]\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "my_people", raising=False)
    boxes, scores = build_detector("my_people:detect")(np.zeros((10, 10, 3), np.uint8))
    assert boxes.shape == (2, 4) and scores.tolist() == [0.5, 0.9]
    with pytest.raises(DataError, match="1 boxes but 2 scores"):
        CallableDetector("my_people:broken")(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(UsageError, match="is not callable"):
        CallableDetector("my_people:NOT_CALLABLE")
    with pytest.raises(UsageError, match="has no attribute 'nope'"):
        CallableDetector("my_people:nope")
    with pytest.raises(UsageError, match="cannot import module 'no_such_module_here'"):
        CallableDetector("no_such_module_here:detect")
    with pytest.raises(UsageError, match="expected whole-image, hog or module:callable"):
        build_detector("yolo")


def test_hog_only_where_opencv_has_it():
    image = np.zeros((128, 64, 3), np.uint8)
    if hog_available():
        boxes, scores = HogDetector()(image)
        assert boxes.shape[1] == 4 and np.all((scores >= 0) & (scores <= 1))
    else:
        with pytest.raises(UsageError, match=f"OpenCV {cv2.__version__} has no HOGDescriptor"):
            build_detector("hog")
