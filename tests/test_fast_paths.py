"""Every fast path stays within tolerance of the plain eager model (the performance work's parity test)."""

from __future__ import annotations

import pytest
import torch

from hrformer_core.models import create_model
from hrformer_core.models.blocks import StridedDepthwiseConv2d, attention
from hrformer_core.models.fuse import fuse_for_inference, optimize_for_inference
from hrformer_core.models.norms import MatVecBatchNorm2d, MatVecLayerNorm


@pytest.fixture(scope="module")
def model_and_input() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("hrformer-t", num_keypoints=5)
    # Non-trivial BatchNorm statistics, so folding them is really tested.
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 96, 72))
    return model.eval(), torch.randn(2, 3, 100, 76)


def test_fused_batchnorm_matches_eager(model_and_input) -> None:
    model, x = model_and_input
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=0, atol=1e-5)


def test_channels_last_matches_eager(model_and_input) -> None:
    model, x = model_and_input
    with torch.no_grad():
        expected = model(x)
        fast = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(fast, expected, rtol=0, atol=1e-5)


def test_bf16_autocast_stays_close(model_and_input) -> None:
    model, x = model_and_input
    with torch.no_grad():
        expected = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model(x).float()
    assert (fast - expected).abs().max().item() < 0.05 * expected.abs().max().item() + 1e-3


def test_training_attention_path_matches_sdpa() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(6, 2, 49, 9) for _ in range(3))
    bias = torch.randn(1, 2, 49, 49, requires_grad=True)
    explicit = attention(q, k, v, bias)  # the CPU path taken when the bias needs a gradient
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias.detach())
    torch.testing.assert_close(explicit.detach(), fused, rtol=0, atol=1e-5)
    explicit.sum().backward()
    assert bias.grad is not None and bias.grad.abs().sum() > 0


def test_bf16_training_attention_takes_the_plain_formula(monkeypatch) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(6, 2, 49, 9, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())

    def refuse(*args, **kwargs):
        raise AssertionError("bf16 training on CPU must not take SDPA's fused backward")

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", refuse)
    out = attention(q, k, v, None)
    torch.testing.assert_close(out.float(), expected, rtol=0, atol=2e-2)
    out.float().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))


def test_strided_depthwise_conv_stays_float32_under_cpu_autocast() -> None:
    torch.manual_seed(0)
    conv = StridedDepthwiseConv2d(8, 8, 3, 2, 1, groups=8, bias=False)
    x = torch.randn(2, 8, 12, 10, requires_grad=True)
    plain = torch.nn.functional.conv2d(x, conv.weight, None, 2, 1, 1, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.nn.functional.conv2d(x.bfloat16().float(), conv.weight, None, 2, 1, 1, 8))
    out.sum().backward()
    assert x.grad is not None and conv.weight.grad is not None
    torch.testing.assert_close(conv(x), plain, rtol=0, atol=0)  # without autocast: a plain conv
    model = create_model("hrformer-t")
    strided = [m for m in model.modules() if isinstance(m, StridedDepthwiseConv2d)]
    assert strided and all(m.stride == (2, 2) and m.groups == m.in_channels for m in strided)


@pytest.mark.parametrize("channels", [18, 36])
def test_matvec_batch_norm_matches_pytorch_in_training(channels: int) -> None:
    torch.manual_seed(0)
    ours, theirs = MatVecBatchNorm2d(channels), torch.nn.BatchNorm2d(channels)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5), ours.bias.uniform_(-0.5, 0.5)
    theirs.load_state_dict(ours.state_dict())
    x = (torch.randn(4, channels, 14, 10) * 3 + 2).to(memory_format=torch.channels_last)
    grad = torch.randn_like(x)
    results = []
    for module in (ours, theirs):
        inp = x.clone().requires_grad_()
        out = module(inp)
        out.backward(grad)
        results.append((out, inp.grad, module.weight.grad, module.bias.grad))
    for mine, reference in zip(*results, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-5)
    for key, value in theirs.state_dict().items():  # running statistics and the batch counter
        torch.testing.assert_close(ours.state_dict()[key], value)
    assert ours.num_batches_tracked.item() == 1


