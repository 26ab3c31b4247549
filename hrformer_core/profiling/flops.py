"""Parameter and multiply-accumulate (MAC) counts under the conventions the HRFormer paper mixes.

"FLOPs" in the paper are MACs, counted by different tools per task, and the tools disagree by up to 16 %.
Every count here names its convention, so a number can be compared with the figure it claims to match:

* `torch`: `torch.utils.flop_counter` / 2 (convolutions, linears, attention matmuls, nothing else).
* `mmcv` / `mmcv-syncbn`: mmcv 1.x `get_model_complexity_info` (the pose paper's tool); `mmcv-syncbn` leaves
  out BatchNorm, as that tool did for the SyncBN the pose configs used: it reproduces the pose figures.
* `fvcore`: the classification repo's fvcore-derived jit counter under torch 1.7 tracing, which reproduces
  the classification and segmentation figures.

Models are built on the `meta` device, so counting HRFormer-B at 1024x1024 allocates nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from ..errors import UsageError
from ..models import ModelConfig, build_model
from ..models.blocks import ConvFFN, WindowAttention
from ..models.heads import head_spec
from ..models.hrformer import FuseUpsample

CONVENTIONS: dict[str, str] = {
    "torch": "torch.utils.flop_counter / 2: conv, linear and attention matmul MACs; "
    "no bias, norm or activation",
    "mmcv": "mmcv 1.x module hooks: conv (+bias), q/k/v linears, BN and LN x2, ReLU, upsample; "
    "no attention matmuls, softmax, GELU or output projection",
    "mmcv-syncbn": "mmcv 1.x as the pose authors ran it with SyncBN: like mmcv but BatchNorm not counted "
    "(the pose paper's convention)",
    "fvcore": "the cls repo's fvcore jit counter under torch 1.7: conv, matmul, linear (+bias add), BN x4, "
    "softmax x5, add/mul/relu/dropout x1; no LN, GELU or upsample (the cls and seg papers' convention)",
}


def paper_convention(task: str) -> str:
    """The counting convention behind the paper's FLOPs for a task head (its HeadSpec says which)."""
    return head_spec(task).paper_flops_convention


def count_params(model: nn.Module) -> dict[str, int]:
    """Trainable-parameter counts (relative-position tables included, buffers not), split backbone/head."""

    def total(module: nn.Module | None) -> int:
        return 0 if module is None else sum(p.numel() for p in module.parameters())

    backbone = getattr(model, "backbone", None)
    all_params = total(model)
    backbone_params = total(backbone) if backbone is not None else all_params
    return {"total": all_params, "backbone": backbone_params, "head": all_params - backbone_params}


def count_macs(
    model_or_config: nn.Module | ModelConfig, input_hw: tuple[int, int], convention: str, batch: int = 1
) -> float:
    """MACs of one forward pass on a `batch` of `input_hw` images under `convention` (see CONVENTIONS).

    A `ModelConfig` is built on the `meta` device (free at any size); a module is run where it lives, in
    eval mode, on zeros, and handed back in the mode it came in.
    """
    if convention not in CONVENTIONS:
        raise UsageError(f"unknown FLOP convention {convention!r}: expected one of {', '.join(CONVENTIONS)}")
    with _prepared(model_or_config, input_hw, batch) as (model, x):
        if convention == "torch":
            return _torch_macs(model, x)
        if convention == "fvcore":
            return _fvcore_macs(model, x)
        return _mmcv_macs(model, x, count_batch_norm=convention == "mmcv")


@contextmanager
def _prepared(
    model_or_config: nn.Module | ModelConfig, input_hw: tuple[int, int], batch: int
) -> Iterator[tuple[nn.Module, Tensor]]:
    if isinstance(model_or_config, ModelConfig):
        with torch.device("meta"):
            model: nn.Module = build_model(model_or_config)
        device = torch.device("meta")
    else:
        model = model_or_config
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model, torch.zeros(batch, 3, *input_hw, device=device)
    finally:
        model.train(was_training)


def _torch_macs(model: nn.Module, x: Tensor) -> float:
    # The math SDPA kernel decomposes into the matmuls the counter knows; CPU kernels would count 0.
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(x)
    return counter.get_total_flops() / 2


def _mmcv_macs(model: nn.Module, x: Tensor, count_batch_norm: bool) -> float:
    """mmcv 1.x rules: forward hooks on module types, so functional calls (matmuls, softmax) go uncounted."""
    # The reference applied the attention output projection through F.linear, invisible to module hooks.
    output_projections = {id(m.proj) for m in model.modules() if isinstance(m, WindowAttention)}
    total = 0

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        nonlocal total
        total += _mmcv_module_macs(module, inputs[0], output, count_batch_norm)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if id(m) not in output_projections and isinstance(m, _MMCV_COUNTED)
    ]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return float(total)


_MMCV_COUNTED = (
    nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.ReLU, nn.Upsample,
    FuseUpsample,
)  # fmt: skip


