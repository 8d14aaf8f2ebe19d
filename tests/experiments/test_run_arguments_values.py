# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""How run_mgcma.py reads argument values: booleans, numbers and `config_overrides` from the command line, a
JSON/YAML config file and the override string all mean what HfArgumentParser makes of `--flag false`; overrides may
not redefine the ablation setting being run. Parsing only: nothing is trained."""

import json
import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402
from modeling_mgcma.experiments.run_arguments import parse_config_overrides  # noqa: E402


def read(argv):
    return run_mgcma.read_run_arguments(argv)


def config_file(tmp_path, values, suffix=".json"):
    path = tmp_path / f"run{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(values))
    else:
        import yaml

        path.write_text(yaml.safe_dump(values))
    return [str(path)]


@pytest.mark.parametrize("text,expected", [("False", False), ("false", False), ("NO", False), ("0", False),
                                           ("f", False), ("True", True), ("yes", True), ("1", True), ("T", True)])
def test_override_booleans_parse_like_hf_argparser(text, expected):
    overrides = parse_config_overrides(f"use_distribution_alignment={text},use_instance_alignment={text}")
    assert overrides == {"use_distribution_alignment": expected, "use_instance_alignment": expected}


@pytest.mark.parametrize("text", ["nope", "2", "", "Falsch"])
def test_override_boolean_that_is_not_one_is_refused_naming_key_and_value(text):
    with pytest.raises(ValueError, match="use_token_alignment") as error:
        parse_config_overrides(f"use_token_alignment={text}")
    assert repr(text) in str(error.value)


def test_command_line_override_false_reaches_the_config_as_false():
    model_args, *_ = read(["--config_overrides", "use_distribution_alignment=False,use_instance_alignment=False"])
    kwargs = run_mgcma.config_kwargs(model_args, "demo", ["a", "b"])
    assert kwargs["use_distribution_alignment"] is False and kwargs["use_instance_alignment"] is False


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize("text,expected", [("false", False), ("False", False), ("no", False), ("true", True),
                                           ("Y", True)])
def test_config_file_booleans_given_as_text(tmp_path, suffix, text, expected):
    model_args, data_args, training_args, *_ = read(config_file(
        tmp_path, {"dry_run": text, "overwrite_output_dir": text, "calibrate": text, "disable_tqdm": text,
                   "cross_validate": text}, suffix))  # fmt: skip
    assert model_args.dry_run is expected and model_args.calibrate is expected
    assert data_args.overwrite_output_dir is expected and data_args.cross_validate is expected
    assert training_args.disable_tqdm is expected


@pytest.mark.parametrize("value", ["maybe", "2", 3, [True]])
def test_config_file_boolean_that_is_not_one_is_refused(tmp_path, value):
    with pytest.raises(ValueError, match="dry_run") as error:
        read(config_file(tmp_path, {"dry_run": value}))
    assert repr(value) in str(error.value) or str(value) in str(error.value)


def test_config_file_numbers_given_as_text_are_numbers(tmp_path):
    model_args, data_args, training_args, *_ = read(config_file(
        tmp_path, {"learning_rate": "1e-4", "max_steps": "3", "validation_fraction": "0.2", "max_duration": "4"}))
    assert training_args.learning_rate == 1e-4 and training_args.max_steps == 3
    assert data_args.validation_fraction == 0.2 and model_args.max_duration == 4.0


@pytest.mark.parametrize("key,value", [("learning_rate", "fast"), ("max_steps", "1.5"), ("validation_fraction", "x"),
                                       ("max_steps", True)])
def test_config_file_text_where_a_number_belongs_is_refused_naming_it(tmp_path, key, value):
    with pytest.raises(ValueError, match=key) as error:
        read(config_file(tmp_path, {key: value}))
    assert str(value) in str(error.value)


def test_yaml_config_overrides_as_a_mapping_with_a_list(tmp_path):
    model_args, *_ = read(config_file(tmp_path, {"config_overrides": {
        "module_order": ["iam", "tam", "dam"], "use_token_alignment": "false", "temperature": 0.2}}, ".yaml"))
    kwargs = run_mgcma.config_kwargs(model_args, "demo", ["a", "b"])
    assert kwargs["module_order"] == ["iam", "tam", "dam"]
    assert kwargs["use_token_alignment"] is False and kwargs["temperature"] == 0.2


def test_yaml_config_overrides_mapping_with_an_unknown_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no_such_setting"):
        read(config_file(tmp_path, {"config_overrides": {"no_such_setting": 1}}, ".yaml"))


@pytest.mark.parametrize("argv", [
    ["--ablations", "S0,S1", "--config_overrides", "use_distribution_alignment=false,use_token_alignment=false"],
    ["--ablations", "S1,S4", "--config_overrides", "use_instance_alignment=true"],
    ["--ablation", "S5", "--config_overrides", "module_order=[\"iam\",\"tam\",\"dam\"]"],
    ["--ablation", "S0", "--config_overrides", "use_token_alignment=0"],
])
def test_overrides_of_what_an_ablation_setting_defines_are_refused(argv):
    with pytest.raises(ValueError, match="config_overrides") as error:
        read(argv)
    assert "S" in str(error.value) and ("alignment" in str(error.value) or "module_order" in str(error.value))


def test_overrides_of_other_settings_still_work_with_an_ablation():
    model_args, *_ = read(["--ablations", "S0,S1", "--config_overrides", "temperature=0.2"])
    assert parse_config_overrides(model_args.config_overrides) == {"temperature": 0.2}


def test_ablation_overrides_in_a_config_file_are_refused(tmp_path):
    with pytest.raises(ValueError, match="use_distribution_alignment"):
        read(config_file(tmp_path, {"ablations": "S0,S1", "config_overrides": {"use_distribution_alignment": False}},
                         ".yaml"))
