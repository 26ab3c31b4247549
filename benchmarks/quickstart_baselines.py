"""What the built-in quick-start sets give without learning shape and context: the floors their quick starts
must clear.

    python benchmarks/quickstart_baselines.py [--task seg|cls|all] [--out benchmarks]

For each task the script reads the set its quick-start recipe trains on (generating it first when it is not
cached) and scores, on the recipe's validation split, with the task's own metric:
- untrained: the recipe's model, randomly initialised (seed 0), through the toolkit's evaluation;
- seg: the majority class of the training pixels everywhere; a multinomial logistic regression on each
  pixel's RGB (fitted on 400k training pixels); a colour look-up table (RGB quantised to 32 levels a channel,
  each cell labelled with its most frequent training class, unseen cells the majority class): the best any
  per-pixel colour rule can do at that resolution;
- cls: chance (1 / classes, the expectation of a uniform guess); the majority training class; a logistic
  regression on each image's mean and standard deviation of RGB; a logistic regression on its 8x8x8 colour
  histogram.
Results go to `quickstart_baselines.json` and `QUICKSTART_BASELINES.md` in --out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_speed import machine  # noqa: E402
from hrformer_core.engine import load_recipe  # noqa: E402
from hrformer_core.engine.evaluation import run_evaluation  # noqa: E402
from hrformer_core.engine.recipes import Recipe  # noqa: E402
from hrformer_core.evaluation.segmentation import ConfusionMatrix  # noqa: E402
from hrformer_core.tasks.registry import get_task  # noqa: E402
from hrformer_core.utils.io import write_json, write_text  # noqa: E402

RECIPES = {"seg": "seg-quickstart", "cls": "cls-quickstart"}
LUT_LEVELS = 32
SEG_FIT_PIXELS = 400_000


def untrained(recipe: Recipe) -> float:
    """The primary metric of the recipe's model at its random initialisation (seed 0)."""
    task = get_task(recipe.task)
    task.configure(recipe)
    torch.manual_seed(0)
    model = task.build_model(recipe)
    with tempfile.TemporaryDirectory() as out:
        metrics = run_evaluation(
            task, model, task.build_val_dataset(recipe), recipe, Path(out), torch.device("cpu")
        )
    return float(metrics[task.primary_metric])


