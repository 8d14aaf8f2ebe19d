# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Folds (loso_fold, held_out_groups, make_fold, check_classes)."""

import datasets
import numpy as np
import pytest

from modeling_mgcma.data import loso_fold


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 500
    sessions = rng.integers(1, 6, n)
    genders = rng.choice(["F", "M"], n)
    return datasets.Dataset.from_dict(
        {
            "id": [f"u{i}" for i in range(n)],
            "session": sessions.tolist(),
            "speaker": [f"Ses{s:02d}_{g}" for s, g in zip(sessions, genders)],
            "label": rng.integers(0, 4, n).tolist(),
        }
    )


@pytest.mark.parametrize("test_group", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("validation", ["stratified", "speaker"])
def test_test_group_never_in_train_or_validation(table, test_group, validation):
    fold = loso_fold(table, test_group, validation=validation, seed=1)
    assert set(fold) == {"train", "validation", "test"}
    assert set(fold["test"]["session"]) == {test_group}
    assert test_group not in set(fold["train"]["session"]) | set(fold["validation"]["session"])
    ids = [set(fold[split]["id"]) for split in ("train", "validation", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(map(len, ids)) == len(table)
    assert len(fold["validation"]) > 0
    if validation == "speaker":
        assert len(set(fold["validation"]["speaker"])) == 1
        assert not set(fold["validation"]["speaker"]) & set(fold["train"]["speaker"])


def test_stratified_validation_is_about_ten_percent_per_class_and_seeded(table):
    fold = loso_fold(table, 3, seed=0)
    pool = table.filter(lambda row: row["session"] != 3)
    for label in range(4):
        in_pool = sum(1 for x in pool["label"] if x == label)
        in_validation = sum(1 for x in fold["validation"]["label"] if x == label)
        assert in_validation == round(0.1 * in_pool)
    assert loso_fold(table, 3, seed=0)["validation"]["id"] == fold["validation"]["id"]
    assert loso_fold(table, 3, seed=1)["validation"]["id"] != fold["validation"]["id"]


def test_no_validation_and_bad_arguments(table):
    assert set(loso_fold(table, 2, validation="none")) == {"train", "test"}
    with pytest.raises(ValueError, match=r"test_group must be one of the groups of column .session. in the dataset \[1, 2, 3, 4, 5\], got 6"):
        loso_fold(table, 6)
    with pytest.raises(ValueError, match="got '1'"):
        loso_fold(table, "1")
    with pytest.raises(ValueError, match="validation must be one of"):
        loso_fold(table, 1, validation="random")
    with pytest.raises(ValueError, match="validation_speaker must be a training-session speaker"):
        loso_fold(table, 1, validation="speaker", validation_speaker="Ses01_F")


def test_any_hashable_group_is_left_out_as_it_is(table):
    """Text groups (a manifest's speakers or sites) are held out by value, with no renumbering."""
    named = table.map(lambda row: {"site": f"site-{row['session']}"})
    by_name = loso_fold(named, "site-3", seed=0, group_column="site")
    by_number = loso_fold(table, 3, seed=0)
    for split in ("train", "validation", "test"):
        assert by_name[split]["id"] == by_number[split]["id"]
    assert set(by_name["test"]["site"]) == {"site-3"}
    with pytest.raises(ValueError, match=r"one of the groups of column 'site' in the dataset \['site-1', .*\], got 3"):
        loso_fold(named, 3, group_column="site")


def test_the_former_keyword_names_are_still_read_with_a_warning(table):
    named = table.map(lambda row: {"site": f"site-{row['session']}"})
    with pytest.warns(FutureWarning, match=r"test_session=\) is now called test_group="):
        old = loso_fold(table, test_session=3, seed=0)
    assert old["test"]["id"] == loso_fold(table, test_group=3, seed=0)["test"]["id"]
    with pytest.warns(FutureWarning, match=r"session_column=\) is now called group_column="):
        old = loso_fold(named, "site-2", session_column="site")
    assert old["test"]["id"] == loso_fold(named, "site-2", group_column="site")["test"]["id"]
    with pytest.raises(TypeError, match="not both"):
        loso_fold(table, 3, test_session=3)
    with pytest.raises(TypeError, match="needs the held-out group"):
        loso_fold(table)


def test_held_out_groups_by_value_position_default_and_without_groups(table):
    from modeling_mgcma.data.splits import held_out_groups

    named = table.map(lambda row: {"site": f"s{row['session']}"})
    assert held_out_groups(table, "session") == [5]  # the last group by default
    assert held_out_groups(table, "session", all_groups=True) == [1, 2, 3, 4, 5]
    assert held_out_groups(table, "session", test_group=2) == [2]
    assert held_out_groups(named, "site", test_group=2, by_position=True) == ["s2"]
    assert held_out_groups(table, "no_such_column") == [None]  # no groups: one stratified split
    with pytest.raises(ValueError, match=r"--test_group 6 is not among the dataset.s groups \(.session.\) \[1, 2, 3, 4, 5\]"):
        held_out_groups(table, "session", test_group=6)
    with pytest.raises(ValueError, match=r"must pick one of the 5 groups of column 'site' \(1-5"):
        held_out_groups(named, "site", test_group=6, by_position=True)


def test_make_fold_without_groups_is_one_stratified_split_and_limits_are_seeded(table):
    from modeling_mgcma.data.splits import make_fold

    table = table.cast_column("label", datasets.ClassLabel(names=["a", "b", "c", "d"]))
    fold = make_fold(table, None, "no_such_column", validation_fraction=0.1, seed=0)
    ids = [set(fold[split]["id"]) for split in ("train", "validation", "test")]
    assert sum(map(len, ids)) == len(table) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(fold["test"]) == 50 and len(fold["validation"]) == 50
    for label in range(4):  # stratified: each class's share of the test split is its share of the data
        assert abs(fold["test"]["label"].count(label) - table["label"].count(label) / 10) <= 1
    limited = make_fold(table, 2, "session", seed=0, max_samples={"train": 20, "test": None})
    assert len(limited["train"]) == 20 and len(limited["test"]) == len(loso_fold(table, 2, seed=0)["test"])
    assert make_fold(table, 2, "session", seed=0, max_samples={"train": 20})["train"]["id"] == limited["train"]["id"]


def test_check_classes_names_the_fold_and_the_missing_class(table):
    from modeling_mgcma.data.splits import check_classes, make_fold

    table = table.cast_column("label", datasets.ClassLabel(names=["a", "b", "c", "d"]))
    check_classes(table, [(3, make_fold(table, 3, "session"))])  # every class everywhere: no error
    without_d_in_5 = table.filter(lambda row: not (row["session"] == 5 and row["label"] == 3))
    with pytest.raises(ValueError, match=r"fold that tests group 5, the test set \(\d+ rows\) has no utterance of class\(es\) \['d'\]"):
        check_classes(without_d_in_5, [(5, make_fold(without_d_in_5, 5, "session"))])
    with pytest.raises(ValueError, match=r"the data have no utterance of class\(es\) \['d'\].*Pass --class_names"):
        check_classes(table.filter(lambda row: row["label"] != 3), [], hint=" Pass --class_names.")
