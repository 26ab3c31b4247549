"""Inference and training speed of our HRFormer against a reference-style execution, measured in one run.

    python benchmarks/bench_speed.py [--variants t s b] [--threads 2] [--runs 7] [--compile] [--out benchmarks]

The baseline ("reference-style") runs our model with the official pose code's execution pattern swapped
into every attention: three separate q/k/v projections, the window partition through permute+contiguous
copies on sequence-first tensors, explicit bmm + softmax with a 3-D bias add; PyTorch's own LayerNorm,
BatchNorm and conv modules, NCHW tensors, unfused BatchNorm, a per-tensor AdamW and the default allocator.
It uses the same weights and gives the same outputs (the max difference is reported), so the ratios isolate
execution, on this machine, in this run. Like the official pose code, the model does not apply the relative
position bias (the official pose attention leaves it out; our converter gives official pose weights
`rel_pos_bias=False`); the training step is also timed with the bias, which our recipes and mmpose 1.x train
with. The reference-style rows and ours run in separate fresh processes; ours set up the allocator as the
`hrformer` command does (`reuse_freed_memory`). Peak resident memory is the process's (VmHWM, torch import
included, as in the reference measurement).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hrformer_core.models import create_model  # noqa: E402
from hrformer_core.models.blocks import StridedDepthwiseConv2d, WindowAttention  # noqa: E402
from hrformer_core.models.fuse import FrozenCompiled, fuse_for_inference  # noqa: E402
from hrformer_core.models.norms import MatVecBatchNorm2d, MatVecLayerNorm  # noqa: E402
from hrformer_core.utils.io import write_json, write_text  # noqa: E402

INPUT_HW = (256, 192)


def reference_style_attention(self: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """The official pose attention's op sequence (separate projections, copies, bmm/softmax)."""
    batch, height, width, channels = x.shape
    w, heads = self.window, self.num_heads
    pad_h, pad_w = (-height) % w, (-width) % w
    top, left = pad_h // 2, pad_w // 2
    x = F.pad(x.permute(0, 3, 1, 2), (left, pad_w - left, top, pad_h - top)).permute(0, 2, 3, 1).contiguous()
    rows, cols = x.shape[1] // w, x.shape[2] // w
    length, windows = w * w, batch * rows * cols
    seq = x.view(batch, rows, w, cols, w, channels).permute(2, 4, 0, 1, 3, 5).contiguous().view(length, windows, -1)
    wq, wk, wv = self.qkv.weight.chunk(3)
    bq, bk, bv = self.qkv.bias.chunk(3)
    head_dim = channels // heads
    q = F.linear(seq, wq, bq) * head_dim**-0.5
    k, v = F.linear(seq, wk, bk), F.linear(seq, wv, bv)
    q, k, v = (t.contiguous().view(length, windows * heads, head_dim).transpose(0, 1) for t in (q, k, v))
    logits = torch.bmm(q, k.transpose(1, 2))
    bias = self.position_bias()
    if bias is not None:
        logits = (logits.view(windows, heads, length, length) + bias.unsqueeze(0)).view(windows * heads, length, length)
    out = torch.bmm(torch.softmax(logits, dim=-1), v)
    out = F.linear(out.transpose(0, 1).contiguous().view(length, windows, channels), self.proj.weight, self.proj.bias)
    out = out.view(w, w, batch, rows, cols, channels).permute(2, 3, 0, 4, 1, 5).contiguous()
    out = out.view(batch, rows * w, cols * w, channels)
    return out[:, top : top + height, left : left + width].contiguous()


def to_reference_style(model: torch.nn.Module) -> torch.nn.Module:
    """`model` (in place) with the reference's attention op sequence and PyTorch's stock norms and convs."""
    for module in model.modules():
        if isinstance(module, WindowAttention):
            module.forward = reference_style_attention.__get__(module)
        elif isinstance(module, MatVecLayerNorm):
            module.__class__ = torch.nn.LayerNorm  # PyTorch's own kernels, as the reference
        elif isinstance(module, MatVecBatchNorm2d):
            module.__class__ = torch.nn.BatchNorm2d
        elif isinstance(module, StridedDepthwiseConv2d):
            module.__class__ = torch.nn.Conv2d
    return model