def fit_softmax_regression(features: np.ndarray, labels: np.ndarray, classes: int, weight_decay: float = 1e-4):
    """Multinomial logistic regression (standardised features, L2 penalty) by L-BFGS; returns a predict function."""
    x = torch.as_tensor(features, dtype=torch.float64)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / std
    y = torch.as_tensor(labels, dtype=torch.long)
    weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + weight_decay * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)

    def predict(new: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            z = (torch.as_tensor(new, dtype=torch.float64) - mean) / std
            return (z @ weight + bias).argmax(1).numpy()

    return predict


# --- segmentation ------------------------------------------------------------------------------------------


def read_seg_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) RGB and (N, H, W) train ids of a synthetic split (the folder layout)."""
    names = sorted((root / split / "image").glob("*.png"))
    images = np.stack([cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in names])
    labels = np.stack([cv2.imread(str(root / split / "label" / p.name), cv2.IMREAD_UNCHANGED) for p in names])
    return images, labels


def seg_miou(predicted: np.ndarray, labels: np.ndarray, classes: int) -> float:
    matrix = ConfusionMatrix(classes)
    matrix.update(torch.as_tensor(predicted.astype(np.int64)), torch.as_tensor(labels.astype(np.int64)))
    return float(matrix.compute()["mIoU"])


def seg_baselines(recipe: Recipe) -> dict[str, float]:
    from hrformer_core.tasks.seg.task import class_names, resolve_root

    root, classes = resolve_root(recipe.data), len(class_names(recipe.data))
    train_images, train_labels = read_seg_split(root, "train")
    val_images, val_labels = read_seg_split(root, "val")
    train_pixels, train_ids = train_images.reshape(-1, 3), train_labels.reshape(-1)
    counts = np.bincount(train_ids, minlength=classes)
    majority = int(counts.argmax())
    rng = np.random.default_rng(0)
    sample = rng.choice(len(train_ids), min(SEG_FIT_PIXELS, len(train_ids)), replace=False)
    logistic = fit_softmax_regression(train_pixels[sample].astype(np.float64) / 255, train_ids[sample], classes)
    val_pixels = val_images.reshape(-1, 3)
    shift = int(np.log2(256 // LUT_LEVELS))
    cells = lambda pixels: (  # noqa: E731
        ((pixels[:, 0] >> shift).astype(np.int64) * LUT_LEVELS + (pixels[:, 1] >> shift)) * LUT_LEVELS
        + (pixels[:, 2] >> shift)
    )
    table = np.zeros((LUT_LEVELS**3, classes), np.int64)
    np.add.at(table, (cells(train_pixels), train_ids.astype(np.int64)), 1)
    lookup = np.where(table.sum(1) > 0, table.argmax(1), majority)
    return {
        "majority class": seg_miou(np.full(val_labels.shape, majority), val_labels, classes),
        "RGB logistic regression": seg_miou(logistic(val_pixels / 255).reshape(val_labels.shape), val_labels, classes),
        f"colour look-up table ({LUT_LEVELS}^3)": seg_miou(lookup[cells(val_pixels)].reshape(val_labels.shape),
                                                          val_labels, classes),  # fmt: skip
    }


# --- classification ----------------------------------------------------------------------------------------


def read_cls_split(root: Path, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    folders = sorted(p for p in (root / split).iterdir() if p.is_dir())
    images, labels = [], []
    for label, folder in enumerate(folders):
        for path in sorted(folder.glob("*.png")):
            images.append(cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
            labels.append(label)
    return images, np.array(labels)


def colour_moments(images: list[np.ndarray]) -> np.ndarray:
    return np.array([np.concatenate([i.reshape(-1, 3).mean(0), i.reshape(-1, 3).std(0)]) for i in images])


def colour_histograms(images: list[np.ndarray], bins: int = 8) -> np.ndarray:
    shift = int(np.log2(256 // bins))
    rows = []
    for image in images:
        q = image.reshape(-1, 3) >> shift
        cell = (q[:, 0].astype(np.int64) * bins + q[:, 1]) * bins + q[:, 2]
        rows.append(np.bincount(cell, minlength=bins**3) / len(cell))
    return np.array(rows)


def cls_baselines(recipe: Recipe) -> dict[str, float]:
    from hrformer_core.tasks.cls.task import resolve_root

    root = resolve_root(recipe.data)
    train_images, train_labels = read_cls_split(root, recipe.data.train_split)
    val_images, val_labels = read_cls_split(root, recipe.data.val_split)
    classes = int(train_labels.max()) + 1
    majority = int(np.bincount(train_labels).argmax())
    # In percent, as the cls task's top-1 (and so the untrained model's figure) is.
    results = {"chance": 100.0 / classes, "majority class": 100.0 * float(np.mean(val_labels == majority))}
    for name, features in (("mean/std RGB logistic regression", colour_moments),
                           ("8x8x8 colour histogram logistic regression", colour_histograms)):  # fmt: skip
        predict = fit_softmax_regression(features(train_images), train_labels, classes, weight_decay=1e-3)
        results[name] = 100.0 * float(np.mean(predict(features(val_images)) == val_labels))
    return results


BASELINES = {"seg": seg_baselines, "cls": cls_baselines}


def run(task_name: str, overrides: list[str] | None = None) -> dict[str, Any]:
    recipe = load_recipe(RECIPES[task_name], overrides or [])
    metric = get_task(recipe.task).primary_metric
    return {"recipe": recipe.name, "metric": metric, "untrained model": untrained(recipe),
            **BASELINES[task_name](recipe)}  # fmt: skip


def markdown(results: dict[str, dict[str, Any]], host: str) -> str:
    lines = [
        "# Quick-start baselines",
        "",
        f"`python benchmarks/quickstart_baselines.py` on {date.today().isoformat()}, {host}.",
        "Each figure is the quick-start recipe's validation metric for a predictor that uses no shape or context.",
        "",
    ]
    for task_name, row in results.items():
        lines += [f"## {task_name}: `{row['recipe']}`, {row['metric']}", "", "| predictor | value |", "|---|---:|"]
        lines += [f"| {key} | {value:.4f} |" for key, value in row.items() if key not in ("recipe", "metric")]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["seg", "cls", "all"], default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    names = ["seg", "cls"] if args.task == "all" else [args.task]
    results = {name: run(name) for name in names}
    host = machine()
    for name, row in results.items():
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    write_json(args.out / "quickstart_baselines.json", {"machine": host, "results": results})
    write_text(args.out / "QUICKSTART_BASELINES.md", markdown(results, str(host)))


if __name__ == "__main__":
    main()