def test_matvec_norms_keep_pytorchs_keys_and_convert_to_sync_batch_norm() -> None:
    """Checkpoints, conv + BN folding and SyncBatchNorm conversion see PyTorch's norms."""
    assert list(MatVecBatchNorm2d(4).state_dict()) == list(torch.nn.BatchNorm2d(4).state_dict())
    assert list(MatVecLayerNorm(4).state_dict()) == list(torch.nn.LayerNorm(4).state_dict())
    model = create_model("hrformer-t", num_keypoints=3, num_modules=(1, 1, 1, 1))
    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert batch_norms and all(type(m) is MatVecBatchNorm2d for m in batch_norms)
    keys = list(model.state_dict())
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == len(batch_norms)
    assert not any(isinstance(m, MatVecBatchNorm2d) for m in synced.modules())
    assert list(synced.state_dict()) == keys


def _weight_grad_error(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor, exact: torch.Tensor) -> float:
    module(x).backward(grad)
    return ((module.weight.grad.double() - exact).abs().max() / exact.abs().max()).item()


def test_norm_weight_gradients_are_as_exact_as_pytorchs_for_offset_inputs() -> None:
    """Inputs whose mean is 100x their spread. For the LayerNorm, summing dy * x before removing each token's
    mean cancels digits (about 15x PyTorch's error); the BatchNorm's error is bounded by its batch statistics."""
    torch.manual_seed(0)
    tokens = torch.randn(4, 40, 30, 18) + 100
    grad = torch.randn_like(tokens)
    exact_tokens = tokens.double()
    normalised = (exact_tokens - exact_tokens.mean(-1, keepdim=True)) / torch.sqrt(
        exact_tokens.var(-1, unbiased=False, keepdim=True) + 1e-6
    )
    exact = (grad.double() * normalised).sum((0, 1, 2))
    ours = _weight_grad_error(MatVecLayerNorm(18, eps=1e-6), tokens, grad, exact)
    theirs = _weight_grad_error(torch.nn.LayerNorm(18, eps=1e-6), tokens, grad, exact)
    assert ours <= 2 * theirs + 1e-6, (ours, theirs)

    maps = tokens.permute(0, 3, 1, 2)  # channels-last (N, C, H, W): the narrow BatchNorm path
    exact_maps = maps.double()
    normalised = (exact_maps - exact_maps.mean((0, 2, 3), keepdim=True)) / torch.sqrt(
        exact_maps.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5
    )
    exact = (grad.permute(0, 3, 1, 2).double() * normalised).sum((0, 2, 3))
    ours = _weight_grad_error(MatVecBatchNorm2d(18), maps, grad.permute(0, 3, 1, 2), exact)
    theirs = _weight_grad_error(torch.nn.BatchNorm2d(18), maps, grad.permute(0, 3, 1, 2), exact)
    assert ours <= 2 * theirs + 1e-6, (ours, theirs)


def test_matvec_batch_norm_bf16_gradients_follow_float32() -> None:
    torch.manual_seed(0)
    bn = MatVecBatchNorm2d(18)
    x = torch.randn(4, 18, 14, 10).to(memory_format=torch.channels_last)
    grad = torch.randn_like(x)
    expected = torch.nn.BatchNorm2d(18)
    inp = x.clone().requires_grad_()
    expected(inp).backward(grad)
    low = x.bfloat16().requires_grad_()
    out = bn(low)
    assert out.dtype == torch.bfloat16
    out.backward(grad.bfloat16())
    torch.testing.assert_close(low.grad.float(), inp.grad, rtol=0, atol=0.05)
    torch.testing.assert_close(bn.weight.grad, expected.weight.grad, rtol=0.02, atol=0.05)


