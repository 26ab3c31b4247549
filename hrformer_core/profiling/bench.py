"""Measured speed and memory: FLOPs do not predict HRFormer's speed (its reshapes and small matmuls cost more
than their MACs suggest), so the profile reports latency, throughput and peak memory next to them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import HRFormerError, UsageError
from ..models import ModelConfig, build_model

DEVICES = ("cpu", "cuda")
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def resolve_device(device: str) -> torch.device:
    """`cpu` or `cuda`; asking for CUDA where none is available is a usage error."""
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but torch sees no CUDA GPU: use --device cpu")
    return torch.device(device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module, input_shape: tuple[int, ...], device: str = "cpu", warmup: int = 3, runs: int = 10
) -> dict[str, Any]:
    """Seconds per forward pass of a random `input_shape` batch: median and 90th percentile of `runs` timed
    passes after `warmup` untimed ones, in inference mode. `model` is moved to `device` and left there.
    """
    if runs < 1 or warmup < 0:
        raise UsageError(f"latency needs runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    dev = resolve_device(device)
    was_training = model.training
    model = model.to(dev).eval()
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0)).to(dev)
    times = []
    try:
        with torch.inference_mode():
            for step in range(warmup + runs):
                _synchronize(dev)
                start = time.perf_counter()
                model(x)
                _synchronize(dev)
                if step >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    p90 = statistics.quantiles(times, n=10, method="inclusive")[-1] if len(times) > 1 else times[0]
    return {"median_s": statistics.median(times), "p90_s": p90, "runs": runs, "warmup": warmup}


def measure_throughput(
    model: nn.Module,
    batch: int,
    input_hw: tuple[int, int],
    device: str = "cpu",
    warmup: int = 1,
    runs: int = 5,
) -> float:
    """Images per second of inference at `batch` images per forward (median pass time)."""
    if batch < 1:
        raise UsageError(f"throughput needs a batch of at least 1 image, got {batch}")
    latency = measure_latency(model, (batch, 3, *input_hw), device, warmup, runs)
    return batch / latency["median_s"]


def measure_peak_memory(
    config: ModelConfig, input_shape: tuple[int, ...], device: str = "cpu"
) -> dict[str, Any]:
    """Peak memory of one inference forward of a freshly built `config` model on `input_shape`.

    CUDA: `torch.cuda.max_memory_allocated` (weights and input included). CPU: the growth of the peak
    resident set over the forward, measured in a fresh subprocess so that nothing this process allocated
    before (or the allocator still holds) hides it.
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        return _cuda_peak_memory(config, input_shape, dev)
    return _cpu_peak_memory(config, input_shape)


def _cuda_peak_memory(config: ModelConfig, input_shape: tuple[int, ...], dev: torch.device) -> dict[str, Any]:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    model = build_model(config).to(dev).eval()
    x = torch.randn(input_shape, device=dev)
    resident = torch.cuda.memory_allocated(dev)
    with torch.inference_mode():
        model(x)
    torch.cuda.synchronize(dev)
    peak = torch.cuda.max_memory_allocated(dev)
    return {
        "peak_bytes": peak,
        "forward_bytes": peak - resident,
        "method": "torch.cuda.max_memory_allocated over one forward; 'forward' excludes weights and input",
    }


def _cpu_peak_memory(config: ModelConfig, input_shape: tuple[int, ...]) -> dict[str, Any]:
    code = (
        "import json, sys\n"
        "from hrformer_core.profiling.bench import cpu_memory_probe\n"
        "config, shape, threads = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])\n"
        "print(json.dumps(cpu_memory_probe(config, shape, threads)))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    args = [json.dumps(config.to_dict()), json.dumps(list(input_shape)), str(torch.get_num_threads())]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise HRFormerError(f"CPU memory probe for {config.name} at input {list(input_shape)} failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    """Linux lets a process reset its peak RSS (VmHWM) to the current RSS; elsewhere this returns False."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _max_rss_bytes() -> int:
    import resource  # Unix only; imported here so the module still imports elsewhere

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def cpu_memory_probe(config: dict[str, Any], input_shape: list[int], threads: int) -> dict[str, Any]:
    """Run inside the fresh subprocess of `measure_peak_memory`: build, allocate, forward once, report."""
    torch.set_num_threads(threads)
    model = build_model(ModelConfig.from_dict(config)).eval()
    x = torch.randn(input_shape)
    hwm_reset = _reset_peak_rss()
    before = _proc_status_kib("VmRSS") * 1024 if hwm_reset else _max_rss_bytes()
    with torch.inference_mode():
        model(x)
    peak = _proc_status_kib("VmHWM") * 1024 if hwm_reset else _max_rss_bytes()
    if hwm_reset:
        method = "peak RSS (VmHWM) of a fresh process; 'forward' is its growth over one forward pass"
    else:
        method = "ru_maxrss of a fresh process; 'forward' is its growth over one forward pass (a lower bound)"
    return {"peak_bytes": peak, "forward_bytes": max(0, peak - before), "method": method}
