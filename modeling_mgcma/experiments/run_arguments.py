# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""How `run_mgcma.py` reads its arguments: one parse of the command line (or of one .json/.yaml file), the preset's
values for every argument not given, and the checks, all before any data is read or model built.

The hyperparameter presets are YAML files, the only place their values are written: `configs/presets/<name>.yaml`
holds a preset's argument values (TrainingArguments and script arguments) at the top level and its `MGCMAConfig`
values under `model_config`; `inherit: <name>` starts from another file. `protocol.yaml` is the training protocol
under every preset; `new_data.yaml` applies to the user's own data when no preset is named.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.resources
import json
import logging
from pathlib import Path

from transformers import HfArgumentParser

from ..configuration_mgcma import PAPER_ABLATIONS, TRAINING_SETTINGS, MGCMAConfig
from ..data.iemocap import NUM_SESSIONS


logger = logging.getLogger(__name__)


PRESETS = ("demo", "paper")
# The repository's configs/presets/, installed as the package `modeling_mgcma.experiments.presets` (pyproject.toml).
PRESETS_DIR = Path(str(importlib.resources.files("modeling_mgcma.experiments.presets")))


def _read(name: str, folder: Path, seen: tuple = ()) -> dict:
    import yaml

    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"preset file {path} not found (the presets ship in the repository's configs/presets/, installed as modeling_mgcma.experiments.presets).")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict) or not isinstance(values.get("model_config", {}), dict):
        raise ValueError(f"{path} must hold a mapping of argument names to values, and `model_config` a mapping.")
    parent = values.pop("inherit", None)
    if parent is None:
        return values
    if parent in (*seen, name):
        raise ValueError(f"{path}: `inherit` loops back to {parent!r}.")
    base = _read(parent, folder, (*seen, name))
    model_config = {**base.pop("model_config", {}), **values.pop("model_config", {})}
    return {**base, **values, "model_config": model_config}


def load_preset(preset: str | None, folder: str | Path | None = None) -> tuple[dict, dict]:
    """(argument defaults, MGCMAConfig values) of `preset`, or of the settings for new data when it is None. The
    argument defaults are the protocol's, updated with the preset's."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"--preset must be one of {list(PRESETS)}, got {preset!r}.")
    folder = Path(folder) if folder is not None else PRESETS_DIR
    values = {**_read("protocol", folder), **_read(preset or "new_data", folder)}
    model_config = values.pop("model_config", {})
    model_config = parse_config_overrides(model_config, source=f"preset {preset or 'new_data'}, model_config",
                                          check_known=False) if model_config else {}
    return values, model_config


def parse_bool(value, name: str, source: str = "") -> bool:
    """`value` read as HfArgumentParser reads `--flag value` (transformers' `string_to_bool`: yes/true/t/y/1 and
    no/false/f/n/0, any case; a real boolean, or the numbers 0 and 1, as themselves). Anything else is a ValueError
    naming `name` (where it came from: `source`) and the value."""
    from transformers.hf_argparser import string_to_bool

    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        try:
            return string_to_bool(value.strip())
        except argparse.ArgumentTypeError:
            pass
    where = f" ({source})" if source else ""
    raise ValueError(f"{name}{where} must be a boolean (yes/no, true/false, t/f, y/n, 1/0), got {value!r}.")


def parse_number(value, kind: type, name: str, source: str = ""):
    """`value` as an int or float (`kind`): numbers as themselves, text such as "1e-4" or "3" parsed; anything else
    (text that is no number, a boolean, a fraction where an int belongs) is a ValueError naming `name` and the value."""
    where = f" ({source})" if source else ""
    problem = ValueError(f"{name}{where} must be {'an integer' if kind is int else 'a number'}, got {value!r}.")
    if isinstance(value, bool):
        raise problem
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if kind is int else float(text)
        except ValueError:
            try:
                value = float(text)  # "3.0" is the integer 3
            except ValueError:
                raise problem from None
    if not isinstance(value, (int, float)):
        raise problem
    if kind is int:
        if float(value) != int(value):
            raise problem
        return int(value)
    return float(value)


def _scalar_kind(annotation) -> type | None:
    """bool, int or float when a field's annotation is one of them (or it | None), else None."""
    import types
    import typing

    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (
        annotation,)  # fmt: skip
    options = [option for option in options if option is not type(None)]
    return options[0] if len(options) == 1 and options[0] in (bool, int, float) else None


