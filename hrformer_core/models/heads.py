"""Task heads on the four HRFormer branches (paper §3, "Representation head designs")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from .blocks import BN_MOMENTUM, Bottleneck, StridedDepthwiseConv2d
from .config import ModelConfig
from .norms import MatVecBatchNorm2d


def bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(MatVecBatchNorm2d(channels, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))


class PoseHead(nn.Module):
    """1x1 conv from the highest-resolution branch to one heatmap per keypoint."""

    def __init__(self, in_channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, 1)

    def forward(self, features: list[Tensor]) -> Tensor:
        return self.final_layer(features[0])


class ClassificationHead(nn.Module):
    """Bottlenecks to 128/256/512/1024 channels, strided fusion to 1/32, 2048 channels, pooling, classifier.

    HRFormer's head uses depth-wise 3x3 convs in the bottlenecks and the strided fusion; `dense=True` gives
    HRNet's classification head (full 3x3 convs), used by the HRNet counterparts of paper Table 11.
    """

    head_planes = (32, 64, 128, 256)

    def __init__(self, in_channels: tuple[int, ...], num_classes: int, dense: bool = False) -> None:
        super().__init__()
        widths = [p * Bottleneck.expansion for p in self.head_planes]
        self.incre_modules = nn.ModuleList(
            nn.Sequential(Bottleneck(c, p, depthwise=not dense))
            for c, p in zip(in_channels, self.head_planes, strict=True)
        )
        self.downsamp_modules = nn.ModuleList(
            self._downsample(cin, cout, dense) for cin, cout in zip(widths[:-1], widths[1:], strict=True)
        )
        self.final_layer = nn.Sequential(
            nn.Conv2d(widths[-1], 2048, 1), MatVecBatchNorm2d(2048, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(2048, num_classes)

    @staticmethod
    def _downsample(cin: int, cout: int, dense: bool) -> nn.Sequential:
        if dense:
            strided: list[nn.Module] = [nn.Conv2d(cin, cout, 3, 2, 1)]
        else:
            strided = [
                StridedDepthwiseConv2d(cin, cin, 3, 2, 1, groups=cin),
                MatVecBatchNorm2d(cin, momentum=BN_MOMENTUM),
            ]
            strided.append(nn.Conv2d(cin, cout, 1))
        return nn.Sequential(*strided, MatVecBatchNorm2d(cout, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))

    def forward(self, features: list[Tensor]) -> Tensor:
        y = self.incre_modules[0](features[0])
        for i, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](features[i + 1]) + down(y)
        y = self.final_layer(y)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class ObjectContext(nn.Module):
    """OCR's object-contextual attention: pixels query the soft object regions."""

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.key_channels = key_channels

        def proj(cin: int, cout: int, depth: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for k in range(depth):
                layers += [nn.Conv2d(cin if k == 0 else cout, cout, 1), bn_relu(cout)]
            return nn.Sequential(*layers)

        self.f_pixel = proj(channels, key_channels, 2)
        self.f_object = proj(channels, key_channels, 2)
        self.f_down = proj(channels, key_channels, 1)
        self.f_up = proj(key_channels, channels, 1)

    def forward(self, pixels: Tensor, regions: Tensor) -> Tensor:
        batch, _, height, width = pixels.shape
        query = self.f_pixel(pixels).flatten(2).transpose(1, 2)  # (B, HW, key)
        key = self.f_object(regions).flatten(2)  # (B, key, K)
        value = self.f_down(regions).flatten(2).transpose(1, 2)  # (B, K, key)
        sim = torch.softmax(torch.matmul(query, key) * self.key_channels**-0.5, dim=-1)
        context = torch.matmul(sim, value).transpose(1, 2).reshape(batch, self.key_channels, height, width)
        return self.f_up(context)


class OCRDistributor(nn.Module):
    """Augments each pixel with its object context (official SpatialOCR_Module)."""

    def __init__(self, channels: int, key_channels: int, dropout: float = 0.05) -> None:
        super().__init__()
        self.object_context_block = ObjectContext(channels, key_channels)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1), bn_relu(channels), nn.Dropout2d(dropout)
        )

    def forward(self, pixels: Tensor, regions: Tensor) -> Tensor:
        context = self.object_context_block(pixels, regions)
        return self.conv_bn_dropout(torch.cat([context, pixels], 1))


