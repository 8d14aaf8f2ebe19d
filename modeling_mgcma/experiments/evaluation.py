# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Results of a (setting x fold) grid: per-fold and aggregated WA/UA, a paired test against S0, IEMOCAP's improvised
and scripted subsets, and the paper's Tables II and III rendered as ``tables.md`` / ``tables.json``.

Conventions (stated in every rendered table as well):

- WA = accuracy, UA = mean per-class recall over the classes present in the references, both in percent.
- "mean ± std over folds": every fold weighs the same; std is the *sample* standard deviation (ddof=1), undefined
  (shown as missing) with a single fold.
- "pooled": WA/UA over the union of all test utterances of all folds, each utterance weighing the same.
- The paired test is a paired permutation (sign-flip) test of the UA difference on the same test utterances; see
  :func:`paired_permutation_test` for why this test and how folds are handled.
- ECE (expected calibration error, in percent) of the class probabilities the saved model serves, where the
  predictions files carry them; see ``calibration.expected_calibration_error``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .run_records import atomic_write_text, group_from_folder_name


# The paper's reported (WA %, UA %) on IEMOCAP, 5-fold leave-one-session-out: Table II (S0-S4, modules switched off)
# and Table III (S0, S5-S9, module orders). The settings themselves are `PAPER_ABLATIONS` in configuration_mgcma.py.
PAPER_RESULTS = {
    "S0": (78.87, 80.24),
    "S1": (77.78, 79.07),
    "S2": (78.00, 79.14),
    "S3": (78.30, 79.38),
    "S4": (76.20, 77.62),
    "S5": (78.76, 79.48),
    "S6": (77.60, 78.60),
    "S7": (78.71, 79.81),
    "S8": (77.33, 78.75),
    "S9": (76.88, 78.43),
}
SETTING_DESCRIPTIONS = {
    "S0": "MGCMA (DAM→TAM→IAM)",
    "S1": "w/o DAM",
    "S2": "w/o TAM",
    "S3": "w/o IAM",
    "S4": "w/o DAM, TAM, IAM",
    "S5": "DAM→IAM→TAM",
    "S6": "IAM→DAM→TAM",
    "S7": "IAM→TAM→DAM",
    "S8": "TAM→DAM→IAM",
    "S9": "TAM→IAM→DAM",
}
PAPER_TABLES = {
    "table_ii": ("Table II: alignment modules switched off", ("S0", "S1", "S2", "S3", "S4")),
    "table_iii": ("Table III: module order", ("S0", "S5", "S6", "S7", "S8", "S9")),
}
REFERENCE_SETTING = "S0"

# IEMOCAP utterance ids: Ses01F_impro01_F000 (improvised dialogue) or Ses01F_script01_1_F000 (scripted).
_IEMOCAP_ID = re.compile(r"^Ses\d{2}[FM]_(impro|script)\d+[a-z]?(_\d+[a-z]?)?_[FM]\d{3}$")
DIALOGUE_TYPES = ("improvised", "scripted")


@dataclass
class FoldPredictions:
    """The predictions of one trained model on its fold's test split, one entry per test utterance. `probabilities`
    ([N, num_labels], optional) are the class probabilities the model serves (temperature-scaled when it was
    calibrated; `temperature` is then the fitted T, else None)."""

    ids: Sequence[str]
    predictions: Sequence[int]
    references: Sequence[int]
    probabilities: Sequence[Sequence[float]] | None = None
    temperature: float | None = None

    def __post_init__(self):
        self.ids = [str(i) for i in self.ids]
        self.predictions = np.asarray(self.predictions, dtype=np.int64)
        self.references = np.asarray(self.references, dtype=np.int64)
        if not (len(self.ids) == len(self.predictions) == len(self.references)):
            raise ValueError(
                f"ids, predictions and references must have one entry per utterance, got {len(self.ids)}, "
                f"{len(self.predictions)} and {len(self.references)}."
            )
        if len(self.ids) == 0:
            raise ValueError("a fold needs at least one test utterance, got none.")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("utterance ids must be unique within a fold.")
        if self.probabilities is not None:
            self.probabilities = np.asarray(self.probabilities, dtype=np.float64)
            if self.probabilities.ndim != 2 or len(self.probabilities) != len(self.ids):
                raise ValueError(
                    f"probabilities must be [N, num_labels] with N = {len(self.ids)} utterances, got shape "
                    f"{self.probabilities.shape}."
                )


