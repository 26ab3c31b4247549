"""Helpers the training tests share: counting (and interrupting) a task's training steps, tiny data trees, the
untrained-against-trained runs of the end-to-end floor tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hrformer_core.tasks.cls.synthetic import render


def count_loss_calls(patch: pytest.MonkeyPatch, task_class: type, interrupt_at: int | None = None) -> list[int]:
    """Count `task_class`'s training steps (its loss calls) in the returned one-item list; raise
    KeyboardInterrupt (as Ctrl-C would) at call `interrupt_at`."""
    original, calls = task_class.loss, [0]

    def loss(self: object, model: torch.nn.Module, batch: dict) -> tuple:
        calls[0] += 1
        if calls[0] == interrupt_at:
            raise KeyboardInterrupt
        return original(self, model, batch)

    patch.setattr(task_class, "loss", loss)
    return calls


def write_shapes_tree(root: Path, classes: int, per_class: int, size: int = 40) -> Path:
    """An ImageNet-layout train/ and val/ of the synthetic shapes classes (`n00000000`, ...) as JPEGs."""
    for split in ("train", "val"):
        for label in range(classes):
            folder = root / split / f"n{label:08d}"
            folder.mkdir(parents=True)
            rng = np.random.default_rng([label, len(split)])
            for i in range(per_class):
                assert cv2.imwrite(str(folder / f"{i}.JPEG"), render(label, rng, size))
    return root


def repeat_files(folder: Path, times: int) -> None:
    """Every file under `folder` `times` times (copies under prefixed names): a memorising run's epochs get
    longer, so it spends less of its time on the checkpoints at their ends."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        for copy in range(1, times):
            (path.parent / f"r{copy}_{path.name}").write_bytes(path.read_bytes())


def untrained_and_trained(recipe_text: str, root: Path, tmp_path: Path) -> tuple[dict, dict]:
    """The final metrics of the recipe (its `ROOT` replaced by `root`) untrained (one step at a negligible
    learning rate, so evaluated exactly as the trained run) and trained, for end-to-end floor tests."""
    from hrformer_core.engine import load_recipe, train

    recipe = tmp_path / "memorise.yaml"
    recipe.write_text(recipe_text.replace("ROOT", str(root)))
    untrained = train(load_recipe(recipe, ["train.max_steps=1", "train.optimizer.lr=1e-12"]), project=tmp_path / "u")
    trained = train(load_recipe(recipe), project=tmp_path / "runs")
    return untrained.metrics, trained.metrics
