"""Model configurations as small data: the paper's Table 2 plus the options its ablations need."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import UsageError

BLOCK_TYPES = ("transformer", "basic")
FUSE_UPSAMPLE_MODES = ("bilinear", "nearest")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored beside its weights."""

    name: str
    task: str
    channels: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    num_modules: tuple[int, int, int, int]
    num_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    window_sizes: tuple[int, int, int, int] = (7, 7, 7, 7)
    mlp_ratio: float = 4.0
    # "transformer": the HRFormer block; "basic": HRNet's two-3x3-conv block (paper Table 11).
    block: str = "transformer"
    # FFN with the 3x3 depth-wise conv between the point-wise layers (paper Table 7 turns it off).
    ffn_dw: bool = True
    # Swin-style shifted windows on every second block (paper Table 9).
    shifted_windows: bool = False
    # The official pose code builds the bias table but never adds it; cls, seg and mmpose 1.x add it.
    rel_pos_bias: bool = True
    drop_path_rate: float = 0.0
    # Pose fuses upsample bilinearly (align_corners=False); cls and seg use nearest (official code).
    fuse_upsample: str = "bilinear"
    num_keypoints: int = 17
    num_classes: int = 1000
    # Segmentation OCR head widths (official HRT_*_OCR_V2).
    ocr_mid_channels: int = 512
    ocr_key_channels: int = 256
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .heads import HEADS  # heads build from configs: imported late

        if self.task not in HEADS:
            raise UsageError(f"unknown task {self.task!r}: expected one of {', '.join(HEADS)}")
        if self.block not in BLOCK_TYPES:
            raise UsageError(f"unknown block type {self.block!r}: expected one of {', '.join(BLOCK_TYPES)}")
        if self.fuse_upsample not in FUSE_UPSAMPLE_MODES:
            raise UsageError(
                f"unknown fuse_upsample {self.fuse_upsample!r}: expected one of {', '.join(FUSE_UPSAMPLE_MODES)}"
            )
        for name in ("channels", "num_heads", "num_modules", "num_blocks", "window_sizes"):
            value = getattr(self, name)
            if len(value) != 4:
                raise UsageError(
                    f"model.{name} must have 4 entries (one per stage/branch), got {list(value)}"
                )
            object.__setattr__(self, name, tuple(int(v) for v in value))
        for c, h in zip(self.channels, self.num_heads, strict=True):
            if c % h:
                raise UsageError(f"model channels {c} are not divisible by {h} heads")
        if self.num_keypoints < 1 or self.num_classes < 1:
            raise UsageError("num_keypoints and num_classes must be positive")

    @property
    def num_outputs(self) -> int:
        """The head's output channels (keypoints or classes, as its spec says)."""
        from .heads import HEADS

        return int(getattr(self, HEADS[self.task].outputs_field))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown model config keys {unknown}: expected some of {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)