def argument_kinds(dataclass_types) -> dict:
    """{argument name: bool / int / float} for every scalar field of `dataclass_types`."""
    import typing

    kinds = {}
    for dtype in dataclass_types:
        try:
            hints = typing.get_type_hints(dtype)
        except Exception:  # an annotation that does not resolve: read the field's own
            hints = {f.name: f.type for f in dataclasses.fields(dtype)}
        for f in dataclasses.fields(dtype):
            kind = _scalar_kind(hints.get(f.name, f.type))
            if kind is not None:
                kinds[f.name] = kind
    return kinds


def coerce_argument_values(values: dict, kinds: dict, source: str) -> dict:
    """`values` (argument name -> value, from a config file or a preset) with each boolean and number read as the
    command line reads it (see `parse_bool`, `parse_number`); None stays None. Errors name the key, value and
    `source`."""
    result = dict(values)
    for name, value in values.items():
        kind = kinds.get(name)
        if kind is None or value is None:
            continue
        result[name] = parse_bool(value, name, source) if kind is bool else parse_number(value, kind, name, source)
    return result


def _config_value_kinds() -> dict:
    """{MGCMAConfig setting: bool / int / float}, from each setting's default value."""
    kinds = {}
    for f in dataclasses.fields(MGCMAConfig):
        default = f.default
        if isinstance(default, (bool, int, float)) and default is not dataclasses.MISSING:
            kinds[f.name] = type(default)
    return kinds


def _split_overrides(overrides: str) -> list[str]:
    """'a=1,b=[x, y],c="p,q"' -> ['a=1', 'b=[x, y]', 'c="p,q"']: commas inside brackets or quotes do not split."""
    items, current, depth, quote = [], [], 0, None
    for char in overrides:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return items


def parse_config_overrides(overrides, *, source: str = "--config_overrides", check_known: bool = True) -> dict:
    """'a=1,b=x' (or a mapping, e.g. `config_overrides:` in a YAML file) -> {'a': 1, 'b': 'x'}, checked against
    MGCMAConfig's settings. In a string, values are read as JSON when they parse (lists in brackets may hold commas),
    else as text. A boolean setting takes what `--flag value` takes (see `parse_bool`), a number setting a number;
    anything else is a ValueError naming the key and value (and `source`). Without `check_known`, a key MGCMAConfig
    does not have is kept as it is (a preset's `model_config`, read by code that knows its keys)."""
    if not overrides:
        return {}
    known = {f.name for f in dataclasses.fields(MGCMAConfig)} if dataclasses.is_dataclass(MGCMAConfig) else None
    kinds = _config_value_kinds()
    if isinstance(overrides, dict):
        raw = {str(key): (value, False) for key, value in overrides.items()}
    elif isinstance(overrides, str):
        raw = {}
        for item in _split_overrides(overrides):
            if "=" not in item:
                raise ValueError(f"--config_overrides items must be key=value, got {item!r} in {overrides!r}.")
            key, value = (part.strip() for part in item.split("=", 1))
            if key in raw:
                raise ValueError(f"--config_overrides sets {key!r} twice in {overrides!r}.")
            raw[key] = (value, True)
    else:
        raise ValueError(f"--config_overrides must be 'key=value,...' or a mapping, got {overrides!r}.")
    result = {}
    for key, (value, textual) in raw.items():
        if key in TRAINING_SETTINGS:  # config fields once, training arguments (MGCMATrainingArguments) now
            raise ValueError(
                f"{source}: {key!r} is a training argument now, not an MGCMAConfig setting: pass --{key} {value} "
                f"(or `{key}:` at the top level of a YAML preset or argument file), got {key}={value!r}."
            )
        if known is not None and key not in known and check_known:
            raise ValueError(f"{source}: MGCMAConfig has no setting {key!r}.")
        kind = kinds.get(key)
        if kind is bool:
            result[key] = parse_bool(value, key, source)
            continue
        if textual:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        if kind in (int, float) and value is not None:
            value = parse_number(value, kind, key, source)
        elif isinstance(value, (set, tuple)):
            value = list(value)
        result[key] = value
    return result