# Where a grid unit keeps its test predictions: <output_dir>/<setting>/fold_<k>/PREDICTIONS_FILE.
PREDICTIONS_FILE = "test_predictions.json"
_FOLD_FOLDER = re.compile(r"^fold_(.+)$")


def save_fold_predictions(fold: FoldPredictions, path: str | os.PathLike) -> str:
    """Write one unit's test predictions as JSON (``{"ids", "predictions", "references"}``, plus ``"probabilities"``
    and ``"temperature"`` when known), the input of :func:`collect_grid_predictions`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"ids": list(fold.ids), "predictions": fold.predictions.tolist(), "references": fold.references.tolist()}
    if fold.probabilities is not None:
        payload["probabilities"] = fold.probabilities.tolist()
        payload["temperature"] = fold.temperature
    atomic_write_text(path, json.dumps(payload) + "\n")
    return str(path)


def load_fold_predictions(path: str | os.PathLike) -> FoldPredictions:
    """Read a file written by :func:`save_fold_predictions`; errors name the file."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        return FoldPredictions(payload["ids"], payload["predictions"], payload["references"],
                               payload.get("probabilities"), payload.get("temperature"))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a valid predictions file ({type(error).__name__}: {error})") from error


def collect_grid_predictions(
    output_dir: str | os.PathLike,
    settings: Sequence[str] | None = None,
    filename: str = PREDICTIONS_FILE,
    folds: Sequence[str] | None = None,
) -> dict[str, dict[str, FoldPredictions]]:
    """``{setting: {fold: FoldPredictions}}`` from ``<output_dir>/<setting>/fold_<k>/<filename>``. A unit without
    the file (not run, or interrupted) is left out, so that :func:`build_tables` shows it as missing. `settings`
    restricts (and orders) the settings read; by default every sub-folder that holds at least one fold. `folds`
    (folder names such as ``fold_3``) restricts the fold folders read; by default every one."""
    output_dir = Path(output_dir)
    if settings is None:
        settings = sorted(d.name for d in output_dir.iterdir() if d.is_dir() and any(
            _FOLD_FOLDER.match(f.name) for f in d.iterdir() if f.is_dir()))  # fmt: skip
    results = {}
    for setting in settings:
        folder = output_dir / setting
        units = sorted(folder.iterdir()) if folder.is_dir() else []
        results[setting] = {
            group_from_folder_name(_FOLD_FOLDER.match(unit.name).group(1)): load_fold_predictions(unit / filename)
            for unit in units
            if unit.is_dir() and _FOLD_FOLDER.match(unit.name) and (unit / filename).is_file()
            and (folds is None or unit.name in folds)
        }
    return results


def wa_ua(predictions: Sequence[int], references: Sequence[int]) -> dict:
    """``{"wa", "ua", "n"}`` in percent; UA averages the recalls of the classes present in `references`."""
    predictions, references = np.asarray(predictions, dtype=np.int64), np.asarray(references, dtype=np.int64)
    if references.size == 0:
        raise ValueError("WA/UA need at least one utterance, got none.")
    correct = predictions == references
    recalls = [correct[references == c].mean() for c in np.unique(references)]
    return {"wa": 100.0 * float(correct.mean()), "ua": 100.0 * float(np.mean(recalls)), "n": int(references.size)}


def _with_ece(scores: dict, probabilities: np.ndarray | None, references: np.ndarray) -> dict:
    """`scores` plus ``"ece"`` (percent) when probabilities are known."""
    if probabilities is not None:
        from ..training.calibration import expected_calibration_error

        scores["ece"] = 100.0 * expected_calibration_error(probabilities, references)
    return scores


