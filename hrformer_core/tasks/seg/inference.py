"""Class logits for a whole image, the one implementation behind `hrformer predict` and evaluation.

`whole` runs the image as it is; `slide` averages the logits of window-sized crops with a 2/3-window stride
(images smaller than a window are padded, the padding cut off again), as the reference evaluates inputs
larger than its training crop. Multi-scale testing resizes the image by each scale, optionally adds the
mirrored image's logits flipped back, and sums the logits at the base size (the reference's `ms_test`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

SEG_MODES = ("whole", "slide")
Forward = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, h, w) -> (N, C, h, w) logits


def window_starts(length: int, window: int) -> list[int]:
    """Window offsets along one axis: stride 2/3 of the window, the last window flush with the end."""
    stride = max(1, window * 2 // 3)
    starts = list(range(0, max(length - window, 0) + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def sliding_logits(forward: Forward, image: torch.Tensor, window_hw: tuple[int, int], batch_size: int) -> torch.Tensor:
    """(C, H, W) logits of a (3, H, W) image, averaged over overlapping windows."""
    win_h, win_w = window_hw
    height, width = image.shape[-2:]
    padded = F.pad(image, (0, max(0, win_w - width), 0, max(0, win_h - height)))
    full_h, full_w = padded.shape[-2:]
    windows = [(t, left) for t in window_starts(full_h, win_h) for left in window_starts(full_w, win_w)]
    total: torch.Tensor | None = None
    counts = torch.zeros(1, full_h, full_w)
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        crops = torch.stack([padded[:, t : t + win_h, left : left + win_w] for t, left in chunk])
        logits = forward(crops).float().cpu()
        if total is None:
            total = torch.zeros(logits.shape[1], full_h, full_w)
        for (t, left), window_logits in zip(chunk, logits, strict=True):
            total[:, t : t + win_h, left : left + win_w] += window_logits
            counts[:, t : t + win_h, left : left + win_w] += 1
    assert total is not None
    return (total / counts)[:, :height, :width]


def image_logits(
    forward: Forward,
    image: torch.Tensor,
    *,
    mode: str = "whole",
    window_hw: tuple[int, int] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    batch_size: int = 1,
    output_hw: tuple[int, int] | None = None,
) -> torch.Tensor:
    """(C, H_out, W_out) summed logits of a normalised (3, H, W) image over `scales` (and flips).

    `output_hw` defaults to the image's size; the label's resolution when the image was resized before.
    """
    height, width = image.shape[-2:]
    out_hw = output_hw or (height, width)

    def run(x: torch.Tensor) -> torch.Tensor:
        if mode == "slide":
            if window_hw is None:
                raise ValueError("slide mode needs window_hw")
            return sliding_logits(forward, x, window_hw, batch_size)
        return forward(x[None]).float().cpu()[0]

    total: torch.Tensor | None = None
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        x = image if size == (height, width) else _resize(image[None], size)[0]
        views = [run(x)]
        if flip:
            views.append(run(x.flip(-1)).flip(-1))
        for logits in views:
            logits = logits if tuple(logits.shape[-2:]) == tuple(out_hw) else _resize(logits[None], out_hw)[0]
            total = logits if total is None else total + logits
    assert total is not None
    return total


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
