"""One torchrun process: `python -m hrformer_core.engine.worker {train,eval} ... --status-dir DIR [key=value ...]`.

Started by `hrformer_core.engine.launch_torchrun`, not by users. Each rank runs the core train/evaluate
and writes `DIR/rank<N>.json` (ok, exit code, one-line error, run folder, weights digest, metrics) so the
parent can name the failing rank and its cause; unexpected exceptions also go through torchrun's `record`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import record

from hrformer_core.engine import evaluate, load_recipe, train
from hrformer_core.engine.rundir import RunDir
from hrformer_core.errors import HRFormerError, UsageError
from hrformer_core.utils.console import console
from hrformer_core.utils.io import write_json
from hrformer_core.utils.memory import reuse_freed_memory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hrformer_core.engine.worker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train_args = commands.add_parser("train")
    train_args.add_argument("--recipe", help="recipe name or .yaml path (on resume: the run's own)")
    train_args.add_argument("--resume", help="run folder to continue")
    train_args.add_argument("--run-dir", help="exact new run folder")
    eval_args = commands.add_parser("eval")
    eval_args.add_argument("--recipe", required=True)
    eval_args.add_argument("--weights", required=True, help="safetensors weights to evaluate")
    eval_args.add_argument("--out", help="output folder")
    for sub in (train_args, eval_args):
        sub.add_argument("--project", default="runs", help="parent of new run folders")
        sub.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
        sub.add_argument("--status-dir", required=True, help="folder for this rank's status file")
        sub.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the command; returns the fields of a successful status."""
    if args.command == "eval":
        recipe = load_recipe(args.recipe, args.overrides)
        result = evaluate(recipe, args.weights, out_dir=args.out, project=args.project, device=args.device)
        return {"run_dir": str(result.folder), "metrics": result.metrics}
    recipe = None
    if args.recipe or args.overrides:
        source = args.recipe or (RunDir(args.resume).recipe if args.resume else None)
        if source is None:
            raise UsageError("train: overrides need --recipe, or --resume with a run folder")
        recipe = load_recipe(source, args.overrides)
    result = train(recipe, run_dir=args.run_dir, resume=args.resume, project=args.project, device=args.device)
    return {
        "run_dir": str(result.run_dir),
        "epochs_completed": result.epochs_completed,
        "weights_digest": result.weights_digest,
        "metrics": result.metrics,
    }


@record
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reuse_freed_memory()
    rank = int(os.environ.get("RANK", "0"))
    status: dict[str, Any] = {"rank": rank, "ok": False, "exit_code": 1, "error": None}
    try:
        status.update(run(args), ok=True, exit_code=0)
    except HRFormerError as exc:
        status.update(exit_code=exc.exit_code, error=f"{type(exc).__name__}: {exc}")
        console.print(f"error (rank {rank}): {exc}", markup=False, highlight=False, soft_wrap=True)
    except BaseException as exc:
        status.update(error=f"{type(exc).__name__}: {exc}")
        write_json(Path(args.status_dir) / f"rank{rank}.json", status)
        raise
    write_json(Path(args.status_dir) / f"rank{rank}.json", status)
    return int(status["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
