"""Precise BN: BatchNorm statistics re-estimated before evaluation, by hand and through the training loop."""

from __future__ import annotations

from pathlib import Path

import engine_toy_task
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from hrformer_core.engine import load_recipe, train
from hrformer_core.engine.precise_bn import recompute_batchnorm_statistics
from hrformer_core.engine.state import load_state

TOY = """\
task: toy
train:
  epochs: 2
  batch_size: 4
  workers: 0
  seed: 3
  optimizer: {lr: 0.01}
"""


def test_statistics_are_the_plain_average_of_the_batches_without_dropout() -> None:
    torch.manual_seed(0)
    conv, dropout, norm = nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.BatchNorm2d(4)
    model = nn.Sequential(conv, dropout, norm).train()
    batches = [torch.randn(2, 3, 6, 6) + i for i in range(3)]
    with torch.no_grad():
        outputs = [conv(x) for x in batches]  # dropout off, as at evaluation
    mean = torch.stack([y.mean(dim=(0, 2, 3)) for y in outputs]).mean(0)
    var = torch.stack([y.transpose(0, 1).reshape(4, -1).var(dim=1, unbiased=True) for y in outputs]).mean(0)
    state = torch.get_rng_state()

    def forward(m: nn.Module, x: torch.Tensor) -> None:
        torch.rand(5)  # whatever the forward draws, the caller's stream is left as it was
        m(x)

    assert recompute_batchnorm_statistics(model, batches, forward) == 3
    assert torch.allclose(norm.running_mean, mean, atol=1e-6)
    assert torch.allclose(norm.running_var, var, atol=1e-6)
    assert int(norm.num_batches_tracked) == 3
    assert norm.momentum == 0.1 and model.training and dropout.training and norm.training
    assert torch.equal(torch.get_rng_state(), state)


def test_a_model_without_batchnorm_is_left_as_it_was() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert recompute_batchnorm_statistics(model, [torch.randn(2, 3)], lambda m, x: m(x)) == 0
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_training_is_unchanged_only_the_statistics_move_and_resume_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe_file = tmp_path / "toy.yaml"
    recipe_file.write_text(TOY)
    plain = train(load_recipe(recipe_file, []), project=tmp_path / "plain")
    precise_recipe = load_recipe(recipe_file, ["train.precise_bn_batches=2"])
    precise = train(precise_recipe, project=tmp_path / "precise")
    a = load_file(str(plain.run_dir / "weights" / "last.safetensors"))
    b = load_file(str(precise.run_dir / "weights" / "last.safetensors"))
    statistics = {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}
    assert all(torch.equal(a[k], b[k]) for k in a.keys() - statistics)  # the same weights were trained
    assert not torch.equal(a["bn.running_mean"], b["bn.running_mean"])
    assert int(b["bn.num_batches_tracked"]) == 2  # the last evaluation's two batches, not the run's 12 steps

    # Killed at the end of the first epoch (after its precise-BN evaluation and checkpoint), then resumed.
    def interrupt(self: engine_toy_task.ToyDataset, epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt
        self.epoch = epoch

    with monkeypatch.context() as patch:
        patch.setattr(engine_toy_task.ToyDataset, "set_epoch", interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(precise_recipe, project=tmp_path / "resumed")
    run = tmp_path / "resumed" / "toy" / "toy"
    assert load_state(run / "state.pt")["global_step"] == 6
    resumed = train(resume=run)
    assert resumed.weights_digest == precise.weights_digest
    assert resumed.metrics == precise.metrics


def _shard(rank: int) -> list[torch.Tensor]:
    """Rank `rank`'s two batches (shifted by the rank, so the shards' statistics differ)."""
    return [torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(10 * rank + i)) + rank for i in range(2)]


def _rank_statistics(rank: int, init_file: str, out_dir: str) -> None:
    """One of two gloo processes: re-estimate on its own batches, save what it then holds."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)  # the same model on both ranks
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        batches = _shard(rank)
        recompute_batchnorm_statistics(model, batches, lambda m, x: m(x))
        torch.save(model[1].state_dict(), Path(out_dir) / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_ranks_hold_the_mean_of_their_statistics(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_rank_statistics, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    saved = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    per_rank = []
    for rank in (0, 1):
        norm = nn.BatchNorm2d(4)
        batches = _shard(rank)
        recompute_batchnorm_statistics(nn.Sequential(conv, norm), batches, lambda m, x: m(x))
        per_rank.append((norm.running_mean.clone(), norm.running_var.clone()))
    assert not torch.allclose(per_rank[0][0], per_rank[1][0])  # the shards differ
    for state in saved:
        torch.testing.assert_close(state["running_mean"], (per_rank[0][0] + per_rank[1][0]) / 2)
        torch.testing.assert_close(state["running_var"], (per_rank[0][1] + per_rank[1][1]) / 2)