class SegmentationOCRHead(nn.Module):
    """Concatenate the branches at 1/4 resolution, auxiliary head, OCR head; logits at the input size."""

    def __init__(
        self, in_channels: tuple[int, ...], num_classes: int, mid_channels: int = 512, key_channels: int = 256
    ):
        super().__init__()
        total = sum(in_channels)
        self.conv3x3 = nn.Sequential(nn.Conv2d(total, mid_channels, 3, 1, 1), bn_relu(mid_channels))
        self.ocr_distri_head = OCRDistributor(mid_channels, key_channels)
        self.cls_head = nn.Conv2d(mid_channels, num_classes, 1)
        self.aux_head = nn.Sequential(
            nn.Conv2d(total, mid_channels, 3, 1, 1),
            bn_relu(mid_channels),
            nn.Conv2d(mid_channels, num_classes, 1),
        )

    def forward(self, features: list[Tensor], output_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        size = features[0].shape[-2:]
        upsampled = [features[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in features[1:]
        ]
        feats = torch.cat(upsampled, 1)
        aux = self.aux_head(feats)
        feats = self.conv3x3(feats)
        # Soft object regions: each class's probability map (softmax over pixels) pools the features.
        probs = torch.softmax(aux.flatten(2), dim=2)  # (B, K, HW)
        regions = (
            torch.matmul(probs, feats.flatten(2).transpose(1, 2)).transpose(1, 2).unsqueeze(3)
        )  # (B, C, K, 1)
        feats = self.ocr_distri_head(feats, regions)
        logits = self.cls_head(feats)
        aux = F.interpolate(aux, size=output_size, mode="bilinear", align_corners=True)
        logits = F.interpolate(logits, size=output_size, mode="bilinear", align_corners=True)
        return aux, logits


def _rename_prefixed(prefixes: tuple[str, ...]) -> Callable[[str], str]:
    """Official/mmpose key -> ours for a head whose keys sit under one of `prefixes`: they go under `head.`."""

    def rename(key: str) -> str:
        for prefix in prefixes:
            if key.startswith(prefix):
                return "head." + key[len(prefix) :]
        return key

    return rename


def _keep_prefix(prefixes: tuple[str, ...], backbone_unprefixed: bool = False) -> Callable[[str], str]:
    """For heads whose keys start with their module names: `head.` in front (and `backbone.` for the rest)."""

    def rename(key: str) -> str:
        if key.startswith(prefixes):
            return "head." + key
        return "backbone." + key if backbone_unprefixed else key

    return rename


@dataclass(frozen=True)
class HeadSpec:
    """One task head's architecture facts, as data: the builder, the converter and the profiler read them.

    A task package chooses its head by name (`ModelConfig.task`); everything else about the task (data,
    loss, metric, decoding, drawing) lives in the package.
    """

    build: Callable[[ModelConfig], nn.Module]
    all_branches: bool  # the head reads every branch (cls, seg) or only the highest resolution (pose)
    outputs_field: str  # the ModelConfig field holding its output count
    outputs_key: str  # our state-dict key whose first dimension is that count
    defaults: dict[str, Any]  # ModelConfig defaults for this head
    drop_path: dict[str, float]  # the official recipes' drop-path rate per variant (t, s, b)
    output_names: tuple[str, ...]  # names of forward's outputs (ONNX export)
    reference_input_size: tuple[int, int]  # (H, W) of the reference recipes, when the weights record none
    paper_flops_convention: str  # the counting tool behind the paper's FLOPs for this head (profiling)
    paper_input_size: tuple[int, int]  # (H, W) of the paper's table for this head (profiling's default)
    profile_batch: int  # images per forward for throughput and memory
    official_markers: tuple[str, ...]  # key prefixes that identify this head in official/mmpose checkpoints
    official_rename: Callable[[str], str]  # official/mmpose key -> ours (before the backbone renames)
    # The official pose code built relative-position tables but never added them (the line is commented out).
    official_applies_rel_pos_bias: bool = True
    takes_input_size: bool = False  # forward(features, input_hw): the head resizes to the input
    near_zero_init: str | None = None  # a final layer started at std 0.001 (flat first outputs)
    fvcore_counts_ffn_dropouts: bool = False  # the cls reference FFN calls two p=0 dropouts (fvcore counts them)
    # The paper's model per variant where it is not `hrformer-<variant>` (segmentation B has window 15).
    paper_models: dict[str, str] = field(default_factory=dict)


SEG_HEAD_PREFIXES = ("conv3x3.", "ocr_distri_head.", "cls_head.", "aux_head.")
CLS_HEAD_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")

# Ordered: the converter tries the pose markers before the classification head's `final_layer.`.
HEADS: dict[str, HeadSpec] = {
    "pose": HeadSpec(
        build=lambda c: PoseHead(c.channels[0], c.num_keypoints),
        all_branches=False,
        outputs_field="num_keypoints",
        outputs_key="head.final_layer.weight",
        defaults=dict(fuse_upsample="bilinear", num_keypoints=17),
        drop_path={"t": 0.1, "s": 0.1, "b": 0.2},  # pose T has no official recipe and takes S's
        output_names=("heatmaps",),
        reference_input_size=(256, 192),
        paper_flops_convention="mmcv-syncbn",
        paper_input_size=(256, 192),  # Table 3
        profile_batch=8,
        official_markers=("keypoint_head.", "head.final_layer."),
        official_rename=_rename_prefixed(("keypoint_head.", "head.")),
        official_applies_rel_pos_bias=False,
        near_zero_init="final_layer",
    ),
    "seg": HeadSpec(
        build=lambda c: SegmentationOCRHead(c.channels, c.num_classes, c.ocr_mid_channels, c.ocr_key_channels),
        all_branches=True,
        outputs_field="num_classes",
        outputs_key="head.cls_head.weight",
        defaults=dict(fuse_upsample="nearest", num_classes=19),
        drop_path={"t": 0.2, "s": 0.2, "b": 0.2},
        output_names=("aux_logits", "logits"),
        reference_input_size=(512, 1024),
        paper_flops_convention="fvcore",
        paper_input_size=(1024, 1024),  # Table 5
        profile_batch=2,  # 1024x1024 is too heavy for 8 on a CPU
        paper_models={"b": "hrformer-b-w15"},
        official_markers=SEG_HEAD_PREFIXES,
        official_rename=_keep_prefix(SEG_HEAD_PREFIXES),
        takes_input_size=True,
    ),
    "cls": HeadSpec(
        build=lambda c: ClassificationHead(c.channels, c.num_classes, dense=c.block == "basic"),
        all_branches=True,
        outputs_field="num_classes",
        outputs_key="head.classifier.weight",
        defaults=dict(fuse_upsample="nearest", num_classes=1000),
        drop_path={"t": 0.0, "s": 0.0, "b": 0.2},
        output_names=("logits",),
        reference_input_size=(224, 224),
        paper_flops_convention="fvcore",
        paper_input_size=(224, 224),  # Table 6
        profile_batch=8,
        official_markers=CLS_HEAD_PREFIXES,
        official_rename=_keep_prefix(CLS_HEAD_PREFIXES, backbone_unprefixed=True),
        fvcore_counts_ffn_dropouts=True,
    ),
}


def head_spec(name: str) -> HeadSpec:
    if name not in HEADS:
        raise UsageError(f"unknown task {name!r}: expected one of {', '.join(HEADS)}")
    return HEADS[name]
