"""Segmentation metrics, losses and inference against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hrformer_core.engine.evaluation import metric_tables
from hrformer_core.tasks.seg.inference import image_logits, sliding_logits
from hrformer_core.tasks.seg.losses import ohem_cross_entropy
from hrformer_core.tasks.seg.task import SegTask, confusion_cells


class _Dataset:
    class_names = ("a", "b", "c")


def test_miou_accuracy_and_ignore_by_hand(tmp_path) -> None:
    # truth / prediction, 255 ignored (its prediction must not count):
    #   truth 0 0 0 1 1 2 255      pred 0 0 1 1 2 2 0
    label = torch.tensor([[0, 0, 0, 1, 1, 2, 255]])
    pred = torch.tensor([[0, 0, 1, 1, 2, 2, 0]])
    task = SegTask()
    task._num_classes = 3
    cells = confusion_cells(pred, label, 3)
    metrics = task.compute_metrics([cells, cells], _Dataset(), tmp_path)  # two identical images
    # class 0: hits 2, gt 3, pred 2 -> IoU 2/3, accuracy 2/3; class 1: hits 1, gt 2, pred 2 -> 1/3, 1/2;
    # class 2: hits 1, gt 1, pred 2 -> 1/2, 1
    assert metrics["per_class"] == [
        {"class": "a", "IoU": pytest.approx(2 / 3), "accuracy": pytest.approx(2 / 3)},
        {"class": "b", "IoU": pytest.approx(1 / 3), "accuracy": pytest.approx(1 / 2)},
        {"class": "c", "IoU": pytest.approx(1 / 2), "accuracy": pytest.approx(1.0)},
    ]
    assert metrics["mIoU"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(4 / 6)
    assert metrics["mean_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert "| b | 33.33 | 50.00 |" in (tmp_path / "per_class_iou.md").read_text()
    (table,) = metric_tables(metrics)  # the eval CLI's per-class table: all three rows, in class order
    assert (table.title, table.columns, table.gap_after, table.note) == (
        "per-class IoU",
        ["class", "IoU", "accuracy"],
        None,
        "",
    )
    assert table.rows == [["a", "0.6667", "0.6667"], ["b", "0.3333", "0.5000"], ["c", "0.5000", "1.0000"]]


def test_ohem_keeps_only_hard_pixels() -> None:
    # 4 pixels, 2 classes; true-class probabilities 0.5, 0.73, 0.88, 0.95 (logit gaps 0, 1, 2, 3).
    logits = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]).T.reshape(1, 2, 1, 4)
    target = torch.zeros(1, 1, 4, dtype=torch.long)
    nll = [math.log(1 + math.exp(-g)) for g in (0, 1, 2, 3)]
    # thresh 0.9, min_kept 1: the 2nd lowest probability (0.73) < 0.9, so threshold 0.9 keeps 3 pixels.
    assert float(ohem_cross_entropy(logits, target, 0.9, 1)) == pytest.approx(sum(nll[:3]) / 3)
    # thresh 0.6, min_kept 2: the 3rd lowest probability (0.88) becomes the threshold: 2 pixels below it.
    assert float(ohem_cross_entropy(logits, target, 0.6, 2)) == pytest.approx(sum(nll[:2]) / 2)
    target[0, 0, 0] = 255  # an ignored pixel never counts
    assert float(ohem_cross_entropy(logits, target, 0.9, 1)) == pytest.approx(sum(nll[1:3]) / 2)


def _linear_head() -> torch.nn.Conv2d:
    head = torch.nn.Conv2d(3, 4, 1)
    with torch.no_grad():
        head.weight.copy_(torch.arange(12, dtype=torch.float32).reshape(4, 3, 1, 1) / 10 - 0.5)
        head.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    return head


def test_sliding_window_equals_whole_image_for_a_per_pixel_model() -> None:
    head = _linear_head()
    image = torch.randn(3, 37, 53)
    whole = image_logits(head, image)
    slid = sliding_logits(head, image, (16, 24), batch_size=3)
    torch.testing.assert_close(slid, whole)
    torch.testing.assert_close(sliding_logits(head, image[:, :10, :12], (16, 24), 2), whole[:, :10, :12])


def test_multi_scale_and_flip_against_a_known_model() -> None:
    # A model that is not flip-symmetric: logits are the input's x coordinate ramp times a per-class weight.
    def forward(x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(0, 1, x.shape[-1]).expand(x.shape[0], 1, x.shape[-2], x.shape[-1])
        return torch.cat([ramp, 1 - ramp], 1) + x[:, :1]

    image = torch.randn(3, 8, 12)
    got = image_logits(forward, image, scales=[0.5, 1.0], flip=True)
    expected = torch.zeros(2, 8, 12)
    for scale in (0.5, 1.0):
        x = (
            F.interpolate(image[None], size=(round(8 * scale), round(12 * scale)), mode="bilinear")
            if scale != 1
            else image[None]
        )
        for flipped in (False, True):
            out = forward(x.flip(-1)).flip(-1) if flipped else forward(x)
            expected += F.interpolate(out, size=(8, 12), mode="bilinear")[0] if scale != 1 else out[0]
    torch.testing.assert_close(got, expected)
    # Flipping back makes the ramp cancel: class 0 and 1 sum to the same per scale.
    assert np.allclose((got[0] - got[1]).numpy(), 0, atol=1e-5)
