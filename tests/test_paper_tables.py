"""Our models against the paper's printed tables: parameters and FLOPs, typed here from the paper's text.

Each row is (table, model, head, input HxW, params M, GFLOPs) as printed; our count under the paper's own
counting convention must round to the printed figure. Known exceptions are listed with their reason.
"""

from __future__ import annotations

import pytest
import torch

from hrformer_core.models import create_model, model_config
from hrformer_core.profiling import count_macs, count_params, paper_convention

# (source, model, head, (H, W), params (M) as printed, GFLOPs as printed, options)
PAPER_ROWS = [
    ("Table 3", "hrformer-t", "pose", (256, 192), "2.5", "1.3", {}),
    ("Table 3", "hrformer-b", "pose", (256, 192), "43.2", "12.2", {}),
    ("Table 3", "hrformer-b", "pose", (384, 288), "43.2", "26.8", {}),
    ("Table 5", "hrformer-b-w15", "seg", (1024, 1024), "56.2", "1119.9", {}),
    ("Table 6", "hrformer-t", "cls", (224, 224), "8.0", "1.8", {}),
    ("Table 6", "hrformer-s", "cls", (224, 224), "13.5", "3.6", {}),
    ("Table 6", "hrformer-b", "cls", (224, 224), "50.3", "13.7", {}),
    ("Table 7", "hrformer-t", "cls", (224, 224), "8.0", "1.83", {}),
    ("Table 11", "hrnet-s", "cls", (224, 224), "24.5", "5.0", {}),
    ("Table 11", "hrnet-b", "cls", (224, 224), "85.3", "20.3", {}),
]
# Rows that do not round to the printed figure: (row..., options, params M and GMACs we measure). Our counts
# equal the reference code's (7,746,779 parameters for pose S), so these are the paper's rounding or counting.
KNOWN_DIFFERENCES = [
    # Pose S: the reference code has 7.747 M parameters; the paper prints 7.8.
    ("Table 3", "hrformer-s", "pose", (256, 192), "7.8", "2.8", {}, 7.747, 2.803),
    ("Table 3", "hrformer-s", "pose", (384, 288), "7.8", "6.2", {}, 7.747, 6.212),
    # Table 3's 1.8 G is a typo: every variant scales x2.2 from 256x192 to 384x288 (T: 1.31 -> 2.93).
    ("Table 3", "hrformer-t", "pose", (384, 288), "2.5", "1.8", {}, 2.525, 2.928),
    # Table 7 without the FFN depth-wise conv: 1.767 G under the classification counter, printed 1.76.
    ("Table 7", "hrformer-t", "cls", (224, 224), "7.9", "1.76", {"ffn_dw": False}, 7.943, 1.767),
    # Table 11's HRNet-T: the parameters reproduce (15.6 M), the FLOPs measure 2.65 G against 2.7 G.
    ("Table 11", "hrnet-t", "cls", (224, 224), "15.6", "2.7", {}, 15.597, 2.648),
]


def rounds_to(value: float, printed: str) -> bool:
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return round(value, decimals) == float(printed) or abs(value - float(printed)) <= 0.5 * 10**-decimals + 1e-9


def measure(model: str, head: str, hw: tuple[int, int], options: dict) -> tuple[float, float]:
    with torch.device("meta"):
        params = count_params(create_model(model, task=head, **options))["total"] / 1e6
    gmacs = count_macs(model_config(model, head, **options), hw, paper_convention(head)) / 1e9
    return params, gmacs


@pytest.mark.parametrize(("source", "model", "head", "hw", "params", "gflops", "options"), PAPER_ROWS)
def test_paper_row_reproduces(source, model, head, hw, params, gflops, options) -> None:
    measured_params, measured_gmacs = measure(model, head, hw, options)
    assert rounds_to(measured_params, params), f"{source} {model}: {measured_params:.3f} M vs {params} M"
    assert rounds_to(measured_gmacs, gflops), f"{source} {model}: {measured_gmacs:.3f} G vs {gflops} G"


@pytest.mark.parametrize(
    ("source", "model", "head", "hw", "params", "gflops", "options", "our_params", "our_gmacs"), KNOWN_DIFFERENCES
)
def test_known_differences_are_what_we_say(
    source, model, head, hw, params, gflops, options, our_params, our_gmacs
) -> None:
    measured_params, measured_gmacs = measure(model, head, hw, options)
    assert not (rounds_to(measured_params, params) and rounds_to(measured_gmacs, gflops))
    assert measured_params == pytest.approx(our_params, abs=5e-4)
    assert measured_gmacs == pytest.approx(our_gmacs, abs=5e-4)
