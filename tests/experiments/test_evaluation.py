# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Grid results: aggregation over folds, the paired test against S0, IEMOCAP subsets and the rendered tables."""

import json

import numpy as np
import pytest

from modeling_mgcma.experiments.evaluation import (
    PAPER_RESULTS,
    FoldPredictions,
    build_tables,
    iemocap_dialogue_type,
    paired_permutation_test,
    subset_scores,
    summarize_folds,
    wa_ua,
    write_tables,
)


def _fold(n, accuracy, seed, num_labels=4, prefix="u"):
    rng = np.random.default_rng(seed)
    references = rng.integers(0, num_labels, n)
    predictions = np.where(rng.random(n) < accuracy, references, (references + 1) % num_labels)
    return FoldPredictions([f"{prefix}{i}" for i in range(n)], predictions, references)


def test_wa_ua_and_fold_summary_by_hand():
    # fold a: refs 0,0,0,1 preds 0,0,0,0 -> WA 75, UA (100+0)/2 = 50; fold b: all right -> 100/100.
    folds = {"1": FoldPredictions(["a", "b", "c", "d"], [0, 0, 0, 0], [0, 0, 0, 1]),
             "2": FoldPredictions(["e", "f"], [1, 0], [1, 0])}  # fmt: skip
    summary = summarize_folds(folds)
    assert summary["per_fold"]["1"] == {"wa": 75.0, "ua": 50.0, "n": 4}
    assert summary["mean"]["ua"] == pytest.approx(75.0)
    assert summary["std"]["ua"] == pytest.approx(np.std([50.0, 100.0], ddof=1))  # sample std, not population
    # pooled: 6 utterances, 5 right; class 0 recall 4/4, class 1 recall 1/2 -> UA 75
    assert summary["pooled"] == {"wa": pytest.approx(500 / 6), "ua": pytest.approx(75.0), "n": 6}
    assert summarize_folds({"1": folds["1"]})["std"] == {"wa": None, "ua": None}


def test_identical_predictions_give_p_one():
    fold = _fold(400, 0.7, seed=0)
    result = paired_permutation_test(fold, fold)
    assert result.p_value == 1.0 and result.difference == 0.0 and not result.significant
    assert "not significant" in result.verdict


def test_clearly_better_setting_gives_small_p():
    worse = _fold(500, 0.55, seed=1)
    better_predictions = worse.references.copy()  # right everywhere
    better = FoldPredictions(worse.ids, better_predictions, worse.references)
    result = paired_permutation_test(better, worse, num_permutations=2000, seed=3)
    # Monte Carlo: no draw reaches the observed difference, p = (1 + 0) / (1 + 2000), never 0
    assert not result.exact and result.significant and result.p_value == pytest.approx(1 / 2001)
    assert result.difference > 30


def test_permutation_test_is_deterministic_and_symmetric():
    a, b = _fold(300, 0.6, seed=4), _fold(300, 0.6, seed=4)
    b.predictions = np.where(np.random.default_rng(9).random(300) < 0.1, (b.predictions + 1) % 4, b.predictions)
    first = paired_permutation_test(a, b, num_permutations=3000, seed=11)
    assert first.p_value == paired_permutation_test(a, b, num_permutations=3000, seed=11).p_value
    swapped = paired_permutation_test(b, a, num_permutations=3000, seed=11)
    assert swapped.difference == pytest.approx(-first.difference)
    assert swapped.p_value == pytest.approx(first.p_value)


def test_exact_enumeration_matches_hand_count_and_is_order_and_label_invariant():
    # 8 utterances of class 0 and 8 of class 1; A right on all, B wrong on 3 of class 0: 3 discordant utterances,
    # 2**3 = 8 sign assignments, only the all-positive and all-negative ones reach |d_obs| -> p = 2/8.
    references = np.array([0] * 8 + [1] * 8)
    ids = [f"u{i}" for i in range(16)]
    a = FoldPredictions(ids, references, references)
    b_predictions = references.copy()
    b_predictions[:3] = 1
    b = FoldPredictions(ids, b_predictions, references)
    result = paired_permutation_test(a, b)
    assert result.exact and result.num_discordant == 3 and result.p_value == pytest.approx(0.25)
    order = np.random.default_rng(0).permutation(16)
    shuffled = paired_permutation_test(
        FoldPredictions([ids[i] for i in order], references[order], references[order]),
        FoldPredictions([ids[i] for i in order], b_predictions[order], references[order]),
    )
    assert shuffled.p_value == result.p_value and shuffled.difference == pytest.approx(result.difference)
    relabelled = paired_permutation_test(  # class ids swapped consistently
        FoldPredictions(ids, 1 - references, 1 - references), FoldPredictions(ids, 1 - b_predictions, 1 - references)
    )
    assert relabelled.p_value == result.p_value and relabelled.difference == pytest.approx(result.difference)


