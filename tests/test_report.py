"""`hrformer report`: run, eval and profile results read back into one table (Markdown, JSON, a self-contained
HTML page with plots), folders that are not runs skipped, and `--paper` cells against the paper's tables.

The run folders are written here from known numbers (the files `engine.rundir` and `engine.evaluation`
write); one tiny toy-task run checks the report written at the end of `hrformer train` and `hrformer eval`.
"""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core.models import create_model, model_config
from hrformer_core.profiling import count_macs, count_params
from hrformer_core.profiling.reference import T384_TYPO_NOTE
from hrformer_core.reporting import DIFFERS, NOT_MEASURABLE, REPRODUCED, collect_records, compare_with_paper
from hrformer_core.reporting.figures import run_colour

runner = CliRunner()
TOY = """\
task: toy
description: toy classification
train: {epochs: 1, batch_size: 4, workers: 0, log_interval: 3, seed: 7, optimizer: {lr: 0.01}}
"""


def _write_yaml(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def make_pose_run(folder: Path, recipe: str = "pose-small", best: float = 0.25) -> Path:
    """A finished pose run: evaluations at steps 2 (AP `best`) and 4 (AP 0.2), 4 logged steps of 4.5 s."""
    _write_yaml(
        folder / "recipe.yaml",
        {
            "task": "pose",
            "name": recipe,
            "model": {"name": "hrformer-t"},
            "data": {"synthetic": True, "input_size": [64, 48]},
        },
    )
    rows = [
        {"epoch": 1, "step": 2, "train_loss": 0.5, "lr": 0.01, "time": 2.0, "AP": best},
        {"epoch": 2, "step": 4, "train_loss": 0.3, "lr": 0.005, "time": 2.5, "AP": 0.2},
    ]
    _write_jsonl(folder / "metrics.jsonl", rows)
    (folder / "steps.csv").write_text(
        "step,epoch,train_loss,lr,seconds\n1,1,0.6,0.01,1.0\n2,1,0.4,0.01,1.0\n3,2,0.35,0.005,1.25\n4,2,0.25,0.005,1.25\n"
    )
    summary = {
        "recipe": recipe, "task": "pose", "finished": True, "step": 4, "total_steps": 4, "epochs_completed": 2,
        "note": None, "metrics": {"AP": 0.2}, "best": {"metric": "AP", "value": best, "step": 2},
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def make_cls_run(folder: Path) -> Path:
    """A classification run whose weights (a tensor-less safetensors header) describe HRFormer-T without the
    FFN depth-wise conv; no steps.csv, so the history rows give the curve and the time (3.0 + 3.5 s)."""
    _write_yaml(
        folder / "recipe.yaml",
        {
            "task": "cls",
            "name": "cls-small",
            "model": {"name": "hrformer-t"},
            "data": {"synthetic": True, "input_size": [64, 64]},
        },
    )
    config = model_config("hrformer-t", "cls", ffn_dw=False, num_classes=24, extra={"input_size": [64, 64]})
    (folder / "weights").mkdir()
    save_file(
        {}, str(folder / "weights" / "best.safetensors"), metadata={"hrformer_config": json.dumps(config.to_dict())}
    )
    rows = [
        {"epoch": 1, "step": 3, "train_loss": 3.1, "lr": 0.002, "time": 3.0, "top1": 12.5},
        {"epoch": 1, "step": 6, "train_loss": 2.9, "lr": 0.001, "time": 3.5, "top1": 37.5},
    ]
    _write_jsonl(folder / "metrics.jsonl", rows)
    summary = {
        "task": "cls",
        "step": 6,
        "total_steps": 6,
        "metrics": {"top1": 37.5},
        "best": {"metric": "top1", "value": 37.5, "step": 6},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def make_profile_json(path: Path) -> Path:
    result = {
        "model": "hrformer-t", "task": "pose", "input_size": [256, 192], "params": {"total": 2524759},
        "gmacs": {"torch": 1.485, "mmcv-syncbn": 1.313}, "paper_convention": "mmcv-syncbn",
        "speed": {"latency": {"median_s": 0.05}, "throughput_images_per_s": 40.0},
    }  # fmt: skip
    path.write_text(json.dumps({"results": [result], "notes": []}))
    return path


def make_cls_eval(folder: Path, top1: float, synthetic: bool) -> Path:
    """An `hrformer eval` folder of HRFormer-T at 224x224 (model from the recipe: no weights beside it)."""
    _write_yaml(
        folder / "recipe.yaml",
        {
            "task": "cls", "name": "cls-hrformer-t", "model": {"name": "hrformer-t", "num_classes": 1000},
            "data": {"synthetic": synthetic, "input_size": [224, 224]},
        },
    )  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps({"weights": "", "metrics": {"top1": top1, "top5": 94.0}}))
    return folder


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> dict:
    """`hrformer report` over a pose run, a cls run, a profile JSON and a folder that is not a run."""
    root = tmp_path_factory.mktemp("report")
    pose = make_pose_run(root / "runs" / "pose" / "pose-small")
    cls = make_cls_run(root / "runs" / "cls" / "cls-small")
    profile = make_profile_json(root / "profile.json")
    (root / "not-a-run").mkdir()
    (root / "not-a-run" / "notes.txt").write_text("hello")
    out = root / "out"
    result = runner.invoke(
        app, ["report", str(pose), str(cls), str(profile), str(root / "not-a-run"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return {"root": root, "pose": pose, "cls": cls, "out": out, "output": result.output}


def test_table_rows_and_values_read_back_from_json_and_markdown(reported) -> None:
    report = json.loads((reported["out"] / "report.json").read_text())
    runs = {run["name"]: run for run in report["runs"]}
    assert list(runs) == ["pose-small", "cls-small", "hrformer-t pose 256x192"]
    pose, cls, profiled = runs.values()
    with torch.device("meta"):
        pose_params = count_params(create_model("hrformer-t", task="pose"))["total"]
        cls_params = count_params(create_model("hrformer-t", task="cls", ffn_dw=False, num_classes=24))["total"]
    # Pose: the model from the recipe, counted at its input size under the pose paper's convention.
    assert pose["params"] == pose_params and pose["input_size"] == [64, 48]
    assert pose["gmacs"] == pytest.approx(count_macs(model_config("hrformer-t", "pose"), (64, 48), "mmcv-syncbn") / 1e9)
    assert pose["gmacs_convention"] == "mmcv-syncbn"
    assert (pose["metric"], pose["value"], pose["best_epoch"], pose["best_step"]) == ("AP", 0.25, 1, 2)
    assert pose["train_seconds"] == pytest.approx(4.5)  # steps.csv: 1 + 1 + 1.25 + 1.25
    assert pose["loss_curve"] == [[1, 0.6], [2, 0.4], [3, 0.35], [4, 0.25]]
    assert pose["metric_curve"] == [[2, 0.25], [4, 0.2]]
    # Cls: the weights' config wins over the recipe's (no depth-wise conv, 24 classes), convention fvcore.
    assert cls["params"] == cls_params and cls["variant"] == "ffn_dw=False" and cls["gmacs_convention"] == "fvcore"
    assert (cls["value"], cls["best_epoch"], cls["train_seconds"]) == (37.5, 1, 6.5)
    assert cls["loss_curve"] == [[3, 3.1], [6, 2.9]]
    assert (profiled["kind"], profiled["params"], profiled["gmacs"]) == ("profile", 2524759, 1.313)
    assert (profiled["metric"], profiled["value"]) == ("latency_ms", 50.0)

    assert report["columns"][:3] == ["model", "run", "task"]
    by_model = {group["key"]: group["runs"] for group in report["groups"]}
    assert by_model == {
        "hrformer-t": ["pose-small", "hrformer-t pose 256x192"],
        "hrformer-t (ffn_dw=False)": ["cls-small"],
    }
    markdown = (reported["out"] / "report.md").read_text()
    assert (
        f"| hrformer-t | pose-small | pose | pose-small | 64x48 | {pose_params / 1e6:.3f} | {pose['gmacs']:.3f} | AP "
        "| 0.2500 | 1 (step 2) | 4.5 s | 4/4 |"
    ) in markdown
    assert "| hrformer-t (ffn_dw=False) | cls-small | cls | cls-small | 64x64 |" in markdown
    assert "| 37.5000 | 1 (step 6) | 6.5 s | 6/6 |" in markdown
    assert "(pose: mmcv-syncbn; cls: fvcore)" in markdown


def test_a_folder_that_is_not_a_run_is_named_in_one_line_and_skipped(reported) -> None:
    line = f"skipped {reported['root'] / 'not-a-run'}: not a run or eval folder (no recipe.yaml)"
    assert line in reported["output"].splitlines()
    report = json.loads((reported["out"] / "report.json").read_text())
    assert report["skipped"] == [
        {"path": str(reported["root"] / "not-a-run"), "reason": "not a run or eval folder (no recipe.yaml)"}
    ]
    assert (
        f"- {reported['root'] / 'not-a-run'}: not a run or eval folder (no recipe.yaml)"
        in (reported["out"] / "report.md").read_text()
    )


def test_exit_2_when_nothing_given_is_a_run(tmp_path: Path) -> None:
    recipe_only = tmp_path / "recipe-only"
    _write_yaml(recipe_only / "recipe.yaml", {"task": "pose"})
    broken = tmp_path / "broken"
    _write_yaml(broken / "recipe.yaml", {"task": "pose"})
    (broken / "summary.json").write_text("{not json")
    missing = tmp_path / "missing"
    result = runner.invoke(app, ["report", str(recipe_only), str(broken), str(missing), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert (
        f"skipped {recipe_only}: not a run or eval folder (recipe.yaml but no summary.json, metrics.jsonl or "
        "metrics.json)"
    ) in lines
    assert any(line.startswith(f"skipped {broken}: summary.json is not readable JSON (") for line in lines)
    assert f"skipped {missing}: no such file or folder" in lines
    assert lines[-1] == "error: none of the 3 path(s) given is a run, eval folder or profile JSON"
    assert not (tmp_path / "out").exists()


def test_by_recipe_groups_runs_of_the_same_recipe(reported, tmp_path: Path) -> None:
    second = make_pose_run(tmp_path / "pose-small-2", best=0.4)
    out = tmp_path / "out"
    args = ["report", str(reported["pose"]), str(reported["cls"]), str(second), "--by", "recipe", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["by"] == "recipe" and report["columns"][0] == "recipe"
    groups = {group["key"]: group["runs"] for group in report["groups"]}
    assert groups == {"pose-small": ["pose-small", "pose-small-2"], "cls-small": ["cls-small"]}
    assert [row[0] for group in report["groups"] for row in group["rows"]] == ["pose-small"] * 2 + ["cls-small"]
    assert [run["value"] for run in report["runs"]] == [0.25, 37.5, 0.4]


def _figures(html: str) -> dict[str, np.ndarray]:
    found = re.findall(r'<figcaption>([^<]+)</figcaption><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    return {
        title: cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR) for title, data in found
    }


def _colour_mask(image: np.ndarray, hex_colour: str, tolerance: int = 12) -> np.ndarray:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return (np.abs(image.astype(int) - rgb[::-1]) <= tolerance).all(axis=2)


def test_html_is_self_contained_and_its_plots_show_each_run(reported) -> None:
    html = (reported["out"] / "report.html").read_text()
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert "http://" not in html and "https://" not in html and "<script" not in html and "<link" not in html
    figures = _figures(html)
    assert list(figures) == [
        "Training loss", "Metric at each evaluation", "Metric against GMACs", "Metric against parameters",
    ]  # fmt: skip
    pose_colour, cls_colour, profile_colour = run_colour(0), run_colour(1), run_colour(2)
    for title, image in figures.items():
        assert image is not None and image.ndim == 3, title
        assert (image < 250).any(axis=2).mean() > 0.02, f"{title} is blank"
    # Training loss: a panel per task, the pose run (first colour) on the left, the cls run on the right.
    loss = figures["Training loss"]
    half = loss.shape[1] // 2
    assert (
        _colour_mask(loss[:, :half], pose_colour).sum() > 100 and _colour_mask(loss[:, half:], pose_colour).sum() < 10
    )
    assert _colour_mask(loss[:, half:], cls_colour).sum() > 100 and _colour_mask(loss[:, :half], cls_colour).sum() < 10
    # Metric against GMACs: panels AP, top1 and latency_ms, one point each in its run's colour.
    scatter = figures["Metric against GMACs"]
    third = scatter.shape[1] // 3
    for panel, colour in enumerate((pose_colour, cls_colour, profile_colour)):
        assert _colour_mask(scatter[:, panel * third : (panel + 1) * third], colour).sum() > 30, colour
    # The table's swatches carry the same colours as the plots.
    assert f'<span class="swatch" style="background:{pose_colour}"></span>pose-small' in html


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (Debian: apt-get install chromium)"
)
def test_page_renders_in_headless_chromium(reported, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}", "--window-size=1400,1800", (reported["out"] / "report.html").as_uri(),
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    page = cv2.imread(str(shot))
    assert page.shape[:2] == (1800, 1400)
    # The embedded plots were decoded and drawn: both runs' curve colours are on the page.
    assert _colour_mask(page, run_colour(0), tolerance=20).sum() > 200
    assert _colour_mask(page, run_colour(1), tolerance=20).sum() > 200


def test_paper_cells_reproduced_differing_and_not_measurable(tmp_path: Path) -> None:
    tables = {t.table: t for t in compare_with_paper(tables=["3", "6"], models=["hrformer-t"])}
    pose = dict(tables["Table 3"].rows)
    params_256 = next(cell for cell in pose["HRFormer-T 256x192"] if cell.column == "params (M)")
    assert (params_256.ours, params_256.paper, params_256.status) == ("2.525", "2.5", REPRODUCED)
    flops_384 = next(cell for cell in pose["HRFormer-T 384x288"] if cell.column.startswith("GFLOPs"))
    assert (flops_384.ours, flops_384.paper, flops_384.status) == ("2.928", "1.8", DIFFERS)
    # (2.928 - 1.8) / 1.8 = +62.7 %, with the note that explains the typo.
    assert flops_384.detail == f"+62.7 % (2.928 against 1.8); {T384_TYPO_NOTE}"
    (top1,) = [cell for cell in dict(tables["Table 6"].rows)["HRFormer-T"] if cell.column == "ImageNet top-1"]
    assert (top1.status, top1.paper, top1.ours) == (NOT_MEASURABLE, "78.5", "")
    assert "ImageNet-1K val" in top1.detail

    # An ImageNet evaluation of the same model fills the cell in; a synthetic-data one does not count.
    real = make_cls_eval(tmp_path / "imagenet-eval", top1=78.46, synthetic=False)
    shapes = make_cls_eval(tmp_path / "shapes-eval", top1=99.0, synthetic=True)
    records, skipped = collect_records([real, shapes])
    assert skipped == [] and [r.kind for r in records] == ["eval", "eval"]
    (table6,) = compare_with_paper(records, tables=["6"], models=["hrformer-t"])
    (filled,) = [cell for cell in table6.rows[0][1] if cell.column == "ImageNet top-1"]
    assert (filled.status, filled.ours, filled.source) == (REPRODUCED, "78.5", str(real))
    records[0].value = 77.0
    (table6,) = compare_with_paper(records, tables=["6"], models=["hrformer-t"])
    (lower,) = [cell for cell in table6.rows[0][1] if cell.column == "ImageNet top-1"]
    assert (lower.status, lower.ours, lower.detail) == (DIFFERS, "77.0", "-1.5 points")


def test_cli_paper_writes_the_tables_with_their_footnotes(tmp_path: Path) -> None:
    out = tmp_path / "paper"
    result = runner.invoke(app, ["report", "--paper", "--table", "3", "--model", "hrformer-t", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert [table["table"] for table in report["paper"]] == ["Table 3"]
    assert [row["label"] for row in report["paper"][0]["rows"]] == ["HRFormer-T 256x192", "HRFormer-T 384x288"]
    markdown = (out / "report.md").read_text()
    assert "| HRFormer-T 384x288 | 2.525 vs 2.5 ✓ | 2.928 vs 1.8 ≠ [1] | – (paper 72.4) |" in markdown
    assert f"1. +62.7 % (2.928 against 1.8); {T384_TYPO_NOTE}" in markdown
    refused = runner.invoke(app, ["report", "--paper", "--table", "4", "--out", str(tmp_path / "x")])
    assert (
        refused.exit_code == 2 and "--table 4: the paper comparison has tables 2, 3, 5, 6, 7, 9, 11" in refused.output
    )


def test_train_and_eval_write_their_report(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HRFORMER_PLUGINS", "engine_toy_task")
    (tmp_path / "toy.yaml").write_text(TOY)
    trained = runner.invoke(app, ["train", "--recipe", str(tmp_path / "toy.yaml"), "--project", str(tmp_path / "runs")])
    assert trained.exit_code == 0, trained.output
    run = tmp_path / "runs" / "toy" / "toy"
    assert f"report: {run / 'report.md'}, {run / 'report.json'}, {run / 'report.html'}" in trained.output
    summary = json.loads((run / "summary.json").read_text())
    with open(run / "steps.csv") as handle:
        steps = list(csv.DictReader(handle))
    (record,) = json.loads((run / "report.json").read_text())["runs"]
    assert (record["kind"], record["metric"], record["value"]) == ("run", "accuracy", summary["best"]["value"])
    assert record["best_step"] == summary["best"]["step"] and len(record["loss_curve"]) == len(steps)
    assert record["train_seconds"] == pytest.approx(sum(float(row["seconds"]) for row in steps))
    assert record["params"] is None  # not an HRFormer model: nothing to count

    evaluated = runner.invoke(
        app, ["eval", "--recipe", str(tmp_path / "toy.yaml"), "--weights", str(run), "--out", str(tmp_path / "eval")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    (record,) = json.loads((tmp_path / "eval" / "report.json").read_text())["runs"]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert (record["kind"], record["value"]) == ("eval", metrics["accuracy"])
