"""Drop-in BatchNorm and LayerNorm with faster CPU training backwards: the backward's per-channel sums are
matrix-vector products in float32 where PyTorch's CPU kernels are slow.

Both keep PyTorch's state-dict keys, outputs and statistics, and otherwise run PyTorch's own forward and
backward; `MatVecBatchNorm2d` stays an `nn.BatchNorm2d`, so conv + BN folding (`models/fuse.py`) and
SyncBatchNorm conversion treat it as one.

- `MatVecBatchNorm2d` (every BatchNorm in our models) takes its own backward only in training mode (affine,
  tracking running statistics) on CPU with gradients enabled, for a channels-last 4-D map of at most
  `MATVEC_MAX_CHANNELS` (36) channels (HRFormer's narrow branches), and not under tracing (ONNX export).
  There PyTorch's channels-last CPU backward takes 2.5-5.5 ns per value (18-36 channels, 2 cores, fp32 and
  bf16) and the matrix-vector sums a fifth to a half of that. From 64 channels up PyTorch's kernel is faster
  and is kept (72 channels at 64x48, batch 8: PyTorch 1.24 ms, matrix-vector 1.44 ms).
- `MatVecLayerNorm` (the HRFormer block's LayerNorms over the channels of (..., C) tokens) takes its own
  backward on CPU whenever its weight needs a gradient and it is not traced; the input gradient is still
  PyTorch's kernel. PyTorch reduces the weight/bias gradients column by column, 2-10x the input gradient's
  cost for 144-18 channels, and under bf16 autocast accumulates them in bf16; ours are float32 sums.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MATVEC_MAX_CHANNELS = 36


class _MatVecBatchNormFunction(torch.autograd.Function):
    """Training-mode BatchNorm of a channels-last map; the backward sums over the N*H*W rows as matrix-vector
    products in float32."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor | None,
                running_var: Tensor | None, momentum: float, eps: float) -> Tensor:  # fmt: skip
        out, mean, invstd = torch.native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, mean, invstd = ctx.saved_tensors
        batch, channels, height, width = x.shape
        centred = x.permute(0, 2, 3, 1).reshape(-1, channels).float() - mean
        grad_rows = grad.permute(0, 2, 3, 1).reshape(-1, channels).float()
        count = centred.shape[0]
        ones = centred.new_ones(1, count)
        grad_bias = torch.mm(ones, grad_rows).view(channels)
        centred_dot = torch.mm(ones, grad_rows * centred).view(channels)  # sum of dy * (x - mean)
        scale = weight * invstd
        x_coefficient = -scale * invstd * invstd * centred_dot / count
        grad_x = torch.addcmul(-scale * grad_bias / count, centred, x_coefficient).addcmul_(grad_rows, scale)
        grad_x = grad_x.to(x.dtype).view(batch, height, width, channels).permute(0, 3, 1, 2)
        return grad_x, centred_dot * invstd, grad_bias, None, None, None, None


class MatVecBatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d (same state, outputs and statistics) whose CPU training backward for channels-last maps
    of at most 36 channels is matrix-vector products; wider maps keep PyTorch's kernel, faster there."""

    def forward(self, x: Tensor) -> Tensor:
        if (
            self.training
            and self.affine
            and self.track_running_stats
            and x.device.type == "cpu"
            and x.dim() == 4
            and x.shape[1] <= MATVEC_MAX_CHANNELS
            and torch.is_grad_enabled()
            and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.jit.is_tracing()
        ):
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            return _MatVecBatchNormFunction.apply(
                x, self.weight, self.bias, self.running_mean, self.running_var, momentum, self.eps
            )
        return super().forward(x)


class _MatVecLayerNormFunction(torch.autograd.Function):
    """LayerNorm over the last dim (PyTorch's forward and input gradient); the weight and bias gradients are
    matrix-vector products."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        x = x.contiguous()  # in its own dtype, as nn.LayerNorm under CPU autocast
        out, mean, rstd = torch.native_layer_norm(x, (x.shape[-1],), weight, bias, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, bias, mean, rstd = ctx.saved_tensors
        channels = x.shape[-1]
        grad = grad.contiguous()
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.native_layer_norm_backward(
                grad, x, (channels,), mean, rstd, weight, bias, [True, False, False]
            )[0]
        rows = grad.view(-1, channels).to(weight.dtype)
        count = rows.shape[0]
        # sum over rows of dy * (x - mean) * rstd: centred first, as the exact formula (no cancellation when a
        # token's mean is large against its spread), then rstd as the row weights of one matrix-vector product
        centred = x.view(-1, channels).to(weight.dtype) - mean.reshape(count, 1).to(weight.dtype)
        grad_weight = torch.mm(rstd.reshape(1, count).to(weight.dtype), centred.mul_(rows)).view(channels)
        grad_bias = torch.mm(rows.new_ones(1, count), rows).view(channels)
        return grad_x, grad_weight, grad_bias, None


class MatVecLayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the channels of (..., C) tokens with a faster CPU backward.

    Same outputs and input gradient; the weight/bias gradients are summed in the weight's dtype, so under bf16
    autocast they are exact sums where PyTorch's kernel accumulates them in bf16.
    """

    def forward(self, x: Tensor) -> Tensor:
        needs_weight_grad = torch.is_grad_enabled() and self.weight.requires_grad
        if x.device.type == "cpu" and needs_weight_grad and not torch.jit.is_tracing():  # ONNX export traces
            return _MatVecLayerNormFunction.apply(x, self.weight, self.bias, self.eps)
        return super().forward(x)