def check_ablation_overrides(model_args) -> None:
    """--config_overrides may not set what the ablation settings being run define (the modules switched on and their
    order, `PAPER_ABLATIONS`): the run would be labelled with a setting it does not measure."""
    settings = [model_args.ablation] if model_args.ablation is not None else []
    if model_args.ablations is not None:
        from .grid import parse_ablations

        settings = parse_ablations(model_args.ablations)
    if not settings:
        return
    overrides = parse_config_overrides(model_args.config_overrides)
    defined = {key for values in PAPER_ABLATIONS.values() for key in values}
    clashing = [key for key in overrides if key in defined]
    if clashing:
        key = clashing[0]
        setting = next((s for s in settings if key in PAPER_ABLATIONS[s]), settings[0])
        value = PAPER_ABLATIONS[setting].get(key, MGCMAConfig.ablation_kwargs(setting).get(key, "the default"))
        if key not in PAPER_ABLATIONS[setting]:
            default = next((f.default for f in dataclasses.fields(MGCMAConfig) if f.name == key), None)
            value = default() if callable(default) else default
        raise ValueError(
            f"--config_overrides {key}={overrides[key]!r} changes what the ablation setting {setting} defines "
            f"({key} = {value!r} in {setting}; the settings define {sorted(defined)}): results labelled {setting} "
            "would measure another model. Drop the override, or choose the setting that has that value."
        )


def launched_on_cpus_only() -> bool:
    """True under a multi-process launcher on a machine without accelerators (CUDA, XPU, MPS, ...)."""
    import torch
    from accelerate import PartialState

    return not torch.accelerator.is_available() and PartialState(cpu=True).num_processes > 1


def preset_defaults(preset: str | None, has_data: bool) -> tuple[str | None, dict]:
    """The preset in effect ("demo" without data) and the argument defaults: its file's, then the device's."""
    import torch

    preset = "demo" if preset is None and not has_data else preset
    defaults, _ = load_preset(preset)
    defaults["dataloader_pin_memory"] = torch.accelerator.is_available()  # pinned memory needs an accelerator
    if launched_on_cpus_only():
        # `accelerate launch --multi_gpu` / torchrun on a machine without GPUs: without use_cpu, TrainingArguments
        # would not join the (gloo) process group and every process would train alone as rank 0.
        defaults["use_cpu"] = True
    return preset, defaults


def read_argument_file(name: str) -> dict:
    """The mapping of argument names to values in a .json or .yaml file; a ValueError names what is wrong."""
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"config file {name!r} not found.")
    text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the file's text
    if path.suffix == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name}, line {error.lineno}: not valid JSON ({error.msg}).") from None
    else:
        import yaml

        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{name}: not valid YAML ({' '.join(str(error).split())}).") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{name} must hold a mapping of argument names to values, got {type(raw).__name__}.")
    return raw


# Arguments that were renamed: former name -> current name. The former name is still read, with a warning.
RENAMED_ARGUMENTS = {"test_session": "test_group"}


def rename_former_arguments(given: dict, source: str) -> dict:
    """`given` with every argument of `RENAMED_ARGUMENTS` under its current name (one warning each); both names at
    once is an error naming them."""
    renamed = dict(given)
    for former, current in RENAMED_ARGUMENTS.items():
        if former not in renamed:
            continue
        if current in renamed:
            raise ValueError(f"{source}: pass --{current} (the current name) or --{former} (its former name), not both.")
        logger.warning(f"{source}: --{former} is now called --{current}; read as --{current}.")
        renamed[current] = renamed.pop(former)
    return renamed


def _rename_former_flags(argv: list[str]) -> list[str]:
    """The command line with `--<former name>` (and `--<former name>=value`) spelled with its current name, checked and
    warned about as `rename_former_arguments` does."""
    names = [token[2:].partition("=")[0] for token in argv if token.startswith("--")]
    rename_former_arguments(dict.fromkeys(names), "the command line")  # the error for both names, and the warning
    spelled = []
    for token in argv:
        name, equals, value = token[2:].partition("=") if token.startswith("--") else ("", "", "")
        spelled.append(f"--{RENAMED_ARGUMENTS[name]}{equals}{value}" if name in RENAMED_ARGUMENTS else token)
    return spelled


