"""The ImageNet folder layout: `root/{split}/<class folder>/*.JPEG`, classes in sorted folder order.

Class indices follow the sorted folder names, as timm's and torchvision's ImageFolder give them (so official
checkpoints' logits line up with the standard wnid order); the training split's folders define the classes
when it exists, and a validation folder outside them is refused.

Class names come from the first of `root/classes.txt` and `root/LOC_synset_mapping.txt` that exists (a
folder without a name keeps its folder name). Two formats are read (blank lines ignored, UTF-8):
- `<folder> <name...>` per line, separated by spaces or a tab: ImageNet's `LOC_synset_mapping.txt` and
  Caffe's `synset_words.txt` (`n01440764 tench, Tinca tinca`) are this format. Lines for folders the dataset
  does not have are ignored, so the full 1000-class mapping names a subset of ImageNet.
- one name per line, in sorted folder order (chosen when no line starts with a class folder's name); there
  must be one line per class folder.
Without a dataset (`hrformer predict --class-names`), a file is the first format when every line starts with
a WordNet id (`n` and 8 digits; names in sorted-id order, the class order) and the second otherwise.
Training records the folders and names in the weights' metadata (`class_names_metadata`), so prediction and
evaluation show them without the data (`recorded_classes`).

Unreadable images (missing, truncated, corrupt: `read_image` says which) are skipped and reported through
`bad_images` (path -> reason): for training a sample is replaced by the next readable image; for evaluation
(`replace_unreadable=False`) the sample is a blank stand-in marked unreadable, whose prediction evaluation
leaves out (`unreadable_indices`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.images import UnreadableImage, read_image
from ...data.tolerant import TolerantDataset
from ...errors import CheckpointError, DataError
from ...models.weights import WeightsFile
from ...utils.console import console

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")  # timm's ImageFolder extensions, any case
LAYOUT = "root/train/<class>/*.JPEG and root/val/<class>/*.JPEG"
CLASS_NAME_FILES = ("classes.txt", "LOC_synset_mapping.txt")  # looked for in the data root, in this order
WORDNET_ID = re.compile(r"n\d{8}")
METADATA_FOLDERS, METADATA_NAMES = "class_folders", "class_names"  # JSON lists in the weights' metadata


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir() and not entry.name.startswith("."))


def split_dir(root: Path, split: str) -> Path:
    path = root / split
    if not path.is_dir():
        raise DataError(f"{path}: no {split} split (expected the ImageNet folder layout {LAYOUT})")
    return path


def class_folders(root: Path, train_split: str, split: str) -> list[str]:
    """The class folders in index order: the training split's when it exists, else `split`'s own."""
    source = root / train_split if (root / train_split).is_dir() else split_dir(root, split)
    folders = _class_folders(source)
    if not folders:
        raise DataError(f"{source}: no class folders (expected {LAYOUT})")
    return folders


def _name_lines(path: Path) -> list[tuple[str, str]]:
    """(first word, the rest) of every non-blank line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as a UTF-8 class-names file ({exc})") from None
    pairs = []
    for line in text.splitlines():
        words = line.strip().split(maxsplit=1)
        if words:
            pairs.append((words[0], words[1].strip() if len(words) > 1 else ""))
    return pairs


def parse_class_names(path: Path, folders: Sequence[str] | None = None) -> list[str]:
    """The class names a names file gives, in class-index order (formats: the module docstring).

    With `folders`, one name per folder; without, as many as the file has.
    """
    pairs = _name_lines(path)
    whole_lines = [f"{first} {rest}".strip() for first, rest in pairs]
    if folders is None:
        if pairs and all(WORDNET_ID.fullmatch(first) for first, _ in pairs):
            return [rest or first for first, rest in sorted(pairs)]
        return whole_lines
    known = set(folders)
    if any(first in known for first, _ in pairs):
        names = {first: rest for first, rest in pairs if first in known and rest}
        return [names.get(folder, folder) for folder in folders]
    if len(whole_lines) != len(folders):
        raise DataError(
            f"{path}: {len(whole_lines)} names for {len(folders)} class folders, and no line starts with a class "
            "folder's name; expected `<folder> <name>` lines or one name per class folder in sorted folder order"
        )
    return whole_lines


def read_class_names(root: Path, folders: list[str]) -> list[str]:
    """Names from the data root's class-names file (`CLASS_NAME_FILES`), else the folder names."""
    for file_name in CLASS_NAME_FILES:
        if (root / file_name).is_file():
            return parse_class_names(root / file_name, folders)
    return list(folders)


@dataclass
class RecordedClasses:
    """The classes a weights file records: names in class-index order, and the folders they came from."""

    names: list[str]
    folders: list[str] | None


