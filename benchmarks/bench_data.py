"""Data-pipeline and training throughput for pose HRFormer-T at 256x192, measured in one run.

    python benchmarks/bench_data.py [--samples 256] [--threads 2] [--out benchmarks]

Data: the COCO top-down training pipeline (JPEG decode, augmentation, one affine warp, Gaussian targets) on
the synthetic set, in the main process (= one worker's rate). Training: forward + loss + backward + AdamW
at batch 32 on this machine. The ratio says how many samples one worker prepares while the model trains on
one; a GPU that trains N images/s needs N / (samples/s per worker) workers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_speed import machine  # noqa: E402
from hrformer_core.models import create_model  # noqa: E402
from hrformer_core.tasks.pose.coco import CocoKeypoints  # noqa: E402
from hrformer_core.tasks.pose.synthetic import generate_synthetic_pose  # noqa: E402
from hrformer_core.tasks.pose.transforms import TopDownAugment  # noqa: E402
from hrformer_core.utils.io import write_json, write_text  # noqa: E402


def data_rate(root: Path, samples: int) -> tuple[float, float]:
    dataset = CocoKeypoints(root, "train", input_size_hw=(256, 192), sigma=2.0, augment=TopDownAugment())
    count = min(samples, len(dataset))
    dataset[0]
    start = time.perf_counter()
    for i in range(count):
        dataset[i]
    seconds = time.perf_counter() - start
    return count / seconds, seconds / count * 1e3


def train_rate(batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model("hrformer-t", drop_path_rate=0.0).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, fused=True)
    x = torch.randn(batch, 3, 256, 192)
    target = torch.rand(batch, 17, 64, 48)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        ((model(x) - target) ** 2).mean().backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return batch / sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        generate_synthetic_pose(tmp, num_train=max(8, args.samples // 2), num_val=1, seed=0)
        samples_per_s, ms_per_sample = data_rate(Path(tmp), args.samples)
    images_per_s = train_rate(args.batch, args.steps)
    results = {
        "machine": machine(),
        "data_samples_per_s_per_worker": samples_per_s,
        "data_ms_per_sample": ms_per_sample,
        "train_images_per_s": images_per_s,
        "ratio_data_to_train": samples_per_s / images_per_s,
    }
    command = "python benchmarks/bench_data.py " + " ".join(sys.argv[1:])
    text = "\n".join(
        [
            "# Data pipeline vs training throughput (pose HRFormer-T, 256x192)",
            "",
            f"Command: `{command.strip()}`  ",
            f"Machine: {results['machine']}",
            "",
            "| measure | value |",
            "|---|---|",
            f"| data pipeline, one worker | {samples_per_s:.0f} samples/s ({ms_per_sample:.1f} ms a sample) |",
            f"| training, batch {args.batch} (CPU) | {images_per_s:.1f} images/s |",
            f"| ratio (one worker / training) | {results['ratio_data_to_train']:.1f}x |",
            "",
            f"A GPU step that trains N images/s needs about N / {samples_per_s:.0f} DataLoader workers.",
            "",
        ]
    )
    write_json(args.out / "data_results.json", results)
    write_text(args.out / "DATA.md", text)
    print(text)


if __name__ == "__main__":
    main()
