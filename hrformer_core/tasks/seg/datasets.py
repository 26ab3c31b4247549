"""Segmentation samples from a layout's (image, label) pairs, with unusable pairs skipped, counted and reported.

A pair is unusable when its image or label cannot be read (missing, truncated, corrupt), when the label is not
a single-channel map, when its size differs from the image's, or when it holds an id its layout never stores;
`bad_images` maps the offending file to the reason. Training replaces such a sample by the next usable pair
(deterministically); evaluation gives a blank stand-in that `unreadable_indices` names, so evaluation leaves
its prediction out. More than `max_bad_fraction` of the pairs unusable stops with one line.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ...data.images import UnreadableImage, read_image
from ...data.tolerant import TolerantDataset
from ...data.transforms import normalize_image
from ...errors import DataError
from .layouts import IGNORE, INVALID, Layout, Pair
from .transforms import SegAugment, augment, resize_short_side


class BadPair(Exception):
    """A pair that cannot be used: `path` is the file at fault."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def encode_label(raw: np.ndarray, table: np.ndarray, path: Path, stored_ids: str) -> np.ndarray:
    """Stored ids -> train ids (uint8, 255 ignored); an id the layout never stores is a BadPair naming it."""
    if raw.ndim != 2:
        raise BadPair(path, f"a label must be a single-channel PNG of ids, got {raw.shape[2]} channels")
    if raw.dtype != np.uint8:
        too_big = raw[raw > 255]
        if too_big.size:
            raise BadPair(path, f"label id {int(too_big.min())} is not one of the {stored_ids}")
        raw = raw.astype(np.uint8)
    encoded = table[raw]
    if (encoded == INVALID).any():
        bad = int(np.unique(raw[encoded == INVALID])[0])
        raise BadPair(path, f"label id {bad} is not one of the {stored_ids}")
    return encoded.astype(np.uint8)


def read_pair(pair: Pair, table: np.ndarray, stored_ids: str) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, train-id label) of a pair, or BadPair saying which file is wrong and why."""
    try:
        image = read_image(pair.image)
    except UnreadableImage as exc:
        raise BadPair(pair.image, exc.reason) from None
    try:
        raw = read_image(pair.label, cv2.IMREAD_UNCHANGED)
    except UnreadableImage as exc:
        raise BadPair(pair.label, exc.reason) from None
    label = encode_label(raw, table, pair.label, stored_ids)
    if label.shape != image.shape[:2]:
        h, w = label.shape
        raise BadPair(
            pair.label, f"label is {w}x{h} but its image {pair.image.name} is {image.shape[1]}x{image.shape[0]}"
        )
    return image, label


class SegDataset(TolerantDataset):
    """Training crops (`augment` given) or whole validation images with their full-resolution labels.

    Training sample: `image` (3, crop_h, crop_w) normalised, `label` (crop_h, crop_w) int64.
    Validation sample: `image` (3, H', W') after `eval_short_side` resizing, `label` (H, W) int64 as stored.
    Both carry `index`, `requested_index` and `readable` so `record_skipped` can count worker skips.
    """

    unusable = "cannot be used"

    def __init__(
        self,
        pairs: list[Pair],
        layout: Layout,
        num_classes: int,
        *,
        crop_hw: tuple[int, int] = (512, 512),
        class_names: tuple[str, ...] = (),
        augment_options: SegAugment | None = None,
        eval_short_side: int = 0,
        seed: int = 0,
        max_bad_fraction: float = 0.01,
        where: str = "",
    ) -> None:
        if not pairs:
            raise DataError(f"{where or 'dataset'}: no images found")
        self.pairs = pairs
        self.layout = layout
        self.num_classes = num_classes
        self.table = layout.table(num_classes)
        self.crop_hw = tuple(crop_hw)
        self.augment = augment_options
        self.eval_short_side = eval_short_side
        self.seed = seed
        self.epoch = 0
        self.max_bad_fraction = max_bad_fraction
        self.where = where
        self.bad_images: dict[str, str] = {}
        self.class_names = class_names or layout.class_names or tuple(f"class {i}" for i in range(num_classes))

    def item_count(self) -> int:
        return len(self.pairs)

    def item_description(self) -> str:
        return f"image/label pairs under {self.where}"

    def __len__(self) -> int:
        return len(self.pairs)

    def _is_known_bad(self, index: int) -> bool:
        pair = self.pairs[index]
        return str(pair.image) in self.bad_images or str(pair.label) in self.bad_images

    def _try_read(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        if self._is_known_bad(index):
            return None
        try:
            return read_pair(self.pairs[index], self.table, self.layout.stored_ids)
        except BadPair as exc:
            self._mark_bad(exc.path, exc.reason)
            return None

    def _replacements(self, index: int) -> Iterator[int]:
        for step in range(len(self.pairs)):
            yield (index + step) % len(self.pairs)

    def _load(self, index: int) -> tuple[int, tuple[np.ndarray, np.ndarray] | None]:
        if self.augment is None:
            return index, self._try_read(index)
        for j in self._replacements(index):
            loaded = self._try_read(j)
            if loaded is not None:
                return j, loaded
        raise DataError(f"{self.where}: no image/label pair can be used")

    def __getitem__(self, index: int) -> dict[str, Any]:
        used, loaded = self._load(index)
        readable = loaded is not None
        if self.augment is not None:
            image, label = loaded  # type: ignore[misc]
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, label = augment(image, label, self.augment, self.crop_hw, rng)
        elif loaded is None:  # a stand-in: its prediction is left out (unreadable_indices)
            image, label = np.zeros((32, 32, 3), np.uint8), np.full((32, 32), IGNORE, np.uint8)
        else:
            image, label = loaded
            image, _ = resize_short_side(image, None, self.eval_short_side)
        return {
            "image": torch.from_numpy(normalize_image(image)),
            "label": torch.from_numpy(label.astype(np.int64)),
            "index": used,
            "requested_index": index,
            "readable": readable,
        }

    def _note_bad(self, index: int) -> None:
        """Note in this process the unusable pair that a DataLoader worker skipped."""
        if self._is_known_bad(index):
            return
        try:
            read_pair(self.pairs[index], self.table, self.layout.stored_ids)
            self._mark_bad(self.pairs[index].image, "could not be read in a DataLoader worker")
        except BadPair as exc:
            self._mark_bad(exc.path, exc.reason)

    def record_skipped(self, batch: dict[str, Any]) -> None:
        requested = np.asarray(batch["requested_index"]).reshape(-1).tolist()
        used = np.asarray(batch["index"]).reshape(-1).tolist()
        readable = np.asarray(batch["readable"]).reshape(-1).tolist()
        for req, final, ok in zip(requested, used, readable, strict=True):
            if not ok:
                self._note_bad(req)
            j = req
            while j != final:
                self._note_bad(j)
                j = (j + 1) % len(self.pairs)

    def unreadable_indices(self, bad_images: Collection[str]) -> set[int]:
        bad = set(bad_images)
        return {i for i, p in enumerate(self.pairs) if str(p.image) in bad or str(p.label) in bad}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack same-sized samples (training crops); whole validation images of different sizes stay lists."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            same = all(v.shape == values[0].shape for v in values)
            batch[key] = torch.stack(values) if same else values
        else:
            batch[key] = torch.tensor(values)
    return batch
