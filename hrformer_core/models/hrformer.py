"""The HRFormer backbone: HRNet's multi-resolution parallel design with HRFormer blocks in stages 2-4.

Layout (paper Fig. 2): a convolutional stem (1/4 resolution) and stage 1 of bottlenecks, then stages that
add one lower-resolution branch each (1/8, 1/16, 1/32) through HRNet's transitions. Every module of a stage
updates each branch with its own blocks and exchanges information across branches with the fuse layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..errors import UsageError
from .blocks import BN_MOMENTUM, BasicBlock, Bottleneck, HRFormerBlock, conv_bn
from .config import ModelConfig
from .norms import MatVecBatchNorm2d

STEM_CHANNELS = 64
STAGE1_PLANES = 64
MIN_INPUT_SIZE = 32


class FuseUpsample(nn.Module):
    """1x1 conv + BN, then upsampling to the target branch's exact size.

    `bilinear` (pose) upsamples by the scale factor with align_corners=False and resizes bilinearly when odd
    sizes leave it a pixel off; `nearest` (cls, seg) upsamples by nearest neighbour and resizes with
    align_corners=True. Both follow the official code step for step, so outputs match to float precision.
    """

    def __init__(self, cin: int, cout: int, scale: int, mode: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = MatVecBatchNorm2d(cout, momentum=BN_MOMENTUM)
        self.scale, self.mode = scale, mode

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = self.bn(self.conv(x))
        if self.mode == "bilinear":
            x = F.interpolate(x, scale_factor=float(self.scale), mode="bilinear", align_corners=False)
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        else:
            x = F.interpolate(x, scale_factor=float(self.scale), mode="nearest")
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return x


def fuse_downsample(cin: int, cout: int, steps: int, dense: bool) -> nn.Sequential:
    """Stride-2 steps from a higher- to a lower-resolution branch.

    HRFormer uses depth-wise 3x3 + BN + 1x1 + BN per step (ReLU between steps); HRNet (`dense`) a full 3x3.
    """
    layers = []
    for step in range(steps):
        last = step == steps - 1
        out = cout if last else cin
        if dense:
            parts = conv_bn(cin, out, 3, stride=2)
        else:
            parts = conv_bn(cin, cin, 3, stride=2, groups=cin) + conv_bn(cin, out, 1)
        if not last:
            parts.append(nn.ReLU(inplace=True))
        layers.append(nn.Sequential(*parts))
    return nn.Sequential(*layers)


class HRModule(nn.Module):
    """One multi-resolution module: per-branch blocks, then the fuse layers and ReLU."""

    def __init__(
        self, config: ModelConfig, num_branches: int, drop_paths: list[float], all_outputs: bool
    ) -> None:
        super().__init__()
        channels = config.channels[:num_branches]
        self.branches = nn.ModuleList(
            nn.Sequential(
                *(
                    self._block(config, b, k, drop_paths[k])
                    for k in range(config.num_blocks[num_branches - 1])
                )
            )
            for b in range(num_branches)
        )
        dense = config.block == "basic"
        num_outputs = num_branches if all_outputs else 1
        fuse_layers = []
        for i in range(num_outputs):
            row = []
            for j in range(num_branches):
                if j > i:
                    row.append(FuseUpsample(channels[j], channels[i], 2 ** (j - i), config.fuse_upsample))
                elif j < i:
                    row.append(fuse_downsample(channels[j], channels[i], i - j, dense))
                else:
                    row.append(None)
            fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=False)

    @staticmethod
    def _block(config: ModelConfig, branch: int, index: int, drop_path: float) -> nn.Module:
        dim = config.channels[branch]
        if config.block == "basic":
            return BasicBlock(dim, drop_path)
        window = config.window_sizes[branch]
        shift = window // 2 if config.shifted_windows and index % 2 == 1 else 0
        return HRFormerBlock(
            dim,
            config.num_heads[branch],
            window,
            config.mlp_ratio,
            drop_path,
            config.rel_pos_bias,
            config.ffn_dw,
            shift,
        )

    grad_checkpointing = False

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        if self.grad_checkpointing and torch.is_grad_enabled():
            # Recompute each branch in the backward pass instead of storing its activations.
            xs = [checkpoint(branch, x, use_reentrant=False) for branch, x in zip(self.branches, xs, strict=True)]
        else:
            xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        outputs = []
        for i, row in enumerate(self.fuse_layers):
            size = tuple(xs[i].shape[-2:])
            y = None
            for j, layer in enumerate(row):
                if layer is None:
                    term = xs[j]
                elif j > i:
                    term = layer(xs[j], size)
                else:
                    term = layer(xs[j])
                y = term if y is None else y + term
            outputs.append(self.relu(y))
        return outputs


def transition(cins: list[int], couts: list[int]) -> nn.ModuleList:
    """HRNet transition: adapt existing branches (3x3 conv when widths differ), add one strided branch."""
    layers: list[nn.Module | None] = []
    for b, cout in enumerate(couts):
        if b < len(cins):
            layers.append(
                nn.Sequential(*conv_bn(cins[b], cout, 3), nn.ReLU(inplace=True)) if cins[b] != cout else None
            )
        else:
            layers.append(
                nn.Sequential(nn.Sequential(*conv_bn(cins[-1], cout, 3, stride=2), nn.ReLU(inplace=True)))
            )
    return nn.ModuleList(layers)


class HRFormerBackbone(nn.Module):
    """Returns the four branch outputs (1/4 .. 1/32), or only the 1/4 one when `all_outputs` is False."""

    def __init__(self, config: ModelConfig, all_outputs: bool = True) -> None:
        super().__init__()
        self.config = config
        self.all_outputs = all_outputs
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False)
        self.bn1 = MatVecBatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, 2, 1, bias=False)
        self.bn2 = MatVecBatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        stage1_out = STAGE1_PLANES * Bottleneck.expansion
        self.layer1 = nn.Sequential(
            *(
                Bottleneck(STEM_CHANNELS if k == 0 else stage1_out, STAGE1_PLANES)
                for k in range(config.num_blocks[0])
            )
        )

        # Drop-path rates rise linearly over all blocks of stages 2-4; block k of every branch in a module
        # shares rate k of that module's slice.
        depths = [config.num_blocks[s] * config.num_modules[s] for s in (1, 2, 3)]
        total = sum(depths)
        rates = [config.drop_path_rate * k / max(total - 1, 1) for k in range(total)]
        offset = 0
        widths = [stage1_out]
        for stage in (2, 3, 4):
            couts = list(config.channels[:stage])
            setattr(self, f"transition{stage - 1}", transition(widths, couts))
            modules = []
            for m in range(config.num_modules[stage - 1]):
                start = offset + m * config.num_blocks[stage - 1]
                last = stage == 4 and m == config.num_modules[3] - 1
                modules.append(HRModule(config, stage, rates[start:], all_outputs or not last))
            offset += depths[stage - 2]
            setattr(self, f"stage{stage}", nn.Sequential(*modules))
            widths = couts

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade compute for memory while training: branch activations are recomputed in the backward pass."""
        for module in self.modules():
            if isinstance(module, HRModule):
                module.grad_checkpointing = enable

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.shape[-2] < MIN_INPUT_SIZE or x.shape[-1] < MIN_INPUT_SIZE:
            raise UsageError(
                f"input {x.shape[-2]}x{x.shape[-1]} is too small: HRFormer downsamples 32x, "
                f"so height and width must be at least {MIN_INPUT_SIZE}"
            )
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for stage in (2, 3, 4):
            layers = getattr(self, f"transition{stage - 1}")
            xs = [
                (layer(xs[min(b, len(xs) - 1)]) if layer is not None else xs[b])
                for b, layer in enumerate(layers)
            ]
            xs = getattr(self, f"stage{stage}")(xs)
        return xs
