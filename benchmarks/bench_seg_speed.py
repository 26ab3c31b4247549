"""Segmentation speed and memory: HRFormer-B (window 15) + OCR, ours against a reference-style execution.

    python benchmarks/bench_seg_speed.py [--threads 2] [--train-rounds 2] [--train-steps 1] [--out benchmarks]

Inference: one 3x1024x2048 image (a Cityscapes frame) through the sliding window of the Cityscapes recipe
(`seg-b-w15-ocr-cityscapes`: windows of its 512x1024 training crop, stride 2/3 of a window, 9 windows; the
`image_logits` that evaluation with eval.mode=slide runs), random weights, eval mode. Training: one step
(forward, the recipe's OHEM + auxiliary loss, backward, AdamW with the task's parameter groups) on one
512x1024 crop, batch 1 (the recipe's batch is 8, too much for this machine).

The reference-style execution is the pose benchmark's (`bench_speed.to_reference_style`): the official
attention op sequence, PyTorch's stock LayerNorm/BatchNorm/conv modules, NCHW, unfused BatchNorm, a
per-tensor AdamW and the default allocator; as the official seg code, it adds the relative position bias.
Every path runs in its own fresh process (peak resident memory is that process's VmHWM, torch import
included). On a shared machine the load changes by the minute, so the paths take turns: the inference
processes run side by side, one window at a time each (only one computes at any moment), and the training
processes run in rounds visiting the paths in turn. Each inference process saves its logits; the largest
difference from our plain eager logits is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from subprocess import PIPE
from typing import Any

import torch
from rich.progress import Progress
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_speed import child_command, in_child, machine, peak_rss_mb, to_reference_style  # noqa: E402
from hrformer_core.engine.optim import build_optimizer  # noqa: E402
from hrformer_core.engine.recipes import Recipe, load_recipe  # noqa: E402
from hrformer_core.models.fuse import optimize_for_inference  # noqa: E402
from hrformer_core.tasks import get_task  # noqa: E402
from hrformer_core.tasks.seg.inference import image_logits, window_starts  # noqa: E402
from hrformer_core.utils.io import atomic_write, write_json, write_text  # noqa: E402

RECIPE = "seg-b-w15-ocr-cityscapes"
IMAGE_HW = (1024, 2048)
INFERENCE_MODES = ("reference-style", "eager", "fused+channels-last", "bf16+fused+channels-last")
TRAIN_MODES = ("reference-style", "ours", "ours+bf16")
MODULE = "benchmarks.bench_seg_speed"


def seg_recipe(overrides: Sequence[str] = ()) -> Recipe:
    """The Cityscapes recipe without a pretrained backbone (random weights), plus `overrides`."""
    return load_recipe(RECIPE, ["model.pretrained=", *overrides])


def build_seg(recipe: Recipe, mode: str) -> tuple[Any, torch.nn.Module]:
    """The configured seg task and its model for `recipe`, seeded: every path starts from the same weights."""
    task = get_task("seg")
    task.configure(recipe)
    torch.manual_seed(0)
    model = task.build_model(recipe)
    return task, to_reference_style(model) if mode == "reference-style" else model


def inference_child(
    mode: str, image_hw: tuple[int, int], logits_path: str, overrides: Sequence[str] = (), lockstep: bool = False
) -> None:
    """Runs in a fresh process: one sliding-window inference, each window timed; the logits go to a file.

    With `lockstep`, it says `ready` once built and then takes turns with the other paths' processes: it waits
    for a line on stdin before each window (and before saving) and says `done` when that turn's work is over.
    """
    recipe = seg_recipe(overrides)
    _, model = build_seg(recipe, mode)
    model.eval()
    if "fused" in mode:
        model = optimize_for_inference(model, inplace=True)  # what `hrformer predict` runs
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in mode)
    window_seconds: list[float] = []
    window_cpu_seconds: list[float] = []

    def take_turn() -> None:
        if lockstep:
            if window_seconds:  # the previous window's logits have been added up: its turn is over
                print("done", flush=True)
            sys.stdin.readline()

    def forward(crops: torch.Tensor) -> torch.Tensor:
        take_turn()
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.inference_mode(), autocast:
            logits = model(crops)[1]
        window_seconds.append(time.perf_counter() - start)
        window_cpu_seconds.append(time.process_time() - cpu_start)
        return logits

    image = torch.randn(3, *image_hw, generator=torch.Generator().manual_seed(1))
    if lockstep:
        print("ready", flush=True)
    logits = image_logits(
        forward, image, mode="slide", window_hw=tuple(recipe.data.crop_size), batch_size=recipe.eval.batch_size
    )
    peak = peak_rss_mb()
    take_turn()
    atomic_write(logits_path, lambda path: save_file({"logits": logits.contiguous()}, str(path)))
    report = {"window_seconds": window_seconds, "window_cpu_seconds": window_cpu_seconds, "peak_rss_mb": peak}
    print(json.dumps(report), flush=True)


def train_child(mode: str, steps: int, overrides: Sequence[str] = ()) -> None:
    """Runs in a fresh process: one warm-up and `steps` timed training steps at the recipe's crop, batch 1, as
    the trainer runs them (ours) or reference-style; prints the step times, the first loss and the peak RSS."""
    recipe = seg_recipe(overrides)
    task, model = build_seg(recipe, mode)
    model.train()
    groups = task.param_groups(model, recipe)
    if mode == "reference-style":
        opt = recipe.train.optimizer
        optimizer = torch.optim.AdamW(
            groups, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay, foreach=False
        )
    else:
        model = model.to(memory_format=torch.channels_last)  # train.channels_last (the recipe sets it)
        optimizer = build_optimizer(groups, recipe)  # fused AdamW
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "ours+bf16")
    height, width = recipe.data.crop_size
    generator = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.randn(1, 3, height, width, generator=generator),
        "label": torch.randint(0, 19, (1, height, width), generator=generator),
    }

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss, _ = task.loss(model, batch)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    torch.manual_seed(2)  # the same drop-path and dropout masks on every path
    first_loss = step()
    step_seconds, step_cpu_seconds = [], []
    for _ in range(steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        step_seconds.append(time.perf_counter() - start)
        step_cpu_seconds.append(time.process_time() - cpu_start)
    report = {"step_seconds": step_seconds, "step_cpu_seconds": step_cpu_seconds, "first_loss": first_loss}
    print(json.dumps({**report, "peak_rss_mb": peak_rss_mb()}))


def run_rounds(
    progress: Progress, label: str, modes: Sequence[str], rounds: int, child: Any
) -> dict[str, list[dict[str, Any]]]:
    """`child(mode)` for every mode, `rounds` times in turn; each result gets the 1-minute load average."""
    bar = progress.add_task(label, total=rounds * len(modes))
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for round_index in range(rounds):
        for mode in modes:
            progress.update(bar, description=f"{label}: {mode} (round {round_index + 1}/{rounds})")
            load = os.getloadavg()[0]
            runs[mode].append({**child(mode), "load_average_before": load})
            progress.advance(bar)
    return runs


def run_in_turns(
    progress: Progress,
    modes: Sequence[str],
    threads: int,
    folder: Path,
    image_hw: tuple[int, int] = IMAGE_HW,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """The inference processes of all paths at once, taking turns window by window (only one computes at a
    time), so the machine's load changes reach every path alike; returns each one's report."""
    crop_h, crop_w = seg_recipe(overrides).data.crop_size
    windows = len(window_starts(image_hw[0], crop_h)) * len(window_starts(image_hw[1], crop_w))
    bar = progress.add_task("inference (paths in turn, window by window)", total=len(modes) * windows)
    processes: dict[str, subprocess.Popen] = {}
    for mode in modes:
        args = (mode, image_hw, str(folder / f"{mode}.safetensors"), tuple(overrides), True)
        command = child_command("inference_child", args, threads, ours=mode != "reference-style", module=MODULE)
        with open(folder / f"{mode}.stderr", "w") as errors:  # the child keeps its own copy of the handle
            processes[mode] = subprocess.Popen(command, stdin=PIPE, stdout=PIPE, stderr=errors, text=True, cwd=ROOT)

    def reply(mode: str) -> str:
        line = processes[mode].stdout.readline().strip()
        if not line:
            errors = (folder / f"{mode}.stderr").read_text()[-2000:]
            raise RuntimeError(f"the {mode} inference process stopped: {errors}")
        return line

    for mode in modes:
        if reply(mode) != "ready":
            raise RuntimeError(f"the {mode} inference process did not start as expected")
    reports: dict[str, Any] = {}
    loads: dict[str, list[float]] = {mode: [] for mode in modes}
    while len(reports) < len(modes):
        for mode in [m for m in modes if m not in reports]:
            loads[mode].append(os.getloadavg()[0])
            processes[mode].stdin.write("go\n")
            processes[mode].stdin.flush()
            line = reply(mode)
            if line == "done":
                progress.advance(bar)
            else:
                reports[mode] = {**json.loads(line), "load_averages_before_turns": loads[mode]}
    for process in processes.values():
        process.stdin.close()
        process.wait()
    return reports


def inference(progress: Progress, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-seg-") as name:
        folder = Path(name)
        reports = run_in_turns(progress, INFERENCE_MODES, threads, folder)
        expected = load_file(str(folder / "eager.safetensors"))["logits"]
        scale = float(expected.abs().max())
        diffs = {
            mode: float((load_file(str(folder / f"{mode}.safetensors"))["logits"] - expected).abs().max())
            for mode in INFERENCE_MODES
        }
    rows = {}
    for mode, report in reports.items():
        rows[mode] = {
            "seconds": sum(report["window_seconds"]),
            "cpu_seconds": sum(report["window_cpu_seconds"]),
            "first_window_seconds": report["window_seconds"][0],
            "median_later_window_seconds": statistics.median(report["window_seconds"][1:]),
            "windows": len(report["window_seconds"]),
            "peak_rss_mb": report["peak_rss_mb"],
            "max_abs_diff": diffs[mode],
            "max_abs_logit": scale,
            "report": report,
        }
    add_ratios(rows)
    return rows


def training(progress: Progress, rounds: int, steps: int, threads: int) -> dict[str, Any]:
    def child(mode: str) -> dict[str, Any]:
        args = (mode, steps)
        return in_child("train_child", args, threads, ours=mode != "reference-style", module=MODULE)

    runs = run_rounds(progress, "training", TRAIN_MODES, rounds, child)
    rows = {}
    for mode, mode_runs in runs.items():
        rows[mode] = {
            "seconds": statistics.median(s for run in mode_runs for s in run["step_seconds"]),
            "cpu_seconds": statistics.median(s for run in mode_runs for s in run["step_cpu_seconds"]),
            "peak_rss_mb": max(run["peak_rss_mb"] for run in mode_runs),
            "first_loss": mode_runs[0]["first_loss"],
            "runs": mode_runs,
        }
    add_ratios(rows)
    for row in rows.values():
        row["first_loss_diff"] = abs(row["first_loss"] - rows["reference-style"]["first_loss"])
    return rows


def add_ratios(rows: dict[str, dict[str, Any]]) -> None:
    base = rows["reference-style"]
    for row in rows.values():
        row["seconds_ratio"] = row["seconds"] / base["seconds"]
        row["cpu_seconds_ratio"] = row["cpu_seconds"] / base["cpu_seconds"]
        row["peak_rss_mb_ratio"] = row["peak_rss_mb"] / base["peak_rss_mb"]


def load_range(results: dict[str, Any]) -> str:
    loads = [run["load_average_before"] for row in results["training"].values() for run in row["runs"]]
    loads += [load for row in results["inference"].values() for load in row["report"]["load_averages_before_turns"]]
    return f"{min(loads):.1f}-{max(loads):.1f}"


def markdown(results: dict[str, Any], command: str) -> str:
    inf, train = results["inference"], results["training"]
    crop_h, crop_w = results["crop_hw"]
    lines = [
        "# Segmentation speed and memory: ours against a reference-style execution",
        "",
        f"Command: `{command}`  ",
        f"Machine: {results['machine']}  ",
        f"Date: {results['date']}. Model: HRFormer-B (window 15) + OCR, 19 classes, random weights, relative"
        f" position bias on (recipe `{RECIPE}`), float32 unless noted. Benchmark wall time"
        f" {results['wall_minutes']:.1f} min.",
        "",
        "**Machine state**: the 2 cores were shared with other engineers' jobs; the 1-minute load average seen"
        f" before each process or window was {load_range(results)} (2 would be this benchmark alone). Wall times"
        " are therefore inflated and noisy; CPU seconds (`time.process_time` of the process, both threads) move"
        " much less with the load. The paths take turns (below) and all ratios are within this one run."
        " Compiled paths (`torch.compile`) were not timed: compiling B at this size takes minutes on 2 cores.",
        "",
        "Reference-style: the official attention op sequence, PyTorch's stock LayerNorm/BatchNorm/conv modules,"
        " NCHW, unfused BatchNorm, the default allocator (`bench_speed.to_reference_style`, as the pose benchmark).",
        "",
        f"## Inference: one 3x{IMAGE_HW[0]}x{IMAGE_HW[1]} image, sliding window ({inf['eager']['windows']} windows"
        f" of {crop_h}x{crop_w}, stride {crop_h * 2 // 3}x{crop_w * 2 // 3}, batch 1)",
        "",
        "All four paths ran at once in their own fresh processes, taking turns window by window (one computes at"
        " a time), so a load change reaches them alike; each ran the whole sliding inference once. Seconds: the"
        " sum of the window forwards; the first window includes one-time set-up. `fused+channels-last` is"
        " `optimize_for_inference` (what `hrformer predict` runs); `bf16` adds bf16 autocast. max |diff|: the"
        " logits against our plain eager path; the random He-initialised weights give logits up to"
        f" {inf['eager']['max_abs_logit']:.0f} in magnitude, hence the relative column.",
        "",
        "| path | seconds | ratio | CPU s | CPU ratio | first window (s) | median later window (s) | peak RSS (MB)"
        " | memory ratio | max abs diff | relative |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, row in inf.items():
        lines.append(
            f"| {mode} | {row['seconds']:.1f} | {row['seconds_ratio']:.2f} | {row['cpu_seconds']:.1f} | "
            f"{row['cpu_seconds_ratio']:.2f} | {row['first_window_seconds']:.1f} | "
            f"{row['median_later_window_seconds']:.1f} | {row['peak_rss_mb']:.0f} | {row['peak_rss_mb_ratio']:.2f} | "
            f"{row['max_abs_diff']:.1e} | {row['max_abs_diff'] / row['max_abs_logit']:.1e} |"
        )
    lines += [
        "",
        f"## Training step: forward, OHEM + auxiliary loss, backward, AdamW; one {crop_h}x{crop_w} crop, batch 1",
        "",
        "Batch 1 to fit this machine (the recipe trains at batch 8). Reference-style also uses a per-tensor"
        " AdamW. Ours is what the trainer runs for this recipe: channels-last, fused AdamW, our norms"
        " (matrix-vector LayerNorm weight gradients, matrix-vector BatchNorm backward for maps of at most 36"
        " channels) and attention; `ours+bf16` adds bf16 autocast (`train.amp=bf16`)."
        f" {results['train_rounds']} rounds of fresh processes visiting the paths in turn, each process 1 warm-up"
        f" step then {results['train_steps']} timed; seconds: the median timed step. First loss: the warm-up"
        " step's (same weights, data and drop-path masks on every path): equal losses show the same computation.",
        "",
        "| path | seconds | ratio | CPU s | CPU ratio | peak RSS (MB) | memory ratio | first loss | loss diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, row in train.items():
        lines.append(
            f"| {mode} | {row['seconds']:.1f} | {row['seconds_ratio']:.2f} | {row['cpu_seconds']:.1f} | "
            f"{row['cpu_seconds_ratio']:.2f} | {row['peak_rss_mb']:.0f} | {row['peak_rss_mb_ratio']:.2f} | "
            f"{row['first_loss']:.5f} | {row['first_loss_diff']:.1e} |"
        )
    lines += ["", "Every window's and step's times and the load averages: `seg_results.json`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-rounds", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=1, help="timed steps per process, after 1 warm-up")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "train_rounds": args.train_rounds,
        "crop_hw": list(seg_recipe().data.crop_size),
        "train_steps": args.train_steps,
    }
    with Progress() as progress:
        results["training"] = training(progress, args.train_rounds, args.train_steps, args.threads)
        results["inference"] = inference(progress, args.threads)
    results["wall_minutes"] = (time.perf_counter() - started) / 60
    command = "python benchmarks/bench_seg_speed.py " + " ".join(sys.argv[1:])
    write_json(args.out / "seg_results.json", results)
    write_text(args.out / "SEG_RESULTS.md", markdown(results, command.strip()))
    print(markdown(results, command.strip()))


if __name__ == "__main__":
    main()
