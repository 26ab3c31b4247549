"""Recipe schema: dataclass sections with defaults, and type-checked conversion of plain YAML values.

Every recipe key is a dataclass field, so the same type hints check YAML files and `key=value` overrides,
list the valid dotted keys for "did you mean" suggestions, and mark which keys may change on resume
(field metadata `resume_safe`, or a class-level `resume_safe = True` for a whole section).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from hrformer_core.errors import UsageError

SAFE = {"resume_safe": True}
AMP_ALIAS = {"bool_alias": ("off", "auto")}


@dataclass
class DataSection:
    """Where the data lives. Tasks subclass it with their own options."""

    root: str = field(default="", metadata=SAFE)


@dataclass
class ModelSection:
    """Which model to build. Tasks subclass it with their own options."""

    name: str = ""


@dataclass
class EvalSection:
    """Evaluation options. Tasks subclass it; evaluation never changes training, so all are resume-safe."""

    resume_safe: ClassVar[bool] = True
    # `hrformer eval` flag -> the key it sets, where the key's name differs from the flag's (`--flip`).
    flag_keys: ClassVar[dict[str, str]] = {}
    batch_size: int = field(default=32, metadata={"min": 1})


@dataclass
class OptimizerSection:
    """AdamW hyper-parameters (the optimiser of every HRFormer recipe)."""

    lr: float = field(default=5e-4, metadata={"min": 0.0})
    weight_decay: float = field(default=0.01, metadata={"min": 0.0})
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = field(default=1e-8, metadata={"min": 0.0})
    # When set, lr and schedule.min_lr are per this many images and scale linearly with the global batch
    # (processes x train.batch_size), as the official classification code does (5e-4 per 512 images).
    lr_batch: int | None = field(default=None, metadata={"min": 1})


@dataclass
class ScheduleSection:
    """Per-iteration learning-rate schedule: linear warmup from `warmup_ratio`, then `type`.

    `warmup` is how the warm-up meets the decay: `scaled` multiplies the decayed lr by a factor rising from
    `warmup_ratio` to 1 (mmcv's linear warm-up, the official pose and seg code), `to_base` rises linearly from
    `warmup_ratio` x lr to lr itself (timm's CosineLRScheduler, the official classification code).

    `milestones` are epochs of the training set's steps (step decay by `gamma`); poly and cosine decay to
    `min_lr` over exactly the run's steps (`train.max_steps` when set, else `train.epochs` epochs).
    """

    type: Literal["constant", "step", "poly", "cosine"] = "step"
    warmup_iters: int = field(default=0, metadata={"min": 0})
    warmup_epochs: float = field(default=0.0, metadata={"min": 0.0})
    warmup_ratio: float = field(default=0.001, metadata={"min": 0.0, "max": 1.0})
    warmup: Literal["scaled", "to_base"] = "scaled"
    milestones: list[int] = field(default_factory=list)
    gamma: float = field(default=0.1, metadata={"min": 0.0})
    power: float = field(default=1.0, metadata={"min": 0.0})
    min_lr: float = field(default=0.0, metadata={"min": 0.0})


@dataclass
class TrainSection:
    """The generic training loop's options. `batch_size` is per process (per GPU).

    The run's length is `max_steps` optimiser steps when set (continuing into further epochs as needed), else
    `epochs` epochs: fixed work, so every machine trains the same model; `max_time_minutes` is only a safety
    net, and a run it stops says that its result is not the recipe's. Evaluation runs every
    `eval_interval_steps` steps when set, else every `eval_interval` epochs, and always at the end; checkpoints
    are written at each epoch end, at each evaluation and every `checkpoint_interval_steps` steps when set.
    """

    epochs: int = field(default=1, metadata={"min": 1, **SAFE})
    batch_size: int = field(default=32, metadata={"min": 1})
    workers: int = field(default=2, metadata={"min": 0, **SAFE})
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    # YAML reads `off` as false, so booleans map to "off" / "auto".
    amp: Literal["off", "auto", "fp16", "bf16"] = field(default="off", metadata=AMP_ALIAS)
    grad_clip: float | None = field(default=None, metadata={"min": 0.0})
    sync_bn: bool = False
    # NHWC tensors: faster convolutions, and the transformer blocks' token layout becomes a free view.
    channels_last: bool = False
    # torch.compile the training step's model (same outputs; minutes of compilation first).
    compile: bool = False
    seed: int = field(default=0, metadata={"min": 0})
    eval_interval: int = field(default=1, metadata={"min": 1, **SAFE})
    eval_interval_steps: int | None = field(default=None, metadata={"min": 1, **SAFE})
    checkpoint_interval_steps: int | None = field(default=None, metadata={"min": 1, **SAFE})
    log_interval: int = field(default=50, metadata={"min": 1, **SAFE})
    max_steps: int | None = field(default=None, metadata={"min": 1, **SAFE})
    max_time_minutes: float | None = field(default=None, metadata={"min": 0.0, **SAFE})
    # Before each evaluation, re-estimate BatchNorm statistics on this many training batches (engine/precise_bn;
    # at most one epoch's): for short runs from scratch, whose running averages lag the weights. Training itself
    # is unchanged.
    precise_bn_batches: int = field(default=0, metadata={"min": 0, **SAFE})


def show(value: Any) -> str:
    """A value as the user typed it: strings quoted, everything else as YAML would print it."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`, else (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass's init fields (works with `from __future__ import annotations`)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _field_metadata(cls: type, name: str) -> typing.Mapping[str, Any]:
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == name)


def _check_range(value: float, meta: typing.Mapping[str, Any], key: str, kind: str) -> None:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and value < low:
        raise UsageError(f"{key}: expected {kind} >= {low}, got {show(value)}")
    if high is not None and value > high:
        raise UsageError(f"{key}: expected {kind} <= {high}, got {show(value)}")


def coerce(value: Any, tp: Any, key: str, meta: typing.Mapping[str, Any] | None = None) -> Any:
    """Convert a plain YAML value to type `tp`, or raise UsageError naming the key, expectation and value."""
    meta = meta or {}
    tp, optional = strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise UsageError(f"{key}: expected {_describe(tp)}, got null")
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, key)
    if origin is Literal:
        choices = typing.get_args(tp)
        alias = meta.get("bool_alias")
        if isinstance(value, bool) and alias:
            value = alias[1] if value else alias[0]
        if value not in choices:
            raise UsageError(f"{key}: expected one of {', '.join(map(str, choices))}, got {show(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{key}: expected true or false, got {show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{key}: expected an integer, got {show(value)}")
        _check_range(value, meta, key, "an integer")
        return value
    if tp is float:
        return _coerce_float(value, key, meta)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise UsageError(f"{key}: expected a string, got {show(value)}")
        return str(value)
    if origin is list:
        if not isinstance(value, list):
            raise UsageError(f"{key}: expected a list, got {show(value)}")
        (item,) = typing.get_args(tp)
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        items = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(items):
            raise UsageError(f"{key}: expected a list of {len(items)} values, got {show(value)}")
        return tuple(coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, items, strict=True)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{key}: expected a mapping, got {show(value)}")
        return dict(value)
    if tp is Any:
        return value
    raise TypeError(f"{key}: unsupported recipe field type {tp!r}")


