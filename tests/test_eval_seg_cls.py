"""Segmentation confusion-matrix metrics and top-k accuracy against hand-computed examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from hrformer_core.errors import DataError, UsageError
from hrformer_core.evaluation import ConfusionMatrix, TopKAccuracy

TARGET = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
PRED = torch.tensor([[[0, 1, 1], [1, 2, 0]]])


def test_confusion_matrix_metrics_match_hand_computation() -> None:
    cm = ConfusionMatrix(num_classes=4)
    cm.update(PRED, TARGET)
    expected = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(cm.matrix, expected)
    metrics = cm.compute()
    assert metrics["IoU"][:3] == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert metrics["IoU"][3] is None
    assert metrics["mIoU"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(4 / 5)
    assert metrics["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert metrics["accuracy"][:3] == pytest.approx([1 / 2, 1.0, 1.0]) and metrics["accuracy"][3] is None


def test_predicted_but_absent_class_counts_as_zero_iou_and_logits_are_accepted() -> None:
    cm = ConfusionMatrix(num_classes=4)
    labels = torch.tensor([[[3, 1, 1], [1, 2, 0]]])
    logits = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    cm.update(logits, TARGET)
    metrics = cm.compute()
    assert metrics["IoU"] == pytest.approx([0.0, 2 / 3, 1.0, 0.0])
    assert metrics["mIoU"] == pytest.approx((2 / 3 + 1) / 4)
    assert metrics["mean_accuracy"] == pytest.approx((0 + 1 + 1) / 3)


def test_confusion_matrix_merge_equals_single_pass_and_reset_clears() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (4, 8, 8), generator=generator)
    pred = torch.randint(0, 5, (4, 8, 8), generator=generator)
    whole, first, second = ConfusionMatrix(5), ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(pred, target)
    first.update(pred[:2], target[:2])
    second.update(pred[2:], target[2:])
    first.merge(second)
    assert torch.equal(first.matrix, whole.matrix)
    assert int(whole.matrix.sum()) == target.numel()
    whole.reset()
    assert whole.compute() == {
        "mIoU": 0.0, "IoU": [None] * 5, "pixel_accuracy": 0.0, "mean_accuracy": 0.0, "accuracy": [None] * 5
    }  # fmt: skip


def test_counts_all_reduce_through_torch_distributed(tmp_path: Path) -> None:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this torch build")
    cm, acc = ConfusionMatrix(4), TopKAccuracy((1,))
    cm.update(PRED, TARGET)
    acc.update(torch.eye(3), torch.tensor([0, 1, 0]))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        dist.all_reduce(cm.matrix)
        dist.all_reduce(acc.counts)
    finally:
        dist.destroy_process_group()
    assert cm.compute()["pixel_accuracy"] == pytest.approx(4 / 5)
    assert acc.compute() == {"top1": pytest.approx(200 / 3)}


def test_confusion_matrix_rejects_bad_labels_and_shapes() -> None:
    cm = ConfusionMatrix(num_classes=3)
    with pytest.raises(DataError, match="label value 7 is outside \\[0, 3\\)"):
        cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 7], [1, 255]]]))
    with pytest.raises(UsageError, match="does not match"):
        cm.update(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    assert int(cm.matrix.sum()) == 0


def test_topk_accuracy_matches_hand_computation() -> None:
    logits = torch.tensor([
        [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],  # target 1: top-1 hit
        [0.5, 0.1, 0.4, 0.3, 0.2, 0.0],  # target 2: 2nd best, top-5 hit
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # target 5: last, miss
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # target 1: 5th best, top-5 hit
    ])
    acc = TopKAccuracy()
    acc.update(logits, torch.tensor([1, 2, 5, 1]))
    assert acc.compute() == {"top1": pytest.approx(25.0), "top5": pytest.approx(75.0)}
    other = TopKAccuracy()
    other.update(logits[:1], torch.tensor([1]))
    acc.merge(other)
    assert acc.compute() == {"top1": pytest.approx(40.0), "top5": pytest.approx(80.0)}


def test_topk_accuracy_edge_cases() -> None:
    acc = TopKAccuracy(ks=(1, 5))
    assert acc.compute() == {"top1": 0.0, "top5": 0.0}
    acc.update(torch.tensor([[0.2, 0.8, 0.1], [0.9, 0.0, 0.1]]), torch.tensor([2, 0]))
    assert acc.compute() == {"top1": pytest.approx(50.0), "top5": pytest.approx(100.0)}
    with pytest.raises(DataError, match="target class 3"):
        acc.update(torch.zeros(1, 3), torch.tensor([3]))
    with pytest.raises(UsageError, match="targets"):
        acc.update(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(UsageError, match="cannot merge"):
        acc.merge(TopKAccuracy(ks=(1,)))
    with pytest.raises(UsageError, match="positive"):
        TopKAccuracy(ks=(0,))