def read_arguments(argv: list[str], dataclass_types):
    """(model_args, data_args, training_args, preset, given) of `dataclass_types` (ModelArguments, DataArguments,
    TrainingArguments) from the command line or from one .json/.yaml file, parsed once; `given` holds the names set
    explicitly, and the preset's values fill every other argument."""
    parser = HfArgumentParser(dataclass_types)
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        given = rename_former_arguments(read_argument_file(argv[0]), argv[0])
        # "false" in a file means what --flag false means; "1e-4" is a number
        given = coerce_argument_values(given, argument_kinds(dataclass_types), argv[0])
    else:
        argv = _rename_former_flags(argv)
        unset = object()  # an argument still `unset` after parsing was not on the command line
        namespace = argparse.Namespace(**{action.dest: unset for action in parser._actions if action.dest != "help"})
        namespace, unused = parser.parse_known_args(argv, namespace)
        if unused:
            raise ValueError(f"Some specified arguments are not used by the HfArgumentParser: {unused}")
        given = {name: value for name, value in vars(namespace).items() if value is not unset}
    has_data = bool(given.get("data_dir") or given.get("manifest") or given.get("dataset_name"))
    preset, defaults = preset_defaults(given.get("preset"), has_data)
    defaults = coerce_argument_values(defaults, argument_kinds(dataclass_types), f"preset {preset or 'new_data'}")
    if given.get("ablations") and "output_dir" not in given and defaults.get("output_dir"):
        # a grid's folder is never the single run's default one (run_records.check_folder_kind keeps them apart)
        defaults["output_dir"] = f"{str(defaults['output_dir']).rstrip('/')}-grid"
    model_args, data_args, training_args = parser.parse_dict({**defaults, **given})
    take_class_names_from_label_names(data_args, training_args)
    check_arguments(model_args, data_args, training_args)
    return model_args, data_args, training_args, preset, set(given)


def take_class_names_from_label_names(data_args, training_args):
    """`--label_names a,b,c` (or `a b c`) means --class_names: TrainingArguments' own `label_names` (the input keys
    that hold labels) is always ["labels"] for MGCMA, so any other value is the user naming the classes."""
    names = training_args.label_names
    if not names or list(names) == ["labels"]:
        return
    if data_args.class_names is not None:
        raise ValueError("pass the classes once: --class_names or --label_names, not both.")
    data_args.class_names = ",".join(str(name) for name in names)
    training_args.label_names = None
    data_args.__post_init__()  # the same checks as --class_names


def check_arguments(model_args, data_args, training_args):
    """Checks across the argument groups, all before any data is read or model built."""
    if training_args.max_steps <= 0 and training_args.num_train_epochs <= 0:
        raise ValueError(
            f"--num_train_epochs must be > 0 (or give --max_steps > 0), got {training_args.num_train_epochs}: nothing "
            "would be trained."
        )
    if training_args.learning_rate <= 0:
        raise ValueError(f"--learning_rate must be > 0, got {training_args.learning_rate}: nothing would be learned.")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(training_args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(training_args, name)}.")
    for strategy, steps in (("eval_strategy", "eval_steps"), ("save_strategy", "save_steps"), ("logging_strategy", "logging_steps")):
        value = getattr(training_args, steps)
        if getattr(training_args, strategy) == "steps" and value is not None and value <= 0:
            raise ValueError(f"--{steps} must be > 0 with --{strategy} steps, got {value}.")
    for name in ("max_train_samples", "max_eval_samples"):
        if getattr(data_args, name) is not None and getattr(data_args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(data_args, name)}.")
    if data_args.cache_features:
        if not model_args.freeze_encoders:
            raise ValueError("--cache_features needs --freeze_encoders (cached features come from frozen encoders).")
    if training_args.push_to_hub:
        if not training_args.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id org/name.")
    if training_args.metric_for_best_model not in ("ua", "wa", "eval_ua", "eval_wa", "loss", "eval_loss"):
        raise ValueError(f"--metric_for_best_model must be ua, wa or loss, got {training_args.metric_for_best_model!r}.")
    resume = training_args.resume_from_checkpoint
    if resume and resume.lower() not in ("true", "last"):  # a checkpoint folder
        if not Path(resume).is_dir():
            raise ValueError(f"--resume_from_checkpoint {resume!r} is neither a checkpoint folder nor 'last'.")
        if data_args.cross_validate or model_args.ablations:
            raise ValueError(
                f"with --cross_validate or --ablations, --resume_from_checkpoint must be 'last' (each fold, each unit "
                f"of the grid, resumes its own), got the folder {resume!r}."
            )
        from .run_records import checkpoint_problem

        problem = checkpoint_problem(resume)
        if problem is not None:
            raise ValueError(f"--resume_from_checkpoint {resume!r} cannot be resumed from: {problem}.")