def _coerce_float(value: Any, key: str, meta: typing.Mapping[str, Any]) -> float:
    # PyYAML reads `5e-4` (no dot) as a string, so numeric strings are accepted for float fields.
    if isinstance(value, bool):
        raise UsageError(f"{key}: expected a number, got {show(value)}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"{key}: expected a number, got {show(value)}") from None
    else:
        raise UsageError(f"{key}: expected a number, got {show(value)}")
    if not math.isfinite(number):
        raise UsageError(f"{key}: expected a finite number, got {show(value)}")
    _check_range(number, meta, key, "a number")
    return number


def _describe(tp: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return "a value"


def build_section(cls: type, value: Any, key: str) -> Any:
    """Build dataclass `cls` from a mapping: unknown keys fail with suggestions, missing ones default."""
    if not isinstance(value, dict):
        raise UsageError(f"{key}: expected a mapping, got {show(value)}")
    hints = field_types(cls)
    kwargs = {}
    for name, item in value.items():
        dotted = f"{key}.{name}"
        if name not in hints:
            raise UsageError(unknown_key_message(dotted, {key: cls}))
        kwargs[name] = coerce(item, hints[name], dotted, _field_metadata(cls, name))
    return cls(**kwargs)


def dotted_keys(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """All valid dotted keys of a schema (a mapping of top-level names to types)."""
    keys = []
    for name, tp in schema.items():
        dotted = f"{prefix}{name}"
        inner, _ = strip_optional(tp)
        if dataclasses.is_dataclass(inner):
            keys.extend(dotted_keys(field_types(inner), f"{dotted}."))
        else:
            keys.append(dotted)
    return keys


def unknown_key_message(key: str, schema: dict[str, Any]) -> str:
    """'unknown recipe key' with the closest valid names (difflib), else the valid names at that level.

    Candidates, in order: names at the key's own level (whole keys when that section itself is misspelt);
    then keys below that level (anywhere, for a misspelt section) whose last component is close, so
    `train.lrr` suggests `train.optimizer.lr`.
    """
    valid = dotted_keys(schema)
    section, _, leaf = key.rpartition(".")
    prefix = f"{section}." if section else ""
    children = list(dict.fromkeys(k[len(prefix) :].split(".")[0] for k in valid if k.startswith(prefix)))
    if children:
        close = [prefix + name for name in difflib.get_close_matches(leaf, children, n=3, cutoff=0.6)]
    else:  # the section itself is misspelt
        close = difflib.get_close_matches(key, valid, n=3, cutoff=0.8)
    if not close:
        by_leaf: dict[str, list[str]] = {}
        for candidate in [k for k in valid if k.startswith(prefix)] or valid:
            by_leaf.setdefault(candidate.rpartition(".")[2], []).append(candidate)
        matches = difflib.get_close_matches(leaf, list(by_leaf), n=3, cutoff=0.6)
        close = [candidate for name in matches for candidate in by_leaf[name]][:3]
    if close:
        return f"unknown recipe key '{key}'; did you mean {', '.join(close)}?"
    listed = [prefix + name for name in children] if children else valid
    return f"unknown recipe key '{key}'; valid keys: {', '.join(listed)}"


def lookup(schema: dict[str, Any], key: str) -> tuple[Any, typing.Mapping[str, Any], bool]:
    """(declared type, field metadata, resume-safe) of a dotted key, or UsageError with suggestions.

    A key inside a free-form mapping field (`model.options.depth`) resolves to type Any.
    """
    parts = key.split(".")
    fields, owner, safe = schema, None, False
    for i, part in enumerate(parts):
        if part not in fields:
            raise UsageError(unknown_key_message(key, schema))
        declared = fields[part]
        meta = _field_metadata(owner, part) if owner is not None else {}
        inner = strip_optional(declared)[0]
        safe = safe or bool(meta.get("resume_safe")) or bool(getattr(inner, "resume_safe", False))
        if i == len(parts) - 1:
            return declared, meta, safe
        if dataclasses.is_dataclass(inner):
            fields, owner = field_types(inner), inner
        elif typing.get_origin(inner) is dict or inner is dict:
            return Any, {}, safe
        else:
            raise UsageError(unknown_key_message(key, schema))
    raise UsageError(unknown_key_message(key, schema))


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and dicts as plain YAML/JSON-safe dicts and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys (for diffs and tables)."""
    flat: dict[str, Any] = {}
    for name, value in mapping.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat
