# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The learning benchmark's results: one row per run in `benchmarks/results/learning.csv`, the per-epoch curves of
those runs in `benchmarks/results/learning_curves.csv`, and the table that `summary` prints from them.

    python benchmarks/learning_results.py summary [--run_set learning-test80]   # one run set's table
    python benchmarks/learning_results.py sets                                  # the run sets and their run counts
    python benchmarks/learning_results.py merge OUT/learning.csv                # runs recorded elsewhere (a farm)

A run set groups the runs of one recipe variant (`learning`: the learning table's own cells; `learning-test80`: the
same models tested on 320 utterances, and more seeds; `learning-pre-ln`: pre-LayerNorm alignment blocks; ...). A run
is identified by (run set, recipe, corpus, corpus seed, test utterances per class, setting, seed) and recorded with
the recipe values it was trained with, so that a run of another recipe is never taken for it.

Rows are appended under an exclusive lock on the file, one run's rows in one write, so that many runs recording at
once (`learning_farm.py`) leave whole rows. This module needs only the standard library: the table can be read
without torch or the model code.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import io
import json
import os
import statistics
import sys
from pathlib import Path


RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_RESULTS = RESULTS_DIR / "learning.csv"
DEFAULT_RUN_SET = "learning"
SETTINGS = ("S0", "S1", "S2", "S3", "S4", "concat")

KEY_FIELDS = ("run_set", "recipe", "corpus", "corpus_seed", "test_per_class", "setting", "seed")
RUN_FIELDS = (*KEY_FIELDS, "test_ua", "val_ua", "seconds", "recipe_values")
CURVE_FIELDS = (*KEY_FIELDS, "epoch", "val_ua", "loss_ce", "loss_da", "loss_ia", "ia_probe", "speech_spread",
                "text_spread")  # fmt: skip
INTEGER_FIELDS = ("corpus_seed", "test_per_class", "seed", "epoch")


def curves_path(results) -> Path:
    """The curves file that goes with a results file: learning.csv -> learning_curves.csv."""
    results = Path(results)
    return results.with_name(f"{results.stem}_curves{results.suffix}")


def run_key(record: dict) -> tuple:
    return tuple(record.get(field) for field in KEY_FIELDS)


def _to_text(field: str, value) -> str:
    if value is None:
        return ""
    if field == "recipe_values":
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return repr(value) if isinstance(value, float) else str(value)  # repr: floats read back exactly


def _from_text(field: str, text: str):
    if text == "":
        return None
    if field == "recipe_values":
        return json.loads(text)
    if field in INTEGER_FIELDS:
        return int(text)
    if field in ("run_set", "recipe", "corpus", "setting"):
        return text
    return float(text)


def read_rows(path, fields=RUN_FIELDS) -> list[dict]:
    """Every row of a results (or curves) file, typed; [] when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:  # created, nothing written yet
                return []
            if tuple(reader.fieldnames or ()) != tuple(fields):
                raise SystemExit(f"{path}: columns {reader.fieldnames}, expected {list(fields)}")
            return [{field: _from_text(field, row[field]) for field in fields} for row in reader]
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_rows(path, rows: list[dict], fields=RUN_FIELDS) -> None:
    """Append rows (with the header when the file is new) in one write, under an exclusive lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, lineterminator="\n")
    with open(path, "a", newline="") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if handle.seek(0, os.SEEK_END) == 0:
                writer.writeheader()
            writer.writerows({field: _to_text(field, row.get(field)) for field in fields} for row in rows)
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_run(results, record: dict, curves: list[dict]) -> None:
    """Record one run: its per-epoch curves first, then its row (the row is what marks the run as done)."""
    unknown = sorted({key for curve in curves for key in curve} - set(CURVE_FIELDS))
    if unknown:
        print(f"learning_results: curve values {unknown} are not recorded (columns: {list(CURVE_FIELDS)})",
              file=sys.stderr)  # fmt: skip
    key = {field: record.get(field) for field in KEY_FIELDS}
    append_rows(curves_path(results), [{**key, **curve} for curve in curves], CURVE_FIELDS)
    append_rows(results, [record], RUN_FIELDS)


def find_run(results, key: tuple) -> dict | None:
    """The recorded run with this key (see run_key), or None."""
    return next((row for row in read_rows(results) if run_key(row) == key), None)


def load_results(results=DEFAULT_RESULTS, run_set: str = DEFAULT_RUN_SET) -> dict:
    """{(recipe, corpus, corpus seed offset, test utterances per class or 0 for the corpus's own): {setting: {seed:
    test UA}}} from every run of `run_set` in `results`."""
    cells = {}
    for r in read_rows(results):
        if r["run_set"] != run_set:
            continue
        key = (r["recipe"], r["corpus"], r["corpus_seed"] - r["seed"], r["test_per_class"] or 0)
        cells.setdefault(key, {}).setdefault(r["setting"], {})[r["seed"]] = r["test_ua"]
    return cells


def _mean_std(scores):
    return statistics.mean(scores), (statistics.stdev(scores) if len(scores) > 1 else 0.0)


def criterion(row: dict) -> dict:
    """{"S4": verdict, "concat": verdict} for one (recipe, corpus) row {setting: {seed: test UA}}: the full model's
    mean >= S4's mean minus S4's std, and >= 0.9 x concat's mean. A verdict is None when a cell is missing, and is
    marked provisional when either cell has fewer than 3 seeds."""
    verdicts = {}
    s0 = list(row.get("S0", {}).values())
    for other, passes in (("S4", lambda full, mean, sd: full >= mean - sd), ("concat", lambda full, mean, sd: full >= 0.9 * mean)):
        values = list(row.get(other, {}).values())
        if not s0 or not values:
            verdicts[other] = None
            continue
        mean, sd = _mean_std(values)
        verdicts[other] = {"pass": passes(statistics.mean(s0), mean, sd), "n": min(len(s0), len(values))}
    return verdicts


