"""Classification data cost per image: JPEG decode, the training transform and the evaluation transform.

    python benchmarks/bench_cls_data.py [--images 200] [--size 224] [--out benchmarks]

The script writes ImageNet-like JPEGs first (500x375, 375x500 and 500x333, quality 90, textured content;
105 KiB a file on average in the recorded run) and times, in one process with one OpenCV/torch thread (as
one DataLoader worker runs, see `TolerantDataset.worker_init_fn`):
- decode: the toolkit's reader (`read_image`: container check, OpenCV decode, BGR->RGB), OpenCV's bare
  `imdecode`, and Pillow's `Image.open(...).convert("RGB")` as the baseline timm/torchvision use, when Pillow
  is installed (only here; the toolkit does not use it);
- the training transform of the cls recipes (bicubic random-resized crop, flip, RandAugment
  rand-m9-mstd0.5-inc1, normalisation, random erasing 0.25), on decoded images;
- the evaluation transform (resize to size / 0.875, centre crop, normalisation).
Each stage is timed over every image after a warm-up pass; the per-worker rates are images/s of
decode + transform. Results go to `cls_data_results.json` and `CLS_DATA.md` in --out.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_speed import machine  # noqa: E402
from hrformer_core.data.images import read_image  # noqa: E402
from hrformer_core.engine import load_recipe  # noqa: E402
from hrformer_core.tasks.cls.augment import TestTransform, TrainTransform  # noqa: E402
from hrformer_core.utils.io import write_json, write_text  # noqa: E402

SHAPES = ((375, 500), (500, 375), (333, 500))  # (H, W): ImageNet's most common sizes
JPEG_QUALITY = 90


def imagenet_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A BGR image with photo-like statistics: smooth colour fields, edges, fine texture and noise."""
    coarse = rng.integers(0, 256, (height // 32 + 2, width // 32 + 2, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    for _ in range(12):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(10, 120)), colour, -1, cv2.LINE_AA)
    texture = cv2.GaussianBlur(rng.normal(0, 50, (height, width, 3)).astype(np.float32), (0, 0), 0.6)
    image += texture + rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_images(folder: Path, count: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        height, width = SHAPES[i % len(SHAPES)]
        path = folder / f"{i:05d}.JPEG"
        ok, data = cv2.imencode(".jpg", imagenet_like(rng, height, width), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok
        path.write_bytes(data.tobytes())
        paths.append(path)
    return paths


def seconds_per_item(items: list, work: Callable[[object, int], object]) -> float:
    """Mean seconds of `work(item, index)` over all items, after one untimed pass over the first few."""
    for index, item in enumerate(items[:5]):
        work(item, index)
    start = time.perf_counter()
    for index, item in enumerate(items):
        work(item, index)
    return (time.perf_counter() - start) / len(items)


def pil_decoder() -> Callable[[bytes], np.ndarray] | None:
    try:
        from PIL import Image
    except ImportError:
        return None

    def decode(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))

    return decode


def run(images: int, size: int, seed: int) -> dict:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    recipe = load_recipe("cls-t")
    train_transform = TrainTransform((size, size), recipe.data.augment)
    eval_transform = TestTransform((size, size))
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), images, seed)
        blobs = [path.read_bytes() for path in paths]
        ms: dict[str, float] = {
            "read_image": 1e3 * seconds_per_item(paths, lambda path, _: read_image(path)),
            "cv2_imdecode": 1e3
            * seconds_per_item(blobs, lambda data, _: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)),
        }
        decode = pil_decoder()
        if decode is not None:
            ms["pil_decode"] = 1e3 * seconds_per_item(blobs, lambda data, _: decode(data))
        decoded = [read_image(path) for path in paths]
    ms["train_transform"] = 1e3 * seconds_per_item(
        decoded, lambda image, i: train_transform(image, np.random.default_rng([seed, i]))
    )
    ms["eval_transform"] = 1e3 * seconds_per_item(decoded, lambda image, i: eval_transform(image, None))
    per_worker = {
        "train (read_image + train transform)": 1e3 / (ms["read_image"] + ms["train_transform"]),
        "eval (read_image + eval transform)": 1e3 / (ms["read_image"] + ms["eval_transform"]),
    }
    if "pil_decode" in ms:
        per_worker["train with Pillow decode"] = 1e3 / (ms["pil_decode"] + ms["train_transform"])
        per_worker["eval with Pillow decode"] = 1e3 / (ms["pil_decode"] + ms["eval_transform"])
    sizes = [len(blob) for blob in blobs]
    return {
        "images": images,
        "input_size": size,
        "mean_jpeg_kib": float(np.mean(sizes)) / 1024,
        "ms_per_image": ms,
        "images_per_s_per_worker": per_worker,
        "pillow": "installed" if decode is not None else "not installed",
    }


def markdown(results: dict, command: str) -> str:
    ms, rates = results["ms_per_image"], results["images_per_s_per_worker"]
    names = {
        "read_image": "decode: toolkit `read_image` (checks + OpenCV + RGB)",
        "cv2_imdecode": "decode: bare `cv2.imdecode` (BGR)",
        "pil_decode": "decode: Pillow `open().convert('RGB')` (baseline only)",
        "train_transform": "train transform (crop, flip, RandAugment, erasing)",
        "eval_transform": "eval transform (resize, centre crop)",
    }
    lines = [
        f"# Classification data cost per image ({results['input_size']}x{results['input_size']} input)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {results['machine']}; measured with one OpenCV/torch thread (one DataLoader worker)  ",
        f"Date: {results['date']}  ",
        f"Images: {results['images']} generated ImageNet-like JPEGs (500x375/375x500/500x333, quality "
        f"{JPEG_QUALITY}, {results['mean_jpeg_kib']:.0f} KiB on average)",
        "",
        "The CPU was shared with other jobs while this ran (2 cores, several engineers' processes; 1-minute load",
        f"average {results['load_average_at_start']} at the start), so the figures are a rough guide; ratios between",
        "rows are steadier than the absolute numbers.",
        "",
        "| stage | ms / image |",
        "|---|---|",
        *(f"| {names[key]} | {value:.2f} |" for key, value in ms.items()),
        "",
        "| one worker | images/s |",
        "|---|---|",
        *(f"| {key} | {value:.0f} |" for key, value in rates.items()),
        "",
        "A GPU that trains N images/s needs about N / (train images/s per worker) DataLoader workers.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    host = machine()  # before `run` sets one thread: the machine's own thread count
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").is_file() else "unknown"
    results = run(args.images, args.size, args.seed)
    results["machine"] = host
    results["load_average_at_start"] = load
    results["date"] = date.today().isoformat()
    command = ("python benchmarks/bench_cls_data.py " + " ".join(sys.argv[1:])).strip()
    results["command"] = command
    text = markdown(results, command)
    write_json(args.out / "cls_data_results.json", results)
    write_text(args.out / "CLS_DATA.md", text)
    print(text)


if __name__ == "__main__":
    main()
