"""Task heads on the four HRFormer branches (paper §3, "Representation head designs")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import BN_MOMENTUM, BatchNorm2d, Bottleneck, StridedDepthwiseConv2d


def bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(BatchNorm2d(channels, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))


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
            nn.Conv2d(widths[-1], 2048, 1), BatchNorm2d(2048, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(2048, num_classes)

    @staticmethod
    def _downsample(cin: int, cout: int, dense: bool) -> nn.Sequential:
        if dense:
            strided: list[nn.Module] = [nn.Conv2d(cin, cout, 3, 2, 1)]
        else:
            strided = [StridedDepthwiseConv2d(cin, cin, 3, 2, 1, groups=cin), BatchNorm2d(cin, momentum=BN_MOMENTUM)]
            strided.append(nn.Conv2d(cin, cout, 1))
        return nn.Sequential(*strided, BatchNorm2d(cout, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))

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
