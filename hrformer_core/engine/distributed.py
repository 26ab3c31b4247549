"""Multi-process training: launching torchrun, process-group set-up, and the few collectives the engine uses.

Every helper also works in a single process without a process group, so the engine has one code path.
`launch_torchrun` re-runs the training through `python -m torch.distributed.run ... -m hrformer_core.engine.worker`
(a real module: no generated scripts) and reports the failing rank from the status files the workers write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from hrformer_core.errors import UsageError
from hrformer_core.utils.console import console

WORKER_MODULE = "hrformer_core.engine.worker"
STATUS_DIR_FLAG = "--status-dir"


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job. `owns_group`: init_distributed created the group (and must end it)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    """`device` ("cpu", "cuda", "cuda:1"), or CUDA when available; a bare "cuda" means cuda:LOCAL_RANK."""
    try:
        resolved = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise UsageError(f"device {device!r}: expected cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r}: CUDA is not available on this machine (use --device cpu)")
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
    return resolved


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the torchrun job described by the environment (gloo on CPU, nccl on CUDA); no-op when alone."""
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    owns = False
    if env_world > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
            dist.init_process_group(backend="nccl", device_id=resolved)
        else:
            dist.init_process_group(backend="gloo")
        owns = True
    return DistInfo(rank(), world_size(), local_rank, resolved, owns)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over all ranks (a new tensor; the input is unchanged)."""
    result = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(result, op=dist.ReduceOp.SUM)
        result /= world_size()
    return result


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, indexed by rank, on every rank (objects must be picklable)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s buffers (BN running statistics) to all ranks, so every rank holds the same model."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=src)


class _BatchNormAnyDim(nn.modules.batchnorm._BatchNorm):
    """Plain batch norm accepting any input rank, standing in for SyncBatchNorm outside a process group."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace SyncBatchNorm layers by plain batch norm (same parameters and statistics), recursively.

    SyncBatchNorm fails without a process group ("Default process group has not been initialized").
    """
    if isinstance(module, nn.SyncBatchNorm):
        plain = _BatchNormAnyDim(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        plain.load_state_dict(module.state_dict())
        plain.train(module.training)
        return plain
    for name, child in module.named_children():
        setattr(module, name, revert_sync_batchnorm(child))
    return module


def launch_torchrun(
    argv: Sequence[str],
    nproc: int,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | None = None,
    status_dir: Path | None = None,
) -> int:
    """Run `python -m hrformer_core.engine.worker *argv` in `nproc` processes per node through torchrun.

    Single node uses `--standalone` (torchrun picks a free port). Returns the exit code to use: that of the
    lowest failing rank (whose one-line cause is printed), else torchrun's. Each worker writes
    `status_dir/rank<N>.json`; a temporary folder is used when `status_dir` is None.
    """
    if nproc < 1 or nnodes < 1:
        raise UsageError(f"nproc {nproc} and nnodes {nnodes}: expected integers >= 1")
    if nnodes > 1 and not master_addr:
        raise UsageError("master_addr: required when training on more than one node")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
    if nnodes == 1:
        command.append("--standalone")
    else:
        command += ["--nnodes", str(nnodes), "--node-rank", str(node_rank), "--master-addr", str(master_addr)]
        command += ["--master-port", str(master_port or 29500)]
    with tempfile.TemporaryDirectory(prefix="hrformer-status-") as scratch:
        folder = Path(status_dir) if status_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("rank*.json"):
            stale.unlink()
        command += ["-m", WORKER_MODULE, *argv, STATUS_DIR_FLAG, str(folder)]
        returncode = subprocess.run(command, check=False).returncode
        statuses = read_statuses(folder)
    failures = [s for s in statuses if not s.get("ok")]
    for status in failures:
        console.print(
            f"rank {status.get('rank')} failed (exit code {status.get('exit_code')}): {status.get('error')}",
            markup=False,
            soft_wrap=True,
            highlight=False,
        )
    if failures:
        return int(failures[0].get("exit_code") or 1)
    if returncode != 0:
        console.print(
            f"torchrun exited with code {returncode} before the workers reported (see its log above)",
            markup=False,
            soft_wrap=True,
            highlight=False,
        )
    return returncode


def read_statuses(folder: Path) -> list[dict[str, Any]]:
    """The workers' status files in rank order (unreadable files are skipped: that rank was killed)."""
    statuses = []
    for path in folder.glob("rank*.json"):
        try:
            statuses.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(statuses, key=lambda s: int(s.get("rank", 0)))
