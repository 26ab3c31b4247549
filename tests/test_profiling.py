"""Profiling: MAC counts against the reference code's (architecture notes §5), the paper's figures, speed,
memory and the `hrformer profile` command. Counting runs on the meta device: even B at 1024x1024 is fast.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from hrformer_core.errors import UsageError
from hrformer_core.models import create_model, model_config
from hrformer_core.profiling import (
    count_macs,
    count_params,
    measure_latency,
    measure_peak_memory,
    measure_throughput,
    paper_convention,
    profile_model,
    resolve_models,
)
from hrformer_core.profiling.bench import resolve_device
from hrformer_core.profiling.reference import PAPER_FIGURES, find_paper_figure


def gmacs(name: str, task: str, hw: tuple[int, int], convention: str, **overrides: object) -> float:
    return count_macs(model_config(name, task, **overrides), hw, convention) / 1e9


# The reference code measured under the pose paper's convention (mmcv 1.x, SyncBN not counted).
@pytest.mark.parametrize(
    ("name", "hw", "expected"),
    [
        ("hrformer-t", (256, 192), 1.313),
        ("hrformer-s", (256, 192), 2.803),
        ("hrformer-b", (256, 192), 12.164),
        ("hrformer-t", (384, 288), 2.928),
        ("hrformer-s", (384, 288), 6.212),
        ("hrformer-b", (384, 288), 26.803),
    ],
)
def test_pose_paper_flops(name: str, hw: tuple[int, int], expected: float) -> None:
    assert paper_convention("pose") == "mmcv-syncbn"
    assert gmacs(name, "pose", hw, "mmcv-syncbn") == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(
    ("name", "overrides", "expected"),
    [
        ("hrformer-t", {}, 1.828),
        ("hrformer-s", {}, 3.556),
        ("hrformer-b", {}, 13.713),
        ("hrformer-t", {"ffn_dw": False}, 1.767),  # Table 7's ablation
    ],
)
def test_cls_paper_flops(name: str, overrides: dict, expected: float) -> None:
    assert paper_convention("cls") == "fvcore"
    assert gmacs(name, "cls", (224, 224), "fvcore", **overrides) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(("name", "expected"), [("hrformer-b-w15", 1119.86), ("hrformer-b", 1051.6)])
def test_seg_paper_flops_at_1024(name: str, expected: float) -> None:
    assert paper_convention("seg") == "fvcore"
    assert gmacs(name, "seg", (1024, 1024), "fvcore") == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(
    ("name", "task", "hw", "convention", "expected"),
    [
        ("hrformer-t", "pose", (256, 192), "torch", 1.485),
        ("hrformer-b", "pose", (384, 288), "torch", 30.453),
        ("hrformer-t", "cls", (224, 224), "torch", 1.708),
        ("hrformer-t", "pose", (256, 192), "mmcv", 1.344),
        ("hrformer-b", "pose", (384, 288), "mmcv", 27.077),
        ("hrformer-b", "cls", (224, 224), "mmcv", 12.105),
    ],
)
def test_other_conventions_match_reference_code(
    name: str, task: str, hw: tuple[int, int], convention: str, expected: float
) -> None:
    assert gmacs(name, task, hw, convention) == pytest.approx(expected, rel=0.002)


def test_conventions_on_a_hand_counted_module() -> None:
    """Conv 3->4 k3 on 8x8 (6912 MACs, 256 outputs) + ReLU + Linear 4->2 on 8 tokens of 4 channels."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(2), nn.Linear(64, 2))
    model.train()
    conv, outputs, linear = 3 * 9 * 4 * 64, 4 * 64, 4 * 64 * 2
    assert count_macs(model, (8, 8), "torch") == conv + linear
    assert count_macs(model, (8, 8), "mmcv") == conv + outputs + outputs + linear  # + bias adds + ReLU
    assert count_macs(model, (8, 8), "fvcore") == conv + outputs + linear + 4 * 2  # + ReLU + 3-D linear bias
    assert count_macs(model, (8, 8), "torch", batch=3) == 3 * (conv + linear)
    assert model.training, "counting must hand the module back in the mode it came in"


def test_counting_a_real_module_counts_attention_like_meta() -> None:
    """On CPU tensors the fused SDPA kernels count 0 unless the math kernel is forced."""
    model = create_model("hrformer-t", task="pose")
    assert count_macs(model, (64, 48), "torch") == count_macs(model.config, (64, 48), "torch")


def test_unknown_convention_and_task_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown FLOP convention 'thop'.*torch, mmcv, mmcv-syncbn, fvcore"):
        count_macs(model_config("hrformer-t"), (256, 192), "thop")
    with pytest.raises(UsageError, match="unknown task 'det'"):
        paper_convention("det")


