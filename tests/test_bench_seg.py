"""The seg benchmark compares like with like: its reference-style path computes what ours computes.

Runs the benchmark's own child functions in-process on a T-sized seg model with small crops.
"""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from benchmarks.bench_seg_speed import inference_child, train_child

TINY = ["model.name=hrformer-t", "data.crop_size=[32,64]"]


def _child_output(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_reference_style_sliding_logits_match_ours(tmp_path, capsys) -> None:
    logits = {}
    for mode in ("reference-style", "eager", "fused+channels-last"):
        inference_child(mode, (48, 96), str(tmp_path / f"{mode}.safetensors"), TINY)
        report = _child_output(capsys)
        # 48x96 with 32x64 windows at stride 21x42: rows start at 0 and 16, columns at 0 and 32.
        assert len(report["window_seconds"]) == 4
        assert report["peak_rss_mb"] > 0
        logits[mode] = load_file(str(tmp_path / f"{mode}.safetensors"))["logits"]
    assert logits["eager"].shape == (19, 48, 96)
    # Random He-initialised weights give logits of tens; float32 rounding then moves them by ~1e-5.
    scale = float(logits["eager"].abs().max())
    assert scale > 1.0
    for mode in ("reference-style", "fused+channels-last"):
        assert float((logits[mode] - logits["eager"]).abs().max()) < 1e-5 * scale, mode


def test_reference_style_training_step_has_our_loss(capsys) -> None:
    losses = {}
    for mode in ("reference-style", "ours"):
        train_child(mode, 1, TINY)
        report = _child_output(capsys)
        assert len(report["step_seconds"]) == 1
        losses[mode] = report["first_loss"]
    # Cross-entropy of random weights (logits of tens) on random labels: positive and finite.
    assert 0.0 < losses["ours"] < float("inf")
    assert losses["reference-style"] == pytest.approx(losses["ours"], rel=1e-5)
