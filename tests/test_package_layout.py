# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Package layout: `data/` is installed as `modeling_mgcma.data` without links and knows no model; installs work."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modeling_mgcma import DEFAULT_EMOTION_LABELS, MGCMAConfig
from modeling_mgcma import data as mgcma_data
from modeling_mgcma.processing_mgcma import TARGET_SAMPLING_RATE


ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute-or-relative module name, imported names) of every import statement in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or ""), [a.name for a in node.names]))
    return found


def test_data_labels_and_rate_equal_the_models_defaults():
    assert mgcma_data.EMOTION_LABELS == tuple(DEFAULT_EMOTION_LABELS)
    assert list(MGCMAConfig().id2label.values()) == list(mgcma_data.EMOTION_LABELS)
    assert mgcma_data.SAMPLING_RATE == TARGET_SAMPLING_RATE


def test_data_package_imports_nothing_from_the_model_package():
    offenders = [
        f"{path.name}:{line}: {module}"
        for path in sorted((ROOT / "data").glob("*.py"))
        for line, module, _ in imported_modules(path)
        if module.split(".")[0] == "modeling_mgcma" or module.startswith("..")
    ]
    assert offenders == []


def test_nothing_outside_data_imports_its_private_parts():
    files = [*sorted((ROOT / "modeling_mgcma").rglob("*.py")), ROOT / "run_mgcma.py", *sorted((ROOT / "benchmarks").glob("*.py"))]
    offenders = []
    for path in files:
        for line, module, names in imported_modules(path):
            parts = module.lstrip(".").split(".")
            in_data = module.startswith("modeling_mgcma.data") or module.startswith(".data") or parts[0] == "data"
            if in_data and (any(p.startswith("_") for p in parts) or any(n.startswith("_") for n in names)):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {module} {names}")
    assert offenders == []


HUB_FILES = {"configuration_mgcma", "modeling_mgcma", "processing_mgcma", "pipeline_mgcma", "inference_mgcma"}
WINGS = ("training", "experiments", "deploy")
# What each part of the package may import from the others. The Hub files reach no wing; deployment reaches neither
# training nor experiments (it reads manifests with data's standard-library reader, which exported folders carry);
# training does not reach experiments; `cli` and the package's __init__ sit on top.
MAY_IMPORT = {
    "hub": {"hub"},
    "training": {"hub", "data", "training"},
    "experiments": {"hub", "data", "training", "experiments"},
    "deploy": {"hub", "data", "deploy"},
    "top": {"hub", "data", "training", "experiments", "deploy", "top"},
}


def package_part(module: str) -> str:
    """The part of the package (hub, data, a wing, or top) that an absolute modeling_mgcma.* module belongs to."""
    parts = module.split(".")[1:]
    if not parts:
        return "top"
    if parts[0] in WINGS or parts[0] == "data":
        return parts[0]
    if parts[0] == "model_cards":
        return "experiments"
    return "hub" if parts[0] in HUB_FILES else "top"


def package_imports(path: Path, package_dir: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of this package in one of its files, relative imports resolved."""
    package = ["modeling_mgcma", *path.relative_to(package_dir).parent.parts]
    found = []
    for line, module, names in imported_modules(path):
        level = len(module) - len(module.lstrip("."))
        if level:
            base = package[: len(package) - level + 1]
            rest = module.lstrip(".")
            targets = [".".join([*base, rest])] if rest else [".".join([*base, name]) for name in names]
        elif module.split(".")[0] == "modeling_mgcma":
            targets = [module]
        else:
            continue
        found += [(line, target) for target in targets]
    return found


def wing_offenders(package_dir: Path) -> list[str]:
    offenders = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir)
        part = relative.parts[0] if len(relative.parts) > 1 else ("hub" if path.stem in HUB_FILES else "top")
        for line, target in package_imports(path, package_dir):
            if package_part(target) not in MAY_IMPORT[part]:
                offenders.append(f"{relative.as_posix()}:{line}: {part} imports {target}")
    return offenders


def test_wings_import_only_what_their_layer_allows():
    """Hub files import no wing; deploy imports neither training nor experiments; training imports no experiments."""
    package = ROOT / "modeling_mgcma"
    assert {p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(WINGS)
    assert {p.stem for p in package.glob("*.py")} == HUB_FILES | {"__init__", "cli"}
    assert wing_offenders(package) == []


def test_the_wing_rule_sees_relative_and_absolute_imports_that_break_it(tmp_path):
    package = tmp_path / "modeling_mgcma"
    (package / "deploy" / "sub").mkdir(parents=True)
    (package / "training").mkdir()
    (package / "modeling_mgcma.py").write_text("from .configuration_mgcma import X\nfrom .training import trainer\n")
    (package / "deploy" / "export.py").write_text("from ..modeling_mgcma import M\nfrom ..training.trainer import T\n")
    (package / "deploy" / "sub" / "deep.py").write_text("from ...experiments import grid\nfrom .. import export\n")
    (package / "training" / "trainer.py").write_text("import modeling_mgcma.experiments.grid\nfrom ..data import x\n")
    assert wing_offenders(package) == [
        "deploy/export.py:2: deploy imports modeling_mgcma.training.trainer",
        "deploy/sub/deep.py:1: deploy imports modeling_mgcma.experiments",
        "modeling_mgcma.py:2: hub imports modeling_mgcma.training",
        "training/trainer.py:1: training imports modeling_mgcma.experiments.grid",
    ]


def test_no_symbolic_links_in_the_repository():
    links = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_symlink() and ".venv" not in p.parts]
    assert links == []


def test_data_package_is_loaded_from_the_top_level_folder():
    assert Path(mgcma_data.__file__).resolve().parent == ROOT / "data"


@pytest.mark.slow
def test_wheel_install_imports_everything_from_another_directory(tmp_path):
    """A normal (non-editable) install carries data/ as modeling_mgcma.data and the model-card template."""
    source = tmp_path / "source"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "tests", "outputs")
    )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *map(str, wheels.glob("*.whl"))],
        check=True,
        capture_output=True,
    )
    script = (
        "import importlib, pkgutil, modeling_mgcma\n"
        "names = [m.name for m in pkgutil.walk_packages(modeling_mgcma.__path__, 'modeling_mgcma.')]\n"
        "assert {'modeling_mgcma.data.iemocap', 'modeling_mgcma.training.metrics.wa_ua'} <= set(names), names\n"
        "for name in names: importlib.import_module(name)\n"
        "import modeling_mgcma.data\n"
        "from modeling_mgcma.experiments.model_card import TEMPLATE_PATH\n"
        "from modeling_mgcma.experiments.run_arguments import load_preset\n"
        "assert TEMPLATE_PATH.is_file(), TEMPLATE_PATH\n"
        "assert load_preset('paper'), 'paper preset empty'\n"
        "print(modeling_mgcma.__file__); print(modeling_mgcma.data.__file__); print(TEMPLATE_PATH)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.split()
    assert len(printed) == 3 and all(line.startswith(str(target)) for line in printed), printed