def test_paired_test_pairs_by_id_and_stratifies_by_fold():
    a = {"1": _fold(200, 0.8, seed=5, prefix="s1-"), "2": _fold(150, 0.5, seed=6, prefix="s2-")}
    b = {"1": _fold(200, 0.7, seed=5, prefix="s1-"), "2": _fold(150, 0.5, seed=6, prefix="s2-")}
    result = paired_permutation_test(a, b, num_permutations=500)
    # statistic = mean over folds of the per-fold UA differences
    expected = np.mean([wa_ua(a[k].predictions, a[k].references)["ua"] - wa_ua(b[k].predictions, b[k].references)["ua"]
                        for k in a])  # fmt: skip
    assert result.difference == pytest.approx(expected)
    reordered = {k: FoldPredictions(v.ids[::-1], v.predictions[::-1], v.references[::-1]) for k, v in b.items()}
    assert paired_permutation_test(a, reordered, num_permutations=500).difference == pytest.approx(result.difference)
    with pytest.raises(ValueError, match="different utterances"):
        paired_permutation_test(a["1"], _fold(200, 0.7, seed=5, prefix="other-"))


def test_iemocap_dialogue_type_and_subset_scores():
    assert iemocap_dialogue_type("Ses01F_impro01_F000") == "improvised"
    assert iemocap_dialogue_type("Ses03M_impro05a_M001") == "improvised"
    assert iemocap_dialogue_type("Ses01F_script01_1_F000") == "scripted"
    with pytest.raises(ValueError, match="not an IEMOCAP utterance id"):
        iemocap_dialogue_type("demo-12")
    ids = ["Ses01F_impro01_F000", "Ses01F_impro01_M001", "Ses01F_script01_1_F000"]
    scores = subset_scores(ids, [0, 1, 1], [0, 0, 1])
    assert scores["improvised"] == {"wa": 50.0, "ua": 50.0, "n": 2}
    assert scores["scripted"] == {"wa": 100.0, "ua": 100.0, "n": 1}


def test_tables_have_every_cell_paper_columns_p_values_and_missing_cells(tmp_path):
    ids = [f"Ses01F_impro01_F{i:03d}" for i in range(60)] + [f"Ses01F_script01_1_M{i:03d}" for i in range(60)]

    def fold(accuracy, seed):
        base = _fold(120, accuracy, seed=seed)
        return FoldPredictions(ids, base.predictions, _fold(120, 1.0, seed=0).references)

    results = {"S0": {"1": fold(0.8, 1), "2": fold(0.8, 2)}, "S1": {"1": fold(0.6, 3)}, "S2": None}
    tables = build_tables(results, num_permutations=200)
    md_path, json_path = write_tables(tables, tmp_path)
    data = json.loads(open(json_path).read())
    s1 = data["settings"]["S1"]
    assert s1["missing_folds"] == ["2"] and s1["vs_S0"]["folds"] == ["1"] and 0 < s1["vs_S0"]["p_value"] <= 1
    assert s1["paper"] == {"wa": PAPER_RESULTS["S1"][0], "ua": PAPER_RESULTS["S1"][1]}
    assert data["settings"]["S0"]["pooled"]["n"] == 240
    assert set(data["settings"]["S0"]["subsets_pooled"]) == {"improvised", "scripted"}
    markdown = open(md_path).read()
    assert "80.24" in markdown and "77.62" in markdown  # paper columns of Tables II and III
    s2_row = next(line for line in markdown.splitlines() if line.startswith("| S2 |"))
    assert s2_row.count("missing") >= 5  # a setting that did not run is shown, not left out
    assert f"{s1['vs_S0']['p_value']:.4f}" in markdown
    assert "sample standard deviation (ddof=1)" in markdown
    assert "improvised" in markdown
    assert "(1 fold, no std)" in s1_row(markdown)
    assert f"{s1['vs_S0']['p_value']:.4f} (folds 1)" in markdown  # a test on fewer folds than S0 says so


def s1_row(markdown):
    return next(line for line in markdown.splitlines() if line.startswith("| S1 |"))


def test_grid_predictions_round_trip_and_missing_units(tmp_path):
    from modeling_mgcma.experiments.evaluation import PREDICTIONS_FILE, collect_grid_predictions, save_fold_predictions

    s0_fold1 = _fold(30, 0.8, 1)
    s1_fold1 = FoldPredictions(s0_fold1.ids, (s0_fold1.predictions + np.arange(30) % 2) % 4, s0_fold1.references)
    written = {("S0", "1"): s0_fold1, ("S0", "2"): _fold(30, 0.8, 2), ("S1", "1"): s1_fold1}
    for (setting, fold), predictions in written.items():
        save_fold_predictions(predictions, tmp_path / setting / f"fold_{fold}" / PREDICTIONS_FILE)
    (tmp_path / "S1" / "fold_2").mkdir()  # an interrupted unit: folder, no predictions
    results = collect_grid_predictions(tmp_path)
    assert sorted(results) == ["S0", "S1"] and sorted(results["S0"]) == ["1", "2"] and list(results["S1"]) == ["1"]
    assert results["S1"]["1"].ids == written[("S1", "1")].ids
    assert np.array_equal(results["S1"]["1"].predictions, written[("S1", "1")].predictions)
    assert build_tables(results, num_permutations=100)["settings"]["S1"]["missing_folds"] == ["2"]
    (tmp_path / "S1" / "fold_2" / PREDICTIONS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=r"fold_2.*not a valid predictions file"):
        collect_grid_predictions(tmp_path)
