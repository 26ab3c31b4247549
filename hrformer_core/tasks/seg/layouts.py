"""The standard segmentation dataset layouts: where each split's images and labels are, and what label ids mean.

Each layout lists (image, label) file pairs for a split and maps the label PNG's stored ids to train ids
through a 256-entry table (255 = ignored). Ids a layout never stores are marked invalid, so a label that
holds one is reported with the file and the id instead of training on garbage.

Conventions, as the official HRFormer segmentation code (openseg) reads them:
- Cityscapes: `*_gtFine_labelIds.png`, the 19 evaluated ids of cityscapesScripts' label table become train
  ids 0-18 in table order (`data.label_list` of `seg/configs/cityscapes/H_48_D_4.json`), every other id 0-33
  is ignored.
- ADE20K (ADEChallengeData2016): 0 is "other" and ignored, 1-150 become 0-149 (`reduce_zero_label`).
- COCO-Stuff (the 10k set as openseg's `coco_stuff_generator.py` writes it from the `.mat` files: 0 is
  unlabeled, 1-182 are COCO's ids): the 172 ids of the config's `label_list` are numbered in order and one is
  subtracted (`reduce_zero_label`), so 0 is ignored and the 171 used ids become 0-170; the 11 ids COCO never
  uses are ignored.
- PASCAL-Context (59 classes, openseg's `pascal_context_generator.py` from PyTorch-Encoding's masks): 0 is
  background and ignored, 1-59 become 0-58 (`reduce_zero_label`).
- folder: `{split}/image/*` with `{split}/label/<stem>.png` holding train ids as they are (the built-in
  synthetic set and any data already in train ids).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from .class_names import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    COCO_STUFF_CLASSES,
    COCO_STUFF_UNUSED_IDS,
    COCO_STUFF_USED_IDS,
    PASCAL_CONTEXT_CLASSES,
)

IGNORE = 255
INVALID = -1

# cityscapesScripts labels.py: the ids whose trainId is 0-18, in trainId order.
CITYSCAPES_EVAL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _table(mapping: dict[int, int], ignored: set[int]) -> np.ndarray:
    """256 entries: train id for mapped ids, IGNORE for ignored ones (255 always), INVALID for the rest."""
    table = np.full(256, INVALID, dtype=np.int16)
    for stored in ignored | {IGNORE}:
        table[stored] = IGNORE
    for stored, train_id in mapping.items():
        table[stored] = train_id
    return table


def cityscapes_table() -> np.ndarray:
    mapping = {stored: i for i, stored in enumerate(CITYSCAPES_EVAL_IDS)}
    return _table(mapping, set(range(34)) - set(mapping))


def reduce_zero_table(num_classes: int) -> np.ndarray:
    """0 ignored, 1..num_classes -> 0..num_classes-1 (ADE20K, PASCAL-Context)."""
    return _table({v: v - 1 for v in range(1, num_classes + 1)}, {0})


def coco_stuff_table() -> np.ndarray:
    return _table({stored: i for i, stored in enumerate(COCO_STUFF_USED_IDS)}, {0, *COCO_STUFF_UNUSED_IDS})


def identity_table(num_classes: int) -> np.ndarray:
    return _table({v: v for v in range(num_classes)}, set())


@dataclass(frozen=True)
class Pair:
    image: Path
    label: Path


@dataclass(frozen=True)
class Layout:
    """One dataset layout: how to list a split and how to read its label ids."""

    name: str
    num_classes: int | None  # None: from the recipe (folder layout)
    splits: dict[str, str]  # our split name -> the layout's folder name
    describe: str  # where it looks, for messages ({root}, {split} filled in)
    list_pairs: Callable[[Path, str], list[Pair]]
    table: Callable[[int], np.ndarray]
    class_names: tuple[str, ...] = ()
    stored_ids: str = ""  # what ids a label file may hold, for messages


def _require_dir(path: Path, root: Path, layout: str, describe: str) -> None:
    if not root.is_dir():
        raise DataError(f"data.root: {root} not found; expected the {layout} layout ({describe})")
    if not path.is_dir():
        raise DataError(f"{path} not found: the {layout} layout under {root} needs {describe}")


def _missing_labels(missing: list[Pair], total: int, where: str) -> DataError:
    first = missing[0]
    return DataError(
        f"{len(missing)} of {total} images have no label file (e.g. {first.image}: looked for {first.label}); "
        f"expected {where}"
    )


def _pair_up(images: list[Path], label_of: Callable[[Path], Path], where: str) -> list[Pair]:
    pairs = [Pair(image, label_of(image)) for image in images]
    missing = [p for p in pairs if not p.label.is_file()]
    if missing:
        raise _missing_labels(missing, len(pairs), where)
    return pairs


def _images_in(folder: Path, pattern: str, what: str) -> list[Path]:
    images = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not images:
        raise DataError(f"{folder}: no images found (expected {what})")
    return images


def _cityscapes_pairs(root: Path, split: str) -> list[Pair]:
    where = f"leftImg8bit/{split}/<city>/*_leftImg8bit.png and gtFine/{split}/<city>/*_gtFine_labelIds.png"
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    _require_dir(image_dir, root, "Cityscapes", where)
    _require_dir(label_dir, root, "Cityscapes", where)
    images = _images_in(image_dir, "*/*_leftImg8bit.png", f"<city>/*_leftImg8bit.png under {image_dir}")

    def label_of(image: Path) -> Path:
        stem = image.name[: -len("_leftImg8bit.png")]
        return label_dir / image.parent.name / f"{stem}_gtFine_labelIds.png"

    return _pair_up(images, label_of, where)


def _ade_root(root: Path) -> Path:
    return root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root


def _ade20k_pairs(root: Path, split: str) -> list[Pair]:
    base = _ade_root(root)
    where = f"ADEChallengeData2016/images/{split}/*.jpg and ADEChallengeData2016/annotations/{split}/*.png"
    image_dir, label_dir = base / "images" / split, base / "annotations" / split
    _require_dir(image_dir, root, "ADE20K", where)
    _require_dir(label_dir, root, "ADE20K", where)
    images = _images_in(image_dir, "*.jpg", f"*.jpg under {image_dir}")
    return _pair_up(images, lambda image: label_dir / f"{image.stem}.png", where)


def _image_label_pairs(layout: str, image_names: tuple[str, ...]) -> Callable[[Path, str], list[Pair]]:
    """openseg's `{split}/image/*` + `{split}/label/<stem>.png` layout (its generators' output)."""

    def pairs(root: Path, split: str) -> list[Pair]:
        where = f"{split}/{image_names[0]}/<name>.jpg and {split}/label/<name>.png"
        image_dir = next((root / split / n for n in image_names if (root / split / n).is_dir()), None)
        _require_dir(image_dir or root / split / image_names[0], root, layout, where)
        label_dir = root / split / "label"
        _require_dir(label_dir, root, layout, where)
        images = [
            p for p in _images_in(image_dir, "*", f"images under {image_dir}") if p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not images:
            raise DataError(f"{image_dir}: no images found (expected {where})")
        return _pair_up(images, lambda image: label_dir / f"{image.stem}.png", where)

    return pairs


LAYOUTS: dict[str, Layout] = {
    "cityscapes": Layout(
        "cityscapes", 19, {"train": "train", "val": "val"},
        "leftImg8bit/{split}/<city>/*_leftImg8bit.png + gtFine/{split}/<city>/*_gtFine_labelIds.png",
        _cityscapes_pairs, lambda _: cityscapes_table(), CITYSCAPES_CLASSES, "Cityscapes labelIds 0-33 (or 255)",
    ),
    "ade20k": Layout(
        "ade20k", 150, {"train": "training", "val": "validation"},
        "ADEChallengeData2016/images/{split}/*.jpg + annotations/{split}/*.png",
        _ade20k_pairs, lambda _: reduce_zero_table(150), ADE20K_CLASSES, "ADE20K ids 0-150",
    ),
    "coco_stuff": Layout(
        "coco_stuff", 171, {"train": "train", "val": "val"},
        "{split}/image/*.jpg + {split}/label/*.png (openseg's coco_stuff_generator.py output)",
        _image_label_pairs("COCO-Stuff", ("image", "images")), lambda _: coco_stuff_table(), COCO_STUFF_CLASSES,
        "COCO-Stuff ids 0-182 (or 255)",
    ),
    "pascal_context": Layout(
        "pascal_context", 59, {"train": "train", "val": "val"},
        "{split}/image/*.jpg + {split}/label/*.png (openseg's pascal_context_generator.py output)",
        _image_label_pairs("PASCAL-Context", ("image",)), lambda _: reduce_zero_table(59), PASCAL_CONTEXT_CLASSES,
        "PASCAL-Context ids 0-59 (or 255)",
    ),
    "folder": Layout(
        "folder", None, {"train": "train", "val": "val"},
        "{split}/image/* + {split}/label/<stem>.png (train ids, 255 ignored)",
        _image_label_pairs("folder", ("image",)), identity_table, (), "train ids below data.num_classes (or 255)",
    ),
}  # fmt: skip


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise DataError(f"data.layout: unknown layout {name!r} (known: {', '.join(LAYOUTS)})")
    return LAYOUTS[name]


def names_for_classes(num_classes: int, recorded: list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Class names for a model: those its weights record; else the standard layout with that many classes
    (an official checkpoint records none: 19 is Cityscapes, 150 ADE20K, 171 COCO-Stuff, 59 PASCAL-Context);
    else "class i"."""
    if recorded and len(recorded) == num_classes:
        return tuple(recorded)
    standard = [layout.class_names for layout in LAYOUTS.values() if layout.num_classes == num_classes]
    if len(standard) == 1 and standard[0]:
        return standard[0]
    return tuple(f"class {i}" for i in range(num_classes))
