"""The named ablation studies as data: each is a set of arms that differ in one model setting.

An arm is a handful of recipe `model.*` keys; every other key of the recipe (data, schedule, seeds, budget)
is the same for all arms of a study. The paper's numbers for an arm are those of its row in Tables 7, 9 and 11
as `profiling.reference` holds them (`PAPER_ROWS`: the printed metrics; `PAPER_FIGURES`: parameters and FLOPs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..models import ModelConfig, model_config
from ..profiling.reference import HRNET_NOTE, PAPER_ROWS, SHIFTED_WINDOW_NOTE, PaperRow

VARIANT_FIELD = "{variant}"  # in an arm's model name: the variant (t, s, b) of the model under study


def metric_scale(metric: str) -> float | None:
    """The factor that turns our value of `metric` into the paper's percent (AP and mIoU are fractions here,
    top-1 is a percentage); None for a metric the paper does not print."""
    return next((m.scale for row in PAPER_ROWS for m in row.metrics if m.metric == metric), None)


@dataclass(frozen=True)
class Arm:
    """One side of a study: the recipe model keys it sets, and the tasks it applies to."""

    name: str
    label: str
    model: Mapping[str, Any]
    tasks: tuple[str, ...] | None = None  # None: every task

    def applies_to(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks

    def model_values(self, variant: str) -> dict[str, Any]:
        """The arm's model keys for a model of `variant`, with `{variant}` filled in."""
        return {
            key: value.replace(VARIANT_FIELD, variant) if isinstance(value, str) else value
            for key, value in self.model.items()
        }

    def overrides(self, variant: str) -> list[str]:
        """The arm as recipe overrides (`model.ffn_dw=false`); JSON values parse as YAML."""
        return [f"model.{key}={json.dumps(value)}" for key, value in self.model_values(variant).items()]

    def model_config(self, variant: str, head: str) -> ModelConfig:
        """The arm's model for `variant` with `head`'s defaults (the paper's class and keypoint counts): what
        `--profile-only` measures; the arm's model name, else `hrformer-<variant>`, with its switches."""
        values = self.model_values(variant)
        name = values.pop("name", f"hrformer-{variant}")
        switches = {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
        return model_config(name, head, **switches)

    def describe(self) -> str:
        return ", ".join(f"{key}={json.dumps(value)}" for key, value in self.model.items())


@dataclass(frozen=True)
class Study:
    """A named comparison. `baseline` is the arm the others are compared with (the published HRFormer).

    `train_task` is the task a study trains on by default; `profile_task` the head `--profile-only` measures
    by default (where the paper measured its parameters and FLOPs), for each of `profile_variants`.
    """

    name: str
    title: str
    paper_table: str
    arms: tuple[Arm, ...]
    baseline: str
    train_task: str
    profile_task: str
    profile_variants: tuple[str, ...] = ("t",)
    notes: tuple[str, ...] = ()

    def arm(self, name: str) -> Arm:
        return next(arm for arm in self.arms if arm.name == name)

    def arms_for(self, task: str) -> tuple[Arm, ...]:
        return tuple(arm for arm in self.arms if arm.applies_to(task))

    @property
    def varied_keys(self) -> list[str]:
        """The recipe keys the arms set (a user override of one of them would undo the study)."""
        return sorted({f"model.{key}" for arm in self.arms for key in arm.model})


WINDOW_NOTE = (
    "Windows 13 and 15 exist only in the official segmentation models (hrt_base_win13 for ADE20K, "
    "hrt_base_win15 elsewhere): at pose and classification inputs the low-resolution branches are smaller "
    "than such windows, which would only add padding. Official README mIoU (single scale): PASCAL-Context "
    "B 56.3 vs B-w15 57.6, Cityscapes 81.4 vs 81.9, COCO-Stuff 41.6 vs 42.4, ADE20K B 46.3 vs B-w13 48.7."
)
REL_POS_BIAS_NOTE = (
    "The official pose code builds the relative position bias tables but never adds them (the line is "
    "commented out), so its pose results are without the bias; classification, segmentation and mmpose 1.x "
    "add it. mmpose's first HRFormer release, trained without it, reported COCO AP S-256 73.7 and B-256 75.3; "
    "its retrained models, with it, 73.8 and 75.4 (mmpose PR #1245)."
)
TABLE11_MODELS_NOTE = "The study trains the recipe's variant (T at the quick starts); --profile-only shows T, S and B."

STUDIES: dict[str, Study] = {
    study.name: study
    for study in (
        Study(
            name="ffn-dwconv",
            title="FFN with and without the 3x3 depth-wise convolution (HRFormer-T)",
            paper_table="Table 7",
            arms=(
                Arm("without-dw", "FFN w/o 3x3 DW-Conv.", {"ffn_dw": False}),
                Arm("with-dw", "FFN w/ 3x3 DW-Conv.", {"ffn_dw": True}),
            ),
            baseline="with-dw",
            train_task="pose",
            profile_task="cls",
        ),
        Study(
            name="shift-vs-dwconv",
            title="Shifted windows without the FFN depth-wise conv vs the depth-wise conv without shifting",
            paper_table="Table 9",
            arms=(
                Arm("dwconv", "no shifted windows, 3x3 DW conv in FFN", {"shifted_windows": False, "ffn_dw": True}),
                Arm("shifted", "shifted windows, no 3x3 DW conv in FFN", {"shifted_windows": True, "ffn_dw": False}),
            ),
            baseline="dwconv",
            train_task="pose",
            profile_task="cls",
            notes=(SHIFTED_WINDOW_NOTE,),
        ),
        Study(
            name="hrnet-vs-hrformer",
            title="HRNet with two-3x3-conv basic blocks vs HRFormer (same widths and depths)",
            paper_table="Table 11",
            arms=(
                Arm("hrnet", "HRNet (basic blocks)", {"name": f"hrnet-{VARIANT_FIELD}"}),
                Arm("hrformer", "HRFormer", {"name": f"hrformer-{VARIANT_FIELD}"}),
            ),
            baseline="hrformer",
            train_task="pose",
            profile_task="cls",
            profile_variants=("t", "s", "b"),
            notes=(TABLE11_MODELS_NOTE, HRNET_NOTE),
        ),
        Study(
            name="window-size",
            title="Attention window 7 vs 13 and 15 (the official segmentation models)",
            paper_table="",
            arms=(
                Arm("w7", "window 7", {"window_sizes": [7, 7, 7, 7]}),
                Arm("w13", "window 13", {"window_sizes": [13, 13, 13, 13]}, tasks=("seg",)),
                Arm("w15", "window 15", {"window_sizes": [15, 15, 15, 15]}, tasks=("seg",)),
            ),
            baseline="w7",
            train_task="seg",
            profile_task="seg",
            profile_variants=("b",),
            notes=(WINDOW_NOTE,),
        ),
        Study(
            name="rel-pos-bias",
            title="Attention with and without the relative position bias",
            paper_table="",
            arms=(
                Arm("with-rpb", "with relative position bias (cls, seg, mmpose 1.x)", {"rel_pos_bias": True}),
                Arm("without-rpb", "without it (the official pose code)", {"rel_pos_bias": False}),
            ),
            baseline="with-rpb",
            train_task="pose",
            profile_task="pose",
            notes=(REL_POS_BIAS_NOTE,),
        ),
    )
}  # fmt: skip


def paper_row(study: Study, arm: Arm, variant: str) -> PaperRow | None:
    """The row of the study's paper table for `arm` on the `variant` model (None where the paper has none)."""
    values = arm.model_values(variant)
    name = values.get("name", f"hrformer-{variant}")
    wanted = (name, values.get("ffn_dw", True), values.get("shifted_windows", False))
    for row in PAPER_ROWS:
        if row.table == study.paper_table and (row.model, row.ffn_dw, row.shifted_windows) == wanted:
            return row
    return None


def get_study(name: str) -> Study:
    """The study called `name`; an unknown name lists the valid ones."""
    if name not in STUDIES:
        raise UsageError(f"unknown study {name!r}: expected one of {', '.join(STUDIES)} (see hrformer ablate --list)")
    return STUDIES[name]
