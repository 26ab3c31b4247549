"""Prediction inputs: images, folders, globs, list files, videos and webcams, streamed one frame at a time.

Every frame carries the path its outputs take under the output folder: the source file's path relative to
the root of its source (the folder, the glob's fixed prefix, the list's common folder), or relative to the
roots' common folder when several sources are given, so same-named files in different folders never collide.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..data.images import UnreadableImage, captured_stderr, read_image
from ..errors import DataError, UsageError
from ..utils.console import console

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm"})
GLOB_CHARS = frozenset("*?[")
WEBCAM_PREFIX = "webcam:"


@dataclass
class Frame:
    """One decoded image (RGB, uint8) or video frame and where its outputs go."""

    image: np.ndarray
    path: Path | None  # the file it came from; None for a webcam
    relative: Path  # output path stem: `relative.with_suffix(...)` under the output folder
    frame_index: int | None = None  # position in the video; None for a still image
    fps: float | None = None  # the video's frame rate (for the annotated copy)

    @property
    def is_video(self) -> bool:
        return self.frame_index is not None

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else self.relative.name

    def record(self, image_id: int) -> dict[str, Any]:
        """The start of every task's per-image JSON record: where the image came from and its size."""
        height, width = self.image.shape[:2]
        record: dict[str, Any] = {"file_name": self.relative.as_posix(), "image_id": image_id}
        if self.is_video:
            record["frame"] = self.frame_index
        record.update(width=width, height=height)
        return record


def coco_image_id(file_name: str) -> int | None:
    """COCO names images by id: `000000000785.jpg` is image 785; other names have no id."""
    stem = Path(file_name).stem
    return int(stem) if stem.isdigit() else None


def frame_image_id(frame: Frame, running_index: int) -> int:
    """The image id of a numeric (COCO-style) file name, else the running index (always, for video frames)."""
    found = None if frame.is_video else coco_image_id(frame.name)
    return running_index if found is None else found


