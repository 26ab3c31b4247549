"""The one parser of image sizes on the command line and in recipes and weights metadata."""

from __future__ import annotations

from ..errors import UsageError


def parse_size(size: str | tuple[int, int] | list[int], what: str = "input size", minimum: int = 1) -> tuple[int, int]:
    """`"256x192"` (H x W), `"224"` (square) or a pair -> (H, W), each side at least `minimum` pixels."""
    text = "x".join(map(str, size)) if isinstance(size, tuple | list) else str(size)
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"{what} {size!r}: expected HxW in pixels, e.g. 256x192")
    height, width = int(parts[0]), int(parts[1])
    if min(height, width) < minimum:
        raise UsageError(f"{what} {size!r} is too small: each side must be at least {minimum} pixels")
    return height, width
