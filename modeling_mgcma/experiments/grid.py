# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The reproduction grid: every (setting, fold) of Tables II and III as its own resumable unit, then the tables,
Figure 3 and a reliability diagram from what the units saved.

Layout: ``<output_dir>/<setting>/fold_<k>/`` holds one trained model, its recorded fingerprint and its test
predictions (``test_predictions.json``: utterance ids, labels, predictions, class probabilities) and test features
(``test_features.npz``: pooled speech and text features, for the t-SNE panels). ``<output_dir>/tables.md`` and
``tables.json`` are rebuilt from those files after every run, so an interrupted grid shows its missing cells as
missing and a resumed one fills them in.

The training itself is not here: :func:`run_grid` calls a ``run_unit`` callable (the example script's per-fold run)
for every unit that is not already finished with the same fingerprint. `grid_launch` runs the units in separate
processes instead (several at once on one machine, or a SLURM job array) and builds the tables once at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..configuration_mgcma import PAPER_ABLATIONS
from ..training.calibration import apply_temperature
from .evaluation import (
    PREDICTIONS_FILE,
    REFERENCE_SETTING,
    FoldPredictions,
    build_tables,
    collect_grid_predictions,
    save_fold_predictions,
    write_tables,
)
from .run_records import fold_folder_name, group_from_folder_name


logger = logging.getLogger(__name__)

ALL_SETTINGS = tuple(PAPER_ABLATIONS)  # S0 (the full model) to S9
FEATURES_FILE = "test_features.npz"
FIGURE3_FILE = "figure3_tsne.png"
RELIABILITY_FILE = "reliability_diagram.png"
GRID_FILES = ("tables.md", "tables.json", FIGURE3_FILE, RELIABILITY_FILE)  # what a grid writes at its top


def parse_ablations(spec: str | Sequence[str]) -> list[str]:
    """``"all"`` -> S0-S9; ``"S0,S1,S4"`` (or a list) -> those settings in the given order. Names are compared
    ignoring case and spaces; an unknown or repeated name is an error naming it."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [str(name).strip().upper() for name in names if str(name).strip()]
    if names == ["ALL"]:
        return list(ALL_SETTINGS)
    if not names:
        raise ValueError(f"--ablations needs 'all' or a comma-separated list of {', '.join(ALL_SETTINGS)}, got {spec!r}.")
    unknown = [name for name in names if name not in PAPER_ABLATIONS]
    if unknown:
        raise ValueError(f"--ablations: unknown setting(s) {unknown}; expected 'all' or names among {list(ALL_SETTINGS)}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--ablations names {repeated} more than once.")
    if REFERENCE_SETTING not in names:
        logger.warning("--ablations without %s: the tables will have no paired test against the full model.",
                       REFERENCE_SETTING)  # fmt: skip
    return names


@dataclass(frozen=True)
class GridUnit:
    """One training of the grid: `setting` (S0-S9) tested on fold `fold` (a session number or group name, as the
    fold helper gives it), written into `directory`."""

    setting: str
    fold: object
    directory: Path

    @property
    def key(self) -> tuple[str, str]:
        return self.setting, str(self.fold)


def grid_units(output_dir: str | os.PathLike, settings: Sequence[str], folds: Sequence) -> list[GridUnit]:
    """Every (setting, fold) unit in run order: setting by setting, so that a setting's row fills in first."""
    output_dir = Path(output_dir)
    return [GridUnit(s, f, output_dir / s / fold_folder_name(f)) for s in settings for f in folds]


def _recorded_fingerprint(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None  # unreadable: the unit's own check (`prepare`) names the problem


def plan_grid(
    units: Sequence[GridUnit],
    *,
    fingerprint_of: Callable[[GridUnit], dict],
    prepare: Callable[[Path, dict], str],
    fingerprint_file: str = "fingerprint.json",
    planning: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[tuple[str, str], tuple[str, dict]]:
    """``{(setting, fold): (plan, fingerprint)}`` with plan "reuse", "train" or "resume", every unit checked before
    any trains (see :func:`run_grid`); one ValueError names every unit that cannot be run."""
    plans, problems = {}, []
    with planning():
        for unit in units:
            fingerprint = fingerprint_of(unit)
            finished = (unit.directory / PREDICTIONS_FILE).is_file()
            if finished and _recorded_fingerprint(unit.directory / fingerprint_file) == fingerprint:
                plans[unit.key] = ("reuse", fingerprint)
                continue
            try:
                plans[unit.key] = (prepare(unit.directory, fingerprint), fingerprint)
            except ValueError as error:
                problems.append(f"{unit.setting}, fold {unit.fold}: {error}")
        if problems:
            raise ValueError("\n".join(problems))
    return plans


def run_grid(
    units: Sequence[GridUnit],
    run_unit: Callable[[GridUnit, dict, str], object],
    *,
    fingerprint_of: Callable[[GridUnit], dict],
    prepare: Callable[[Path, dict], str],
    fingerprint_file: str = "fingerprint.json",
    planning: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[tuple[str, str], str]:
    """Run every unit that is not already finished with the same settings; returns ``{(setting, fold): "reused" |
    "trained" | "resumed"}``.

    A unit is reused when its folder holds its test predictions and a recorded fingerprint (`fingerprint_file`,
    written by `run_unit`) equal to ``fingerprint_of(unit)``, so a rerun of the same command trains nothing and
    changing one setting only touches that setting's units. Every other unit goes through ``prepare(directory,
    fingerprint)``, the per-fold run's own folder check, which returns "train" or "resume" or raises a ValueError
    (a folder holding another run is refused unless the user asked to overwrite it). All units are checked before the
    first one trains, and every refusal is reported at once. Then ``run_unit(unit, fingerprint, plan)`` runs the
    rest in order; it must leave the unit's predictions file behind, written last. The checks (which may empty
    folders) run inside ``planning()``: under several processes, `TrainingArguments.main_process_first`.
    """
    plans = plan_grid(units, fingerprint_of=fingerprint_of, prepare=prepare, fingerprint_file=fingerprint_file,
                      planning=planning)  # fmt: skip
    outcome = {}
    for unit in units:
        plan, fingerprint = plans[unit.key]
        if plan == "reuse":
            logger.warning("%s fold %s already finished with the same settings (%s): reusing it.", unit.setting,
                           unit.fold, unit.directory)  # fmt: skip
            outcome[unit.key] = "reused"
            continue
        logger.warning("Grid unit %s fold %s: %s in %s.", unit.setting, unit.fold, plan, unit.directory)
        # what an earlier run of the unit saved must not outlive it: a run that dies after recording its new
        # fingerprint would otherwise leave the old predictions looking finished
        for name in (PREDICTIONS_FILE, FEATURES_FILE):
            (unit.directory / name).unlink(missing_ok=True)
        run_unit(unit, fingerprint, plan)
        if not (unit.directory / PREDICTIONS_FILE).is_file():
            raise RuntimeError(f"{unit.directory}: the run finished without writing {PREDICTIONS_FILE}.")
        outcome[unit.key] = "resumed" if plan == "resume" else "trained"
    return outcome


def run_settings_grid(
    output_dir: str | os.PathLike,
    settings: Sequence[str],
    folds: Sequence,
    *,
    run_unit: Callable[[str, object, Path, dict], object],
    fingerprint_of: Callable[[str, object], dict],
    prepare: Callable[[Path, dict], str],
    label_names: Sequence[str],
    seed: int = 0,
    fingerprint_file: str = "fingerprint.json",
    write_report: bool = True,
    echo: bool = True,
    planning: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    only: Sequence[tuple[str, str]] | None = None,
) -> dict:
    """The example script's ``--ablations``: :func:`run_grid` over ``settings x folds`` with the script's per-fold
    run (``run_unit(setting, fold, directory, fingerprint)``), then :func:`write_grid_report` (and, with `echo`,
    prints ``tables.md``). Returns the report
    (``"tables"``, ``"files"``; none with `write_report` False, e.g. on processes other than the main one) and
    ``"outcome"`` ({(setting, fold): "trained" | "resumed" | "reused"}). `only` (unit keys) runs just those units
    and writes no report: one unit of a grid whose units run in separate processes (`grid_launch`)."""
    units = grid_units(output_dir, settings, folds)
    selected = [unit for unit in units if only is None or unit.key in set(only)]
    outcome = run_grid(
        selected,
        lambda unit, fingerprint, plan: run_unit(unit.setting, unit.fold, unit.directory, fingerprint),
        fingerprint_of=lambda unit: fingerprint_of(unit.setting, unit.fold),
        prepare=prepare,
        fingerprint_file=fingerprint_file,
        planning=planning,
    )
    # the tables hold this run's folds only: a fold folder left by an earlier run with other folds is not read
    fold_folders = sorted({unit.directory.name for unit in units})
    write_report = write_report and only is None
    report = write_grid_report(output_dir, settings, label_names, seed=seed, folds=fold_folders) if write_report else {}
    if report and echo:
        print(Path(report["files"]["tables_md"]).read_text(encoding="utf-8"))
    return {**report, "outcome": outcome}


def save_unit_outputs(
    directory: str | os.PathLike,
    ids: Sequence[str],
    logits,
    references: Sequence[int],
    temperature: float | None = None,
    speech_features=None,
    text_features=None,
) -> FoldPredictions:
    """Write what the tables and figures read from one unit: the test predictions with the probabilities the model
    serves (softmax(logits / T) when a temperature was fitted) and, when given, the pooled speech and text features
    of the same utterances (``.npz``, read back without pickle)."""
    directory = Path(directory)
    logits = np.asarray(logits, dtype=np.float64)
    probabilities = apply_temperature(logits, temperature if temperature is not None else 1.0)
    fold = FoldPredictions(ids, logits.argmax(axis=1), references, probabilities, temperature)
    if speech_features is not None and text_features is not None:
        speech, text = np.asarray(speech_features, dtype=np.float32), np.asarray(text_features, dtype=np.float32)
        if speech.shape != text.shape or speech.ndim != 2 or len(speech) != len(fold.ids):
            raise ValueError(f"need [N, D] speech and text features for the {len(fold.ids)} test utterances, got "
                             f"{speech.shape} and {text.shape}.")  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{FEATURES_FILE}.{os.getpid()}.tmp.npz"
        try:  # written whole or not at all (temporary file + os.replace)
            np.savez(temporary, ids=np.asarray(fold.ids, dtype=str), speech=speech, text=text, labels=fold.references)
            os.replace(temporary, directory / FEATURES_FILE)
        finally:
            temporary.unlink(missing_ok=True)
    save_fold_predictions(fold, directory / PREDICTIONS_FILE)  # last: it marks the unit finished
    return fold


def load_unit_features(directory: str | os.PathLike) -> dict | None:
    """``{"ids", "speech", "text", "labels"}`` saved by :func:`save_unit_outputs`, or None when the unit has none."""
    path = Path(directory) / FEATURES_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in ("ids", "speech", "text", "labels")}
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a valid features file ({type(error).__name__}: {error})") from error


def figure3_features(output_dir: str | os.PathLike, panels: Sequence[str]) -> tuple[str | None, dict]:
    """The fold and ``{setting: (speech, text, labels)}`` for Figure 3's panels: the first fold (in order) for which
    the most panels have saved features, each panel's rows put in the same utterance order. (None, {}) when no panel
    setting saved features."""
    output_dir = Path(output_dir)
    available = {}
    for setting in panels:
        folder = output_dir / setting
        for unit in sorted(folder.glob("fold_*")) if folder.is_dir() else []:
            features = load_unit_features(unit)
            if features is not None:
                available.setdefault(group_from_folder_name(unit.name[len("fold_"):]), {})[setting] = features
    if not available:
        return None, {}
    fold = max(available, key=lambda f: (len(available[f]), -sorted(available).index(f)))
    reference_ids = None
    chosen = {}
    for setting in panels:
        features = available[fold].get(setting)
        if features is None:
            continue
        order = np.argsort(features["ids"], kind="stable")
        if reference_ids is None:
            reference_ids = features["ids"][order]
        elif not np.array_equal(features["ids"][order], reference_ids):
            raise ValueError(f"fold {fold}: {setting}'s features are of other test utterances than the other panels'.")
        chosen[setting] = (features["speech"][order], features["text"][order], features["labels"][order])
    return fold, chosen


def write_grid_report(
    output_dir: str | os.PathLike,
    settings: Sequence[str] | None,
    label_names: Sequence[str],
    *,
    num_permutations: int = 10000,
    seed: int = 0,
    figures: bool = True,
    folds: Sequence[str] | None = None,
) -> dict:
    """Build ``tables.md`` / ``tables.json`` from the units' saved predictions and, with `figures`, Figure 3's
    analogue (t-SNE panels of S0, S1, S2, S3 on one fold's test utterances) and the reliability diagram of S0's
    pooled test predictions. `folds` (folder names, ``fold_3``) restricts the units read. Returns the tables dict
    and the paths written under ``"files"``."""
    from .plots import FIGURE3_PANELS, plot_reliability_diagram, plot_tsne_panels

    output_dir = Path(output_dir)
    results = collect_grid_predictions(output_dir, settings, folds=folds)
    tables = build_tables(results, num_permutations=num_permutations, seed=seed)
    markdown, data = write_tables(tables, output_dir)
    files = {"tables_md": markdown, "tables_json": data}
    if not figures:
        return {"tables": tables, "files": files}
    panels = {s: t for s, t in FIGURE3_PANELS.items() if settings is None or s in settings}
    if panels:
        fold, features = figure3_features(output_dir, list(panels))
        if features:
            drawn = plot_tsne_panels(features, label_names, output_dir / FIGURE3_FILE, panels=FIGURE3_PANELS, seed=seed)
            files["figure3"] = drawn["path"]
            files["figure3_fold"] = fold
    reference = next((s for s in ([REFERENCE_SETTING] + list(results)) if results.get(s)), None)
    folds = list(results[reference].values()) if reference else []
    if folds and all(f.probabilities is not None for f in folds):
        served = np.concatenate([f.probabilities for f in folds])
        labels = np.concatenate([f.references for f in folds])
        if all(f.temperature is not None for f in folds):
            # the raw model's probabilities: softmax(T * log p) undoes softmax(z / T) exactly (per fold's own T)
            raw = np.concatenate([apply_temperature(f.temperature * np.log(np.clip(f.probabilities, 1e-300, None)), 1.0)
                                  for f in folds])  # fmt: skip
            path = plot_reliability_diagram(raw, labels, output_dir / RELIABILITY_FILE, calibrated_probabilities=served,
                                            title=f"Reliability, {reference}, test utterances of all folds")  # fmt: skip
        else:
            path = plot_reliability_diagram(served, labels, output_dir / RELIABILITY_FILE,
                                            title=f"Reliability, {reference}, test utterances of all folds")  # fmt: skip
        files["reliability"] = path
    return {"tables": tables, "files": files}


__all__ = [
    "ALL_SETTINGS",
    "FEATURES_FILE",
    "GRID_FILES",
    "GridUnit",
    "figure3_features",
    "grid_units",
    "load_unit_features",
    "parse_ablations",
    "plan_grid",
    "run_grid",
    "run_settings_grid",
    "save_unit_outputs",
    "write_grid_report",
]