def looks_like_local_path(value: str) -> bool:
    """Whether `value` is written as a local path rather than a Hub id (``org/name``): it starts with '.', '/' or
    '~', holds a backslash, or has more than one '/'."""
    return value.startswith((".", "/", "~")) or "\\" in value or value.count("/") > 1


def check_local_path(argument: str, value: str | None) -> None:
    """A value written as a local path (see `looks_like_local_path`) that does not exist is named as such now,
    instead of failing later as a malformed Hub id."""
    if value is not None and looks_like_local_path(value) and not Path(value).expanduser().exists():
        raise ValueError(f"{argument} {value!r} looks like a local path, and it does not exist "
                         f"({Path(value).expanduser().absolute()}); give an existing folder or a Hub id (org/name).")


def check_model_arguments(model_args) -> None:
    """Checks of run_mgcma.py's ModelArguments (run by its __post_init__); a --max_duration of 0 becomes None (no cap)."""
    if model_args.torch_num_threads is not None and model_args.torch_num_threads < 1:
        raise ValueError(f"--torch_num_threads must be >= 1, got {model_args.torch_num_threads}.")
    if model_args.ablation is not None and model_args.ablation not in PAPER_ABLATIONS:
        raise ValueError(f"--ablation must be one of {sorted(PAPER_ABLATIONS)}, got {model_args.ablation!r}.")
    if model_args.ablations is not None:
        from .grid import parse_ablations

        parse_ablations(model_args.ablations)  # an unknown or repeated setting fails now, before any data is read
        if model_args.ablation is not None:
            raise ValueError("pass --ablation (one setting) or --ablations (the grid of settings), not both.")
    check_grid_arguments(model_args)
    if (model_args.speech_model is None) != (model_args.text_model is None):
        raise ValueError("pass both --speech_model and --text_model, or neither.")
    check_local_path("--speech_model", model_args.speech_model)
    check_local_path("--text_model", model_args.text_model)
    if model_args.max_duration is not None and model_args.max_duration < 0:
        raise ValueError(f"--max_duration must be >= 0 seconds (0: no cap), got {model_args.max_duration}.")
    if model_args.max_duration == 0:
        model_args.max_duration = None
    parse_config_overrides(model_args.config_overrides)  # fail now on a malformed string
    check_ablation_overrides(model_args)