def paired_difference(row: dict) -> tuple[float, float, int] | None:
    """(mean, standard error, n) of S0 - S4 over the seeds both cells have (None with fewer than 2 such seeds)."""
    seeds = sorted(set(row.get("S0", {})) & set(row.get("S4", {})))
    if len(seeds) < 2:
        return None
    differences = [row["S0"][seed] - row["S4"][seed] for seed in seeds]
    return statistics.mean(differences), statistics.stdev(differences) / len(seeds) ** 0.5, len(seeds)


def run_sets(results=DEFAULT_RESULTS) -> dict[str, int]:
    """{run set: number of runs} in `results`, in the order they first appear."""
    counts = {}
    for row in read_rows(results):
        counts[row["run_set"]] = counts.get(row["run_set"], 0) + 1
    return counts


def summary(results=DEFAULT_RESULTS, run_set: str = DEFAULT_RUN_SET, s0_from: str | None = None) -> None:
    """Print the table of every run of `run_set`: mean ± std (n: per-seed values) per cell, the paired S0 - S4
    difference (mean ± standard error), and the criterion. `s0_from`: S0's runs come from that run set instead (the
    same cells trained with another setting of the full model, e.g. a candidate default), the other settings from
    `run_set`."""
    cells = load_results(results, run_set)
    if not cells:
        raise SystemExit(f"no runs of the run set {run_set!r} in {results}; its run sets: {sorted(run_sets(results))}")
    if s0_from is not None:
        other = load_results(results, s0_from)
        if not other:
            raise SystemExit(f"no runs of the run set {s0_from!r} in {results}; its run sets: {sorted(run_sets(results))}")
        for key, row in cells.items():
            row.pop("S0", None)
            if "S0" in other.get(key, {}):
                row["S0"] = other[key]["S0"]
        print(f"\nS0 from the run set {s0_from!r}, the other settings from {run_set!r}")
    settings = [s for s in SETTINGS if any(s in row for row in cells.values())]
    print("\n| recipe | corpus (corpus seed offset) | " + " | ".join(settings)
          + " | S0 - S4 (mean ± se, paired) | S0 >= S4 - std | S0 >= 0.9 x concat |")  # fmt: skip
    print("|---|---|" + "---|" * (len(settings) + 3))
    for (recipe_name, corpus, offset, test_per_class), row in sorted(cells.items()):
        texts = []
        for setting in settings:
            by_seed = row.get(setting, {})
            if not by_seed:
                texts.append("—")
                continue
            mean, sd = _mean_std(list(by_seed.values()))
            seeds = ", ".join(f"{by_seed[s]:.3f}" for s in sorted(by_seed))
            texts.append(f"{mean:.3f} ± {sd:.3f} (n={len(by_seed)}: {seeds})")
        difference = paired_difference(row)
        texts.append("—" if difference is None else f"{difference[0]:+.3f} ± {difference[1]:.3f} (n={difference[2]})")
        for verdict in criterion(row).values():
            if verdict is None:
                texts.append("—")
            else:
                texts.append(("yes" if verdict["pass"] else "**no**") + ("" if verdict["n"] >= 3 else f" (n={verdict['n']})"))
        test = f", test session {test_per_class} per class" if test_per_class else ""
        print(f"| {recipe_name} | {corpus} (+{offset}{test}) | " + " | ".join(texts) + " |")


def merge(other, results=DEFAULT_RESULTS) -> int:
    """Append the runs of another results file (e.g. a farm's OUT/learning.csv) that `results` lacks, with their
    curves; a run recorded in both with other values is refused. Returns the number of runs added."""
    present = {run_key(row): row for row in read_rows(results)}
    new = []
    for row in read_rows(other):
        recorded = present.get(run_key(row))
        if recorded is None:
            new.append(row)
            present[run_key(row)] = row
        elif recorded != row:
            raise SystemExit(f"{other}: run {dict(zip(KEY_FIELDS, run_key(row)))} is recorded in {results} with other "
                             f"values ({recorded} against {row}); nothing was merged")  # fmt: skip
    keys = {run_key(row) for row in new}
    curves = [row for row in read_rows(curves_path(other), CURVE_FIELDS) if run_key(row) in keys]
    if new:
        append_rows(curves_path(results), curves, CURVE_FIELDS)
        append_rows(results, new, RUN_FIELDS)
    return len(new)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("summary", "sets", "merge"))
    parser.add_argument("other", nargs="?", help="merge: the results file to take runs from")
    parser.add_argument("--results", default=str(DEFAULT_RESULTS), help="the results file (one row per run)")
    parser.add_argument("--run_set", default=DEFAULT_RUN_SET, help="summary: the run set to tabulate")
    parser.add_argument("--s0_from", default=None, help="summary: take S0's runs from this run set instead")
    args = parser.parse_args(argv)
    if args.command == "summary":
        summary(args.results, args.run_set, args.s0_from)
    elif args.command == "sets":
        for name, count in run_sets(args.results).items():
            print(f"{name}\t{count}")
    else:
        if args.other is None:
            parser.error("merge needs the results file to take runs from")
        print(f"{merge(args.other, args.results)} runs added to {args.results}")


if __name__ == "__main__":
    main()
