"""Class names: the names-file formats of the data root (classes.txt, LOC_synset_mapping.txt), names saved in
the weights' metadata, and what `hrformer predict` and `hrformer eval` show (the weights' names, else the data
root's file, else folder names or indices)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core.errors import CheckpointError, DataError
from hrformer_core.models import create_model
from hrformer_core.models.checkpoint import save_model
from hrformer_core.models.weights import resolve_weights
from hrformer_core.tasks.cls.folder import (
    ImageFolder,
    class_names_metadata,
    parse_class_names,
    read_class_names,
    recorded_classes,
)

runner = CliRunner()
FOLDERS = ["n01440764", "n01443537", "n01484850"]
SMALL = {"num_modules": (1, 1, 1, 1), "extra": {"input_size": [32, 32]}}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def write_tree(root: Path, folders: list[str] = FOLDERS, per_class: int = 1) -> Path:
    for split in ("train", "val"):
        for label, folder in enumerate(folders):
            (root / split / folder).mkdir(parents=True)
            for i in range(per_class):
                image = np.full((40, 48, 3), 40 + 60 * label + i, np.uint8)
                assert cv2.imwrite(str(root / split / folder / f"{i}.JPEG"), image)
    return root


def cls_weights(path: Path, metadata: dict[str, str] | None = None, classes: int = 3) -> Path:
    torch.manual_seed(0)
    return save_model(create_model("hrformer-t", "cls", num_classes=classes, **SMALL), path, metadata)


def test_mapping_file_names_the_folders_it_lists_and_ignores_the_others(tmp_path: Path) -> None:
    # LOC_synset_mapping.txt style: the full mapping (here a 4th wnid the data lacks) names a subset.
    mapping = write_lines(
        tmp_path / "LOC_synset_mapping.txt",
        ["n01440764 tench, Tinca tinca", "n01443537\tgoldfish, Carassius auratus", "n99999999 absent", ""],
    )
    assert parse_class_names(mapping, FOLDERS) == ["tench, Tinca tinca", "goldfish, Carassius auratus", FOLDERS[2]]
    assert read_class_names(tmp_path, FOLDERS) == ["tench, Tinca tinca", "goldfish, Carassius auratus", FOLDERS[2]]
    # classes.txt comes first when both exist.
    write_lines(tmp_path / "classes.txt", [f"{FOLDERS[2]} great white shark"])
    assert read_class_names(tmp_path, FOLDERS) == FOLDERS[:2] + ["great white shark"]


def test_plain_names_are_in_sorted_folder_order_and_must_be_one_per_folder(tmp_path: Path) -> None:
    names = write_lines(tmp_path / "classes.txt", ["tench", "goldfish", "great white shark"])
    assert parse_class_names(names, FOLDERS) == ["tench", "goldfish", "great white shark"]
    short = write_lines(tmp_path / "short.txt", ["tench", "goldfish"])
    with pytest.raises(DataError, match=r"short.txt: 2 names for 3 class folders, and no line starts with a class"):
        parse_class_names(short, FOLDERS)
    (tmp_path / "latin1.txt").write_bytes("poisson \xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: cannot be read as a UTF-8 class-names file"):
        parse_class_names(tmp_path / "latin1.txt", FOLDERS)


def test_without_a_dataset_wnid_lines_are_ordered_by_id_and_others_taken_as_names(tmp_path: Path) -> None:
    unsorted = write_lines(tmp_path / "ids.txt", ["n01443537 goldfish", "n01440764 tench", "n01484850"])
    assert parse_class_names(unsorted) == ["tench", "goldfish", "n01484850"]
    plain = write_lines(tmp_path / "plain.txt", ["great white shark", "tench"])
    assert parse_class_names(plain) == ["great white shark", "tench"]


def test_folder_dataset_reads_the_mapping_file(tmp_path: Path) -> None:
    write_tree(tmp_path)
    write_lines(tmp_path / "LOC_synset_mapping.txt", ["n01484850 great white shark", "n01440764 tench"])
    dataset = ImageFolder(tmp_path, "val", lambda image, rng: image)
    assert dataset.class_names == ["tench", FOLDERS[1], "great white shark"]


def test_weights_metadata_round_trip_and_malformed_names_are_refused(tmp_path: Path) -> None:
    names = ["tench", "goldfish", "great white shark"]
    path = cls_weights(tmp_path / "named.safetensors", class_names_metadata(FOLDERS, names))
    recorded = recorded_classes(resolve_weights(path), 3)
    assert recorded is not None and recorded.names == names and recorded.folders == FOLDERS
    assert recorded_classes(resolve_weights(cls_weights(tmp_path / "plain.safetensors")), 3) is None
    bad = cls_weights(tmp_path / "bad.safetensors", {"class_names": json.dumps(names[:2])})
    with pytest.raises(CheckpointError, match=r"bad.safetensors: metadata 'class_names' is not a JSON list of 3"):
        recorded_classes(resolve_weights(bad), 3)


def predict(image: Path, weights: Path, *extra: str) -> list[str]:
    """The labels `hrformer predict --no-save` prints for one image, best first."""
    result = runner.invoke(app, ["predict", str(image), "--weights", str(weights), "--no-save", "--topk", "3", *extra])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith(f"{image.name}: "))
    return [part.rsplit(" ", 1)[0] for part in line.split(": ", 1)[1].split(", ")]


def test_predict_names_come_from_the_weights_else_class_names_else_indices(tmp_path: Path) -> None:
    image = tmp_path / "fish.jpg"
    assert cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8))
    names = ["tench", "goldfish", "shark"]
    named = cls_weights(tmp_path / "named.safetensors", class_names_metadata(FOLDERS, names))
    plain = cls_weights(tmp_path / "plain.safetensors")  # same tensors (same seed), no names
    by_index = predict(image, plain)
    assert sorted(by_index) == ["0", "1", "2"]
    assert predict(image, named) == [names[int(i)] for i in by_index]
    mapping = write_lines(tmp_path / "LOC_synset_mapping.txt", [f"{f} fish {i}" for i, f in enumerate(FOLDERS)])
    assert predict(image, named, "--class-names", str(mapping)) == [f"fish {i}" for i in by_index]

    saved = runner.invoke(app, ["predict", str(image), "--weights", str(named), "--project", str(tmp_path / "out"),
                                "--name", "run"])  # fmt: skip
    assert saved.exit_code == 0, saved.output
    record = json.loads((tmp_path / "out" / "run" / "json" / "fish.jpg.json").read_text())
    assert [(t["class_id"], t["label"]) for t in record["topk"]] == [(int(i), names[int(i)]) for i in by_index]

    wrong = runner.invoke(app, ["predict", str(image), "--weights", str(named), "--no-save", "--class-names",
                                str(write_lines(tmp_path / "two.txt", ["a", "b"]))])  # fmt: skip
    assert wrong.exit_code == 2 and "two.txt: 2 class names, but the model has 3 classes" in wrong.output


def evaluate_names(tmp_path: Path, data: Path, weights: Path) -> tuple[list[dict], str]:
    out = tmp_path / f"eval-{weights.stem}-{data.name}"
    args = ["eval", "--recipe", "cls-t", "--weights", str(weights), "--out", str(out), f"data.root={data}"]
    result = runner.invoke(app, [*args, "data.input_size=[32,32]", "train.workers=0", "eval.batch_size=4"])
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())["metrics"]["per_class_accuracy"], result.output


def test_eval_names_come_from_the_weights_else_the_data_roots_file_else_folders(tmp_path: Path) -> None:
    data = write_tree(tmp_path / "data")
    named = cls_weights(tmp_path / "named.safetensors", class_names_metadata(FOLDERS, ["tench", "goldfish", "shark"]))
    plain = cls_weights(tmp_path / "plain.safetensors")
    rows, _ = evaluate_names(tmp_path, data, plain)
    assert [(r["class"], r["name"]) for r in rows] == [(f, f) for f in FOLDERS]
    write_lines(data / "classes.txt", [f"{FOLDERS[0]} from the data root"])
    rows, _ = evaluate_names(tmp_path, data, plain)
    assert [r["name"] for r in rows] == ["from the data root", *FOLDERS[1:]]
    rows, _ = evaluate_names(tmp_path, data, named)
    assert [r["name"] for r in rows] == ["tench", "goldfish", "shark"]
    # Weights trained on other folders: the data's own names, and a note saying so.
    other = write_tree(tmp_path / "other", ["n00000001", *FOLDERS[1:]])
    rows, output = evaluate_names(tmp_path, other, named)
    assert [r["name"] for r in rows] == ["n00000001", *FOLDERS[1:]]
    assert "class 0: n01440764 there, n00000001 here" in " ".join(output.split())
