# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The held-out group of a fold has one name, `test_group`, in the arguments, the results and the cards; the former
name `test_session` is still read: on the command line, in argument files and in results written before."""

import json
import logging
import sys
from pathlib import Path

import pytest
import yaml


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402
from modeling_mgcma.experiments import hub_folds, model_card, run_records  # noqa: E402


@pytest.mark.parametrize("spelling", [["--test_session", "3"], ["--test_session=3"]])
def test_the_former_flag_is_read_as_test_group_with_a_warning(spelling, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        _, data_args, *_ = run_mgcma.read_run_arguments(["--output_dir", str(tmp_path / "o"), *spelling])
    assert data_args.test_group == 3
    assert "--test_session is now called --test_group" in caplog.text


def test_the_current_flag_gives_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        _, data_args, *_ = run_mgcma.read_run_arguments(["--output_dir", str(tmp_path / "o"), "--test_group", "4"])
    assert data_args.test_group == 4 and "is now called" not in caplog.text


def test_an_argument_file_with_the_former_key_is_read(tmp_path, caplog):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "o"), "test_session": 2}))
    with caplog.at_level(logging.WARNING):
        _, data_args, _, _, given = run_mgcma.read_run_arguments([str(config)])
    assert data_args.test_group == 2 and "test_group" in given and "test_session" not in given
    assert f"{config}: --test_session is now called --test_group" in caplog.text


def test_both_names_at_once_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"the command line: pass --test_group .* or --test_session .*, not both"):
        run_mgcma.read_run_arguments(["--output_dir", str(tmp_path), "--test_session", "2", "--test_group", "3"])
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"output_dir": str(tmp_path / "o"), "test_session": 2, "test_group": 2}))
    with pytest.raises(ValueError, match=r"run.json: pass --test_group .* not both"):
        run_mgcma.read_run_arguments([str(config)])


def test_the_former_flag_goes_through_the_same_checks(tmp_path):
    with pytest.raises(ValueError, match=r"--test_group must be an IEMOCAP session 1-5, got 7"):
        run_mgcma.read_run_arguments(["--output_dir", str(tmp_path), "--test_session", "7"])


OLD = {"test_session": 2, "wa": 0.5, "ua": 0.25, "num_test": 40}
NEW = {**{k: v for k, v in OLD.items() if k != "test_session"}, "test_group": 2}


def test_results_written_under_the_former_key_are_read(tmp_path):
    folder = tmp_path / "fold_2"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"folds": [OLD]}))
    assert run_records.finished_fold_result(folder) == NEW
    old, new = {"folds": [OLD], "mean": {"wa": 0.5, "ua": 0.25}}, {"folds": [NEW], "mean": {"wa": 0.5, "ua": 0.25}}
    assert hub_folds.fold_rows_from_results(old) == hub_folds.fold_rows_from_results(new)
    assert hub_folds.fold_rows_from_results(new)[0]["fold"] == 2
    assert model_card.results_table(old, "S0") == model_card.results_table(new, "S0")
    assert "test group 2" in model_card.results_table(new, "S0")
    with pytest.raises(KeyError, match=r"under 'test_group'; this one has keys \['ua', 'wa'\]"):
        run_records.test_group_of({"wa": 0.5, "ua": 0.25})