def _mmcv_module_macs(module: nn.Module, x: Tensor, output: Any, count_batch_norm: bool) -> int:
    if isinstance(module, nn.Conv2d):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return output.numel() * (per_output + (module.bias is not None))
    if isinstance(module, nn.Linear):
        return x.numel() * module.out_features
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return x.numel() * (2 if module.affine else 1) if count_batch_norm else 0
    if isinstance(module, nn.LayerNorm):
        return x.numel() * (2 if module.elementwise_affine else 1)
    if isinstance(module, nn.GroupNorm):
        return x.numel() * (2 if module.affine else 1)
    if isinstance(module, FuseUpsample):
        # As the reference's nn.Upsample(scale_factor): its output, not the exact-size resize after it.
        batch, _, height, width = x.shape
        return batch * module.conv.out_channels * height * width * module.scale**2
    return output.numel()  # ReLU, nn.Upsample


def _fvcore_macs(model: nn.Module, x: Tensor) -> float:
    counter = _FvcoreCounter()
    handles = []
    config = getattr(model, "config", None)
    if isinstance(config, ModelConfig) and head_spec(config.task).fvcore_counts_ffn_dropouts:
        # The cls copy of the reference FFN calls a p=0 dropout after its hidden and its output activations
        # (the pose and seg copies do not); the traced graph keeps both, one count per element each.
        def ffn_dropouts(module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> None:
            hidden = output.numel() // module.fc2.out_channels * module.fc2.in_channels
            counter.total += hidden + output.numel()

        handles = [m.register_forward_hook(ffn_dropouts) for m in model.modules() if isinstance(m, ConvFFN)]
    try:
        with counter:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return float(counter.total)


class _FvcoreCounter(TorchFunctionMode):
    """Counts torch-level calls as the torch 1.7 trace of the reference forward would show them.

    Torch functions are seen before they decompose into aten ops, so fused calls can be mapped back to the
    reference's op sequence: one `linear` = matmul + bias add, one `scaled_dot_product_attention` = q scaling,
    bmm, bias add, softmax, dropout and bmm. Calls made inside a counted call are not seen again. Channel
    dropout (`aten::feature_dropout`) was not in that counter's table and is not counted. The bias add is
    counted wherever our model adds the bias, pose included, so pose counts exceed the official pose code's
    (which never adds it) by 0.06-0.3 %.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_function__(
        self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = _FVCORE_RULES.get(func)
        if rule is not None:
            self.total += rule(args, kwargs, out)
        return out


def _fv_conv(args: tuple, kwargs: dict, out: Tensor) -> int:
    weight = args[1] if len(args) > 1 else kwargs["weight"]
    return out.numel() * math.prod(weight.shape[1:])  # no bias, as fvcore


def _fv_linear(args: tuple, kwargs: dict, out: Tensor) -> int:
    x = args[0]
    weight = args[1] if len(args) > 1 else kwargs["weight"]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    # torch 1.7 traced a linear on >2-D input as matmul + add_ (counted); on 2-D as addmm (bias free).
    bias_adds = out.numel() if bias is not None and x.dim() > 2 else 0
    return out.numel() * weight.shape[1] + bias_adds


def _fv_matmul(args: tuple, kwargs: dict, out: Tensor) -> int:
    return out.numel() * args[0].shape[-1]


def _fv_attention(args: tuple, kwargs: dict, out: Tensor) -> int:
    query, key = args[0], args[1]
    mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
    logits = math.prod(query.shape[:-1]) * key.shape[-2]
    scale_mul = query.numel()
    matmuls = logits * query.shape[-1] + logits * out.shape[-1]
    bias_add = logits if mask is not None else 0
    softmax, dropout = 5 * logits, logits
    return scale_mul + matmuls + bias_add + softmax + dropout


def _per_element(factor: int) -> Callable[[tuple, dict, Tensor], int]:
    return lambda args, kwargs, out: factor * out.numel()


_FVCORE_RULES: dict[Callable, Callable[[tuple, dict, Tensor], int]] = {
    torch.conv2d: _fv_conv,
    F.linear: _fv_linear,
    torch.matmul: _fv_matmul,
    Tensor.matmul: _fv_matmul,
    torch.bmm: _fv_matmul,
    Tensor.bmm: _fv_matmul,
    F.scaled_dot_product_attention: _fv_attention,
    F.batch_norm: _per_element(4),
    torch.softmax: _per_element(5),
    Tensor.softmax: _per_element(5),
    F.softmax: _per_element(5),
    F.relu: _per_element(1),
    torch.relu: _per_element(1),
    torch.relu_: _per_element(1),
    Tensor.relu: _per_element(1),
    Tensor.relu_: _per_element(1),
    torch.add: _per_element(1),
    Tensor.add: _per_element(1),
    Tensor.add_: _per_element(1),
    torch.mul: _per_element(1),
    Tensor.mul: _per_element(1),
    Tensor.mul_: _per_element(1),
    F.dropout: _per_element(1),
}