@dataclass
class SourceReport:
    """What the stream skipped, so the summary can say it."""

    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    images: int = 0
    videos: int = 0

    def skip(self, path: str | Path, why: str) -> None:
        self.skipped.append((str(path), why))
        console.print(f"[yellow]warning:[/] skipped {path}: {why}", highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class _Source:
    """One resolved SOURCE argument: its root folder and how to list its files (lazily)."""

    text: str
    root: Path
    kind: str  # "file", "folder", "glob", "list" or "webcam"
    entries: tuple[Path, ...] = ()  # files of a list file
    camera: int | None = None


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _read_list(path: Path) -> tuple[Path, ...]:
    """Paths of a .txt list (one per line, `#` comments); relative entries are relative to the list file."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        entry = Path(text).expanduser()
        entry = entry if entry.is_absolute() else path.parent / entry
        if not entry.is_file():
            raise UsageError(f"{path}:{number}: listed source {text!r} does not exist")
        entries.append(entry)
    if not entries:
        raise UsageError(f"{path}: the list file names no images or videos (one path per line expected)")
    return tuple(entries)


def _glob_root(pattern: str) -> Path:
    """The fixed folder before the first wildcard, e.g. `data/a` for `data/a/**/*.jpg`."""
    parts = Path(pattern).parts
    fixed = parts[: next(i for i, part in enumerate(parts) if GLOB_CHARS & set(part))]
    return Path(*fixed) if fixed else Path(".")


def resolve_source(text: str) -> _Source:
    """Check one SOURCE argument exists and classify it; raise UsageError naming it otherwise."""
    if text.startswith(WEBCAM_PREFIX):
        index = text[len(WEBCAM_PREFIX) :]
        if not index.isdigit():
            raise UsageError(f"source {text!r}: expected webcam:N with N a camera index, e.g. webcam:0")
        return _Source(text, Path("."), "webcam", camera=int(index))
    path = Path(text).expanduser()
    if GLOB_CHARS & set(text) and not path.exists():
        if not glob.glob(text, recursive=True):
            raise UsageError(f"source {text!r}: the pattern matches no files")
        return _Source(text, _glob_root(text), "glob")
    if path.is_dir():
        return _Source(text, path, "folder")
    if path.is_file():
        if path.suffix.lower() == ".txt":
            entries = _read_list(path)
            return _Source(text, Path(os.path.commonpath([e.parent.resolve() for e in entries])), "list", entries)
        if _is_video(path):
            opened = _open_video(path)
            if opened is None:
                raise DataError(f"cannot open video {path}: not a readable video file")
            opened[0].release()
        return _Source(text, path.parent, "file")
    raise UsageError(f"source {text!r} does not exist: expected an image, folder, glob, .txt list, video or webcam:N")


def _walk(folder: Path) -> Iterator[Path]:
    """Files under `folder`, recursively, in a stable order, without listing the whole tree first."""
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(current) / name


class FrameStream:
    """Iterate over all frames of the given sources; `report` counts what was read and skipped.

    Missing sources raise UsageError at construction, before any work starts.
    """

    def __init__(self, sources: Sequence[str | os.PathLike]) -> None:
        if not sources:
            raise UsageError("no source given: pass an image, folder, glob, .txt list, video or webcam:N")
        self.sources = [resolve_source(str(s)) for s in sources]
        roots = [s.root.resolve() for s in self.sources]
        self.base = roots[0] if len(roots) == 1 else Path(os.path.commonpath(roots))
        self.report = SourceReport()

    def __iter__(self) -> Iterator[Frame]:
        """Frames in source order; DataError at the end when no source gave a single readable frame."""
        for source in self.sources:
            if source.kind == "webcam":
                opened = _open_video(source.camera)
                if opened is None:
                    raise DataError(f"cannot open webcam {source.camera}: no camera with that index, or it is busy")
                yield from self._frames(opened, None, Path(f"webcam_{source.camera}"))
                continue
            before = self.report.images + self.report.videos
            for path in self._files(source):
                yield from self._file(path, in_folder=source.kind != "file")
            if self.report.images + self.report.videos == before:
                console.print(
                    f"[yellow]warning:[/] {source.text}: no readable images or videos", highlight=False, soft_wrap=True
                )
        if self.report.images + self.report.videos == 0:
            names = ", ".join(s.text for s in self.sources)
            skipped = f" ({len(self.report.skipped)} file(s) skipped)" if self.report.skipped else ""
            raise DataError(f"no readable images or videos in {names}{skipped}")

    def _files(self, source: _Source) -> Iterator[Path]:
        if source.kind == "folder":
            return _walk(source.root)
        if source.kind == "glob":
            return (Path(p) for p in sorted(glob.iglob(source.text, recursive=True)) if Path(p).is_file())
        if source.kind == "list":
            return iter(source.entries)
        return iter([Path(source.text).expanduser()])

    def relative(self, path: Path) -> Path:
        resolved = path.resolve()
        try:
            return resolved.relative_to(self.base)
        except ValueError:  # a list entry outside the common root of several sources
            return Path(resolved.name)

    def _file(self, path: Path, in_folder: bool) -> Iterator[Frame]:
        suffix = path.suffix.lower()
        if _is_video(path):
            opened = _open_video(path)
            if opened is None:
                if not in_folder:
                    raise DataError(f"cannot open video {path}: not a readable video file")
                self.report.skip(path, "unreadable video")
                return
            yield from self._frames(opened, path, self.relative(path))
            return
        if suffix not in IMAGE_SUFFIXES:
            if in_folder:
                self.report.skip(path, f"not an image or video ({suffix or 'no suffix'})")
                return
            raise UsageError(
                f"source {str(path)!r}: unknown file type {suffix or '(none)'}; expected an image "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}), a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or a .txt list"
            )
        try:
            image = read_image(path)
        except UnreadableImage as exc:
            self.report.skip(path, exc.reason)
            return
        self.report.images += 1
        yield Frame(image, path, self.relative(path))

    def _frames(self, opened: _Opened, path: Path | None, relative: Path) -> Iterator[Frame]:
        """Decode one frame at a time; the capture is released however the iteration ends."""
        capture, image = opened
        try:
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            self.report.videos += 1
            index, ok = 0, True
            while ok:
                yield Frame(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), path, relative, index, fps)
                index += 1
                ok, image = capture.read()
        finally:
            capture.release()


_Opened = tuple[cv2.VideoCapture, np.ndarray]


def _open_video(device: Path | int) -> _Opened | None:
    """An opened capture and its first frame, or None when it cannot be opened or decodes nothing.

    FFmpeg's own complaints about a file it cannot open (e.g. `moov atom not found`) stay off the terminal.
    """
    with captured_stderr():
        capture = cv2.VideoCapture(str(device) if isinstance(device, Path) else device)
        ok, first = capture.read() if capture.isOpened() else (False, None)
    if ok:
        return capture, first
    capture.release()
    return None
