"""The one image reader of the toolkit: it says what is wrong with a file and keeps codec noise off the terminal.

`cv2.imread` decodes a truncated JPEG as a mostly grey image, and the only trace is libjpeg's bare
`Premature end of JPEG file` on stderr; a missing file gets OpenCV's own `findDecoder` warning. Here the
bytes are read in Python (a missing file is an OSError with its reason), JPEG and PNG files are walked to
their end marker (a JPEG's end-of-image, a PNG's IEND chunk, checking every chunk's CRC) before anything is
decoded, and the decode runs with the process's C-level stderr captured: what libjpeg or libpng says about
damaged data becomes the reason the image is refused, never terminal output.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from hrformer_core.errors import DataError

JPEG_START = b"\xff\xd8"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The marker that ends a scan's entropy-coded data: 0xFF (and fill bytes) followed by anything but a
# stuffed zero or a restart marker.
_SCAN_END = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")
_STANDALONE_MARKERS = frozenset({0x00, 0x01, *range(0xD0, 0xD8)})
_JPEG_END = 0xD9
_START_OF_SCAN = 0xDA
# Decoder messages that mean the pixels are wrong; others (e.g. libpng's sRGB profile notes) do not.
_DAMAGE = ("corrupt jpeg data", "premature end", "libpng error")
_TRUNCATED_JPEG = "truncated or corrupt JPEG: the data ends before its end-of-image marker"
_capture_lock = threading.Lock()  # file descriptor 2 is one per process


class UnreadableImage(DataError):
    """An image file that cannot be used; `reason` says why in a few words, without the path."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def read_image(path: str | os.PathLike, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """The image at `path` decoded with OpenCV `flags`, colour channels in RGB(A) order.

    Raises UnreadableImage (a DataError) for a missing, empty, truncated or corrupt file, or one OpenCV
    cannot decode.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UnreadableImage(path, "file not found") from None
    except OSError as exc:
        raise UnreadableImage(path, f"cannot be read ({exc.strerror or exc})") from None
    problem = container_problem(data)
    if problem is not None:
        raise UnreadableImage(path, problem)
    with captured_stderr() as messages:
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        except cv2.error:
            image = None
    damage = next((line for line in messages if any(word in line.lower() for word in _DAMAGE)), None)
    if image is None or damage is not None:
        detail = damage or next(iter(messages), None)
        said = f" (the decoder says: {detail})" if detail else ""
        raise UnreadableImage(path, f"corrupt image data, or a format OpenCV cannot decode{said}")
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def container_problem(data: bytes) -> str | None:
    """What is structurally wrong with the bytes of a JPEG or PNG file (truncation, a bad CRC), else None.

    Other formats, and JPEG/PNG files that pass, are left to the decoder.
    """
    if not data:
        return "empty file"
    if data.startswith(JPEG_START):
        return _jpeg_problem(data)
    if data.startswith(PNG_SIGNATURE):
        return _png_problem(data)
    return None


def _jpeg_problem(data: bytes) -> str | None:
    """Walk the segments (skipping each by its length) and scans to the end-of-image marker.

    Most files end with that marker; the walk is for those with bytes after it (e.g. a phone's motion photo).
    """
    if data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        return None
    position = len(JPEG_START)
    while True:
        position = data.find(b"\xff", position)  # libjpeg skips stray bytes between segments too
        if position < 0 or position + 1 >= len(data):
            return _TRUNCATED_JPEG
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before the marker
            position += 1
            continue
        if marker == _JPEG_END:
            return None
        if marker in _STANDALONE_MARKERS:
            position += 2
            continue
        if position + 4 > len(data):
            return _TRUNCATED_JPEG
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if position > len(data):
            return _TRUNCATED_JPEG
        if marker == _START_OF_SCAN:
            scan_end = _SCAN_END.search(data, position)
            if scan_end is None:
                return _TRUNCATED_JPEG
            position = scan_end.end() - 2


def _png_problem(data: bytes) -> str | None:
    """Walk the chunks to IEND, checking each chunk's CRC."""
    view = memoryview(data)
    position = len(PNG_SIGNATURE)
    while position + 12 <= len(data):
        length = int.from_bytes(view[position : position + 4], "big")
        kind = bytes(view[position + 4 : position + 8])
        name = kind.decode("ascii", "replace")
        end = position + 12 + length
        if end > len(data):
            return f"truncated PNG: the data ends inside its {name} chunk"
        if zlib.crc32(view[position + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
            return f"corrupt PNG: its {name} chunk fails its CRC check"
        if kind == b"IEND":
            return None
        position = end
    return "truncated PNG: the data ends before its IEND chunk"


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """The lines C code writes to file descriptor 2 meanwhile (libjpeg and libpng write there directly)."""
    lines: list[str] = []
    with _capture_lock, tempfile.TemporaryFile() as sink:
        if sys.stderr is not None:
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to keep clean
            yield lines
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())