def check_grid_arguments(model_args) -> None:
    """Checks of the grid's launch arguments (--grid_workers, --grid_unit, --launcher, --slurm_*)."""
    from .grid_launch import LAUNCHERS, parse_grid_workers, slurm_time_minutes

    value = lambda name, default=None: getattr(model_args, name, default)  # noqa: E731
    parse_grid_workers(value("grid_workers", "1"))
    if value("launcher", "local") not in LAUNCHERS:
        raise ValueError(f"--launcher must be one of {list(LAUNCHERS)}, got {value('launcher')!r}.")
    needs_grid = [name for name, used in (("grid_unit", value("grid_unit") is not None),
                                          ("grid_tables_only", value("grid_tables_only", False)),
                                          ("grid_workers", str(value("grid_workers", "1")).strip() != "1"),
                                          ("launcher", value("launcher", "local") != "local")) if used]  # fmt: skip
    if needs_grid and value("ablations") is None:
        raise ValueError(f"--{needs_grid[0]} applies to the grid: pass --ablations all (or S0,S1,...) with it.")
    if value("grid_unit") is not None and value("grid_tables_only", False):
        raise ValueError("pass --grid_unit (train one unit) or --grid_tables_only (train nothing), not both.")
    for name in ("slurm_gpus_per_node", "slurm_cpus_per_task", "slurm_array_parallelism"):
        if value(name) is not None and value(name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {value(name)}.")
    if value("slurm_time") is not None:
        slurm_time_minutes(value("slurm_time"))  # a malformed limit fails now, not when the jobs are submitted


def check_data_arguments(data_args) -> None:
    """Checks of run_mgcma.py's DataArguments (run by its __post_init__)."""
    sources = [f"--{name}" for name in ("data_dir", "manifest", "dataset_name") if getattr(data_args, name) is not None]
    if len(sources) > 1:
        raise ValueError(f"pass one of --data_dir (IEMOCAP), --manifest or --dataset_name (your data), got {sources}.")
    check_local_path("--dataset_name", data_args.dataset_name)
    if data_args.iemocap_config not in ("4class", "full"):
        raise ValueError(f"--iemocap_config must be '4class' or 'full', got {data_args.iemocap_config!r}.")
    if data_args.data_dir is not None and not Path(data_args.data_dir).expanduser().is_dir():
        raise ValueError(f"--data_dir {data_args.data_dir!r} is not a folder; point it at your IEMOCAP_full_release/.")
    if data_args.manifest is not None:
        path = Path(data_args.manifest).expanduser()
        if not path.is_file():
            raise ValueError(f"--manifest {data_args.manifest!r} is not a file.")
        if path.suffix.lower() not in (".csv", ".jsonl"):
            raise ValueError(f"--manifest must be a .csv or .jsonl file, got {data_args.manifest!r}.")
    if data_args.class_names is not None:
        if data_args.manifest is None and data_args.dataset_name is None:
            raise ValueError("--class_names names your data's classes: use it with --manifest or --dataset_name.")
        names = [name.strip() for name in data_args.class_names.split(",")]
        if len(names) < 2 or not all(names):
            raise ValueError(f"--class_names must list at least 2 non-empty class names, 'a,b,c'; got {data_args.class_names!r}.")
    if data_args.cross_validate and data_args.test_group is not None:
        raise ValueError("pass --test_group k (one fold) or --cross_validate (all folds), not both.")
    if data_args.test_group is not None and data_args.manifest is None and data_args.dataset_name is None:
        if isinstance(data_args.test_group, bool) or not 1 <= data_args.test_group <= NUM_SESSIONS:
            raise ValueError(f"--test_group must be an IEMOCAP session 1-{NUM_SESSIONS}, got {data_args.test_group!r}.")
    if data_args.validation_strategy not in ("stratified", "speaker"):
        raise ValueError(f"--validation_strategy must be 'stratified' or 'speaker', got {data_args.validation_strategy!r}.")
    if not 0.0 < data_args.validation_fraction < 1.0:
        raise ValueError(f"--validation_fraction must be in (0, 1), got {data_args.validation_fraction}.")
    if data_args.demo_voice not in ("tones", "espeak"):
        raise ValueError(f"--demo_voice must be 'tones' or 'espeak', got {data_args.demo_voice!r}.")
    if data_args.demo_utterances_per_session < 8:
        raise ValueError(f"--demo_utterances_per_session must be >= 8, got {data_args.demo_utterances_per_session}.")


def apply_runtime_settings(model_args, training_args, preset: str | None, given: set, data_source: str) -> None:
    """Settings that follow the machine, applied before any data is read: torch's CPU threads (1 for the demo on a
    CPU), one process per GPU, DataLoader workers and mixed precision where not `given` explicitly; then one log line
    per process with what it runs."""
    import torch

    from ..training.trainer import apply_dataloader_defaults, apply_mixed_precision, refuse_data_parallel

    threads = model_args.torch_num_threads
    if threads is None and preset == "demo" and training_args.device.type == "cpu":
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)
    refuse_data_parallel(training_args)  # several GPUs need one process each (DDP)
    if "dataloader_num_workers" not in given:  # an explicit value, 0 included, is kept
        changed = apply_dataloader_defaults(training_args)
        if changed:
            logger.info("Input pipeline in DataLoader workers on %s: %s", training_args.device, changed)
    precision_note = apply_mixed_precision(training_args, explicit=bool({"bf16", "fp16"} & given))
    if precision_note:
        logger.warning(precision_note)
    world, per_device = training_args.world_size, training_args.per_device_train_batch_size
    if preset == "paper" and world > 1 and training_args.process_index == 0:
        logger.warning(
            "Global batch %d = %d processes x %d (the paper trains with 4; the learning rate is not scaled). For the "
            "paper's batch: %s.", world * per_device * training_args.gradient_accumulation_steps, world, per_device,
            f"--per_device_train_batch_size {4 // world}" if 4 % world == 0
            else "2 or 4 processes with --per_device_train_batch_size 2 or 1",
        )  # fmt: skip
    logger.warning(
        "Process rank %s, world size %s, device %s, mixed precision %s; preset %s, data %s",
        training_args.process_index, world, training_args.device,
        "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no", preset, data_source,
    )  # fmt: skip


__all__ = [
    "PRESETS", "PRESETS_DIR", "load_preset", "preset_defaults", "parse_config_overrides", "read_argument_file",
    "parse_bool", "parse_number", "coerce_argument_values", "check_ablation_overrides", "check_grid_arguments",
    "read_arguments", "check_arguments", "check_model_arguments", "check_data_arguments", "apply_runtime_settings",
]  # fmt: skip
