"""Files of a prediction run, under one never-reused folder, mirroring the sources' relative paths.

Layout: `vis/<rel>` annotated images (videos as `vis/<rel>.mp4`), `json/<rel>.json` one record per image (a
list of frame records per video), `<folder>/<rel>.png` for a task's lossless per-image maps (segmentation's
`labels/`), `predictions.json` (what each result's `records()` gives: COCO keypoint results for pose, the
per-image records otherwise) and `run.json` (weights, Hub commit, options, counts). Lists that grow with
the input are spooled to an anonymous temporary file and written out at the end, so memory stays constant
however long the video or large the folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from ..errors import DataError
from ..tasks import Prediction
from ..utils.io import atomic_write, write_json
from .sources import Frame

VIDEO_SUFFIX = ".mp4"
ENCODABLE = (".jpg", ".jpeg", ".png", ".bmp", ".webp", VIDEO_SUFFIX)
VIDEO_CODEC = "mp4v"


class JsonListSpool:
    """A JSON list built one item at a time on disk and written atomically by `finish`."""

    def __init__(self, folder: Path) -> None:
        # Open across appends, closed by `finish`; anonymous, so nothing is left behind if the run dies.
        self.file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8", dir=folder)  # noqa: SIM115
        self.count = 0

    def append(self, item: Any) -> None:
        self.file.write(json.dumps(item) + "\n")
        self.count += 1

    def finish(self, path: Path) -> Path:
        def write(tmp: Path) -> None:
            self.file.seek(0)
            with open(tmp, "w", encoding="utf-8") as out:
                out.write("[")
                for index, line in enumerate(self.file):
                    out.write(("\n" if index == 0 else ",\n") + line.rstrip("\n"))
                out.write("\n]\n" if self.count else "]\n")

        try:
            return atomic_write(path, write)
        finally:
            self.file.close()


class _VideoOutput:
    """One annotated video and its frame records, written to temporary names and renamed when complete.

    cv2.VideoWriter picks its container from the file extension, so the temporary file keeps `.mp4`.
    """

    def __init__(self, video_path: Path, json_path: Path, fps: float, size_wh: tuple[int, int]) -> None:
        self.video_path, self.json_path = video_path, json_path
        json_path.parent.mkdir(parents=True, exist_ok=True)
        video_path.parent.mkdir(parents=True, exist_ok=True)
        self.frames = JsonListSpool(json_path.parent)
        self.partial = video_path.with_name(f".{video_path.stem}.partial{VIDEO_SUFFIX}")
        self.writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*VIDEO_CODEC), fps, size_wh)
        if not self.writer.isOpened():
            raise DataError(f"{video_path}: OpenCV cannot write {VIDEO_CODEC} video here")

    def add(self, record: dict[str, Any], annotated: np.ndarray) -> None:
        self.frames.append(record)
        self.writer.write(cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self.frames.finish(self.json_path)
        self.writer.release()
        os.replace(self.partial, self.video_path)


class PredictionWriter:
    """Writes each result as it comes; `close()` writes predictions.json and run.json."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.predictions = JsonListSpool(folder)
        self.video: _VideoOutput | None = None

    def add(self, result: Prediction) -> None:
        frame = result.frame
        record = result.to_dict()
        rel = frame.relative
        for kind, image in result.label_maps().items():
            path = self.folder / kind / _named(rel, ".png")
            if frame.is_video:
                path = self.folder / kind / rel / f"{frame.frame_index:06d}.png"
            _write_image(path, image)
            record[f"{kind}_png"] = path.relative_to(self.folder).as_posix()
        for item in result.records():
            self.predictions.append(item)
        annotated = result.annotate()
        if frame.is_video:
            self._video_frame(frame, record, annotated)
            return
        self._end_video()
        write_json(self.folder / "json" / f"{rel}.json", record)
        _write_image(self.folder / "vis" / _named(rel, rel.suffix), cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))

    def _video_frame(self, frame: Frame, record: dict[str, Any], annotated: np.ndarray) -> None:
        """Frames of one video arrive consecutively; the first frame of the next video closes the last one."""
        if frame.frame_index == 0 or self.video is None:
            self._end_video()
            height, width = frame.image.shape[:2]
            self.video = _VideoOutput(
                self.folder / "vis" / _named(frame.relative, VIDEO_SUFFIX),
                self.folder / "json" / f"{frame.relative}.json",
                frame.fps or 25.0,
                (width, height),
            )
        self.video.add(record, annotated)

    def _end_video(self) -> None:
        if self.video is not None:
            self.video.close()
            self.video = None

    def close(self, run_info: dict[str, Any]) -> None:
        self._end_video()
        self.predictions.finish(self.folder / "predictions.json")
        write_json(self.folder / "run.json", run_info)


def _named(relative: Path, suffix: str) -> Path:
    """`relative` itself when it has `suffix`, else with `suffix` appended: `x.png` stays, `x.jpg` -> `x.jpg.png`.

    Appending rather than replacing keeps `x.jpg` and `x.png` of one folder apart.
    """
    if suffix.lower() not in ENCODABLE:
        suffix = ".png"
    return relative if relative.suffix.lower() == suffix.lower() else relative.with_name(relative.name + suffix)


def _write_image(path: Path, image: np.ndarray) -> None:
    """Encode by the path's extension and write atomically."""
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise DataError(f"{path}: OpenCV could not encode the image as {path.suffix}")
    atomic_write(path, lambda tmp: tmp.write_bytes(encoded.tobytes()))