def class_names_metadata(folders: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """Weights metadata that records the training data's class folders and names."""
    return {METADATA_FOLDERS: json.dumps(list(folders)), METADATA_NAMES: json.dumps(list(names))}


def recorded_classes(weights: WeightsFile, num_classes: int) -> RecordedClasses | None:
    """The class names (and folders) saved with `weights`, or None when it records none (e.g. converted)."""
    if METADATA_NAMES not in weights.metadata:
        return None
    lists = {}
    for key in (METADATA_NAMES, METADATA_FOLDERS):
        raw = weights.metadata.get(key)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not (isinstance(value, list) and len(value) == num_classes and all(isinstance(v, str) for v in value)):
            raise CheckpointError(
                f"{weights.path}: metadata {key!r} is not a JSON list of {num_classes} strings "
                "(one per class of the model)"
            )
        lists[key] = value
    return RecordedClasses(lists[METADATA_NAMES], lists.get(METADATA_FOLDERS))


def names_for_data(recorded: RecordedClasses | None, folders: list[str], names: list[str]) -> list[str]:
    """The names evaluation shows: the weights' when they record these class folders, else the data's own."""
    if recorded is None:
        return names
    if len(recorded.names) != len(folders) or (recorded.folders is not None and recorded.folders != folders):
        theirs = recorded.folders or recorded.names
        first = next((i for i, (a, b) in enumerate(zip(theirs, folders, strict=False)) if a != b), None)
        where = f"class {first}: {theirs[first]} there, {folders[first]} here" if first is not None else ""
        console.print(
            f"note: the weights were trained on other classes ({len(theirs)}; {where or 'a different count'}) "
            f"than the data's {len(folders)} class folders; the data's names are shown",
            highlight=False,
            soft_wrap=True,
        )
        return names
    return recorded.names


def scan_split(root: Path, split: str, folders: list[str]) -> list[tuple[str, int]]:
    """(relative path, class index) of every image of `split`, by class then file name."""
    base = split_dir(root, split)
    index = {name: i for i, name in enumerate(folders)}
    samples: list[tuple[str, int]] = []
    for folder in _class_folders(base):
        if folder not in index:
            raise DataError(
                f"{base / folder}: a class folder the training split {root} does not have "
                f"({len(folders)} classes there); the splits must have the same class folders"
            )
        files = sorted(
            entry.name
            for entry in os.scandir(base / folder)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES)
        )
        if not files:
            raise DataError(
                f"{base / folder}: an empty class folder (no {', '.join(IMAGE_SUFFIXES)} images); "
                "add its images or remove the folder"
            )
        samples.extend((f"{folder}/{name}", index[folder]) for name in files)
    return samples


class ImageFolder(TolerantDataset):
    """One split of the layout; samples are dicts of `image` (normalised float32 (3, H, W)), `label`, and
    `index` / `requested_index` / `readable` (for `record_skipped`), plus `mix_seed` when `mixing`.

    `transform(image, rng)` maps a uint8 RGB image to the (3, H, W) array; the rng is seeded from
    (seed, epoch, index), so augmentation depends on neither the DataLoader workers nor the resume point.
    """

    def __init__(
        self,
        root: Path,
        split: str,
        transform: Callable[[np.ndarray, np.random.Generator], np.ndarray],
        *,
        train_split: str = "train",
        replace_unreadable: bool = True,
        max_bad_fraction: float = 0.01,
        seed: int = 0,
        mixing: bool = False,
    ) -> None:
        self.root, self.split = Path(root), split
        self.image_dir = split_dir(self.root, split)
        self.classes = class_folders(self.root, train_split, split)
        self.class_names = read_class_names(self.root, self.classes)
        self.samples = scan_split(self.root, split, self.classes)
        self.labels = np.array([label for _, label in self.samples], np.int64)
        self.transform = transform
        self.replace_unreadable = replace_unreadable
        self.max_bad_fraction = max_bad_fraction
        self.seed, self.epoch, self.mixing = seed, 0, mixing
        self.bad_images: dict[str, str] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def item_count(self) -> int:
        return len(self.samples)

    def item_description(self) -> str:
        return f"images under {self.image_dir}"

    def __len__(self) -> int:
        return len(self.samples)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.samples[index][0]

    def _try_read(self, index: int) -> np.ndarray | None:
        path = self.image_path(index)
        if str(path) in self.bad_images:
            return None
        try:
            return read_image(path)
        except UnreadableImage as exc:
            self._mark_bad(path, exc.reason)
            return None

    def _replacements(self, index: int) -> Iterator[int]:
        """The samples tried, in order, for sample `index`: itself, then the next ones (wrapping round)."""
        return ((index + step) % len(self) for step in range(len(self)))

    def _load(self, index: int) -> tuple[int, np.ndarray | None]:
        if not self.replace_unreadable:
            return index, self._try_read(index)
        for j in self._replacements(index):
            image = self._try_read(j)
            if image is not None:
                return j, image
        raise DataError(f"no image under {self.image_dir} can be read")

    def _note_bad(self, index: int) -> None:
        path = self.image_path(index)
        if str(path) not in self.bad_images:
            try:
                read_image(path)
                reason = "could not be read in a DataLoader worker"
            except UnreadableImage as exc:
                reason = exc.reason
            self._mark_bad(path, reason)

    def record_skipped(self, batch: dict[str, Any]) -> None:
        """Note in this process the images that (worker) samples of a collated batch skipped."""
        requested = np.asarray(batch["requested_index"]).reshape(-1).tolist()
        used = np.asarray(batch["index"]).reshape(-1).tolist()
        readable = np.asarray(batch["readable"]).reshape(-1).tolist()
        for req, final, ok in zip(requested, used, readable, strict=True):
            if not ok:
                self._note_bad(req)
            for j in self._replacements(req):
                if j == final:
                    break
                self._note_bad(j)

    def unreadable_indices(self, bad_images: Collection[str]) -> set[int]:
        """Samples whose image is among `bad_images` (paths as `bad_images` holds them, merged over ranks)."""
        bad = set(bad_images)
        return {i for i in range(len(self)) if str(self.image_path(i)) in bad}

    def __getitem__(self, index: int) -> dict[str, Any]:
        used, image = self._load(index)
        readable = image is not None
        if image is None:  # a blank stand-in, so the batch keeps its shape; its prediction is left out
            image = np.zeros((256, 256, 3), np.uint8)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = {
            "image": torch.from_numpy(self.transform(image, rng)),
            "label": int(self.labels[used]),
            "index": used,
            "requested_index": index,
            "readable": readable,
        }
        if self.mixing:  # the batch's mixing is drawn from its samples' seeds (see ClsTask.collate)
            sample["mix_seed"] = int(rng.integers(0, 2**31))
        return sample
