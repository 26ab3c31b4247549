"""Building blocks of HRFormer: convolutional blocks, local-window attention, the FFN and the HRFormer block.

Their BatchNorms and LayerNorms are the drop-in norms of `norms.py` (faster CPU training backwards).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .norms import MatVecBatchNorm2d, MatVecLayerNorm

BN_MOMENTUM = 0.1
LN_EPS = 1e-6


class DropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample while training."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class StridedDepthwiseConv2d(nn.Conv2d):
    """A strided depth-wise conv that stays float32 under CPU autocast.

    oneDNN's bf16 input gradient for strided depth-wise convs is 10-20x slower than its float32 one (1.85 ms
    against 0.2 ms at 18 channels, 64x48, batch 8, 2 cores); these convs are a tiny part of the FLOPs.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False) -> list[nn.Module]:
    conv = StridedDepthwiseConv2d if stride > 1 and groups == cin == cout else nn.Conv2d
    return [
        conv(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias),
        MatVecBatchNorm2d(cout, momentum=BN_MOMENTUM),
    ]


class Bottleneck(nn.Module):
    """ResNet bottleneck (stage 1); `depthwise=True` gives the classification head's BottleneckDWP."""

    expansion = 4

    def __init__(self, cin: int, planes: int, depthwise: bool = False) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = MatVecBatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, groups=planes if depthwise else 1, bias=False)
        self.bn2 = MatVecBatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = MatVecBatchNorm2d(cout, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(*conv_bn(cin, cout, 1)) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class BasicBlock(nn.Module):
    """HRNet's basic block (two 3x3 convs): the HRNet counterpart of each HRFormer variant (Table 11)."""

    def __init__(self, channels: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = MatVecBatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = MatVecBatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(x + self.drop_path(out))


def relative_position_index(window: int) -> Tensor:
    """(w*w, w*w) index into the ((2w-1)^2, heads) bias table, Swin's formula."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)
    return rel[0] * (2 * window - 1) + rel[1]


def window_shift_mask(height: int, width: int, window: int, shift: int) -> Tensor:
    """Additive (windows, w*w, w*w) mask keeping shifted windows from mixing non-adjacent regions (Swin)."""
    labels = torch.zeros(height, width)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    region = 0
    for rows in bounds:
        for cols in bounds:
            labels[rows, cols] = region
            region += 1
    labels = labels.view(height // window, window, width // window, window).transpose(1, 2).reshape(-1, window**2)
    different = labels[:, :, None] != labels[:, None, :]
    return different.float() * -100.0


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """softmax(q kᵀ / sqrt(d) + mask) v through SDPA's fused kernels.

    Training on CPU takes the plain formula where SDPA is slower: SDPA has no fused kernel for a mask that
    needs a gradient (a learnt position bias) and its math fallback adds masking checks, and its bf16 fused
    backward is slower than the plain formula's (a pose-T step at batch 8: 1.77 s against 0.97 s).
    """
    learnt_bias = mask is not None and mask.requires_grad
    if q.device.type == "cpu" and q.requires_grad and (learnt_bias or q.dtype != torch.float32):
        scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
        if mask is not None:
            scores = scores + mask
        return torch.matmul(scores.softmax(-1), v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows (the paper's LSA).

    Maps that are not a multiple of the window are zero-padded, centred, without a mask: padded tokens take
    part as keys and values, exactly as in the reference. q, k and v come from one fused projection.
    """

    def __init__(self, dim: int, num_heads: int, window: int, rel_pos_bias: bool = True, shift: int = 0) -> None:
        super().__init__()
        self.dim, self.num_heads, self.window, self.shift = dim, num_heads, window, shift
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if rel_pos_bias:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        else:
            self.relative_position_bias_table = None

    def position_bias(self) -> Tensor | None:
        if self.relative_position_bias_table is None:
            return None
        length = self.window**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(length, length, self.num_heads).permute(2, 0, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, C) normalised tokens; returns the same shape."""
        batch, height, width, channels = x.shape
        w = self.window
        pad_h, pad_w = (-height) % w, (-width) % w
        top, left = pad_h // 2, pad_w // 2
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, left, pad_w - left, top, pad_h - top))
        padded_h, padded_w = height + pad_h, width + pad_w
        if self.shift:
            x = torch.roll(x, (-self.shift, -self.shift), (1, 2))
        rows, cols = padded_h // w, padded_w // w
        windows = x.reshape(batch, rows, w, cols, w, channels).transpose(2, 3).reshape(-1, w * w, channels)

        head_dim = channels // self.num_heads
        qkv = self.qkv(windows).view(-1, w * w, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        mask = self.attention_mask(batch, padded_h, padded_w, x)
        out = attention(q, k, v, mask)
        out = self.proj(out.transpose(1, 2).reshape(-1, w * w, channels))

        out = out.view(batch, rows, cols, w, w, channels).transpose(2, 3).reshape(batch, padded_h, padded_w, channels)
        if self.shift:
            out = torch.roll(out, (self.shift, self.shift), (1, 2))
        if pad_h or pad_w:
            out = out[:, top : top + height, left : left + width]
        return out

    def attention_mask(self, batch: int, height: int, width: int, like: Tensor) -> Tensor | None:
        bias = self.position_bias()
        if not self.shift:
            # A 4-D (1, heads, L, L) mask lets SDPA take its fused CPU kernel; a 3-D one falls back to math.
            return None if bias is None else bias.unsqueeze(0).to(like.dtype)
        shift_mask = window_shift_mask(height, width, self.window, self.shift).to(like.device)
        mask = shift_mask[:, None]  # (windows, 1, L, L)
        if bias is not None:
            mask = mask + bias[None]
        windows = mask.shape[0]
        mask = mask.expand(batch, windows, self.num_heads, -1, -1)
        return mask.reshape(batch * windows, self.num_heads, *mask.shape[-2:]).to(like.dtype)


class ConvFFN(nn.Module):
    """FFN of the HRFormer block: 1x1 conv, 3x3 depth-wise conv, 1x1 conv, each followed by BN and GELU.

    The depth-wise conv is what exchanges information across the disconnected windows; `depthwise=False`
    removes it with its BN and GELU (paper Table 7).
    """

    def __init__(self, dim: int, hidden: int, depthwise: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.norm1 = MatVecBatchNorm2d(hidden, momentum=BN_MOMENTUM)
        self.act1 = nn.GELU()
        if depthwise:
            self.dw3x3 = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
            self.norm2 = MatVecBatchNorm2d(hidden, momentum=BN_MOMENTUM)
            self.act2 = nn.GELU()
        else:
            self.dw3x3 = self.norm2 = self.act2 = None
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.norm3 = MatVecBatchNorm2d(dim, momentum=BN_MOMENTUM)
        self.act3 = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act1(self.norm1(self.fc1(x)))
        if self.dw3x3 is not None:
            x = self.act2(self.norm2(self.dw3x3(x)))
        return self.act3(self.norm3(self.fc2(x)))


class HRFormerBlock(nn.Module):
    """Pre-norm block: x + LSA(LN(x)), then x + FFN-DW(LN(x)). Input and output are NCHW."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        rel_pos_bias: bool = True,
        ffn_dw: bool = True,
        shift: int = 0,
    ) -> None:
        super().__init__()
        self.norm1 = MatVecLayerNorm(dim, eps=LN_EPS)
        self.attn = WindowAttention(dim, num_heads, window, rel_pos_bias, shift)
        self.norm2 = MatVecLayerNorm(dim, eps=LN_EPS)
        self.ffn = ConvFFN(dim, int(dim * mlp_ratio), ffn_dw)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.permute(0, 2, 3, 1)  # NHWC view; free when x is channels-last
        tokens = tokens + self.drop_path(self.attn(self.norm1(tokens)))
        ffn_out = self.ffn(self.norm2(tokens).permute(0, 3, 1, 2))
        tokens = tokens + self.drop_path(ffn_out.permute(0, 2, 3, 1))
        return tokens.permute(0, 3, 1, 2)
