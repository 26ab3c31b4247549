"""Packaging: a built wheel holds every module and the built-in recipes, and installed or zipped it finds them.

The wheel is built from a copy of the source tree (so stale `build/` folders of the checkout cannot leak in) and
installed into a fresh virtual environment that reuses this interpreter's packages (torch etc.) offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hrformer_core.engine.recipes import load_recipe

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOTS = ("hrformer_core", "hrformer_cli")
BUILD_INPUTS = ("pyproject.toml", "README.md", "recipes", *PACKAGE_ROOTS)
RECIPE_SUFFIXES = (".yaml", ".yml")
LOAD_SCRIPT = """
import json, sys
import hrformer_core
from hrformer_core.engine.recipes import load_recipe
loaded = {name: load_recipe(name) for name in sys.argv[1:]}
print(json.dumps({
    "package": hrformer_core.__file__,
    "recipes": {name: {"source": str(r.source), "values": r.to_dict()} for name, r in loaded.items()},
}))
"""


def source_packages() -> set[str]:
    """Dotted names of the source folders holding Python modules, read from the tree itself."""
    return {
        ".".join(path.parent.relative_to(ROOT).parts)
        for root in PACKAGE_ROOTS
        for path in (ROOT / root).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def builtin_recipe_files() -> list[Path]:
    """The YAML files of the top-level recipes/ folder (the one source of the built-in recipes)."""
    return sorted(p for p in (ROOT / "recipes").rglob("*") if p.suffix in RECIPE_SUFFIXES)


def builtin_recipe_names() -> list[str]:
    names = [p.relative_to(ROOT / "recipes").with_suffix("").as_posix() for p in builtin_recipe_files()]
    return [name for name in names if not name.rsplit("/", 1)[-1].startswith("_")]


def run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    clean.update({"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "COLUMNS": "250"}, **(env or {}))
    return subprocess.run([str(a) for a in args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=300)


def checked(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    for name in BUILD_INPUTS:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    checked(run([*pip_wheel, "-w", work / "dist", source], cwd=work))
    (built,) = (work / "dist").glob("hrformer-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_bin(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    checked(run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], cwd=venv))
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    # pip comes from the system site-packages but installs into the venv; --ignore-installed leaves the
    # editable install of the checkout alone.
    pip_install = [bin_dir / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed"]
    checked(run([*pip_install, wheel], cwd=venv))
    return bin_dir


def expected_values(names: list[str]) -> dict[str, dict]:
    """The recipes as loaded from the checkout's recipes/ files, through JSON like the subprocess output."""
    return {name: json.loads(json.dumps(load_recipe(ROOT / "recipes" / f"{name}.yaml").to_dict())) for name in names}


def test_package_list_matches_the_source_tree() -> None:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    missing, stale = source_packages() - listed, listed - source_packages() - {"hrformer_core.recipes"}
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    assert not stale, f"remove {sorted(stale)} from [tool.setuptools] packages in pyproject.toml"
    assert config["package-dir"] == {"hrformer_core.recipes": "recipes"}


@pytest.mark.slow
def test_wheel_holds_every_module_and_builtin_recipe(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        p.relative_to(ROOT).as_posix()
        for root in PACKAGE_ROOTS
        for p in (ROOT / root).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    recipes = {f"hrformer_core/recipes/{p.relative_to(ROOT / 'recipes').as_posix()}" for p in builtin_recipe_files()}
    assert {"quickstart", "pose-b-384"} <= set(builtin_recipe_names())
    assert "hrformer_core/recipes/_pose-coco.yaml" in recipes  # partial bases ship too
    assert modules - names == set()
    assert recipes | {"hrformer_core/recipes/__init__.py"} <= names
    assert not any(n.startswith("recipes/") for n in names)  # no top-level `recipes` package in site-packages


@pytest.mark.slow
def test_installed_command_lists_and_resolves_builtin_recipes(venv_bin: Path, tmp_path: Path) -> None:
    listing = checked(run([venv_bin / "hrformer", "recipes"], cwd=tmp_path))
    listed = {line.split("│")[1].strip() for line in listing.splitlines() if line.count("│") >= 3}
    assert set(builtin_recipe_names()) <= listed

    typo = run([venv_bin / "hrformer", "train", "--recipe", "quickstar"], cwd=tmp_path)
    assert typo.returncode == 2
    assert "did you mean quickstart" in typo.stderr + typo.stdout
    assert "site-packages" in typo.stderr + typo.stdout  # it searched the installed package, not a checkout


@pytest.mark.slow
def test_installed_package_loads_builtin_recipes(venv_bin: Path, tmp_path: Path) -> None:
    names = ["quickstart", "pose-b-384"]  # pose-b-384 inherits the partial base _pose-coco
    found = json.loads(checked(run([venv_bin / "python", "-c", LOAD_SCRIPT, *names], cwd=tmp_path)))
    venv = venv_bin.parent
    assert Path(found["package"]).is_relative_to(venv), found["package"]
    assert "site-packages" in Path(found["package"]).parts
    for name in names:
        assert Path(found["recipes"][name]["source"]).is_relative_to(venv)
    assert {name: r["values"] for name, r in found["recipes"].items()} == expected_values(names)


@pytest.mark.slow
def test_zipped_package_loads_builtin_recipes(wheel: Path, tmp_path: Path) -> None:
    """A pure wheel on PYTHONPATH is imported from the zip: recipes are copied out and removed at exit."""
    names = ["quickstart", "pose-b-384"]
    proc = run([sys.executable, "-c", LOAD_SCRIPT, *names], cwd=tmp_path, env={"PYTHONPATH": str(wheel)})
    found = json.loads(checked(proc))
    assert Path(found["package"]).is_relative_to(wheel), found["package"]
    assert {name: r["values"] for name, r in found["recipes"].items()} == expected_values(names)
    source = Path(found["recipes"]["quickstart"]["source"])
    assert source.name == "quickstart.yaml" and not source.is_relative_to(ROOT)
    assert not source.parent.exists()  # the temporary copy went away with the process
