"""What a task package implements: the engine, evaluation, prediction, profiling and the CLI ask it.

Training and evaluation are split so that they work on any number of ranks: every rank runs
`predict_batch` on its shard, the engine gathers the predictions in dataset order, and rank 0 alone calls
`compute_metrics`. Prediction on user images goes through `predictor`, whose results know how to write
and draw themselves, so the prediction loop and its writer never look at the task's name.

A task object is created fresh by every `get_task` call; `configure(recipe)` binds that object to one
recipe (the engine calls it once per run), and the object holds nothing else between calls.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate

from ..engine.optim import weight_decay_groups
from ..engine.schema import DataSection, EvalSection, ModelSection
from ..errors import UsageError

if TYPE_CHECKING:
    from ..engine.recipes import Recipe
    from ..models.weights import WeightsFile
    from ..predict.sources import Frame


@dataclass
class PredictOptions:
    """Options of `hrformer predict`. `task_options` holds the task-specific ones a user set.

    Each task names the task-specific options it understands (`Task.predict_option_names`); any other
    one given is refused with the task's name, so e.g. `--boxes` on a segmentation model is not ignored.
    """

    input_size: tuple[int, int] | None = None
    batch_size: int = 8
    flip: bool = False
    compile: bool = False
    task_options: dict[str, Any] = field(default_factory=dict)


class Prediction(Protocol):
    """One image's or video frame's result, as the prediction writer and the CLI use it."""

    frame: Frame
    image_id: int

    def to_dict(self) -> dict[str, Any]:
        """The per-image JSON record."""

    def records(self) -> list[dict[str, Any]]:
        """What this image adds to `predictions.json` (e.g. COCO keypoint results, or its own record)."""

    def annotate(self) -> np.ndarray:
        """An RGB copy of the image with the prediction drawn on it."""

    def label_maps(self) -> dict[str, np.ndarray]:
        """Extra per-image images to write losslessly (`{folder: array}`, e.g. segmentation label maps)."""

    def counts(self) -> dict[str, int]:
        """Counts the run summary adds up over images (e.g. `{"people": 3}`); may be empty."""

    def describe(self) -> str:
        """A short description for `--no-save` output (without the file name)."""


class Predictor(Protocol):
    """Turns frames into predictions. `notes`: one-line remarks to show before the run starts."""

    input_size: tuple[int, int]
    notes: list[str]

    def __call__(self, frames: Iterable[Frame]) -> Iterator[Prediction]: ...

    def summary_notes(self) -> list[str]:
        """One-line warnings for after the run (e.g. images a boxes file did not cover)."""


class Task(ABC):
    """The plug-in contract. Subclasses set the class attributes and implement the abstract methods.

    `data_schema`, `model_schema` and `eval_schema` are dataclasses (subclasses of the generic sections)
    that define and type-check the task's recipe keys. `primary_metric` must be a key of
    `compute_metrics`' result; higher is better (it selects `best.safetensors`).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    primary_metric: ClassVar[str]
    data_schema: ClassVar[type[DataSection]] = DataSection
    model_schema: ClassVar[type[ModelSection]] = ModelSection
    eval_schema: ClassVar[type[EvalSection]] = EvalSection
    find_unused_parameters: ClassVar[bool] = False  # for DDP, when some parameters get no gradient
    # The task-specific `hrformer predict` options this task reads (see PredictOptions).
    predict_option_names: ClassVar[frozenset[str]] = frozenset()
    # The Hub's pipeline tag for model cards.
    hub_pipeline_tag: ClassVar[str] = ""
    # The built-in recipe that trains this task offline in minutes (`hrformer ablate` runs studies on it).
    quickstart_recipe: ClassVar[str | None] = None

    def configure(self, recipe: Recipe) -> None:
        """Bind this object to the resolved recipe before anything else (e.g. to keep loss or eval options)."""
        return None

    # --- training and evaluation ---------------------------------------------------------------------

    @abstractmethod
    def build_model(self, recipe: Recipe) -> nn.Module:
        """The model with its task head, on CPU, in training mode."""

    @abstractmethod
    def build_train_dataset(self, recipe: Recipe) -> torch.utils.data.Dataset:
        """A map-style dataset; may define `set_epoch(epoch)`, `worker_init_fn(worker_id)`, `bad_images`
        and `record_skipped(batch)`.

        `bad_images` (a collection of names) is read in the main process after training, so it must be
        filled there: the engine calls `record_skipped(batch)` with every collated batch, which lets the
        dataset note the samples its DataLoader workers had to replace.
        """

    @abstractmethod
    def build_val_dataset(self, recipe: Recipe) -> torch.utils.data.Dataset:
        """A map-style dataset whose samples `compute_metrics` can match predictions to by index.

        It may name unreadable images as the training set does (`bad_images`, best a mapping path -> reason,
        and `record_skipped`); evaluation reports them, and leaves out the predictions of the samples that
        `unreadable_indices(bad_images)` returns (stand-ins for unreadable images, never another image's).
        """

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """(scalar loss to minimise, named parts to log); the names must be the same on every step.

        `batch` is already on the training device. `model` may be a DDP wrapper: call it, do not reach into
        its attributes.
        """

    @abstractmethod
    def predict_batch(self, model: nn.Module, batch: Any) -> list[Any]:
        """One picklable CPU prediction per sample of `batch`, in batch order (the model is in eval mode)."""

    @abstractmethod
    def compute_metrics(self, predictions: Sequence[Any], dataset: Any, out_dir: Path) -> dict[str, Any]:
        """Metrics from `predictions[i]` for `dataset[i]` (in dataset order, less the samples left out as
        unreadable, see `build_val_dataset`); may write files (e.g. result JSON) to `out_dir`. Rows to show as
        tables after the summary (e.g. per class) go in the metrics with a `engine.evaluation.table_spec` each."""

    def collate(self, samples: list[Any]) -> Any:
        """Samples to a batch (both DataLoaders use it); the default stacks tensors in dicts and tuples."""
        return default_collate(samples)

    def param_groups(self, model: nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
        """Optimiser parameter groups; the default decays every parameter. Override for exemptions."""
        return weight_decay_groups(model, recipe.train.optimizer.weight_decay)

    # --- weights -------------------------------------------------------------------------------------

    def weights_metadata(self, model: nn.Module) -> dict[str, str]:
        """String metadata saved with the weights so `model_from_weights` can rebuild the model."""
        return {}

    @abstractmethod
    def model_from_weights(self, weights: WeightsFile) -> nn.Module:
        """The model (strictly loaded, eval mode, CPU) that a weights file of this task describes."""

    def check_recipe_model(self, recipe: Recipe, model: nn.Module, source: str) -> None:
        """Say in one line where the recipe's model settings and the weights' model disagree (the weights win)."""
        return None

    # --- prediction ----------------------------------------------------------------------------------

    @abstractmethod
    def predictor(self, model: nn.Module, weights: WeightsFile, options: PredictOptions) -> Predictor:
        """A predictor for user images with `model` (optimised for inference: read the model's
        settings from `weights`, not from `model`); `options.input_size` is already resolved."""

    def output_names(self, weights: WeightsFile) -> tuple[str, ...]:
        """Names of the model's outputs, in order (ONNX export)."""
        return ("output",)

    def default_input_size(self, weights: WeightsFile) -> tuple[int, int]:
        """The (H, W) prediction and export use when the user gives none."""
        raise UsageError(f"task {self.name}: no input size recorded with the weights; pass --input-size HxW")


def check_predict_options(task: Task, options: PredictOptions) -> None:
    """Refuse task-specific predict options that `task` does not read."""
    unknown = sorted(set(options.task_options) - task.predict_option_names)
    if unknown:
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        raise UsageError(f"{flags}: not an option for {task.name} models (the weights are a {task.name} model)")


def cache_dir() -> Path:
    """Where generated built-in datasets are cached (`HRFORMER_CACHE`, default ~/.cache/hrformer)."""
    return Path(os.environ.get("HRFORMER_CACHE", Path.home() / ".cache" / "hrformer"))