def test_params_split_and_match_reference() -> None:
    with torch.device("meta"):
        params = count_params(create_model("hrformer-t", task="pose"))
    assert params["head"] == 18 * 17 + 17  # the 1x1 heatmap conv
    assert params["backbone"] + params["head"] == params["total"]
    assert params["total"] / 1e6 == pytest.approx(2.525, abs=5e-4)


def test_paper_figures_and_the_t384_typo() -> None:
    typo = find_paper_figure(model_config("hrformer-t", "pose"), (384, 288))
    assert typo is not None and typo.gmacs == 1.8 and "typo" in typo.note
    assert find_paper_figure(model_config("hrformer-t", "pose"), (256, 192)).gmacs == 1.3
    assert find_paper_figure(model_config("hrformer-t", "cls", ffn_dw=False), (224, 224)).gmacs == 1.76
    assert find_paper_figure(model_config("hrformer-b-w15", "seg"), (1024, 1024)).params_m == 56.2
    assert find_paper_figure(model_config("hrformer-t", "pose"), (512, 384)) is None
    assert find_paper_figure(model_config("hrformer-t", "pose", num_keypoints=5), (256, 192)) is None
    for figure in PAPER_FIGURES:  # every row names a model the registry can build
        assert figure.config().name == figure.model


def test_resolve_models() -> None:
    assert resolve_models("b", "seg") == ["hrformer-b-w15"]
    assert resolve_models("all", "pose") == ["hrformer-t", "hrformer-s", "hrformer-b"]
    assert resolve_models("hrnet-s", "cls") == ["hrnet-s"]
    with pytest.raises(UsageError, match="unknown variant 'x'.*t, s, b, all"):
        resolve_models("x", "pose")


def test_profile_model_without_speed() -> None:
    result = profile_model("hrformer-s", "pose", speed=False)
    assert result["input_size"] == [256, 192] and result["speed"] is None
    assert result["gmacs"]["mmcv-syncbn"] == pytest.approx(2.803, rel=1e-3)
    assert result["paper"]["gmacs"] == 2.8
    expected_diff = 100 * (result["gmacs"]["mmcv-syncbn"] / 2.8 - 1)
    assert result["paper"]["gmacs_diff_pct"] == pytest.approx(expected_diff)
    assert result["reference_code_gmacs"]["fvcore"] == 3.410


def test_latency_throughput_and_memory_on_a_tiny_model() -> None:
    model = create_model("hrformer-t", task="pose").train()
    latency = measure_latency(model, (1, 3, 64, 48), "cpu", warmup=1, runs=2)
    assert latency["runs"] == 2 and 0 < latency["median_s"] <= latency["p90_s"]
    assert model.training
    assert measure_throughput(model, 2, (64, 48), "cpu", warmup=0, runs=1) > 0
    memory = measure_peak_memory(model.config, (2, 3, 64, 48), "cpu")
    assert 0 < memory["forward_bytes"] < memory["peak_bytes"]
    assert "fresh process" in memory["method"]
    with pytest.raises(UsageError, match="runs >= 1"):
        measure_latency(model, (1, 3, 64, 48), "cpu", runs=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where there is no GPU")
def test_cuda_without_gpu_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="device 'cuda'"):
        resolve_device("cuda")


def cli():
    from hrformer_cli.app import app

    return app


def test_cli_profile_writes_json_and_markdown(tmp_path) -> None:
    out, md = tmp_path / "out.json", tmp_path / "report.md"
    args = ["profile", "--variant", "t", "--task", "pose", "--no-speed"]
    args += ["--json", str(out), "--markdown", str(md)]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    (row,) = data["results"]
    assert row["model"] == "hrformer-t" and row["params"]["total"] / 1e6 == pytest.approx(2.525, abs=5e-4)
    assert row["gmacs"]["mmcv-syncbn"] == pytest.approx(1.313, rel=1e-3)
    assert row["gmacs"]["torch"] == pytest.approx(1.485, rel=1e-3)
    assert row["paper"]["gmacs"] == 1.3
    text = md.read_text()
    assert "| hrformer-t | pose | 256x192 | 2.525 | 2.5 | 1.485 | 1.313 | 1.3 |" in text
    assert "mmcv-syncbn" in result.output


def test_cli_t384_footnote_explains_the_typo(tmp_path) -> None:
    args = ["profile", "--variant", "t", "--input-size", "384x288", "--no-speed"]
    args += ["--json", str(tmp_path / "t.json")]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    notes = json.loads((tmp_path / "t.json").read_text())["notes"]
    assert any("typo" in note and "2.93 G" in note for note in notes)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variant", "q"], "hrformer-b-w15"),  # typer lists the valid choices
        (["--task", "det"], "pose"),
        (["--input-size", "256by192"], "'256by192': expected HxW"),
        (["--input-size", "16x16"], "'16x16' is too small"),
    ],
)
def test_cli_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli(), ["profile", *args, "--no-speed"])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