def summarize_folds(folds: Mapping[str, FoldPredictions]) -> dict:
    """Per-fold WA/UA, their equal-weight mean and sample std (ddof=1) over folds, and WA/UA pooled over every test
    utterance of every fold. Every entry carries ``n``, the number of test utterances behind it. When every fold has
    probabilities, each entry also carries ``ece`` (expected calibration error, percent)."""
    if not folds:
        raise ValueError("no folds to summarize.")
    with_probabilities = all(f.probabilities is not None for f in folds.values())
    per_fold = {
        str(k): _with_ece(wa_ua(f.predictions, f.references), f.probabilities if with_probabilities else None,
                          f.references)
        for k, f in folds.items()
    }  # fmt: skip
    metrics = ("wa", "ua", "ece") if with_probabilities else ("wa", "ua")
    summary = {"per_fold": per_fold, "num_folds": len(per_fold)}
    for stat, reducer in (("mean", lambda v: float(np.mean(v))), ("std", lambda v: float(np.std(v, ddof=1)))):
        if stat == "std" and len(per_fold) < 2:
            summary[stat] = {m: None for m in metrics}
            continue
        summary[stat] = {m: reducer([s[m] for s in per_fold.values()]) for m in metrics}
    summary["mean"]["n"] = int(sum(s["n"] for s in per_fold.values()))
    references = np.concatenate([f.references for f in folds.values()])
    summary["pooled"] = _with_ece(
        wa_ua(np.concatenate([f.predictions for f in folds.values()]), references),
        np.concatenate([f.probabilities for f in folds.values()]) if with_probabilities else None,
        references,
    )
    temperatures = {str(k): f.temperature for k, f in folds.items() if f.temperature is not None}
    if temperatures:
        summary["calibration_temperature"] = temperatures
    return summary


def iemocap_dialogue_type(utterance_id: str) -> str:
    """``"improvised"`` or ``"scripted"`` from an IEMOCAP utterance id (``Ses01F_impro01_F000`` /
    ``Ses01F_script01_1_F000``); a ValueError naming the id for anything else."""
    match = _IEMOCAP_ID.match(str(utterance_id))
    if match is None:
        raise ValueError(
            f"{utterance_id!r} is not an IEMOCAP utterance id (expected e.g. 'Ses01F_impro01_F000' or "
            "'Ses01F_script01_1_F000')."
        )
    return "improvised" if match.group(1) == "impro" else "scripted"


def subset_scores(ids: Sequence[str], predictions: Sequence[int], references: Sequence[int]) -> dict:
    """WA/UA (and ``n``) on IEMOCAP's improvised and scripted dialogues separately. Scripted lines repeat across
    sessions, which flatters text models; the improvised subset has no such overlap. A subset without utterances is
    None."""
    kinds = np.asarray([iemocap_dialogue_type(i) for i in ids])
    predictions, references = np.asarray(predictions), np.asarray(references)
    return {
        kind: wa_ua(predictions[kinds == kind], references[kinds == kind]) if (kinds == kind).any() else None
        for kind in DIALOGUE_TYPES
    }


@dataclass
class PairedTestResult:
    difference: float  # UA(setting) - UA(reference), percentage points, mean over folds
    p_value: float
    exact: bool  # True: every sign assignment enumerated; False: Monte Carlo with `num_permutations` draws
    num_permutations: int
    num_utterances: int
    num_discordant: int  # utterances that exactly one of the two systems gets right
    alpha: float
    significant: bool
    verdict: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _ua_weights(references: np.ndarray, fold_ids: np.ndarray) -> np.ndarray:
    """w_i such that sum_i w_i * correct_i = mean over folds of that fold's UA (a fraction)."""
    weights = np.zeros(len(references), dtype=np.float64)
    folds = np.unique(fold_ids)
    for fold in folds:
        in_fold = fold_ids == fold
        classes, support = np.unique(references[in_fold], return_counts=True)
        per_class = dict(zip(classes.tolist(), support.tolist()))
        weights[in_fold] = [1.0 / (len(classes) * per_class[c] * len(folds)) for c in references[in_fold].tolist()]
    return weights


