"""Model fidelity: parameter counts to the unit, shapes, options, and registry errors."""

from __future__ import annotations

import pytest
import torch

from hrformer_core.errors import UsageError
from hrformer_core.models import create_model, list_models, model_config


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "task", "expected"),
    [
        ("hrformer-t", "pose", 2_524_759),
        ("hrformer-s", "pose", 7_746_779),
        ("hrformer-b", "pose", 43_211_777),
        ("hrformer-t", "cls", 8_035_820),
        ("hrformer-s", "cls", 13_544_882),
        ("hrformer-b", "cls", 50_320_098),
        ("hrformer-b", "seg", 56_032_512),  # the seg fixture's reference model (window 7, 19 classes)
    ],
)
def test_parameter_counts_equal_reference(name: str, task: str, expected: int) -> None:
    with torch.device("meta"):
        model = create_model(name, task=task)
    assert n_params(model) == expected


def test_ablation_parameter_counts() -> None:
    with torch.device("meta"):
        no_dw = create_model("hrformer-t", task="cls", ffn_dw=False)
        w15 = create_model("hrformer-b-w15", task="seg")
        shifted = create_model("hrformer-t", task="cls", ffn_dw=False, shifted_windows=True)
    assert n_params(no_dw) == 7_942_508  # paper Table 7: 7.9M
    assert round(n_params(w15) / 1e6, 1) == 56.2  # paper Table 5: 56.2M
    assert n_params(shifted) == n_params(no_dw)  # shifting adds a mask, no parameters


@pytest.mark.parametrize(("name", "paper_millions"), [("hrnet-t", 15.6), ("hrnet-s", 24.5), ("hrnet-b", 85.3)])
def test_hrnet_counterparts_match_paper_table_11(name: str, paper_millions: float) -> None:
    """Basic blocks in place of HRFormer blocks, HRNet's dense fusion and classification head."""
    with torch.device("meta"):
        model = create_model(name, task="cls")
    assert round(n_params(model) / 1e6, 1) == paper_millions


def test_relative_position_bias_off_removes_tables() -> None:
    with torch.device("meta"):
        on = create_model("hrformer-t")
        off = create_model("hrformer-t", rel_pos_bias=False)
    assert n_params(on) - n_params(off) == 18_252  # the dead tables of the official pose model


@pytest.mark.parametrize("size", [(256, 192), (250, 190), (64, 96)])
def test_pose_output_shape_any_input(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = create_model("hrformer-t", num_keypoints=5).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 5, -(-size[0] // 4), -(-size[1] // 4))


def test_cls_and_seg_outputs() -> None:
    torch.manual_seed(0)
    cls = create_model("hrformer-t", task="cls", num_classes=10).eval()
    seg = create_model("hrformer-t", task="seg", num_classes=4).eval()
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        assert cls(x).shape == (2, 10)
        aux, logits = seg(x)
    assert aux.shape == logits.shape == (2, 4, 96, 80)


def test_window_padding_is_centred_and_cropped() -> None:
    """A map that needs padding gives the same tokens as running the padded map by hand."""
    torch.manual_seed(0)
    from hrformer_core.models.blocks import WindowAttention

    attn = WindowAttention(8, 2, 7).eval()
    x = torch.randn(1, 10, 12, 8)
    padded = torch.nn.functional.pad(x, (0, 0, 1, 1, 2, 2))  # 14x14: left 1, right 1, top 2, bottom 2
    with torch.no_grad():
        full = attn(padded)[:, 2:12, 1:13]
        out = attn(x)
    torch.testing.assert_close(out, full, rtol=0, atol=1e-6)


def test_shifted_windows_and_hrnet_run() -> None:
    torch.manual_seed(0)
    for model in (
        create_model("hrformer-t", task="cls", ffn_dw=False, shifted_windows=True, num_classes=3),
        create_model("hrnet-t", task="cls", num_classes=3),
    ):
        model.eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_drop_path_schedule() -> None:
    model = create_model("hrformer-s", drop_path_rate=0.1)
    rates = [m.drop_path.rate for m in model.modules() if hasattr(m, "drop_path") and hasattr(m, "attn")]
    assert rates[0] == 0.0 and abs(max(rates) - 0.1) < 1e-7
    stage2_rates = [b.drop_path.rate for b in model.backbone.stage2[0].branches[0]]
    assert stage2_rates == pytest.approx([0.0, 0.1 / 13])


def test_registry_and_errors() -> None:
    names = list_models()
    assert {"hrformer-t", "hrformer-s", "hrformer-b", "hrformer-b-w15", "hrnet-t"} <= set(names)
    with pytest.raises(UsageError, match="did you mean hrformer-t"):
        model_config("hrformer-tt")
    with pytest.raises(UsageError, match="unknown task 'det'"):
        model_config("hrformer-t", task="det")
    model = create_model("hrformer-t").eval()
    with pytest.raises(UsageError, match="too small"):
        model(torch.randn(1, 3, 16, 64))
