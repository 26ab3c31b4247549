"""The built-in quick-start sets are hard for colour rules: what benchmarks/quickstart_baselines.py measures.

Bounds come from the issues that define the sets: an untrained model and a majority guess below 0.1 mIoU, a
per-pixel colour classifier at most half the 0.5 mIoU the seg quick start aims at; on the 24 shape classes
colour statistics stay near chance (1/24). Each baseline is also shown to succeed where colour does decide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import quickstart_baselines as qb
from hrformer_core.engine import load_recipe


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HRFORMER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_softmax_regression_learns_a_colour_rule() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    centres = np.array([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]])
    features = centres[labels] + rng.normal(0, 0.05, (600, 3))
    predict = qb.fit_softmax_regression(features[:400], labels[:400], 3)
    assert np.mean(predict(features[400:]) == labels[400:]) == 1.0


def test_seg_scenes_defeat_colour_and_majority(cache: Path) -> None:
    recipe = load_recipe("seg-quickstart", ["data.synthetic_set.num_train=40", "data.synthetic_set.num_val=12"])
    results = qb.seg_baselines(recipe)
    assert results["majority class"] < 0.1
    assert 0.0 < results["RGB logistic regression"] <= 0.25
    assert 0.0 < results[f"colour look-up table ({qb.LUT_LEVELS}^3)"] <= 0.25
    assert qb.untrained(recipe) < 0.1


def test_seg_look_up_table_is_perfect_where_colour_is_the_class() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (5, 8, 8))
    palette = np.array([[200, 10, 10], [10, 200, 10], [10, 10, 200], [200, 200, 10]], np.uint8)
    assert qb.seg_miou(labels, labels, 4) == 1.0
    assert qb.seg_miou(np.zeros_like(labels), labels, 4) < 0.25
    pixels = palette[labels].reshape(-1, 3)
    predict = qb.fit_softmax_regression(pixels / 255, labels.reshape(-1), 4)
    assert qb.seg_miou(predict(pixels / 255).reshape(labels.shape), labels, 4) == 1.0


def test_cls_shapes_defeat_colour_statistics(cache: Path) -> None:
    recipe = load_recipe(
        "cls-quickstart", ["data.synthetic_set.per_class_train=30", "data.synthetic_set.per_class_val=10"]
    )
    results = qb.cls_baselines(recipe)
    assert results["chance"] == pytest.approx(100 / 24)  # percent, as the task's top-1
    assert results["majority class"] == pytest.approx(100 / 24)  # balanced classes
    assert results["mean/std RGB logistic regression"] < 15.0
    assert results["8x8x8 colour histogram logistic regression"] < 15.0


def test_colour_histogram_separates_classes_that_colour_does_decide() -> None:
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(4), 20)
    colours = np.array([[250, 20, 20], [20, 250, 20], [20, 20, 250], [250, 250, 250]])
    images = [np.clip(colours[k] + rng.normal(0, 5, (16, 16, 3)), 0, 255).astype(np.uint8) for k in labels]
    features = qb.colour_histograms(images)
    assert features.shape == (80, 512) and np.allclose(features.sum(1), 1.0)
    predict = qb.fit_softmax_regression(features, labels, 4, weight_decay=1e-3)
    assert np.mean(predict(features) == labels) == 1.0


def test_shape_colours_stand_out_from_any_background() -> None:
    """Version 2's promise: each object colour is at least 300 summed RGB levels from the background's mean
    (the first set's shapes could match their background and never be learned)."""
    from hrformer_core.tasks.cls.synthetic import _background, _object_colour

    rng = np.random.default_rng(3)
    for _ in range(200):
        background = _background(rng, 32)
        colour = np.array(_object_colour(background, rng), np.float32)
        assert np.abs(colour - background.reshape(-1, 3).mean(0)).sum() >= 300