def _align(setting: Mapping[str, FoldPredictions], reference: Mapping[str, FoldPredictions]):
    """Correctness of both systems on the same utterances, fold by fold (folds present in both)."""
    common = [fold for fold in reference if fold in setting]
    if not common:
        raise ValueError(f"the two settings share no fold (folds {sorted(setting)} vs {sorted(reference)}).")
    correct_a, correct_b, references, fold_ids = [], [], [], []
    for fold in common:
        a, b = setting[fold], reference[fold]
        if sorted(a.ids) != sorted(b.ids):
            raise ValueError(
                f"fold {fold}: the two settings were tested on different utterances "
                f"({len(set(a.ids) - set(b.ids))} only in one, {len(set(b.ids) - set(a.ids))} only in the other)."
            )
        order = {utterance: i for i, utterance in enumerate(b.ids)}
        index = np.asarray([order[u] for u in a.ids])
        if not np.array_equal(a.references, b.references[index]):
            raise ValueError(f"fold {fold}: the two settings disagree on the reference labels of the same utterances.")
        correct_a.append(a.predictions == a.references)
        correct_b.append(b.predictions[index] == b.references[index])
        references.append(a.references)
        fold_ids.append(np.full(len(a.ids), len(fold_ids)))
    return (np.concatenate(correct_a), np.concatenate(correct_b), np.concatenate(references), np.concatenate(fold_ids),
            common)  # fmt: skip


def paired_permutation_test(
    setting: Mapping[str, FoldPredictions] | FoldPredictions,
    reference: Mapping[str, FoldPredictions] | FoldPredictions,
    *,
    num_permutations: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
    names: tuple[str, str] = ("setting", "S0"),
) -> PairedTestResult:
    """Two-sided paired permutation test of the UA difference between two systems on the same test utterances.

    Why this test: under the null hypothesis the two systems are exchangeable on every utterance, so swapping their
    predictions on any utterance leaves the distribution of the statistic unchanged. That is exactly testable without
    distributional assumptions (unlike a t-test over 5 folds) and, unlike a paired bootstrap, needs no re-centring to
    turn a confidence interval into a p-value. Identical predictions give p = 1 exactly.

    Statistic: mean over folds of UA(setting) - UA(reference), the same equal-weight mean as the tables' headline.
    Utterances never move between folds (a swap exchanges two predictions of one utterance), so the resampling is
    stratified by fold by construction, and each fold's UA keeps its own class supports. UA is linear in the
    per-utterance correctness, so only the `num_discordant` utterances that exactly one system gets right matter:
    with ``2**num_discordant <= num_permutations`` all sign assignments are enumerated (exact p-value, no randomness);
    otherwise `num_permutations` random ones are drawn from ``numpy.random.default_rng(seed)`` and
    p = (1 + #{|d*| >= |d|}) / (1 + num_permutations), which is never 0 and is deterministic for a given seed.
    """
    if isinstance(setting, FoldPredictions):
        setting = {"0": setting}
    if isinstance(reference, FoldPredictions):
        reference = {"0": reference}
    correct_a, correct_b, references, fold_ids, _ = _align(setting, reference)
    weights = _ua_weights(references, fold_ids)
    contribution = weights * (correct_a.astype(np.float64) - correct_b.astype(np.float64))
    discordant = contribution[correct_a != correct_b]
    observed = float(contribution.sum())
    tolerance = 1e-12
    k = len(discordant)
    if k <= 30 and 2**k <= num_permutations:
        signs = 1.0 - 2.0 * ((np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1)
        statistics = signs @ discordant
        p_value = float(np.mean(np.abs(statistics) >= abs(observed) - tolerance))
        exact, draws = True, 2**k
    else:
        rng = np.random.default_rng(seed)
        exceed = 0
        for start in range(0, num_permutations, 1000):  # chunks bound the memory of the sign matrix
            size = min(1000, num_permutations - start)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(size, k))
            exceed += int(np.sum(np.abs(signs @ discordant) >= abs(observed) - tolerance))
        p_value = (1 + exceed) / (1 + num_permutations)
        exact, draws = False, num_permutations
    difference = 100.0 * observed
    significant = p_value < alpha
    first, second = names
    if significant:
        verdict = (f"{first} differs from {second} by {difference:+.2f} UA points; significant at alpha = {alpha} "
                   f"(p = {p_value:.4f}).")  # fmt: skip
    else:
        verdict = (
            f"{first} vs {second}: the {difference:+.2f} UA-point difference is not significant (p = {p_value:.3f} >= "
            f"{alpha}); these {len(references)} test utterances cannot tell the two settings apart."
        )
    return PairedTestResult(difference, p_value, exact, draws, len(references), k, alpha, significant, verdict)


