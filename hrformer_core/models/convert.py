"""Official HRFormer and mmpose 1.x checkpoints to our naming, with the model config inferred.

Differences handled: the official attention has separate q/k/v projections (`attn.attn.{q,k,v}_proj`,
`out_proj`), mmpose 1.x a fused `qkv` and `proj`; ours a fused `attn.qkv` and `attn.proj`. FFNs are `mlp`
(official) or `ffn` (mmpose, ours). Checkpoints come as `{"state_dict": ...}` (mmcv), `{"model": ...}`
(classification) or a bare dict, with `module.` (DDP seg), `backbone.`, `keypoint_head.` or `head.` prefixes.
Official pose checkpoints carry the relative-position tables but the reference never added them: the
converted model gets `rel_pos_bias=False` and the dead tables are dropped, so its outputs stay the reference's.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .config import ModelConfig
from .heads import HEADS
from .registry import VARIANTS, model_config

QKV = re.compile(r"^(.*)\.attn\.attn\.([qkv])_proj\.(weight|bias)$")


@dataclass
class ConversionReport:
    source_naming: str  # "official" or "mmpose"
    task: str
    config: ModelConfig
    mapped: int = 0
    fused_qkv: int = 0
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


ZIP_START = b"PK\x03\x04"  # torch.save's default format
PICKLE_START = 0x80  # a pickle's PROTO opcode: torch's legacy format
EXPECTED = "expected an official HRFormer or mmpose .pth (a state dict of tensors)"


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a .pth safely (weights_only) and unwrap the state dict from the known layouts.

    Failures say in our words what the file is not; torch's own warnings and its advice to load without
    weights_only (which would run whatever code the file carries) never reach the user.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with path.open("rb") as file:
        start = file.read(4)
    if not start:
        raise CheckpointError(f"{path}: empty file; {EXPECTED}")
    if not (start.startswith(ZIP_START) or start[0] == PICKLE_START):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (neither torch's zip format nor a pickle); {EXPECTED}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise CheckpointError(
                f"{path}: refused for safety: it holds Python objects other than tensors and plain containers, "
                f"which could run code when loaded; {EXPECTED}"
            ) from None
        raise CheckpointError(f"{path}: a damaged PyTorch checkpoint (its pickle cannot be read); {EXPECTED}") from None
    except Exception:  # torch raises many types for truncated or damaged files
        raise CheckpointError(
            f"{path}: a damaged or truncated PyTorch checkpoint (it cannot be unpacked); {EXPECTED}"
        ) from None
    return unwrap_state_dict(obj, str(path))


def unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{source}: no state dict found; expected a dict of tensors, or one under 'state_dict' or 'model'"
        )
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}


def _detect_task(keys: set[str]) -> str:
    """The first head (in HEADS order) whose official key prefixes occur in the checkpoint."""
    for name, spec in HEADS.items():
        if any(k.startswith(spec.official_markers) for k in keys):
            return name
    markers = "; ".join(f"{name}: {', '.join(spec.official_markers)}" for name, spec in HEADS.items())
    raise CheckpointError(
        f"cannot tell the task: none of the heads' keys found ({markers}); is this an HRFormer checkpoint?"
    )


def _rename(key: str, task: str) -> str | None:
    """Our name for one key, or None to drop it."""
    if key.endswith("relative_position_index"):
        return None
    key = HEADS[task].official_rename(key)
    if not key.startswith("backbone."):
        return key  # not ours: the strict load reports it as unexpected
    key = key.replace(".attn.attn.out_proj.", ".attn.proj.").replace(".attn.attn.", ".attn.")
    key = re.sub(r"(branches\.\d+\.\d+)\.mlp\.", r"\1.ffn.", key)
    fuse = re.match(r"^(.*\.fuse_layers\.(\d+)\.(\d+))\.([01])\.(.*)$", key)
    if fuse and int(fuse.group(3)) > int(fuse.group(2)):
        key = f"{fuse.group(1)}.{'conv' if fuse.group(4) == '0' else 'bn'}.{fuse.group(5)}"
    return key


def _infer_config(sd: dict[str, torch.Tensor], task: str, naming: str, model_name: str | None) -> ModelConfig:
    def shape(key: str) -> tuple[int, ...]:
        if key not in sd:
            raise CheckpointError(
                f"checkpoint lacks {key}: cannot infer the architecture (pass --model NAME)"
            )
        return tuple(sd[key].shape)

    channels = (
        shape("backbone.transition1.0.0.weight")[0],
        shape("backbone.transition1.1.0.0.weight")[0],
        shape("backbone.transition2.2.0.0.weight")[0],
        shape("backbone.transition3.3.0.0.weight")[0],
    )
    num_modules = [1]
    for stage in (2, 3, 4):
        indices = {int(m.group(1)) for k in sd if (m := re.match(rf"backbone\.stage{stage}\.(\d+)\.", k))}
        num_modules.append(max(indices) + 1 if indices else 0)
    block = "basic" if any(".branches.0.0.conv1." in k for k in sd) else "transformer"
    heads, windows = [], []
    for branch in range(4):
        table = next(
            (
                v
                for k, v in sd.items()
                if f"stage4.0.branches.{branch}.0." in k and k.endswith("relative_position_bias_table")
            ),
            None,
        )
        if table is not None:
            heads.append(table.shape[1])
            windows.append((int(round(table.shape[0] ** 0.5)) + 1) // 2)
    spec = HEADS[task]
    num_outputs = {spec.outputs_field: shape(spec.outputs_key)[0]}
    rel_pos_bias = bool(heads) and (spec.official_applies_rel_pos_bias or naming != "official")
    options: dict[str, Any] = dict(num_outputs, rel_pos_bias=rel_pos_bias)
    if block == "transformer":
        options["ffn_dw"] = any(".ffn.dw3x3." in k for k in sd)

    if model_name is None:
        variant = next((v for v, arch in VARIANTS.items() if tuple(arch["channels"]) == channels), None)
        if variant is None:
            raise CheckpointError(
                f"channels {list(channels)} match no known variant (T, S, B); pass --model NAME"
            )
        model_name = f"{'hrnet' if block == 'basic' else 'hrformer'}-{variant}"
        if windows and windows[0] in (13, 15) and variant == "b":
            model_name += f"-w{windows[0]}"
        elif windows and windows[0] != 7:
            options["window_sizes"] = tuple(windows)
    config = model_config(model_name, task, **options)
    if heads and tuple(heads) != config.num_heads:
        raise CheckpointError(f"heads per branch {heads} differ from {model_name}'s {list(config.num_heads)}")
    if config.channels != channels or tuple(num_modules) != config.num_modules:
        raise CheckpointError(
            f"checkpoint architecture (channels {list(channels)}, modules {num_modules}) does not match "
            f"{model_name} (channels {list(config.channels)}, modules {list(config.num_modules)})"
        )
    return config


def convert_state_dict(
    state_dict: dict[str, torch.Tensor], model_name: str | None = None
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Our state dict and a report from an official or mmpose state dict (prefixes already allowed)."""
    state_dict = unwrap_state_dict(state_dict, "state dict")
    task = _detect_task(set(state_dict))
    naming = "official" if any(QKV.match(k) for k in state_dict) else "mmpose"
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    pending_qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        qkv = QKV.match(key)
        if qkv:
            pending_qkv.setdefault((qkv.group(1), qkv.group(3)), {})[qkv.group(2)] = value
            continue
        new = _rename(key, task)
        if new is None:
            dropped.append(key)
        else:
            out[new] = value
    for (prefix, kind), parts in pending_qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"{prefix}: incomplete q/k/v projections ({sorted(parts)})")
        new = _rename(f"{prefix}.attn.attn.qkv.{kind}", task)
        out[new] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
    config = _infer_config(out, task, naming, model_name)
    if not config.rel_pos_bias:
        tables = [k for k in out if k.endswith("relative_position_bias_table")]
        for k in tables:
            del out[k]
        dropped += tables
    report = ConversionReport(
        naming, task, config, mapped=len(out), fused_qkv=len(pending_qkv), dropped=dropped
    )
    if (
        naming == "official"
        and not HEADS[task].official_applies_rel_pos_bias
        and any(k.endswith("relative_position_bias_table") for k in dropped)
    ):
        report.notes.append(
            f"official {task} checkpoint: its relative-position tables were never applied by the reference, so they "
            "are dropped and the model runs without the bias (rel_pos_bias=False)"
        )
    return out, report
