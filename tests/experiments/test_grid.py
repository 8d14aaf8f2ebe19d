# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The reproduction grid as a module: settings, resumable units, tables with ECE and paired tests, figures."""

import json

import numpy as np
import pytest

from modeling_mgcma.experiments.evaluation import PAPER_RESULTS, PREDICTIONS_FILE
from modeling_mgcma.experiments.grid import (
    ALL_SETTINGS,
    figure3_features,
    grid_units,
    parse_ablations,
    run_grid,
    run_settings_grid,
    save_unit_outputs,
    write_grid_report,
)
from modeling_mgcma.training.calibration import expected_calibration_error


LABELS = ["angry", "happy", "sad", "neutral"]
ACCURACY = {"S0": 0.95, "S1": 0.5, "S2": 0.9, "S3": 0.9}


def test_parse_ablations():
    assert parse_ablations("all") == list(ALL_SETTINGS) == [f"S{i}" for i in range(10)]
    assert parse_ablations(" s0, S3 ,S1") == ["S0", "S3", "S1"]
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['S12'\]"):
        parse_ablations("S0,S12")
    with pytest.raises(ValueError, match=r"\['S1'\] more than once"):
        parse_ablations("S1,S0,S1")
    with pytest.raises(ValueError, match="needs 'all'"):
        parse_ablations(" , ")


def _unit_logits(setting, fold, n=40):
    """Test logits of one unit: the same utterances and labels for every setting of a fold, accuracy by setting."""
    rng = np.random.default_rng(int(fold))
    references = rng.integers(0, 4, n)
    hit = np.random.default_rng(100 * int(fold) + int(setting[1:])).random(n) < ACCURACY[setting]
    predicted = np.where(hit, references, (references + 1) % 4)
    logits = rng.normal(0, 0.1, (n, 4))
    logits[np.arange(n), predicted] += 6.0  # very confident, also when wrong
    return [f"f{fold}-u{i}" for i in range(n)], logits, references


class FakeScript:
    """Stands for the example script: a fingerprint per unit, its folder check and its per-fold run."""

    def __init__(self, settings_version=None, overwrite=False):
        self.settings_version = settings_version or {}
        self.overwrite = overwrite
        self.trained = []

    def fingerprint_of(self, unit):
        return {"setting": unit.setting, "fold": unit.fold, "version": self.settings_version.get(unit.setting, 0)}

    def prepare(self, directory, fingerprint):
        if (directory / "fingerprint.json").is_file() and not self.overwrite:
            raise ValueError(f"{directory} holds a run trained with other settings")
        return "train"

    def run_unit(self, unit, fingerprint, plan):
        self.trained.append(unit.key)
        unit.directory.mkdir(parents=True, exist_ok=True)
        (unit.directory / "fingerprint.json").write_text(json.dumps(fingerprint))
        ids, logits, references = _unit_logits(unit.setting, unit.fold)
        rng = np.random.default_rng(0)
        save_unit_outputs(unit.directory, ids, logits, references, speech_features=rng.normal(size=(len(ids), 8)),
                          text_features=rng.normal(size=(len(ids), 8)))  # fmt: skip

    def run(self, output_dir, settings, folds):
        return run_grid(grid_units(output_dir, settings, folds), self.run_unit, fingerprint_of=self.fingerprint_of,
                        prepare=self.prepare)  # fmt: skip


def test_grid_runs_every_unit_and_the_tables_have_every_cell(tmp_path):
    script = FakeScript()
    outcome = script.run(tmp_path, ["S0", "S1"], [1, 2])
    assert outcome == {("S0", "1"): "trained", ("S0", "2"): "trained", ("S1", "1"): "trained", ("S1", "2"): "trained"}
    assert (tmp_path / "S1" / "fold_2" / PREDICTIONS_FILE).is_file()
    report = write_grid_report(tmp_path, ["S0", "S1"], LABELS, num_permutations=500, figures=False)
    data = json.loads((tmp_path / "tables.json").read_text())
    s0, s1 = data["settings"]["S0"], data["settings"]["S1"]
    assert sorted(s0["per_fold"]) == sorted(s1["per_fold"]) == ["1", "2"]
    assert s1["paper"] == {"wa": PAPER_RESULTS["S1"][0], "ua": PAPER_RESULTS["S1"][1]}
    assert s1["vs_S0"]["significant"] and s1["vs_S0"]["p_value"] < 0.01 and s1["vs_S0"]["difference"] < -20
    assert s0["pooled"]["n"] == 80 and s0["per_fold"]["1"]["n"] == 40
    # ECE beside WA/UA, from the saved probabilities: confident predictions that are often wrong -> large ECE
    ids, logits, references = zip(*(_unit_logits("S1", f) for f in ("1", "2")))
    probabilities = np.concatenate([np.exp(l) / np.exp(l).sum(1, keepdims=True) for l in logits])
    assert s1["pooled"]["ece"] == pytest.approx(100 * expected_calibration_error(probabilities, np.concatenate(references)))
    assert s1["pooled"]["ece"] > 30 > s0["pooled"]["ece"]
    markdown = (tmp_path / "tables.md").read_text()
    assert "ECE pooled" in markdown and f"{s1['pooled']['ece']:.2f}" in markdown
    assert f"{s1['vs_S0']['p_value']:.4f}" in markdown and "80.24" in markdown  # p-value, paper column
    assert report["files"]["tables_md"].endswith("tables.md")


