"""Profiling: parameters, MACs under each counting convention, latency, throughput and peak memory.

`profile_model` gathers them for one model, beside the paper's figure for it; the CLI only formats the result.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UsageError
from ..models import build_model, list_models, model_config
from ..models.heads import head_spec
from .bench import measure_latency, measure_peak_memory, measure_throughput, resolve_device
from .flops import CONVENTIONS, count_macs, count_params, paper_convention
from .reference import REFERENCE_CODE_GMACS, find_paper_figure

__all__ = [
    "CONVENTIONS", "VARIANTS", "count_macs", "count_params",
    "measure_latency", "measure_peak_memory", "measure_throughput", "paper_convention", "profile_model",
    "resolve_models",
]  # fmt: skip

VARIANTS = ("t", "s", "b")
LATENCY_RUNS, LATENCY_WARMUP = 10, 3
THROUGHPUT_RUNS, THROUGHPUT_WARMUP = 5, 1


def resolve_models(variant: str, task: str) -> list[str]:
    """Registry names for `t`, `s`, `b`, `all` or a full model name; a variant is the paper's model for the
    head (segmentation `b` is Table 5's HRFormer-B with window 15)."""
    if variant == "all":
        return [name for v in VARIANTS for name in resolve_models(v, task)]
    if variant in VARIANTS:
        return [head_spec(task).paper_models.get(variant, f"hrformer-{variant}")]
    if variant in list_models():
        return [variant]
    choices = ", ".join([*VARIANTS, "all", *list_models()])
    raise UsageError(f"unknown variant {variant!r}: expected one of {choices}")


def _diff_pct(ours: float, paper: float) -> float:
    return 100.0 * (ours - paper) / paper


def profile_model(
    name: str,
    task: str,
    input_hw: tuple[int, int] | None = None,
    batch: int | None = None,
    device: str = "cpu",
    speed: bool = True,
) -> dict[str, Any]:
    """Params, GMACs under every convention and, with `speed`, latency (batch 1), throughput and peak
    memory (batch `batch`) of a randomly initialised `name` model for `task`, beside the paper's figures."""
    config = model_config(name, task)
    input_hw = tuple(input_hw or head_spec(task).paper_input_size)
    batch = batch or head_spec(task).profile_batch
    if batch < 1:
        raise UsageError(f"batch must be at least 1, got {batch}")
    if speed:
        resolve_device(device)  # fail before the counting, not after it
    with torch.device("meta"):
        params = count_params(build_model(config))
    gmacs = {convention: count_macs(config, input_hw, convention) / 1e9 for convention in CONVENTIONS}
    convention = paper_convention(task)
    result: dict[str, Any] = {
        "model": name,
        "task": task,
        "input_size": list(input_hw),
        "batch": batch,
        "device": device,
        "params": params,
        "gmacs": gmacs,
        "paper_convention": convention,
        "reference_code_gmacs": REFERENCE_CODE_GMACS.get((name, task, input_hw)),
        "paper": None,
        "speed": None,
    }
    figure = find_paper_figure(config, input_hw)
    if figure is not None:
        result["paper"] = {
            "params_m": figure.params_m,
            "gmacs": figure.gmacs,
            "source": figure.source,
            "note": figure.note,
            "params_diff_pct": _diff_pct(params["total"] / 1e6, figure.params_m),
            "gmacs_diff_pct": _diff_pct(gmacs[convention], figure.gmacs),
        }
    if speed:
        model = build_model(config)
        result["speed"] = {
            "latency": measure_latency(model, (1, 3, *input_hw), device, LATENCY_WARMUP, LATENCY_RUNS),
            "throughput_images_per_s": measure_throughput(
                model, batch, input_hw, device, THROUGHPUT_WARMUP, THROUGHPUT_RUNS
            ),
            "memory": measure_peak_memory(config, (batch, 3, *input_hw), device),
        }
        del model
    return result
