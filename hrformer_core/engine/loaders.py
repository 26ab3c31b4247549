"""What the engine's DataLoaders share: a worker count the machine can run, and errors in our own words.

PyTorch re-raises an exception from a worker process as the same class with a message made of "Caught
DataError in DataLoader worker process 0. Original Traceback ..." and the whole traceback; `batches`
gives the user our one-line message back. More workers than cores only slow loading down (and PyTorch
warns about it), so `worker_count` caps `train.workers` at this process's share of the cores.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from hrformer_core.engine.distributed import rank
from hrformer_core.errors import HRFormerError
from hrformer_core.utils.console import console

T = TypeVar("T")
WORKER_TRACEBACK = "Original Traceback"
_announced: set[tuple[int, int]] = set()


def available_cores() -> int:
    """The cores this process may use (its CPU affinity), shared among the ranks of this node under torchrun."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
    return max(1, cores // max(1, local_ranks))


def worker_count(requested: int) -> int:
    """`train.workers` capped at the available cores; says so once per process (on rank 0) when it caps."""
    cores = available_cores()
    if requested <= cores:
        return requested
    if (requested, cores) not in _announced and rank() == 0:
        _announced.add((requested, cores))
        console.print(
            f"train.workers={requested}: this process has {cores} CPU core(s), so {cores} DataLoader worker(s) "
            "are used",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return cores


def batches(loader: Iterable[T]) -> Iterator[T]:
    """Iterate `loader`; an HRFormerError raised in a DataLoader worker arrives as itself, in one line."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except HRFormerError as exc:
            original = worker_message(exc)
            if original is None:
                raise
            raise type(exc)(original) from None
        yield batch


def worker_message(exc: HRFormerError) -> str | None:
    """The original message of an error PyTorch re-raised from a worker (None for a main-process error).

    Its text ends with the worker's traceback, whose last entry is `module.Class: message`.
    """
    text = str(exc)
    if WORKER_TRACEBACK not in text:
        return None
    cls = type(exc)
    for name in (f"{cls.__module__}.{cls.__qualname__}", cls.__qualname__):
        head = f"\n{name}: "
        if head in text:
            return text[text.rindex(head) + len(head) :].strip()
    return text.strip().splitlines()[-1]
