"""One rich console for the library's progress and logs (stderr keeps stdout parseable)."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True)
