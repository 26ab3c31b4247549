"""ImageNet (window 7) backbones into window-13/15 segmentation models: relative-position tables resized as the
official seg code does (bilinear, align_corners=False, per head on the offset grid)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fixtures import reference_state_dict

from hrformer_core import create_model
from hrformer_core.models.checkpoint import save_model
from hrformer_core.models.pretrained import load_pretrained_backbone, resize_bias_table

TABLE = "relative_position_bias_table"


def _grid_table(values: torch.Tensor) -> torch.Tensor:
    """(side, side, heads) values at (dy, dx) offsets -> a (side * side, heads) table, dy-major as our index."""
    side, _, heads = values.shape
    return values.reshape(side * side, heads)


def test_constant_table_stays_constant() -> None:
    table = _grid_table(torch.tensor([0.25, -1.5]).expand(13, 13, 2))
    resized = resize_bias_table(table, 29 * 29)
    assert resized.shape == (29 * 29, 2)
    torch.testing.assert_close(resized, torch.tensor([0.25, -1.5]).expand(29 * 29, 2))


def test_linear_table_stays_linear_in_the_offsets() -> None:
    # Source value at offset (dy, dx), |d| <= 6: 0.3 dy - 0.2 dx + 1 (head 0), 0.05 dy + 0.4 dx (head 1).
    # With align_corners=False the target offset d (|d| <= 14) samples source offset d * 13 / 29 (centre to
    # centre), so inside the source grid (|d| <= 13) the value is the same plane at d * 13 / 29; beyond it the
    # border value is held.
    d = torch.arange(-6, 7, dtype=torch.float32)
    dy, dx = d[:, None].expand(13, 13), d[None, :].expand(13, 13)
    source = torch.stack([0.3 * dy - 0.2 * dx + 1, 0.05 * dy + 0.4 * dx], -1)
    resized = resize_bias_table(_grid_table(source), 29 * 29).reshape(29, 29, 2)
    t = torch.arange(-14, 15, dtype=torch.float32) * 13 / 29
    ty, tx = t[:, None].expand(29, 29), t[None, :].expand(29, 29)
    expected = torch.stack([0.3 * ty - 0.2 * tx + 1, 0.05 * ty + 0.4 * tx], -1)
    torch.testing.assert_close(resized[1:-1, 1:-1], expected[1:-1, 1:-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(resized[14, 14], source[6, 6])  # offset 0 stays offset 0
    torch.testing.assert_close(resized[0, 0], source[0, 0])  # corners keep the corner value
    torch.testing.assert_close(resized[-1, -1], source[-1, -1])
    torch.testing.assert_close(resize_bias_table(_grid_table(source), 13 * 13), _grid_table(source))  # same size


# hrformer-t: stages 2-4 have 1, 3 and 2 modules of 2, 3 and 4 branches, 2 blocks each -> 4 + 18 + 16 tables.
T_TABLES = 1 * 2 * 2 + 3 * 3 * 2 + 2 * 4 * 2


def _seg_w15() -> torch.nn.Module:
    return create_model("hrformer-t", task="seg", window_sizes=(15,) * 4, ocr_mid_channels=8, ocr_key_channels=4)


def _check_loaded(seg: torch.nn.Module, cls_state: dict[str, torch.Tensor], capsys: pytest.CaptureFixture) -> None:
    key = "backbone.stage3.2.branches.1.1.attn.relative_position_bias_table"
    table = seg.state_dict()[key]
    assert table.shape == (29 * 29, 2)  # branch 1 of T has 2 heads
    torch.testing.assert_close(table[14 * 29 + 14], cls_state[key][6 * 13 + 6])  # the centre entry
    torch.testing.assert_close(table, resize_bias_table(cls_state[key], 29 * 29))
    conv = "backbone.stage4.1.branches.3.0.ffn.dw3x3.weight"
    assert conv in cls_state and torch.equal(seg.state_dict()[conv], cls_state[conv])
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert f"{T_TABLES} relative-position tables interpolated (13x13 to 29x29" in " ".join(out.split())


def test_our_cls_weights_load_into_a_window_15_seg_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(0)
    cls = create_model("hrformer-t", task="cls")
    path = save_model(cls, tmp_path / "cls-t.safetensors")
    seg = _seg_w15()
    assert load_pretrained_backbone(seg, path) == T_TABLES
    _check_loaded(seg, cls.state_dict(), capsys)


def test_official_cls_checkpoint_loads_into_a_window_15_seg_model(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    official = reference_state_dict("cls_t_224")  # skips without /work/shared
    assert sum(k.endswith(TABLE) for k in official) == T_TABLES
    torch.save({"model": official}, tmp_path / "hrt_tiny.pth")
    seg = _seg_w15()
    assert load_pretrained_backbone(seg, tmp_path / "hrt_tiny.pth") == T_TABLES
    ours = create_model("hrformer-t", task="cls")
    load_pretrained_backbone(ours, tmp_path / "hrt_tiny.pth")  # the same file, converted, at window 7
    _check_loaded(seg, ours.state_dict(), capsys)