def build(variant: str, mode: str, rel_pos_bias: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(f"hrformer-{variant}", drop_path_rate=0.0, rel_pos_bias=rel_pos_bias)
    return to_reference_style(model) if mode == "reference-style" else model


def median_time(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


TRAIN_MODES = ("reference-style", "ours", "ours+grad-checkpointing", "ours+bf16")
INFERENCE_MODES = (
    "reference-style",
    "eager",
    "channels-last",
    "fused+channels-last",
    "compiled+fused+channels-last",
    "bf16+fused+channels-last",
)


def inference_child(variant: str, batch: int, runs: int, modes: list[str]) -> None:
    """Runs in a fresh process: median latency of each mode and its max difference from plain eager."""
    x = torch.randn(batch, 3, *INPUT_HW, generator=torch.Generator().manual_seed(1))
    plain = build(variant, "eager").eval()
    with torch.inference_mode():
        expected = plain(x)
    rows = {}
    for mode in modes:
        model = build(variant, mode).eval()
        inp = x
        if "fused" in mode:
            model = fuse_for_inference(model)
        if "channels-last" in mode:
            model = model.to(memory_format=torch.channels_last)
            inp = x.to(memory_format=torch.channels_last)
        if "compiled" in mode:
            model = FrozenCompiled(model)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in mode)

        def run(model=model, inp=inp, autocast=autocast):
            with torch.inference_mode(), autocast:
                return model(inp)

        out = run().float()
        seconds = median_time(run, runs)
        rows[mode] = {"seconds": seconds, "max_abs_diff": float((out - expected).abs().max())}
    print(json.dumps(rows))


def child_command(
    function: str, args: tuple, threads: int, ours: bool, module: str = "benchmarks.bench_speed"
) -> list[str]:
    """The command calling a *_child function of `module` in a fresh process; ours also sets up the allocator
    as the CLI does."""
    setup = "from hrformer_core.utils.memory import reuse_freed_memory; reuse_freed_memory();" if ours else ""
    code = (
        f"import sys, torch; sys.path.insert(0, {str(ROOT)!r}); torch.set_num_threads({threads});{setup}"
        f"from {module} import {function}; {function}(*{args!r})"
    )
    return [sys.executable, "-c", code]


def in_child(function: str, args: tuple, threads: int, ours: bool, module: str = "benchmarks.bench_speed") -> dict:
    """Run `child_command(...)` and return the JSON of its last output line."""
    command = child_command(function, args, threads, ours, module)
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def inference(variant: str, batch: int, runs: int, with_compile: bool, threads: int) -> dict:
    ours = [m for m in INFERENCE_MODES[1:] if with_compile or "compiled" not in m]
    rows = in_child("inference_child", (variant, batch, runs, ["reference-style"]), threads, ours=False)
    rows.update(in_child("inference_child", (variant, batch, runs, ours), threads, ours=True))
    base = rows["reference-style"]["seconds"]
    for row in rows.values():
        row["ratio_to_reference_style"] = row["seconds"] / base
    return rows


def train_step_child(variant: str, mode: str, batch: int, steps: int, rel_pos_bias: bool) -> None:
    """Runs in a fresh process: median training-step time and the process's peak RSS."""
    model = build(variant, mode, rel_pos_bias).train()
    x = torch.randn(batch, 3, *INPUT_HW)
    target = torch.rand(batch, 17, INPUT_HW[0] // 4, INPUT_HW[1] // 4)
    weight = torch.ones(batch, 17, 1, 1)
    fast = mode != "reference-style"
    if fast:
        model = model.to(memory_format=torch.channels_last)
    if mode == "ours+grad-checkpointing":
        model.backbone.set_grad_checkpointing(True)
    no_decay = [p for n, p in model.named_parameters() if "relative_position_bias_table" in n]
    decay = [p for n, p in model.named_parameters() if "relative_position_bias_table" not in n]
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=5e-4, weight_decay=0.01, fused=fast, foreach=False)

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "ours+bf16")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            out = model(x)
        loss = (((out.float() - target) * weight) ** 2).mean()
        loss.backward()
        optimizer.step()

    seconds = median_time(step, steps)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM), in MiB."""
    peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM"))  # fmt: skip
    return peak_kb / 1024


def training(variant: str, batch: int, steps: int, threads: int, rel_pos_bias: bool) -> dict:
    rows = {
        mode: in_child(
            "train_step_child", (variant, mode, batch, steps, rel_pos_bias), threads, ours=mode != "reference-style"
        )
        for mode in TRAIN_MODES
    }
    for mode in TRAIN_MODES:
        for key in ("seconds", "peak_rss_mb"):
            rows[mode][f"{key}_ratio"] = rows[mode][key] / rows["reference-style"][key]
    return rows


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor())  # fmt: skip
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}"


def markdown(results: dict, command: str) -> str:
    lines = [
        "# Speed and memory: ours against a reference-style execution",
        "",
        f"Command: `{command}`  ",
        f"Machine: {results['machine']}  ",
        f"Date: {results['date']}. Input {INPUT_HW[0]}x{INPUT_HW[1]}, float32 unless noted, eval mode, "
        f"median of {results['runs']} runs after 2 warm-up runs. Ratios are within this run.",
        "",
        "Model as the official pose code computes it: no relative position bias (see the script's docstring).",
        "",
        "## Inference latency (seconds; ratio to reference-style; max |difference| from plain eager)",
        "",
        "`fused`: BatchNorm folded into the convs (`fuse_for_inference`); `compiled`: `torch.compile` with frozen"
        " weights (`optimize_for_inference(compile=True)`, `hrformer predict --compile`), compile time not"
        " included; `bf16`: bf16 autocast (outputs then differ at bf16 precision).",
        "",
    ]
    for key, rows in results["inference"].items():
        lines += [f"### {key}", "", "| path | seconds | ratio | max abs diff |", "|---|---|---|---|"]
        for mode, row in rows.items():
            lines.append(
                f"| {mode} | {row['seconds']:.3f} | {row['ratio_to_reference_style']:.2f} | {row['max_abs_diff']:.1e} |"
            )
        lines.append("")
    lines += [
        "## Training step (forward, weighted MSE, backward, AdamW), HRFormer-T, batch 8, 256x192",
        "",
        "Ours: channels-last, fused AdamW, the fused attention kernel where it applies, LayerNorm with"
        " matrix-vector weight gradients, a matrix-vector BatchNorm backward for maps of at most 36 channels,"
        " strided depth-wise convs kept in float32 under bf16 autocast;"
        " `ours+grad-checkpointing` also recomputes the transformer branches in the backward pass"
        " (`model.grad_checkpointing=true`); `ours+bf16` runs the forward under bf16 autocast (`train.amp=bf16`).",
        "",
    ]
    for title, train in results["training"].items():
        lines += [f"### {title}", "", "| path | seconds | peak RSS (MB) | time ratio | memory ratio |"]
        lines.append("|---|---|---|---|---|")
        for mode, row in train.items():
            lines.append(
                f"| {mode} | {row['seconds']:.3f} | {row['peak_rss_mb']:.0f} | {row['seconds_ratio']:.2f} | "
                f"{row['peak_rss_mb_ratio']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["t", "s", "b"], choices=["t", "s", "b"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument(
        "--compile", action="store_true", help="also time the compiled model (a minute or more to compile each)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "runs": args.runs,
        "inference": {},
        "training": {
            title: training("t", 8, args.train_steps, args.threads, rel_pos_bias)
            for title, rel_pos_bias in (
                ("As the official pose code (no position bias)", False),
                ("With the relative position bias (our recipes, mmpose 1.x)", True),
            )
        },
    }
    for variant in args.variants:
        for batch in args.batches:
            key = f"HRFormer-{variant.upper()} batch {batch}"
            results["inference"][key] = inference(variant, batch, args.runs, args.compile, args.threads)
            print(key, {m: round(r["seconds"], 3) for m, r in results["inference"][key].items()}, flush=True)
    command = "python benchmarks/bench_speed.py " + " ".join(sys.argv[1:])
    write_json(args.out / "results.json", results)
    write_text(args.out / "RESULTS.md", markdown(results, command.strip()))
    print(markdown(results, command.strip()))


if __name__ == "__main__":
    main()