def build_tables(
    results: Mapping[str, Mapping[str, FoldPredictions] | None],
    *,
    num_permutations: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
    with_subsets: bool | None = None,
) -> dict:
    """Everything ``tables.md`` / ``tables.json`` show, as a JSON-serialisable dict.

    Args:
        results: ``{setting: {fold: FoldPredictions}}``; a setting that did not run can be absent or None, a fold
            that did not run is absent. Both are shown as missing, never filled in.
        with_subsets: add WA/UA on IEMOCAP's improvised and scripted dialogues. None: when every utterance id is an
            IEMOCAP id.
    """
    folds = sorted({str(f) for per_setting in results.values() if per_setting for f in per_setting})
    if with_subsets is None:
        with_subsets = bool(folds) and all(
            _IEMOCAP_ID.match(i) for per_setting in results.values() if per_setting for f in per_setting.values()
            for i in f.ids
        )  # fmt: skip
    reference = results.get(REFERENCE_SETTING)
    settings = {}
    for name in sorted(set(results) | set(PAPER_RESULTS), key=lambda s: (s not in PAPER_RESULTS, s)):
        per_setting = {str(k): v for k, v in (results.get(name) or {}).items()}
        entry = {
            "description": SETTING_DESCRIPTIONS.get(name, name),
            "paper": dict(zip(("wa", "ua"), PAPER_RESULTS[name])) if name in PAPER_RESULTS else None,
            "missing_folds": [f for f in folds if f not in per_setting],
        }
        if per_setting:
            entry.update(summarize_folds(per_setting))
            if with_subsets:
                ids = [i for f in per_setting.values() for i in f.ids]
                entry["subsets_pooled"] = subset_scores(
                    ids,
                    np.concatenate([f.predictions for f in per_setting.values()]),
                    np.concatenate([f.references for f in per_setting.values()]),
                )
            if name != REFERENCE_SETTING and reference:
                shared = [f for f in per_setting if f in {str(k) for k in reference}]
                if shared:
                    test = paired_permutation_test(
                        {f: per_setting[f] for f in shared},
                        {str(k): v for k, v in reference.items() if str(k) in shared},
                        num_permutations=num_permutations, seed=seed, alpha=alpha, names=(name, REFERENCE_SETTING),
                    )  # fmt: skip
                    entry["vs_S0"] = {**test.to_dict(), "folds": shared}
        settings[name] = entry
    return {
        "conventions": {
            "metrics": "WA = accuracy, UA = mean per-class recall, in percent",
            "mean_std": "mean and sample standard deviation (ddof=1) over folds, each fold weighing the same",
            "pooled": "WA/UA over all test utterances of all folds together",
            "paired_test": f"two-sided paired permutation test of the UA difference vs {REFERENCE_SETTING} on the "
            f"same test utterances, folds as strata, alpha = {alpha}, seed = {seed}",
            "paper": "the paper's reported WA/UA (IEMOCAP, 5-fold leave-one-session-out)",
            "ece": "expected calibration error (15 equal-width confidence bins, percent) of the probabilities the "
            "saved model serves (temperature-scaled where a temperature was fitted on validation), pooled over folds",
        },
        "folds": folds,
        "settings": settings,
        "tables": {key: {"title": title, "settings": list(rows)} for key, (title, rows) in PAPER_TABLES.items()},
    }


MISSING = "missing"


def _number(value, digits=2) -> str:
    return MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _mean_std(entry: dict, metric: str) -> str:
    if "mean" not in entry:
        return MISSING
    mean, std = entry["mean"][metric], entry["std"][metric]
    return f"{mean:.2f} (1 fold, no std)" if std is None else f"{mean:.2f} ± {std:.2f}"


