"""The CLI's allocator set-up: freed tensor memory stays in the process for the next forward pass."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

CHILD = """
import json, sys, torch
from hrformer_core.utils.memory import reuse_freed_memory
def resident(): return int(open("/proc/self/statm").read().split()[1]) * 4096
applied = reuse_freed_memory() if sys.argv[1] == "1" else False
block = torch.ones(64 << 20, dtype=torch.uint8)
before_free = resident()
del block
print(json.dumps({"applied": applied, "kept_mb": (resident() - before_free + (64 << 20)) / 2**20}))
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the allocator set-up is for glibc"
)


def _kept_after_free(apply: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, "1" if apply else "0"], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@glibc_only
def test_freed_tensor_memory_is_kept_for_reuse() -> None:
    default, tuned = _kept_after_free(False), _kept_after_free(True)
    assert tuned["applied"] is True
    assert default["kept_mb"] < 8  # glibc unmaps a freed 64 MiB block at once
    assert tuned["kept_mb"] > 56  # ... and keeps it once set up


@glibc_only
def test_cli_sets_up_the_allocator(monkeypatch) -> None:
    from typer.testing import CliRunner

    from hrformer_cli import app as app_module

    calls = []
    monkeypatch.setattr(app_module, "reuse_freed_memory", lambda: calls.append(True) or True)
    result = CliRunner().invoke(app_module.app, ["recipes"])
    assert result.exit_code == 0, result.output
    assert calls == [True]
