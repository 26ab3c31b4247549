"""Pose evaluation against the official HRFormer test pipeline (its mmpose 0.x fork) in its edge cases.

Expected values come from the reference's formulas worked by hand (`_get_max_preds`, the quarter offset,
`transform_preds`, `_xywh2cs`), not from the code under test; docs/pose-eval-parity.md explains each case.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrformer_core.engine import load_recipe
from hrformer_core.engine.evaluation import run_evaluation
from hrformer_core.tasks import get_task
from hrformer_core.tasks.pose.coco import CocoKeypoints
from hrformer_core.tasks.pose.codecs import HeatmapCodec
from hrformer_core.tasks.pose.inference import decode_keypoints
from hrformer_core.tasks.pose.keypoints import COCO17

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-val-sample"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


class RegionPeakModel(nn.Module):
    """A deterministic stand-in for a pose network, built from exact float32 operations only.

    Keypoint k looks at one colour channel of the crop's 4x4 max-pooled cells inside a fixed region (a band
    of a quarter of the rows per left/right pair, top to bottom; left parts in the right half, right parts
    in the left half, the nose everywhere), takes the first brightest cell and draws a cone of radius 3
    cells there, scaled by (brightest value - 1) / 2 (so dark regions give maps whose peak is <= 0).
    """

    def __init__(self, num_keypoints: int = 17) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cells = F.max_pool2d(images, 4)
        _, _, h, w = cells.shape
        k = torch.arange(self.num_keypoints)
        pair = torch.div(k + 1, 2, rounding_mode="floor").view(-1, 1, 1)
        ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        band = h // 4  # rows [6 * pair, 6 * pair + 16) of a 64-row map
        top = torch.div(pair * (h - band), 8, rounding_mode="floor")
        rows = (ys >= top) & (ys < top + band)
        cols = (k == 0).view(-1, 1, 1) | ((xs >= w // 2) == (k % 2 == 1).view(-1, 1, 1))
        values = cells[:, pair.view(-1) % 3].masked_fill(~(rows & cols), float("-inf")).flatten(2)
        index = values.argmax(dim=2)
        peak = values.gather(2, index[..., None])[..., 0]
        px = (index % w).float()[..., None, None]
        py = torch.div(index, w, rounding_mode="floor").float()[..., None, None]
        cone = torch.clamp(1.0 - ((xs - px) ** 2 + (ys - py) ** 2) / 9.0, min=0.0)
        return ((peak - 1.0) * 0.5)[..., None, None] * cone


def test_non_positive_peak_decodes_to_minus_one_and_is_back_projected_as_the_reference():
    # Heatmap 64 x 48 (H x W). Reference `_get_max_preds`: location = (idx % W, idx // W), replaced by -1
    # where maxval <= 0; the quarter offset and `_taylor` need 1 < px (< W-1 / W-2), so -1 stays -1.
    maps = np.zeros((1, 4, 64, 48), np.float32)  # map 0: all zeros -> max 0 -> (-1, -1), score 0
    maps[0, 1] = -0.5
    maps[0, 1, 30, 20] = -0.1  # map 1: max -0.1 at (20, 30) -> (-1, -1), score -0.1
    maps[0, 2, 20, 10] = 0.8  # map 2: peak at (10, 20); right 0.5 > left 0.3 -> +0.25; down 0.2 < up 0.6 -> -0.25
    maps[0, 2, 20, 11], maps[0, 2, 20, 9], maps[0, 2, 21, 10], maps[0, 2, 19, 10] = 0.5, 0.3, 0.2, 0.6
    maps[0, 3, 30, 1] = 0.7  # map 3: peak at px = 1 fails 1 < px: no offset -> (1, 30)
    coords, scores = HeatmapCodec((256, 192), (64, 48)).decode(maps)
    np.testing.assert_array_equal(coords[0], [[-1, -1], [-1, -1], [10.25, 19.75], [1, 30]])
    np.testing.assert_allclose(scores[0], [0.0, -0.1, 0.8, 0.7], rtol=1e-6)
    dark, _ = HeatmapCodec((256, 192), (64, 48)).decode(maps, dark=True)
    np.testing.assert_array_equal(dark[0, :2], [[-1, -1], [-1, -1]])
    # transform_preds with center (100, 200) and scale (150, 200) px: x = cx * 150 / 48 + 100 - 75,
    # y = cy * 200 / 64 + 200 - 100 (both factors 3.125):
    #   (-1, -1)      -> (-3.125 + 25, -3.125 + 100)       = (21.875, 96.875)
    #   (10.25, 19.75) -> (32.03125 + 25, 61.71875 + 100)  = (57.03125, 161.71875)
    #   (1, 30)        -> (3.125 + 25, 93.75 + 100)        = (28.125, 193.75)
    points = decode_keypoints(
        torch.from_numpy(maps), (256, 192), np.array([[100.0, 200.0]]), np.array([[150.0, 200.0]])
    )
    expected = [[21.875, 96.875, 0.0], [21.875, 96.875, -0.1], [57.03125, 161.71875, 0.8], [28.125, 193.75, 0.7]]
    np.testing.assert_allclose(points[0], expected, rtol=1e-6)


def _write_tiny_set(root: Path) -> None:
    """A 40 x 30 image with one labelled person and detector boxes of zero width, height and both."""
    image = np.zeros((30, 40, 3), np.uint8)
    image[..., 0] = np.arange(40, dtype=np.uint8)[None, :] * 5
    image[..., 1] = np.arange(30, dtype=np.uint8)[:, None] * 7
    image[0, 0] = (10, 200, 30)  # BGR: RGB (30, 200, 10) is what an empty box's crop repeats
    cv2.imwrite(str(root / "a.png"), image)
    keypoints = []
    for j in range(17):
        keypoints += [5.0 + j, 4.0 + j, 2]
    ann = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": [
            {
                "id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 300.0,
                "bbox": [3.0, 2.0, 25.0, 24.0], "keypoints": keypoints, "num_keypoints": 17,
            }
        ],
        "categories": [COCO17.to_coco_category()],
    }  # fmt: skip
    (root / "ann.json").write_text(json.dumps(ann))
    boxes = [[10, 5, 0, 20], [10, 5, 16, 0], [12, 7, 0, 0], [2, 2, 8, 8]]
    dets = [{"image_id": 1, "category_id": 1, "bbox": box, "score": 0.9 - 0.1 * i} for i, box in enumerate(boxes)]
    (root / "det.json").write_text(json.dumps(dets))


def _tiny_recipe(root: Path, *overrides: str):
    return load_recipe(
        "pose-t-256",
        [
            f"data.root={root}",
            "data.val_ann=ann.json",
            "data.val_images=.",
            "data.val_boxes=det.json",
            "data.input_size=[64,48]",
            "train.workers=0",
            "eval.batch_size=4",
            *overrides,
        ],
    )


def test_empty_detector_boxes_are_kept_as_the_reference_and_counted(tmp_path):
    _write_tiny_set(tmp_path)
    ds = CocoKeypoints(
        ann_file=tmp_path / "ann.json", image_dir=tmp_path, det_file=tmp_path / "det.json", input_size_hw=(64, 48)
    )
    # Reference `_xywh2cs` with aspect ratio 48 / 64 = 0.75 and padding 1.25 (scales here in pixels):
    #   [10, 5, 0, 20]: centre (10, 15); w 0 < 0.75 * 20 -> w = 15     -> scale (18.75, 25)
    #   [10, 5, 16, 0]: centre (18, 5);  w 16 > 0       -> h = 16/0.75 -> scale (20, 26.666...)
    #   [12, 7, 0, 0]:  centre (12, 7);  neither branch                -> scale (0, 0)
    #   [2, 2, 8, 8]:   centre (6, 6);   w 8 > 6        -> h = 32/3    -> scale (10, 13.333...)
    assert len(ds) == 4 and ds.num_empty_boxes == 3
    np.testing.assert_allclose(ds.centers, [[10, 15], [18, 5], [12, 7], [6, 6]])
    np.testing.assert_allclose(ds.scales, [[18.75, 25], [20, 80 / 3], [0, 0], [10, 40 / 3]])
    # Scale 0: cv2.getAffineTransform gets three equal source points and returns a zero matrix, so
    # warpAffine fills the crop with image pixel (0, 0).
    crop = ds[2]["image"].numpy()
    expected = (np.array([30, 200, 10]) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(crop, np.broadcast_to(expected[:, None, None], crop.shape), atol=1e-5)
    dropped = CocoKeypoints(
        ann_file=tmp_path / "ann.json",
        image_dir=tmp_path,
        det_file=tmp_path / "det.json",
        input_size_hw=(64, 48),
        keep_empty_boxes=False,
    )
    assert len(dropped) == 1 and dropped.num_empty_boxes == 3
    np.testing.assert_allclose(dropped.centers, [[6, 6]])

    for keep, counts in ((True, (3, 0)), (False, (0, 3))):
        recipe = _tiny_recipe(tmp_path, f"data.keep_empty_boxes={str(keep).lower()}")
        task = get_task("pose")
        task.configure(recipe)
        dataset = task.build_val_dataset(recipe)
        out = tmp_path / f"eval-{keep}"
        out.mkdir()
        metrics = run_evaluation(task, RegionPeakModel(), dataset, recipe, out, torch.device("cpu"))
        assert (metrics["empty_boxes_kept"], metrics["empty_boxes_dropped"]) == counts
        assert 0.0 <= metrics["AP"] <= 1.0
    # The zero-size box's keypoints all land on its centre (transform_preds with scale 0).
    batch = task.collate([ds[2]])
    (person,) = task.predict_batch(RegionPeakModel(), batch)
    np.testing.assert_allclose(person["keypoints"][:, :2], np.tile([12.0, 7.0], (17, 1)), atol=1e-6)
    assert person["area"] == 0.0


def _jpeg_with_orientation(path: Path, image: np.ndarray, orientation: int) -> None:
    """Write a JPEG with an EXIF APP1 segment holding only the orientation tag (0x0112)."""
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x0112, 3, 1, orientation) + b"\0" * 4
    app1 = b"Exif\x00\x00" + tiff
    data = encoded.tobytes()
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])


def test_exif_orientation_is_ignored_by_default_and_applied_on_request(tmp_path):
    _write_tiny_set(tmp_path)
    stored = np.zeros((30, 40, 3), np.uint8)
    stored[:, :20] = 255  # left half white
    _jpeg_with_orientation(tmp_path / "b.jpg", stored, orientation=6)  # 6: display rotated 90 degrees clockwise
    for flag, shape in ((False, (30, 40, 3)), (True, (40, 30, 3))):
        recipe = _tiny_recipe(tmp_path, f"data.apply_exif_orientation={str(flag).lower()}")
        task = get_task("pose")
        task.configure(recipe)
        dataset = task.build_val_dataset(recipe)
        image = dataset._read_image(tmp_path / "b.jpg")
        assert image.shape == shape
    # Rotated clockwise, the stored left half becomes the top 20 rows.
    assert image[:18].min() > 200 and image[22:].max() < 50


@pytest.mark.skipif(not (SAMPLE / "test_coco.json").is_file(), reason=f"shared COCO sample not found at {SAMPLE}")
def test_whole_top_down_eval_on_the_coco_sample(tmp_path):
    """Boxes -> crops -> model -> flip -> decode -> rescoring -> OKS-NMS -> COCO results, frozen values.

    How the values were obtained and checked: one run of this path (CPU, torch 2.13, OpenCV 5.1). Its 110 kept
    people were compared with an independent loop re-implementation of the reference test path (its
    `_xywh2cs`, the 3-point `get_affine_transform` + cv2.warpAffine, ToTensor/NormalizeTensor, this stand-in
    written with loops, `flip_back` + shift, `keypoints_from_heatmaps` 'default', the rescoring and mmpose's
    `oks_nms`): fed our crops, the same people came out in the same order, keypoints within 6.5e-5 px (the
    reference's float32) and scores within 6e-8; fed its own crops, within 0.28 px and 4e-4 (its float32
    affine matrix moves about 0.02 % of crop values by one grey level, and the stand-in's argmax follows).
    Spot-check by hand, detection 0 (image 785, box [277.118, 45.700, 225.091, 333.560]): centre
    (389.664, 212.480); w < 0.75 h so w = 250.170; scale (312.713, 416.950), 6.51485 px per heatmap pixel both
    ways. Keypoint 0 at (358.718, 43.094) is heatmap ((358.718 - 389.664 + 156.356) / 6.51485,
    (43.094 - 212.480 + 208.475) / 6.51485) = (19.25, 6.00): cell (19, 6), a quarter right, none vertically.
    A keypoint whose map peak is <= 0 sits at heatmap (-1, -1), i.e. one heatmap pixel up and left of the
    padded box's corner: x = -1 * scale_w / 48 + cx - scale_w / 2 (for this box 226.792), asserted for all 254.
    """
    recipe = load_recipe(
        "pose-t-256",
        [
            f"data.root={SAMPLE}",
            "data.val_ann=test_coco.json",
            "data.val_images=.",
            "data.val_boxes=test_coco_det_AP_H_56.json",
            "train.workers=0",
            "eval.batch_size=32",
        ],
    )
    task = get_task("pose")
    task.configure(recipe)
    dataset = task.build_val_dataset(recipe)
    assert len(dataset) == 118 and dataset.num_empty_boxes == 0  # the sample has no zero-size box
    metrics = run_evaluation(task, RegionPeakModel(), dataset, recipe, tmp_path, torch.device("cpu"))
    assert (metrics["empty_boxes_kept"], metrics["empty_boxes_dropped"]) == (0, 0)
    results = json.loads((tmp_path / "predictions.json").read_text())
    per_image = {image_id: sum(r["image_id"] == image_id for r in results) for image_id in (785, 40083, 196141, 197388)}
    assert per_image == {785: 22, 40083: 26, 196141: 26, 197388: 36}
    keypoints = np.array([r["keypoints"] for r in results]).reshape(-1, 17, 3)
    scores = np.array([r["score"] for r in results])
    np.testing.assert_allclose(
        keypoints[0],
        [
            [358.7184, 43.0937, 0.4927], [462.9560, 56.1234, 0.5837], [371.7481, 43.0937, 0.4400],
            [475.9857, 166.8759, 0.7251], [352.2036, 173.3907, 0.7168], [475.9857, 166.8759, 0.5251],
            [306.5996, 186.4204, 0.5332], [475.9857, 166.8759, 0.6250], [306.5996, 186.4204, 0.6415],
            [410.8372, 264.5986, 0.7415], [319.6293, 290.6580, 0.7086], [410.8372, 264.5986, 0.5332],
            [319.6293, 290.6580, 0.4927], [430.3817, 323.2322, 0.6002], [319.6293, 290.6580, 0.5919],
            [436.8966, 336.2619, 0.7086], [378.2630, 329.7471, 0.6181],
        ],
        atol=1e-3,
    )  # fmt: skip
    np.testing.assert_allclose(
        scores[:8], [0.604563, 0.180579, 0.058695, 0.017946, 0.006346, 0.005914, 0.005651, 0.004996], atol=1e-5
    )
    no_peak = keypoints[..., 2] <= 0  # maps with no positive value
    assert int(no_peak.sum()) == 254
    corner = np.array([r["bbox"] for r in results])  # the padded box: centre - scale / 2, scale
    expected = np.stack([corner[:, 0] - corner[:, 2] / 48, corner[:, 1] - corner[:, 3] / 64], axis=-1)
    np.testing.assert_allclose(
        keypoints[..., :2][no_peak], np.broadcast_to(expected[:, None], (len(results), 17, 2))[no_peak], atol=1e-3
    )
    np.testing.assert_allclose(
        [keypoints[..., 0].sum(), keypoints[..., 1].sum(), keypoints[..., 2].sum(), scores.sum()],
        [634636.4441, 275934.8876, 852.65359, 14.6378069],
        rtol=1e-7,
    )