def render_tables_markdown(tables: dict) -> str:
    """Markdown for ``tables.md``: Tables II and III with the paper's numbers next to ours, the p-value of each
    setting vs S0 and a plain-words verdict, then a per-fold table. Missing cells read "missing"."""
    folds, settings = tables["folds"], tables["settings"]
    lines = ["# Results", ""]
    lines += [f"- {key}: {text}" for key, text in tables["conventions"].items()] + [""]
    for table in tables["tables"].values():
        rows = table["settings"]
        lines += [f"## {table['title']}", ""]
        lines.append("| setting | | WA mean ± std | UA mean ± std | WA pooled | UA pooled | ECE pooled | n test | paper WA "
                     "| paper UA | ΔUA vs S0 | p vs S0 |")  # fmt: skip
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        verdicts = []
        for name in rows:
            entry = settings.get(name, {"description": name, "paper": None, "missing_folds": folds})
            pooled = entry.get("pooled", {})
            paper = entry["paper"] or {}
            test = entry.get("vs_S0")
            if name == REFERENCE_SETTING:
                delta = p = "(reference)"
            elif test is None:
                delta = p = MISSING
            else:
                delta, p = f"{test['difference']:+.2f}", f"{test['p_value']:.4f}"
                if test["folds"] != [f for f in folds if f in settings[REFERENCE_SETTING].get("per_fold", {})]:
                    delta, p = delta + f" (folds {', '.join(test['folds'])})", p + f" (folds {', '.join(test['folds'])})"
                verdicts.append(f"- {test['verdict']}")
            folds_note = f" (missing folds: {', '.join(entry['missing_folds'])})" if entry.get("missing_folds") else ""
            lines.append(
                f"| {name} | {entry['description']}{folds_note} | {_mean_std(entry, 'wa')} | {_mean_std(entry, 'ua')} "
                f"| {_number(pooled.get('wa'))} | {_number(pooled.get('ua'))} | {_number(pooled.get('ece'))} "
                f"| {pooled.get('n', MISSING)} "
                f"| {_number(paper.get('wa'))} | {_number(paper.get('ua'))} | {delta} | {p} |"
            )
        lines += [""] + verdicts + ([""] if verdicts else [])
    lines += ["## Per fold (WA / UA, ECE where known, n test utterances)", ""]
    lines.append("| setting | " + " | ".join(f"fold {f}" for f in folds) + " |")
    lines.append("|---|" + "---|" * len(folds))
    for name, entry in settings.items():
        per_fold = entry.get("per_fold", {})
        cells = [
            f"{per_fold[f]['wa']:.2f} / {per_fold[f]['ua']:.2f}"
            + (f", ECE {per_fold[f]['ece']:.2f}" if "ece" in per_fold[f] else "") + f" (n={per_fold[f]['n']})"
            if f in per_fold else MISSING
            for f in folds
        ]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if any("subsets_pooled" in e for e in settings.values()):
        lines += ["", "## IEMOCAP improvised vs scripted dialogues (pooled over folds; WA / UA, n)", ""]
        lines += ["| setting | improvised | scripted |", "|---|---|---|"]
        for name, entry in settings.items():
            subsets = entry.get("subsets_pooled")
            if subsets is None:
                continue
            cells = [f"{s['wa']:.2f} / {s['ua']:.2f} (n={s['n']})" if s else MISSING for s in subsets.values()]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(tables: dict, output_dir: str | os.PathLike) -> tuple[str, str]:
    """Write ``tables.md`` and ``tables.json`` into `output_dir`; returns their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    markdown, data = output_dir / "tables.md", output_dir / "tables.json"
    atomic_write_text(markdown, render_tables_markdown(tables))
    atomic_write_text(data, json.dumps(tables, indent=2, ensure_ascii=False) + "\n")
    return str(markdown), str(data)


__all__ = [
    "PAPER_RESULTS",
    "PAPER_TABLES",
    "SETTING_DESCRIPTIONS",
    "PREDICTIONS_FILE",
    "FoldPredictions",
    "PairedTestResult",
    "save_fold_predictions",
    "load_fold_predictions",
    "collect_grid_predictions",
    "wa_ua",
    "summarize_folds",
    "iemocap_dialogue_type",
    "subset_scores",
    "paired_permutation_test",
    "build_tables",
    "render_tables_markdown",
    "write_tables",
]