def test_tables_hold_this_runs_folds_only_and_folders_are_checked_inside_the_planning_context(tmp_path):
    FakeScript().run(tmp_path, ["S0", "S1"], [1, 2])  # an earlier run with folds 1 and 2
    script, entered = FakeScript(), []

    class Planning:
        def __enter__(self):
            entered.append("enter")

        def __exit__(self, *exc):
            entered.append("exit")

    def prepare(directory, fingerprint):
        assert entered == ["enter"], "folders are checked (and emptied) inside the planning context"
        return "train"

    report = run_settings_grid(
        tmp_path, ["S0", "S1"], [3], label_names=LABELS, run_unit=lambda s, f, d, fp: script.run_unit(
            grid_units(tmp_path, [s], [f])[0], fp, "train"), fingerprint_of=lambda s, f: {"setting": s, "fold": f},
        prepare=prepare, echo=False, planning=Planning,
    )  # fmt: skip
    assert entered == ["enter", "exit"] and script.trained == [("S0", "3"), ("S1", "3")]
    for setting in ("S0", "S1"):  # folds 1 and 2 of the earlier run stay on disk but are not in this run's tables
        assert list(report["tables"]["settings"][setting]["per_fold"]) == ["3"]
        assert (tmp_path / setting / "fold_1" / PREDICTIONS_FILE).is_file()


def test_rerun_is_a_no_op_and_a_changed_setting_reruns_only_its_units(tmp_path):
    FakeScript().run(tmp_path, ["S0", "S1"], [1, 2])
    again = FakeScript()
    assert set(again.run(tmp_path, ["S0", "S1"], [1, 2]).values()) == {"reused"} and again.trained == []
    # S1 changed: refused (naming only S1's units) unless overwriting; then only S1's units train again
    with pytest.raises(ValueError) as refused:
        FakeScript(settings_version={"S1": 1}).run(tmp_path, ["S0", "S1"], [1, 2])
    assert "S1, fold 1" in str(refused.value) and "S1, fold 2" in str(refused.value) and "S0" not in str(refused.value)
    changed = FakeScript(settings_version={"S1": 1}, overwrite=True)
    outcome = changed.run(tmp_path, ["S0", "S1"], [1, 2])
    assert changed.trained == [("S1", "1"), ("S1", "2")]
    assert outcome[("S0", "1")] == outcome[("S0", "2")] == "reused"
    # a new setting adds its units and leaves the others alone
    added = FakeScript(settings_version={"S1": 1})
    added.run(tmp_path, ["S0", "S1", "S2"], [1, 2])
    assert added.trained == [("S2", "1"), ("S2", "2")]


def test_unit_without_predictions_is_an_error_and_old_predictions_never_outlive_a_rerun(tmp_path):
    script = FakeScript()
    script.run(tmp_path, ["S0"], [1])

    def dies_after_recording_its_fingerprint(unit, fingerprint, plan):
        (unit.directory / "fingerprint.json").write_text(json.dumps(fingerprint))
        raise KeyboardInterrupt

    changed = FakeScript(settings_version={"S0": 1}, overwrite=True)
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid_units(tmp_path, ["S0"], [1]), dies_after_recording_its_fingerprint,
                 fingerprint_of=changed.fingerprint_of, prepare=changed.prepare)  # fmt: skip
    assert not (tmp_path / "S0" / "fold_1" / PREDICTIONS_FILE).exists()  # the old run's predictions are gone
    again = FakeScript(settings_version={"S0": 1}, overwrite=True)
    again.run(tmp_path, ["S0"], [1])
    assert again.trained == [("S0", "1")]  # so the interrupted unit is trained, not taken as finished
    with pytest.raises(RuntimeError, match="without writing test_predictions.json"):
        run_grid(grid_units(tmp_path, ["S1"], [1]), lambda unit, fp, plan: None, fingerprint_of=script.fingerprint_of,
                 prepare=script.prepare)  # fmt: skip


def test_saved_probabilities_are_temperature_scaled_and_the_report_draws_figures(tmp_path):
    ids, logits, references = _unit_logits("S0", "1", n=24)
    rng = np.random.default_rng(0)
    for setting in ("S0", "S2"):
        fold = save_unit_outputs(tmp_path / setting / "fold_1", ids, logits, references, temperature=4.0,
                                 speech_features=rng.normal(size=(24, 8)), text_features=rng.normal(size=(24, 8)))  # fmt: skip
    scaled = np.exp(logits / 4.0) / np.exp(logits / 4.0).sum(1, keepdims=True)
    assert np.allclose(fold.probabilities, scaled) and fold.temperature == 4.0
    stored = json.loads((tmp_path / "S0" / "fold_1" / PREDICTIONS_FILE).read_text())
    assert stored["temperature"] == 4.0 and np.allclose(stored["probabilities"], scaled)
    fold_name, features = figure3_features(tmp_path, ["S0", "S1", "S2", "S3"])
    assert fold_name == "1" and sorted(features) == ["S0", "S2"] and features["S0"][0].shape == (24, 8)
    report = write_grid_report(tmp_path, ["S0", "S2"], LABELS, num_permutations=100)
    assert (tmp_path / "figure3_tsne.png").stat().st_size > 0 and report["files"]["figure3_fold"] == "1"
    assert (tmp_path / "reliability_diagram.png").stat().st_size > 0
    data = report["tables"]["settings"]["S0"]
    assert data["calibration_temperature"] == {"1": 4.0}
    assert data["pooled"]["ece"] == pytest.approx(100 * expected_calibration_error(scaled, references))
