# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""run_mgcma.py's arguments: presets read from configs/presets/*.yaml, one parse, and the precedence explicit
argument > preset > protocol > dataclass default."""

import json
import sys
from pathlib import Path

import pytest
import yaml
from fixtures_training import write_checkpoint


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402
from modeling_mgcma.configuration_mgcma import MGCMAConfig  # noqa: E402
from modeling_mgcma.experiments.run_arguments import PRESETS_DIR, load_preset, read_arguments  # noqa: E402


ARGUMENT_TYPES = (run_mgcma.ModelArguments, run_mgcma.DataArguments, run_mgcma.MGCMATrainingArguments)


def test_every_preset_value_comes_from_its_yaml_file():
    """The files are the single source: each value of each file reaches the parsed arguments or the config."""
    for preset, has_data in (("demo", False), ("paper", True), (None, True)):
        name = preset or "new_data"
        values = yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text())
        argv = ["--preset", preset] if preset else []
        argv += ["--data_dir", str(PRESETS_DIR)] if has_data else []
        model_args, _, training_args, parsed_preset = run_mgcma.parse_arguments(argv)
        assert parsed_preset == (preset or None)
        for key, value in values.items():
            if key in ("model_config", "inherit"):
                continue
            parsed = getattr(training_args, key)
            assert getattr(parsed, "value", parsed) == value, (name, key)
        kwargs = run_mgcma.config_kwargs(model_args, parsed_preset, ["a", "b"])
        for key, value in load_preset(preset)[1].items():
            assert kwargs[key] == value and hasattr(MGCMAConfig(), key), (name, key)
    # the demo's model recipe is inherited from the new-data file, not repeated
    assert "model_config" not in yaml.safe_load((PRESETS_DIR / "demo.yaml").read_text())
    assert load_preset("demo")[1] == load_preset(None)[1] == {"distribution_distance": "mean", "similarity_scale": 0.32,
                                                              "classifier_features": "concat_projected"}
    assert "classifier_features" not in load_preset("paper")[1]  # the paper's classifier reads the aligned features
    # the gradient balance is a training argument: inherited by the demo, absent from the paper's preset
    balance = {preset: run_mgcma.parse_arguments(argv)[2].alignment_gradient_balance
               for preset, argv in (("demo", []), ("paper", ["--preset", "paper", "--data_dir", str(PRESETS_DIR)]))}
    assert balance == {"demo": 1.0, "paper": 0.0}


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], {"learning_rate": 1e-3, "save_total_limit": 1, "logging_steps": 5, "eval_strategy": "epoch"}),
        # explicit arguments win over the preset and the protocol, abbreviated (as argparse allows) or not
        (["--learning_rate", "0.1", "--logging_steps", "3"], {"learning_rate": 0.1, "logging_steps": 3}),
        (["--learning_rat", "0.1"], {"learning_rate": 0.1}),
        (["--save_total_limit=4"], {"save_total_limit": 4}),
        # the paper preset over the protocol, and an explicit value over the paper preset
        (["--preset", "paper", "--save_strategy", "epoch"], {"save_strategy": "epoch", "learning_rate": 1e-5}),
        # with data and no preset: the protocol and the new-data file only
        (["--data_dir", "{tmp}"], {"output_dir": "outputs/mgcma", "learning_rate": 5e-5, "save_total_limit": 2}),
    ],
)
def test_precedence_explicit_over_preset_over_protocol(argv, expected, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    *_, training_args, _ = run_mgcma.parse_arguments(argv)
    for key, value in expected.items():
        parsed = getattr(training_args, key)
        assert getattr(parsed, "value", parsed) == value, key


def test_the_names_given_are_exactly_the_explicit_ones(tmp_path):
    """`given` decides which device defaults (workers, precision) may still change an argument."""
    *_, given = read_arguments(["--bf16", "false", "--no_gather_distributed_negatives", "--seed", "3"], ARGUMENT_TYPES)
    assert given == {"bf16", "gather_distributed_negatives", "seed"}
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump({"preset": "demo", "dataloader_num_workers": 0}))
    *_, training_args, preset, given = read_arguments([str(config_file)], ARGUMENT_TYPES)
    assert given == {"preset", "dataloader_num_workers"} and preset == "demo" and training_args.learning_rate == 1e-3


def test_unknown_arguments_and_presets_are_errors():
    with pytest.raises(ValueError, match=r"not used by the HfArgumentParser: \['--no_such_argument'"):
        run_mgcma.parse_arguments(["--no_such_argument", "1"])
    with pytest.raises(ValueError, match=r"--preset must be one of \['demo', 'paper'\], got 'papr'"):
        run_mgcma.parse_arguments(["--preset", "papr"])


def test_preset_files_inherit_and_loops_are_named(tmp_path):
    (tmp_path / "protocol.yaml").write_text("save_total_limit: 2\nseed: 1\n")
    (tmp_path / "new_data.yaml").write_text("seed: 5\nmodel_config:\n  temperature: 0.5\n  pooling: max\n")
    (tmp_path / "demo.yaml").write_text("inherit: new_data\nseed: 7\nmodel_config:\n  pooling: mean\n")
    (tmp_path / "paper.yaml").write_text("inherit: paper\n")
    assert load_preset("demo", tmp_path) == ({"save_total_limit": 2, "seed": 7}, {"temperature": 0.5, "pooling": "mean"})
    assert load_preset(None, tmp_path) == ({"save_total_limit": 2, "seed": 5}, {"temperature": 0.5, "pooling": "max"})
    with pytest.raises(ValueError, match=r"paper.yaml: `inherit` loops back to 'paper'"):
        load_preset("paper", tmp_path)
    (tmp_path / "new_data.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match=r"new_data.yaml must hold a mapping"):
        load_preset(None, tmp_path)


def test_resuming_from_a_half_written_checkpoint_names_the_file(tmp_path):
    checkpoint = write_checkpoint(tmp_path, 6, truncate="model.safetensors")
    with pytest.raises(ValueError, match=r"--resume_from_checkpoint '.*checkpoint-6' cannot be resumed from: .*checkpoint-6/model.safetensors: truncated \(\d+ bytes, its tensors need \d+\)"):
        run_mgcma.parse_arguments(["--output_dir", str(tmp_path / "out"), "--resume_from_checkpoint", str(checkpoint)])


@pytest.mark.parametrize("several", [["--cross_validate"], ["--ablations", "S0,S4"]])
def test_one_checkpoint_folder_is_refused_for_several_folds_or_units(tmp_path, several):
    checkpoint = write_checkpoint(tmp_path, 6)
    with pytest.raises(ValueError, match="with --cross_validate or --ablations, --resume_from_checkpoint must be 'last'"):
        run_mgcma.parse_arguments(["--output_dir", str(tmp_path / "out"), *several, "--resume_from_checkpoint", str(checkpoint)])
    run_mgcma.parse_arguments(["--output_dir", str(tmp_path / "out"), *several, "--resume_from_checkpoint", "last"])


def test_a_config_file_with_a_byte_order_mark_or_bad_json(tmp_path):
    config_file = tmp_path / "run.json"
    config_file.write_bytes(json.dumps({"output_dir": str(tmp_path / "o"), "num_train_epochs": 2}).encode("utf-8-sig"))
    assert run_mgcma.parse_arguments([str(config_file)])[2].num_train_epochs == 2
    config_file.write_text('{"output_dir": "o",\n "num_train_epochs": }')
    with pytest.raises(ValueError, match=r"run.json, line 2: not valid JSON"):
        run_mgcma.parse_arguments([str(config_file)])
