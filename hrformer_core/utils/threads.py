"""Process set-up before DataLoader workers are forked."""

from __future__ import annotations

import cv2


def make_fork_safe() -> None:
    """Run OpenCV without its own thread pool.

    A worker forked while OpenCV's pool holds a lock (after images were generated or decoded in the main
    process) deadlocks on its first OpenCV call; the workers, not OpenCV, give the data pipeline its
    parallelism (mmengine does the same).
    """
    cv2.setNumThreads(0)