def test_training_fast_paths_give_pytorchs_gradients() -> None:
    """The whole model with our norms against the same weights with PyTorch's BatchNorm2d and LayerNorm."""
    import copy

    torch.manual_seed(0)
    ours = create_model("hrformer-t", drop_path_rate=0.0).train().to(memory_format=torch.channels_last)
    plain = copy.deepcopy(ours)
    for module in plain.modules():
        if isinstance(module, MatVecBatchNorm2d):
            module.__class__ = torch.nn.BatchNorm2d
        elif isinstance(module, MatVecLayerNorm):
            module.__class__ = torch.nn.LayerNorm
    x = torch.randn(2, 3, 96, 72).to(memory_format=torch.channels_last)
    target = torch.rand(2, 17, 24, 18)
    outputs = []
    for model in (ours, plain):
        out = model(x)
        ((out - target) ** 2).mean().backward()
        outputs.append(out)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-6)
    largest = max(p.grad.abs().max().item() for p in plain.parameters())
    for (name, mine), reference in zip(ours.named_parameters(), plain.parameters(), strict=True):
        # Biases ahead of a training-mode BatchNorm have a zero gradient up to rounding: compare on the model's scale.
        scale = max(reference.grad.abs().max().item(), 1e-3 * largest)
        assert (mine.grad - reference.grad).abs().max().item() <= 1e-4 * scale, name
    for (name, mine), reference in zip(ours.named_buffers(), plain.buffers(), strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-6, atol=1e-6, msg=name)


def _layer_norm_pair(channels: int) -> tuple[MatVecLayerNorm, torch.nn.LayerNorm]:
    torch.manual_seed(0)
    ours, plain = MatVecLayerNorm(channels, eps=1e-6), torch.nn.LayerNorm(channels, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
    plain.load_state_dict(ours.state_dict())
    return ours, plain


@pytest.mark.parametrize("channels", [18, 72])
def test_matvec_layer_norm_matches_layer_norm(channels: int) -> None:
    ours, plain = _layer_norm_pair(channels)
    x = (torch.randn(2, 9, 7, channels) * 3 + 1).requires_grad_(True)
    x_plain = x.detach().clone().requires_grad_(True)
    grad = torch.randn_like(x)
    out = ours(x)
    torch.testing.assert_close(out, plain(x_plain), rtol=0, atol=0)
    out.backward(grad)
    plain(x_plain).backward(grad)
    torch.testing.assert_close(x.grad, x_plain.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-5)


def test_matvec_layer_norm_bf16_gradients_accumulate_in_float32() -> None:
    """Under bf16 autocast the tokens reach the norm in bf16; its weight/bias gradients must stay exact sums."""
    ours, _ = _layer_norm_pair(18)
    x = torch.randn(2, 70, 50, 18).bfloat16().requires_grad_(True)
    grad = torch.randn(2, 70, 50, 18).bfloat16()
    out = ours(x)
    assert out.dtype == torch.bfloat16
    out.backward(grad)
    exact = x.detach().double()
    normalised = (exact - exact.mean(-1, keepdim=True)) / torch.sqrt(exact.var(-1, unbiased=False, keepdim=True) + 1e-6)
    expected_weight = (grad.double() * normalised).sum((0, 1, 2))
    assert ours.weight.grad.dtype == torch.float32
    assert (ours.weight.grad.double() - expected_weight).abs().max() < 1e-2
    assert (ours.bias.grad.double() - grad.double().sum((0, 1, 2))).abs().max() < 1e-2
    assert x.grad.dtype == torch.bfloat16


def test_grad_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = create_model("hrformer-t", num_keypoints=3, drop_path_rate=0.0).train()
    x = torch.randn(2, 3, 64, 48)
    model(x).square().mean().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.backbone.set_grad_checkpointing(True)
    model(x).square().mean().backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_compiled_inference_matches_eager() -> None:
    """`--compile` (predict) and `train.compile`: torch.compile gives the plain model's outputs."""
    torch.manual_seed(0)
    model = create_model("hrformer-t", num_keypoints=3, num_modules=(1, 1, 1, 1)).eval()
    x = torch.randn(1, 3, 64, 48)
    fast = optimize_for_inference(model, compile=True)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=0, atol=1e-5)


def test_frozen_compiled_model_refuses_to_run_with_gradients() -> None:
    model = create_model("hrformer-t", num_keypoints=3, num_modules=(1, 1, 1, 1)).eval()
    with pytest.raises(RuntimeError, match="no_grad"):
        optimize_for_inference(model, compile=True)(torch.randn(1, 3, 64, 48))
