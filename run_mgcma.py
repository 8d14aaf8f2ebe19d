#!/usr/bin/env python
# Copyright 2026 The MGCMA contributors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Train and evaluate MGCMA (speech + text emotion recognition) with leave-one-session-out cross-validation.

    python run_mgcma.py                                   # demo: synthetic corpus, small model, one fold
    accelerate launch run_mgcma.py                        # the same under accelerate (CPU, 1 GPU or N GPUs)
    python run_mgcma.py --data_dir /data/IEMOCAP_full_release --preset paper --cross_validate
    python run_mgcma.py --manifest my_data.csv --speech_model facebook/wav2vec2-base --text_model bert-base-uncased
    python run_mgcma.py config.yaml                       # every argument from one JSON/YAML file

Data: the demo corpus (generated on first use), IEMOCAP (`--data_dir`, via `load_iemocap`) or a CSV/JSONL manifest
(`--manifest`, via `load_manifest`). Folds: one test session (`--test_session k`) or all (`--cross_validate`, each
fold in `fold_k/`; on rerun a finished fold is reused only when its recorded fingerprint (data, model and training
settings) matches, anything else is refused unless `--overwrite_output_dir`). Inside a fold, a validation set drawn from the training
sessions picks the best checkpoint (validation UA); the test session is evaluated once, at the end, with that model.

Outputs (per fold): the model folder (safetensors weights, config with `auto_map`, code files, processor),
`results.json`, `confusion_matrix.png`, `tsne.png`, `loss_curves.png` and the model card `README.md`; with
`--cross_validate` also `results.json`/`results.md` over the folds and a card with every fold.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import transformers
from transformers import HfArgumentParser, TrainingArguments, set_seed

from modeling_mgcma.configuration_mgcma import PAPER_ABLATIONS, MGCMAConfig
from modeling_mgcma.processing_mgcma import DEFAULT_MAX_DURATION


logger = logging.getLogger(__name__)

NUM_IEMOCAP_SESSIONS = 5
PAPER_SPEECH_MODEL = "facebook/wav2vec2-base"
PAPER_TEXT_MODEL = "bert-base-uncased"
PRESETS = ("demo", "paper")

# The training protocol of every run (any preset): evaluate on the validation split each epoch, keep the checkpoint
# with the best validation UA, keep every input column for the collator. Explicit arguments still win.
PROTOCOL_TRAINING_DEFAULTS = {
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "load_best_model_at_end": True,
    "metric_for_best_model": "ua",  # TrainingArguments derives greater_is_better (False only for a loss)
    "save_total_limit": 2,
    "logging_strategy": "steps",
    "logging_steps": 10,
    "logging_first_step": True,
    "remove_unused_columns": False,
    "report_to": "none",
}

# The paper's settings (Sec. 3.1): batch 4, Adam with learning rate 1e-5, up to 100 epochs, tau 0.07, 12 heads,
# 6 TAM blocks, wav2vec 2.0 Base + BERT base. Adam = AdamW with weight_decay 0 (AdamW without decay is Adam), in its
# fused kernel (the same update, one pass over the parameters); the paper names no schedule, so the rate is constant.
PAPER_TRAINING_DEFAULTS = {
    "output_dir": "outputs/mgcma-paper",
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 8,
    "learning_rate": 1e-5,
    "optim": "adamw_torch_fused",
    "weight_decay": 0.0,
    "lr_scheduler_type": "constant",
    "num_train_epochs": 100,
    # a checkpoint (weights + Adam state, ~3 GB at base size) only when validation UA improves, one kept per fold:
    # load_best_model_at_end accepts "best"; a resumed run restarts from the best epoch rather than the last
    "save_strategy": "best",
    "save_total_limit": 1,
}
PAPER_CONFIG = {"num_attention_heads": 12, "num_alignment_layers": 6, "temperature": 0.07}

# The demo: a small MGCMA trained from scratch on the synthetic corpus, one fold, within 10 minutes on 2 CPU cores.
DEMO_TRAINING_DEFAULTS = {
    "output_dir": "outputs/mgcma-demo",
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 32,
    "learning_rate": 2e-3,
    "weight_decay": 0.01,
    "lr_scheduler_type": "linear",
    "warmup_steps": 0.05,
    "num_train_epochs": 30,
    "logging_steps": 5,
    "save_total_limit": 1,
    "seed": 0,
}
DEMO_TEST_SESSION = 5
# Without a preset, on your data (--data_dir / --manifest / --dataset_name): the paper's model and loss weights, with
# two departures that benchmarks/README.md ("Learning") measures and the README states:
# - gradient balancing: the alignment losses' gradient on the shared encoders is capped at the classifier loss's
#   (from scratch it starts 10-100x larger, and the full model then learns the classes far more slowly than without
#   alignment);
# - a per-dimension Wasserstein distance in L_DA, p = 0.32: the same logits as p = 1/200 at D = 64, and a scale
#   that no longer grows with the width (at D = 768, p = 1/200 on the summed distance gives logits spanning ~100).
NEW_DATA_CONFIG = {"alignment_gradient_balance": 1.0, "distribution_distance": "mean", "similarity_scale": 0.32}
# The demo uses the same learning recipe as new data.
DEMO_CONFIG = dict(NEW_DATA_CONFIG)
# 20 ms frames (320 samples, as wav2vec2) instead of from_scratch's 5 ms: 4x fewer frames, so the encoder's
# self-attention is ~16x cheaper, which is what makes the demo fit in minutes on a CPU.
DEMO_SPEECH_ENCODER = {"conv_kernel": (10, 8, 8, 4, 4), "conv_stride": (5, 4, 4, 2, 2)}
# No dropout in the demo model: it is small, the corpus is clean and synthetic, and dropout costs a third of a CPU step.
DEMO_NO_DROPOUT = {
    "speech": {"hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "feat_proj_dropout": 0.0,
               "final_dropout": 0.0},
    "text": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
    "mgcma": {"hidden_dropout_prob": 0.0, "attention_dropout_prob": 0.0, "classifier_dropout": 0.0},
}  # fmt: skip


@dataclass
class ModelArguments:
    """Which model to train, and how."""

    speech_model: str | None = field(
        default=None,
        metadata={"help": f"Speech encoder: a Hub id or local folder (default with --data_dir/--manifest: {PAPER_SPEECH_MODEL}; "
                          "the demo builds a small one from scratch)."},
    )  # fmt: skip
    text_model: str | None = field(
        default=None,
        metadata={"help": f"Text encoder: a Hub id or local folder (default with --data_dir/--manifest: {PAPER_TEXT_MODEL})."},
    )
    preset: str | None = field(
        default=None,
        metadata={"help": f"Hyperparameter preset, one of {list(PRESETS)}: 'paper' = the paper's settings; 'demo' (the "
                          "default without --data_dir/--manifest) = a small model for the synthetic corpus. "
                          "Explicit arguments override the preset."},
    )  # fmt: skip
    ablation: str | None = field(
        default=None,
        metadata={"help": f"The paper's ablation setting, one of {sorted(PAPER_ABLATIONS)} (Table II: S1 no DAM, S2 no "
                          "TAM, S3 no IAM, S4 none; Table III: S5-S9 module orders)."},
    )  # fmt: skip
    freeze_encoders: bool = field(
        default=False, metadata={"help": "Freeze both encoders (train the alignment modules and classifier only)."}
    )
    gather_distributed_negatives: bool = field(
        default=True,
        metadata={"help": "Under multi-process training, use the features of all processes as contrastive negatives."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Extra MGCMAConfig settings, 'key=value,key=value' (e.g. 'temperature=0.1,pooling=max')."},
    )
    scratch_hidden_size: int = field(default=32, metadata={"help": "Width of encoders built from scratch (demo)."})
    scratch_num_layers: int = field(default=2, metadata={"help": "Layers of scratch encoders and TAM blocks (demo)."})
    scratch_num_heads: int = field(default=4, metadata={"help": "Attention heads of the scratch model (demo)."})
    scratch_intermediate_size: int = field(default=64, metadata={"help": "Feed-forward width of the scratch model."})
    max_duration: float | None = field(
        default=DEFAULT_MAX_DURATION,
        metadata={"help": f"Cut each clip to this many seconds (default {DEFAULT_MAX_DURATION:g}: about 1 %% of IEMOCAP's "
                          "4-class utterances are longer; the length-grouped sampler uses the same cap). 0 keeps every "
                          "clip whole."},
    )  # fmt: skip
    torch_num_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads per process for torch ops. Default: 1 for the demo on CPU (its tiny matrices gain "
                          "nothing from intra-op threads, and on a busy machine the threads' synchronisation made steps "
                          "~20x slower), torch's default otherwise."},
    )  # fmt: skip

    def __post_init__(self):
        if self.torch_num_threads is not None and self.torch_num_threads < 1:
            raise ValueError(f"--torch_num_threads must be >= 1, got {self.torch_num_threads}.")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {list(PRESETS)}, got {self.preset!r}.")
        if self.ablation is not None and self.ablation not in PAPER_ABLATIONS:
            raise ValueError(f"--ablation must be one of {sorted(PAPER_ABLATIONS)}, got {self.ablation!r}.")
        if (self.speech_model is None) != (self.text_model is None):
            raise ValueError("pass both --speech_model and --text_model, or neither.")
        if self.max_duration is not None and self.max_duration < 0:
            raise ValueError(f"--max_duration must be >= 0 seconds (0: no cap), got {self.max_duration}.")
        if self.max_duration == 0:
            self.max_duration = None
        parse_config_overrides(self.config_overrides)  # fail now on a malformed string


@dataclass
class DataArguments:
    """Which data to train and evaluate on."""

    data_dir: str | None = field(default=None, metadata={"help": "IEMOCAP_full_release/ (your licensed local copy)."})
    manifest: str | None = field(default=None, metadata={"help": "A .csv or .jsonl manifest of audio, text, label rows."})
    audio_column: str = field(default="audio", metadata={"help": "Manifest column with audio paths."})
    text_column: str = field(default="text", metadata={"help": "Manifest column with transcripts."})
    label_column: str = field(default="label", metadata={"help": "Manifest column with emotion labels."})
    class_names: str | None = field(
        default=None,
        metadata={"help": "The manifest's classes in id order, 'a,b,c' (case and spaces ignored); a row with any other "
                          "label is an error. Default: angry,happy,sad,neutral when every label is one of them, else "
                          "the distinct labels found (shown with their counts). --label_names is a synonym."},
    )  # fmt: skip
    group_column: str = field(
        default="session",
        metadata={"help": "Manifest column that defines the cross-validation folds (leave one group out). Without it a "
                          "stratified 80/10/10 train/validation/test split is used."},
    )  # fmt: skip
    test_session: int | None = field(
        default=None, metadata={"help": "Run the one fold that holds out this session (1-5; default 5 for the demo)."}
    )
    cross_validate: bool = field(default=False, metadata={"help": "Run every fold (leave-one-session-out)."})
    strict_counts: bool = field(
        default=True,
        metadata={"help": "IEMOCAP: a missing session or 4-class counts that differ from the full "
                          "release are errors; false makes them warnings (e.g. for a partial or modified copy)."},
    )  # fmt: skip
    validation_strategy: str = field(
        default="stratified",
        metadata={"help": "Validation set from the training sessions: 'stratified' or 'speaker' (see loso_fold)."},
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of training data used for validation."})
    demo_corpus_dir: str = field(default="demo_corpus", metadata={"help": "Where the demo corpus is (or is written)."})
    demo_utterances_per_session: int = field(default=80, metadata={"help": "Demo corpus size per session."})
    demo_voice: str = field(
        default="tones",
        metadata={"help": "Demo corpus speech: 'tones' (one harmonic syllable per word, numpy only) or 'espeak' (the "
                          "spoken corpus: espeak-ng says each transcript; needs the espeak-ng program)."},
    )  # fmt: skip
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate training data (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate validation and test data."})
    cache_features: bool = field(
        default=False,
        metadata={"help": "Compute the frozen encoders' outputs once and train the alignment modules on them (needs "
                          "--freeze_encoders; see modeling_mgcma.feature_cache)."},
    )  # fmt: skip
    feature_cache_dir: str | None = field(
        default=None, metadata={"help": "Where cached features go (default: <output_dir>/feature_cache)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace a run already in --output_dir (its results, checkpoints and folds are deleted and "
                          "trained again). Without it, a run into a folder that holds one is refused, except to reuse "
                          "cross-validation folds trained with the same settings or to --resume_from_checkpoint."},
    )  # fmt: skip

    def __post_init__(self):
        if self.data_dir is not None and self.manifest is not None:
            raise ValueError("pass --data_dir (IEMOCAP) or --manifest (your data), not both.")
        if self.data_dir is not None and not Path(self.data_dir).expanduser().is_dir():
            raise ValueError(f"--data_dir {self.data_dir!r} is not a folder; point it at your IEMOCAP_full_release/.")
        if self.manifest is not None:
            path = Path(self.manifest).expanduser()
            if not path.is_file():
                raise ValueError(f"--manifest {self.manifest!r} is not a file.")
            if path.suffix.lower() not in (".csv", ".jsonl"):
                raise ValueError(f"--manifest must be a .csv or .jsonl file, got {self.manifest!r}.")
        if self.class_names is not None:
            if self.manifest is None:
                raise ValueError("--class_names names a manifest's classes: use it with --manifest.")
            names = [name.strip() for name in self.class_names.split(",")]
            if len(names) < 2 or not all(names):
                raise ValueError(f"--class_names must list at least 2 non-empty class names, 'a,b,c'; got {self.class_names!r}.")
        if self.cross_validate and self.test_session is not None:
            raise ValueError("pass --test_session k (one fold) or --cross_validate (all folds), not both.")
        if self.test_session is not None and self.manifest is None:
            if isinstance(self.test_session, bool) or not 1 <= self.test_session <= NUM_IEMOCAP_SESSIONS:
                raise ValueError(f"--test_session must be a session 1-{NUM_IEMOCAP_SESSIONS}, got {self.test_session!r}.")
        if self.validation_strategy not in ("stratified", "speaker"):
            raise ValueError(f"--validation_strategy must be 'stratified' or 'speaker', got {self.validation_strategy!r}.")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"--validation_fraction must be in (0, 1), got {self.validation_fraction}.")
        if self.demo_voice not in ("tones", "espeak"):
            raise ValueError(f"--demo_voice must be 'tones' or 'espeak', got {self.demo_voice!r}.")
        if self.demo_utterances_per_session < 8:
            raise ValueError(f"--demo_utterances_per_session must be >= 8, got {self.demo_utterances_per_session}.")

    @property
    def source(self) -> str:
        return "iemocap" if self.data_dir else "manifest" if self.manifest else "demo"


def parse_config_overrides(overrides: str | None) -> dict:
    """'a=1,b=x' -> {'a': 1, 'b': 'x'} (values read as JSON when they parse, else as strings), checked against
    MGCMAConfig's fields."""
    if not overrides:
        return {}
    result = {}
    known = {f.name for f in dataclasses.fields(MGCMAConfig)} if dataclasses.is_dataclass(MGCMAConfig) else None
    for item in overrides.split(","):
        if "=" not in item:
            raise ValueError(f"--config_overrides items must be key=value, got {item!r} in {overrides!r}.")
        key, value = (part.strip() for part in item.split("=", 1))
        if known is not None and key not in known:
            raise ValueError(f"--config_overrides: MGCMAConfig has no setting {key!r}.")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result


def launched_on_cpus_only() -> bool:
    """True under a multi-process launcher (WORLD_SIZE > 1) on a machine without CUDA/XPU/MPS devices."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    has_xpu = hasattr(torch, "xpu") and torch.xpu.is_available()
    return not (torch.cuda.is_available() or has_xpu or torch.backends.mps.is_available())


def preset_defaults(preset: str | None, has_data: bool) -> tuple[str, dict]:
    """The preset in effect and its argument defaults (training protocol + preset hyperparameters)."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"--preset must be one of {list(PRESETS)}, got {preset!r}.")
    if preset is None and not has_data:
        preset = "demo"
    import torch

    defaults = dict(PROTOCOL_TRAINING_DEFAULTS)
    defaults["dataloader_pin_memory"] = torch.accelerator.is_available()  # pinned memory needs an accelerator
    if launched_on_cpus_only():
        # `accelerate launch --multi_gpu` / torchrun on a machine without GPUs: without use_cpu, TrainingArguments
        # would not join the (gloo) process group and every process would train alone as rank 0.
        defaults["use_cpu"] = True
    if preset == "demo":
        defaults.update(DEMO_TRAINING_DEFAULTS)
    elif preset == "paper":
        defaults.update(PAPER_TRAINING_DEFAULTS)
    else:
        defaults["output_dir"] = "outputs/mgcma"
    return preset, defaults


def parse_arguments(argv: list[str]):
    """(model_args, data_args, training_args, preset) from the command line or from one .json/.yaml file."""
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        path = Path(argv[0])
        if not path.is_file():
            raise ValueError(f"config file {argv[0]!r} not found.")
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the file's text
        if path.suffix == ".json":
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"{argv[0]}, line {error.lineno}: not valid JSON ({error.msg}).") from None
        else:
            import yaml

            try:
                raw = yaml.safe_load(text) or {}
            except yaml.YAMLError as error:
                raise ValueError(f"{argv[0]}: not valid YAML ({' '.join(str(error).split())}).") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{argv[0]} must hold a mapping of argument names to values, got {type(raw).__name__}.")
        preset, defaults = preset_defaults(raw.get("preset"), bool(raw.get("data_dir") or raw.get("manifest")))
        model_args, data_args, training_args = parser.parse_dict({**defaults, **raw})
    else:
        import argparse

        probe = argparse.ArgumentParser(add_help=False)
        for name in ("--preset", "--data_dir", "--manifest"):
            probe.add_argument(name, default=None)
        known, _ = probe.parse_known_args(argv)
        preset, defaults = preset_defaults(known.preset, bool(known.data_dir or known.manifest))
        parser.set_defaults(**defaults)
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    take_class_names_from_label_names(data_args, training_args)
    validate_arguments(model_args, data_args, training_args)
    return model_args, data_args, training_args, preset


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


def validate_arguments(model_args, data_args, training_args):
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
        if _name(getattr(training_args, strategy)) == "steps" and value is not None and value <= 0:
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
        if data_args.cross_validate:
            raise ValueError("--push_to_hub uploads one model: pick its fold with --test_session k, not --cross_validate.")
    if training_args.metric_for_best_model not in ("ua", "wa", "eval_ua", "eval_wa", "loss", "eval_loss"):
        raise ValueError(f"--metric_for_best_model must be ua, wa or loss, got {training_args.metric_for_best_model!r}.")
    resume = training_args.resume_from_checkpoint
    if resume and resume.lower() not in ("true", "last") and not Path(resume).is_dir():
        raise ValueError(f"--resume_from_checkpoint {resume!r} is neither a checkpoint folder nor 'last'.")
    if resume and resume.lower() not in ("true", "last"):
        problem = checkpoint_problem(resume)
        if problem is not None:
            raise ValueError(f"--resume_from_checkpoint {resume!r} cannot be resumed from: {problem}.")
    if resume and data_args.cross_validate and resume.lower() not in ("true", "last"):
        raise ValueError("with --cross_validate, --resume_from_checkpoint must be 'last' (each fold resumes its own).")


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def load_data(data_args, training_args):
    """The whole dataset with `audio`, `text`, `label` (ClassLabel) and, when folds exist, a `session` column."""
    from modeling_mgcma.data import generate_demo_corpus, load_iemocap, load_manifest

    if data_args.source == "iemocap":
        return load_iemocap(data_args.data_dir, strict_counts=data_args.strict_counts)
    if data_args.source == "manifest":
        labels = [name.strip() for name in data_args.class_names.split(",")] if data_args.class_names else None
        dataset = load_manifest(
            data_args.manifest, data_args.audio_column, data_args.text_column, data_args.label_column, labels
        )
        return dataset
    root = generate_demo_corpus(
        data_args.demo_corpus_dir, utterances_per_session=data_args.demo_utterances_per_session, voice=data_args.demo_voice
    )
    return load_iemocap(root, strict_counts=False)  # the demo corpus is smaller than the real release


def sorted_groups(values) -> list:
    """The distinct group values, numbers before text, each in its own order."""
    return sorted(set(values), key=lambda value: (not isinstance(value, (int, float)), value))


def fold_names(dataset, data_args) -> list:
    """The test groups of the run: sessions for IEMOCAP and the demo, the group column's values for a manifest, or
    ["split"] for a manifest without a group column (one stratified train/validation/test split)."""
    column = "session" if data_args.source != "manifest" else data_args.group_column
    if column not in dataset.column_names:
        return ["split"]
    values = dataset.select_columns([column])[column]
    empty = [index for index, value in enumerate(values) if value is None or str(value).strip() == ""]
    if empty:
        raise ValueError(
            f"{len(empty)} row(s) have no value in the group column {column!r} (row(s) {empty[:10]}, counted from 0 "
            "without the header): every row needs a group, or none (then a stratified split is used)."
        )
    groups = sorted_groups(values)
    if data_args.cross_validate:
        return groups
    if data_args.test_session is None:
        return [DEMO_TEST_SESSION if data_args.source == "demo" else groups[-1]]
    if data_args.source == "manifest":
        if not 1 <= data_args.test_session <= len(groups):
            raise ValueError(
                f"--test_session must pick one of the {len(groups)} groups of column {column!r} (1-{len(groups)}, "
                f"in sorted order {groups}), got {data_args.test_session}."
            )
        return [groups[data_args.test_session - 1]]
    if data_args.test_session not in groups:
        raise ValueError(f"--test_session {data_args.test_session} is not among the dataset's sessions {groups}.")
    return [data_args.test_session]


def make_fold(dataset, fold, data_args, seed):
    """DatasetDict(train, validation, test) for one fold; validation never comes from the test group."""
    import datasets

    from modeling_mgcma.data import loso_fold

    if fold == "split":  # no groups: stratified 80 / 10 / 10
        try:
            first = dataset.train_test_split(test_size=0.1, stratify_by_column="label", seed=seed)
            second = first["train"].train_test_split(
                test_size=data_args.validation_fraction / 0.9, stratify_by_column="label", seed=seed
            )
        except ValueError as error:
            names = dataset.features["label"].names
            counts = np.bincount(dataset.select_columns(["label"])["label"], minlength=len(names))
            raise ValueError(
                f"{len(dataset)} rows are too few for the stratified train / validation / test split used without a "
                f"group column ({data_args.group_column!r} is not in the data): every split needs each of the "
                f"{len(names)} classes (rows per class: {dict(zip(names, counts.tolist()))}). Add rows, or a group "
                f"column to leave out. ({error})"
            ) from None
        splits = datasets.DatasetDict({"train": second["train"], "validation": second["test"], "test": first["test"]})
    else:
        column = "session" if data_args.source != "manifest" else data_args.group_column
        if data_args.source == "manifest":  # loso_fold takes integer groups: number the groups 1..G
            groups = sorted_groups(dataset.select_columns([column])[column])
            index = {group: number for number, group in enumerate(groups, start=1)}
            values = dataset.select_columns([column])[column]  # never decodes audio
            dataset = dataset.add_column("_fold_group", [index[value] for value in values])
            column, fold = "_fold_group", index[fold]
        splits = loso_fold(
            dataset,
            fold,
            validation=data_args.validation_strategy,
            validation_fraction=data_args.validation_fraction,
            seed=seed,
            session_column=column,
        )
    for name, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples),
                        ("test", data_args.max_eval_samples)):  # fmt: skip
        if limit is not None and len(splits[name]) > limit:
            splits[name] = splits[name].shuffle(seed=seed).select(range(limit))
    return splits


def check_classes(dataset, folds, data_args, seed) -> None:
    """Before anything is trained: the data hold at least 2 classes and every class, and each fold's train and test
    splits hold every class, so no model is trained blind to a class and no UA is reported over classes never
    tested. Raises ValueError naming the missing classes and the fold."""
    names = dataset.features["label"].names
    counts = np.bincount(dataset.select_columns(["label"])["label"], minlength=len(names))
    if len(names) < 2:
        raise ValueError(f"the data have a single class {names}: emotion recognition needs at least 2.")
    missing = [name for name, count in zip(names, counts) if count == 0]
    if missing:
        hint = " Pass --class_names with the classes the manifest has." if data_args.source == "manifest" else ""
        raise ValueError(
            f"the data have no utterance of class(es) {missing} (rows per class: {dict(zip(names, counts.tolist()))}): "
            f"a model cannot learn them, and WA / UA over {len(names)} classes would claim what was never tested.{hint}"
        )
    for fold in folds:
        splits = make_fold(dataset, fold, data_args, seed=seed)
        for split in ("train", "test"):
            present = set(splits[split].select_columns(["label"])["label"])
            absent = [name for index, name in enumerate(names) if index not in present]
            if absent:
                where = "the stratified split" if fold == "split" else f"the fold that tests group {fold!r}"
                raise ValueError(
                    f"In {where}, the {split} set ({len(splits[split])} rows) has no utterance of class(es) "
                    f"{absent}: {'the model could not learn them' if split == 'train' else 'their recall, and so UA, would be undefined'}. "
                    "Choose other groups or --test_session, or add data."
                )  # fmt: skip


def check_audio_lengths(dataset, model, sampling_rate: int = 16_000) -> None:
    """Before training: every clip holds at least the speech encoder's receptive field (read from file headers, no
    decoding). Raises ValueError naming the short utterances by id and file."""
    import datasets

    from modeling_mgcma.sampling import audio_durations

    if "audio" not in dataset.column_names:
        return
    minimum = getattr(model, "mgcma", model).min_speech_samples
    samples = np.round(np.asarray(audio_durations(dataset, "audio", source="header"), dtype=np.float64) * sampling_rate)
    short = np.flatnonzero(samples < minimum)
    if len(short):
        rows = dataset.select_columns(["id", "audio"]).cast_column("audio", datasets.Audio(decode=False))
        listed = "; ".join(
            f"{rows[int(i)]['id']} ({rows[int(i)]['audio']['path']}: {int(samples[i])} samples)" for i in short[:5]
        )
        raise ValueError(
            f"{len(short)} utterance(s) are shorter than the speech encoder's receptive field ({minimum} samples at "
            f"{sampling_rate} Hz, {1000 * minimum / sampling_rate:.1f} ms): {listed}{' ...' if len(short) > 5 else ''}. "
            "Remove them from the data (or restore truncated files)."
        )


def build_training_inputs(dataset, model, processor, model_args, data_args, output_dir, device=None):
    """(the dataset as the Trainer reads it, data_collator), before it is split into a fold.

    The single place where the data meet the model. Raw mode: rows keep their audio and text, and
    `MGCMADataCollator` runs the processor per batch. Cached-feature mode (`--freeze_encoders --cache_features`):
    the frozen encoders run once per utterance of the WHOLE dataset (`modeling_mgcma.feature_cache`, cached on disk
    under a key of encoder weights, processor and data), so every fold of a cross-validation, and every later run
    with the same encoders and data, reads the same cache; `CachedFeatureCollator` pads the stored features.
    """
    from modeling_mgcma.collators import MGCMADataCollator

    if not data_args.cache_features:
        return dataset, MGCMADataCollator(processor)

    from modeling_mgcma.collators import CachedFeatureCollator
    from modeling_mgcma.feature_cache import cache_features, freeze_encoders_in_eval_mode

    # Encoders frozen and in eval mode, as the cache computes them (no dropout / SpecAugment in the features).
    freeze_encoders_in_eval_mode(model)
    cache_dir = data_args.feature_cache_dir or str(Path(output_dir) / "feature_cache")
    # encoded on the training device, each process its share of the rows
    return cache_features(model, processor, dataset, cache_dir, device=device), CachedFeatureCollator()


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


def config_kwargs(model_args, preset, label_names) -> dict:
    kwargs = {
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "gather_distributed_negatives": model_args.gather_distributed_negatives,
    }
    if preset == "paper":
        kwargs.update(PAPER_CONFIG)
    elif preset == "demo":
        kwargs.update(DEMO_CONFIG)
    else:
        kwargs.update(NEW_DATA_CONFIG)
    if model_args.ablation is not None:
        kwargs.update(MGCMAConfig.ablation_kwargs(model_args.ablation))
    if model_args.freeze_encoders:
        kwargs.update(freeze_speech_encoder=True, freeze_text_encoder=True)
    kwargs.update(parse_config_overrides(model_args.config_overrides))
    return kwargs


def build_model_and_processor(model_args, data_args, preset, label_names):
    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma import MGCMAProcessor
    from modeling_mgcma.from_scratch import speech_encoder_config, text_encoder_config, word_processor

    kwargs = config_kwargs(model_args, preset, label_names)
    speech_model, text_model = model_args.speech_model, model_args.text_model
    if speech_model is None and data_args.source != "demo":
        speech_model, text_model = PAPER_SPEECH_MODEL, PAPER_TEXT_MODEL
    if speech_model is not None:
        model = MGCMAForEmotionClassification.from_encoders(speech_model, text_model, **kwargs)
        processor = processor_from_pretrained_encoders(speech_model, text_model, max_duration=model_args.max_duration)
        return model, processor, [speech_model, text_model]

    from modeling_mgcma.data import demo_vocabulary

    processor = word_processor(demo_vocabulary(), max_duration=model_args.max_duration)
    size = dict(
        hidden_size=model_args.scratch_hidden_size,
        num_layers=model_args.scratch_num_layers,
        num_heads=model_args.scratch_num_heads,
        intermediate_size=model_args.scratch_intermediate_size,
    )
    no_dropout = DEMO_NO_DROPOUT if preset == "demo" else {"speech": {}, "text": {}, "mgcma": {}}
    config = MGCMAConfig(
        speech_config=speech_encoder_config(**size, **DEMO_SPEECH_ENCODER, **no_dropout["speech"]),
        text_config=text_encoder_config(len(processor.tokenizer), **size, **no_dropout["text"]),
        **{
            "hidden_size": size["hidden_size"],
            "num_attention_heads": size["num_heads"],
            "num_alignment_layers": size["num_layers"],
            "intermediate_size": size["intermediate_size"],
            **no_dropout["mgcma"],
            **kwargs,
        },
    )
    return MGCMAForEmotionClassification(config), processor, None


# ---------------------------------------------------------------------------------------------------------------------
# What determines a result (fingerprints), and what may happen to a folder that already holds a run
# ---------------------------------------------------------------------------------------------------------------------

FINGERPRINT_FILE = "fingerprint.json"
# TrainingArguments that change where and how a run is written, logged or uploaded, but not what it trains or measures.
NON_RESULT_TRAINING_ARGUMENTS = frozenset({
    "output_dir", "run_name", "project", "report_to", "logging_strategy", "logging_steps", "logging_first_step",
    "logging_nan_inf_filter", "log_level", "log_level_replica", "log_on_each_node", "disable_tqdm", "push_to_hub",
    "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push", "hub_revision",
    "resume_from_checkpoint", "save_total_limit", "save_on_each_node", "save_only_model", "dataloader_num_workers",
    "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "dataloader_multiprocessing_context", "skip_memory_metrics", "local_rank", "ddp_timeout", "debug", "do_train",
    "do_eval", "do_predict", "torch_empty_cache_steps", "include_num_input_tokens_seen", "enable_jit_checkpoint",
    "eval_accumulation_steps", "trackio_bucket_id", "trackio_space_id", "trackio_static_space_id",
})  # fmt: skip
# Arguments whose effect is already in the data fingerprint, or that only say where things are or what to do with them.
NON_RESULT_OTHER_ARGUMENTS = frozenset({
    "data_dir", "manifest", "demo_corpus_dir", "demo_utterances_per_session", "audio_column", "text_column",
    "label_column", "class_names", "strict_counts", "feature_cache_dir", "cross_validate", "test_session",
    "overwrite_output_dir", "torch_num_threads",
})  # fmt: skip
# Files a run writes into its folder, deleted (with checkpoint-* and fold_* folders) when --overwrite_output_dir
# replaces it. Model files, card and plots are overwritten by the new run.
RUN_RECORD_FILES = ("results.json", "results.md", FINGERPRINT_FILE, "trainer_state.json", "all_results.json",
                    "train_results.json", "eval_results.json", "test_results.json")  # fmt: skip


def _json_safe(value):
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


def _local_folder_identity(path: str | None) -> str | None:
    """For an encoder given as a local folder: a digest of its files' names and sizes (its weights changing changes
    the result); None for a Hub id."""
    import hashlib

    if path is None or not Path(path).expanduser().is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).expanduser().rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(Path(path).expanduser())}:{file.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def data_fingerprint(dataset) -> dict:
    """Identity of the data a run reads: row count, class names, and a digest of every non-audio value and of each
    audio file's size (file sizes, not paths, so a moved copy of the same corpus still matches)."""
    import hashlib

    import datasets

    digest = hashlib.sha256()
    digest.update(json.dumps(dataset.features["label"].names).encode())
    columns = [c for c in dataset.column_names if c != "audio"]
    if columns:
        table = dataset.select_columns(columns).to_dict()
        digest.update(json.dumps(table, sort_keys=True, default=str).encode())
    if "audio" in dataset.column_names:
        audio = dataset.select_columns(["audio"])
        if isinstance(audio.features["audio"], datasets.Audio):
            audio = audio.cast_column("audio", datasets.Audio(decode=False))
        for value in audio["audio"]:
            path, data = (value.get("path"), value.get("bytes")) if isinstance(value, dict) else (value, None)
            if data:
                digest.update(hashlib.sha256(data).digest())
            else:
                digest.update(f"{os.path.getsize(path) if path and os.path.isfile(path) else 'missing'};".encode())
    return {"rows": len(dataset), "labels": list(dataset.features["label"].names), "sha256": digest.hexdigest()[:16]}


def run_fingerprint(fold, data_fp, model_args, data_args, training_args, preset) -> dict:
    """Everything that determines a fold's result: the data, the model settings, the data arguments that shape the
    folds and the training arguments (not output paths, logging or Hub settings)."""
    model = {k: v for k, v in dataclasses.asdict(model_args).items() if k not in NON_RESULT_OTHER_ARGUMENTS}
    model["preset"] = preset
    for key in ("speech_model", "text_model"):
        identity = _local_folder_identity(model_args.__dict__.get(key))
        if identity is not None:
            model[key] = f"local folder, files {identity}"  # no local path: the fingerprint may be read elsewhere
    data = {k: v for k, v in dataclasses.asdict(data_args).items() if k not in NON_RESULT_OTHER_ARGUMENTS}
    training = {k: v for k, v in training_args.to_dict().items() if k not in NON_RESULT_TRAINING_ARGUMENTS}
    training["processes"] = training_args.world_size
    return _json_safe({"fold": fold, "data": data_fp, "model": model, "data_arguments": data, "training": training})


def fingerprint_differences(recorded: dict, current: dict) -> list[str]:
    """Human-readable differences, e.g. "--learning_rate 5e-05 -> 0.0001"; empty when they match."""
    differences = []
    if recorded.get("fold") != current.get("fold"):
        differences.append(f"test group {recorded.get('fold')!r} -> {current.get('fold')!r}")
    if recorded.get("data") != current.get("data"):
        old, new = recorded.get("data") or {}, current.get("data") or {}
        detail = [f"{old.get(k)} -> {new.get(k)} {k}" for k in ("rows", "labels") if old.get(k) != new.get(k)]
        differences.append("the data (" + ("; ".join(detail) or "same rows and labels, other content") + ")")
    for section in ("model", "data_arguments", "training"):
        old, new = recorded.get(section) or {}, current.get(section) or {}
        for key in sorted(set(old) | set(new)):
            if old.get(key, "<absent>") != new.get(key, "<absent>"):
                differences.append(f"--{key} {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return differences


def _checkpoint_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("checkpoint-*") if p.is_dir()) if folder.is_dir() else []


def checkpoint_problem(checkpoint) -> str | None:
    """Why a checkpoint folder cannot be resumed from (half-written when the run was killed: no trainer state,
    truncated weights or optimizer state), or None."""
    import zipfile

    from modeling_mgcma.cli import safetensors_problem

    checkpoint = Path(checkpoint)
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return f"no {state.name}"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return f"{state} is not valid JSON (truncated?)"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights:
        return "no .safetensors weights"
    for file in weights:
        problem = safetensors_problem(file)
        if problem is not None:
            return f"{file}: {problem}"
    for file in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth")]):  # torch.save writes zip archives
        if not zipfile.is_zipfile(file):
            return f"{file}: truncated or not a torch.save archive"
    return None


def last_complete_checkpoint(folder) -> str | None:
    """The newest checkpoint-N in `folder` that is complete (see `checkpoint_problem`); newer half-written ones are
    skipped with a warning naming what is wrong."""
    def step(path):
        return int(path.name.split("-")[-1]) if path.name.split("-")[-1].isdigit() else -1

    for checkpoint in sorted(_checkpoint_folders(Path(folder)), key=step, reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        logger.warning("Not resuming from %s: %s (half-written when the run stopped?).", checkpoint, problem)
    return None


def clear_run(folder: Path) -> None:
    """Delete what a run recorded in `folder` (results, fingerprint, trainer state, checkpoints, fold folders)."""
    import shutil

    for name in RUN_RECORD_FILES:
        (folder / name).unlink(missing_ok=True)
    for sub in [*_checkpoint_folders(folder), *(p for p in folder.glob("fold_*") if p.is_dir())]:
        shutil.rmtree(sub)


def prepare_run_folder(folder, fingerprint: dict, data_args, training_args, *, reuse_finished: bool) -> str:
    """What to do with a run folder: "train" (empty, or replaced under --overwrite_output_dir), "reuse" (a finished
    cross-validation fold with the same fingerprint) or "resume" (--resume_from_checkpoint, same fingerprint).
    Raises ValueError naming the folder and what differs for anything else: nothing is overwritten or reused
    silently."""
    folder = Path(folder)
    results, recorded_file = folder / "results.json", folder / FINGERPRINT_FILE
    checkpoints = _checkpoint_folders(folder)
    finished = results.is_file()
    if not (finished or checkpoints or (folder / "model.safetensors").is_file()):
        return "train"  # nothing trained here yet (at most the fingerprint of a run that died before its first save)
    if data_args.overwrite_output_dir:
        logger.warning("--overwrite_output_dir: deleting the run in %s and training it again.", folder)
        clear_run(folder)
        return "train"
    recorded = None
    if recorded_file.is_file():
        try:
            recorded = json.loads(recorded_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{recorded_file} is not readable JSON ({error}); pass --overwrite_output_dir to replace "
                             "the run.") from None  # fmt: skip
    differences = fingerprint_differences(recorded, fingerprint) if recorded is not None else None
    what = "a finished run (results.json)" if finished else (
        f"an unfinished run ({', '.join(p.name for p in checkpoints) or 'no checkpoint'})")
    fix = "pass --overwrite_output_dir to train it again, or choose another --output_dir."
    if differences:
        raise ValueError(f"{folder} holds {what} trained with other settings: {'; '.join(differences)}. "
                         f"Its results cannot stand for this run: {fix}")  # fmt: skip
    if recorded is None:
        raise ValueError(f"{folder} holds {what} without a {FINGERPRINT_FILE} (written by an older version), so "
                         f"whether it matches these settings is unknown: {fix}")  # fmt: skip
    if finished and reuse_finished:
        return "reuse"
    if training_args.resume_from_checkpoint:
        return "resume"
    raise ValueError(f"{folder} holds {what}; a new run would overwrite it. Pass --resume_from_checkpoint last to "
                     f"continue it, or {fix}")  # fmt: skip


def check_output_dir_writable(output_dir) -> None:
    """Fail now, not at the first checkpoint an epoch later, when --output_dir cannot be created or written."""
    import tempfile

    path = Path(output_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ValueError(f"--output_dir {str(output_dir)!r} is not a writable folder: {error}") from None


# ---------------------------------------------------------------------------------------------------------------------
# One fold
# ---------------------------------------------------------------------------------------------------------------------


def load_wa_ua_metric():
    import evaluate

    from modeling_mgcma.metrics import WA_UA_METRIC_PATH

    return evaluate.load(WA_UA_METRIC_PATH, keep_in_memory=True)


def make_compute_metrics(metric, num_labels):
    def compute_metrics(eval_prediction):
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        references = eval_prediction.label_ids
        missing = sorted(set(range(num_labels)) - set(np.unique(references).tolist()))
        if missing:
            logger.warning(
                "The validation set has no utterance of class id(s) %s: its UA is the mean recall over the other "
                "classes.", missing
            )
        return metric.compute(predictions=np.argmax(logits, axis=-1), references=references)

    return compute_metrics


def run_fold(fold, dataset, model_args, data_args, training_args, preset, fold_dir, callbacks=None, fingerprint=None) -> dict:
    """Train on one fold, select on validation UA, evaluate the test group once; write the model and artefacts.
    `fingerprint` (see `run_fingerprint`) is written first, so a later run can tell whether this one matches it."""
    from modeling_mgcma.plots import plot_confusion_matrix, plot_loss_curves, plot_tsne
    from modeling_mgcma.trainer import MGCMATrainer

    args = dataclasses.replace(training_args, output_dir=str(fold_dir))
    args.push_to_hub = False  # the upload is done once, by `push_model_folder`, with our model card
    label_names = dataset.features["label"].names

    if fingerprint is not None and args.process_index == 0:
        Path(fold_dir).mkdir(parents=True, exist_ok=True)
        (Path(fold_dir) / FINGERPRINT_FILE).write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")
    set_seed(args.seed)
    model, processor, base_models = build_model_and_processor(model_args, data_args, preset, label_names)
    check_audio_lengths(dataset, model, getattr(processor, "sampling_rate", 16_000))  # not at step 28, unnamed
    # the whole dataset, then the fold: one feature cache serves every fold (cached mode)
    dataset, collator = build_training_inputs(
        dataset, model, processor, model_args, data_args, training_args.output_dir, device=args.device
    )
    splits = make_fold(dataset, fold, data_args, seed=args.seed)
    logger.info("Fold %s: %s", fold, {name: len(split) for name, split in splits.items()})
    train_dataset, eval_dataset = splits["train"], splits["validation"]
    metric = load_wa_ua_metric()
    trainer = MGCMATrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,  # the validation split of the training sessions: selection never sees the test
        data_collator=collator,
        processing_class=processor,
        compute_metrics=make_compute_metrics(metric, len(label_names)),
        callbacks=callbacks,
    )

    resume = args.resume_from_checkpoint
    if resume and resume.lower() in ("true", "last"):
        resume = last_complete_checkpoint(fold_dir)
        if resume is None:
            logger.warning("No checkpoint in %s to resume from: training from the start.", fold_dir)
    train_result = trainer.train(resume_from_checkpoint=resume or None)
    trainer.save_model()  # the selected (best-on-validation) model: safetensors, config with auto_map, code files
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        from modeling_mgcma import add_pipeline_to_folder

        processor.save_pretrained(args.output_dir)
        # `custom_pipelines` + pipeline_mgcma.py, so `pipeline(model=folder_or_repo, trust_remote_code=True)` works
        add_pipeline_to_folder(args.output_dir)

    # The test group, once, with the selected model.
    trainer.collect_embeddings = True
    prediction = trainer.predict(splits["test"], metric_key_prefix="test")
    trainer.collect_embeddings = False
    logits, speech_embeds, text_embeds = prediction.predictions
    predictions = np.argmax(logits, axis=-1)
    references = prediction.label_ids
    detail = metric.compute(predictions=predictions, references=references, return_per_class=True)
    trainer.log_metrics("test", prediction.metrics)
    trainer.save_metrics("test", prediction.metrics)

    result = {
        "test_session": fold,
        "wa": detail["wa"],
        "ua": detail["ua"],
        # every class named, also those absent from the test group (recall None, support 0)
        "recall_per_class": {
            name: (detail["recall_per_class"] + [None] * len(label_names))[index] for index, name in enumerate(label_names)
        },
        "support_per_class": {
            name: (detail["support_per_class"] + [0] * len(label_names))[index] for index, name in enumerate(label_names)
        },
        "num_train": len(splits["train"]),
        "num_validation": len(splits["validation"]),
        "num_test": len(splits["test"]),
        # the folder name only (checkpoint-N): results are uploaded and must not carry local paths
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name if trainer.state.best_model_checkpoint else None,
        "best_validation_metric": {args.metric_for_best_model: trainer.state.best_metric},
        "train_runtime_s": train_result.metrics.get("train_runtime"),
        "global_steps": trainer.state.global_step,
    }
    if trainer.is_world_process_zero():
        out = Path(args.output_dir)
        title = f"test session {fold}"
        plot_confusion_matrix(predictions, references, label_names, out / "confusion_matrix.png", f"Confusion matrix, {title}")
        plot_tsne(speech_embeds, text_embeds, references, label_names, out / "tsne.png", f"t-SNE, {title}", seed=args.seed)
        plot_loss_curves(trainer.state.log_history, out / "loss_curves.png", f"Training losses, fold {fold}")
        fold_results = summarise([result])
        write_card(out, fold_results, model.config, model_args, data_args, args, preset, base_models)
        # results.json last: its presence marks the fold as finished (cross-validation skips it on rerun)
        (out / "results.json").write_text(json.dumps(fold_results, indent=2) + "\n")
    trainer.accelerator.wait_for_everyone()
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Results, card, Hub
# ---------------------------------------------------------------------------------------------------------------------


def summarise(folds: list[dict]) -> dict:
    """Per-fold WA/UA with their mean and standard deviation over folds (ddof=1, 0 for a single fold)."""
    summary = {"folds": folds, "mean": {}, "std": {}}
    for key in ("wa", "ua"):
        values = np.asarray([fold[key] for fold in folds], dtype=np.float64)
        summary["mean"][key] = float(values.mean())
        summary["std"][key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return summary


def _name(value) -> str:
    """An enum's value ("adamw_torch"), else the value itself."""
    return str(getattr(value, "value", value))


def hyperparameter_table(model_args, training_args, preset, config) -> dict:
    world = max(1, training_args.world_size)
    return {
        "preset": preset or "none",
        "encoders": f"{config.speech_config.model_type} + {config.text_config.model_type}"
        + (" (from scratch)" if model_args.speech_model is None and preset == "demo" else ""),
        "alignment width D / heads / TAM blocks": f"{config.hidden_size} / {config.num_attention_heads} / {config.num_alignment_layers}",
        "temperature tau": config.temperature,
        "loss weights CE / DA / IA": f"{config.classification_loss_weight} / {config.distribution_loss_weight} / {config.instance_loss_weight}",
        "optimizer": f"{_name(training_args.optim)}, weight decay {training_args.weight_decay}",
        "learning rate / schedule": f"{training_args.learning_rate} / {_name(training_args.lr_scheduler_type)}",
        "batch size (global)": training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * world,
        "epochs": training_args.num_train_epochs,
        "processes": world,
        "contrastive negatives": "global batch (gathered)" if world > 1 and config.gather_distributed_negatives else "local batch",
        "mixed precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no",
        "seed": training_args.seed,
        "frozen": ", ".join(n for n, f in (("speech encoder", config.freeze_speech_encoder), ("text encoder", config.freeze_text_encoder),
                                           ("conv feature encoder", config.freeze_feature_encoder)) if f) or "nothing",
    }  # fmt: skip


def validation_description(data_args) -> str:
    if data_args.validation_strategy == "speaker":
        return "one held-out speaker of the training sessions"
    return f"stratified by class, {data_args.validation_fraction:.0%} of the training sessions"


def write_card(folder, results, config, model_args, data_args, training_args, preset, base_models, with_plots=True):
    from modeling_mgcma.model_card import render_model_card

    folder = Path(folder)
    protocol = (
        "Leave-one-session-out: train on the other sessions, test on the held-out one. Inside each fold a validation "
        f"set ({validation_description(data_args)}) selects "
        f"the checkpoint with the best validation {training_args.metric_for_best_model.upper()}; the test session is "
        "evaluated once, with that checkpoint."
    )
    if results["folds"][0]["test_session"] == "split":
        protocol = "One stratified train (80 %) / validation (10 %) / test (10 %) split; the best validation checkpoint is tested once."
    plots = []
    if with_plots:
        for file, title in (("confusion_matrix.png", "confusion matrix"), ("tsne.png", "t-SNE"), ("loss_curves.png", "losses")):
            if (folder / file).is_file():
                plots.append({"file": file, "title": title})
    name = training_args.hub_model_id.split("/")[-1] if training_args.hub_model_id else folder.resolve().name
    card = render_model_card(
        results,
        config,
        model_name=name,
        data_source=data_args.source,
        hyperparameters=hyperparameter_table(model_args, training_args, preset, config),
        ablation=model_args.ablation,
        protocol=protocol,
        plots=plots,
        repo_id=training_args.hub_model_id,
        base_models=base_models,
    )
    card.save(folder / "README.md")
    return card


# What a push uploads: the model folder's own files, its card, plots and results (an allow-list: never a pickle such
# as training_args.bin, never checkpoints, fold folders, the fingerprint or anything else left in the folder).
HUB_UPLOAD_FILES = (
    "model.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json",
    "configuration_mgcma.py", "modeling_mgcma.py", "processing_mgcma.py", "pipeline_mgcma.py",
    "processor_config.json", "preprocessor_config.json", "feature_extractor_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt",
    "spiece.model", "sentencepiece.bpe.model", "README.md", "confusion_matrix.png", "tsne.png", "loss_curves.png",
    "results.json", "results.md", "all_results.json", "train_results.json", "eval_results.json", "test_results.json",
)  # fmt: skip
HUB_UPLOAD_PATTERNS = ("model-*-of-*.safetensors",)  # sharded weights
# JSON keys that hold paths: a local one is dropped before the upload (a Hub id is kept).
_PATH_KEYS = re.compile(r"(name_or_path|_path|_dir|checkpoint)$")


def hub_upload_files(folder) -> list[str]:
    """The allow-listed files present at the top of `folder`."""
    import fnmatch

    folder = Path(folder)
    return sorted(
        p.name for p in folder.iterdir()
        if p.is_file() and (p.name in HUB_UPLOAD_FILES or any(fnmatch.fnmatch(p.name, pat) for pat in HUB_UPLOAD_PATTERNS))
    )  # fmt: skip


def without_local_paths(value):
    """`value` (parsed JSON) with every path-like key (`_name_or_path`, `best_checkpoint`, ...) whose value is a
    local path removed; Hub ids stay."""
    from modeling_mgcma.model_card import is_hub_id

    if isinstance(value, dict):
        return {
            key: without_local_paths(item) for key, item in value.items()
            if not (isinstance(item, str) and _PATH_KEYS.search(str(key)) and item and not is_hub_id(item))
        }  # fmt: skip
    if isinstance(value, list):
        return [without_local_paths(item) for item in value]
    return value


def push_model_folder(folder, training_args) -> str:
    """Upload the model folder's allow-listed files (`HUB_UPLOAD_FILES`: weights, config, code, processor, card, plots,
    results) to the Hub, with local paths removed from their JSON. The repository keeps its owner's visibility default
    unless --hub_private_repo says true or false."""
    import shutil
    import tempfile

    from huggingface_hub import HfApi

    folder = Path(folder)
    names = hub_upload_files(folder)
    api = HfApi(token=training_args.hub_token)
    repo_id = training_args.hub_model_id
    api.create_repo(repo_id, private=training_args.hub_private_repo, exist_ok=True)  # None: the owner's default
    local = str(folder.resolve())
    with tempfile.TemporaryDirectory(prefix="mgcma-upload-") as staging:
        for name in names:
            source, target = folder / name, Path(staging) / name
            if name.endswith(".json") and name != "tokenizer.json":  # tokenizer.json: the vocabulary, no paths
                cleaned = without_local_paths(json.loads(source.read_text(encoding="utf-8")))
                target.write_text(json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            else:
                shutil.copyfile(source, target)
            if name.endswith((".json", ".md", ".py")) and local in target.read_text(encoding="utf-8"):
                raise ValueError(f"{source} holds the local path {local}; refusing to upload it to {repo_id}.")
        api.upload_folder(
            repo_id=repo_id,
            folder_path=staging,
            commit_message="Upload MGCMA model, processor, code and model card",
            allow_patterns=names,
        )
    return repo_id


def markdown_results(results: dict) -> str:
    from modeling_mgcma.model_card import results_table

    return "# MGCMA results\n\n" + results_table(results) + "\n\nWA = accuracy, UA = mean per-class recall (%).\n"


# ---------------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------------


def setup_logging(training_args):
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    logging.getLogger("modeling_mgcma").setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def set_torch_threads(model_args, training_args, preset):
    import torch

    threads = model_args.torch_num_threads
    if threads is None and preset == "demo" and training_args.device.type == "cpu":
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)


def explicit_argument_names(argv: list[str]) -> set[str]:
    """The argument names the user set: the keys of a single .json/.yaml file, or every `--name` / `--name=value` on
    the command line. Defaults chosen from the device (workers, precision) never override these."""
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        import yaml

        raw = yaml.safe_load(Path(argv[0]).read_text(encoding="utf-8-sig")) or {}  # JSON is YAML
        return set(raw) if isinstance(raw, dict) else set()
    return {token[2:].split("=", 1)[0] for token in argv if token.startswith("--")}


def main(argv: list[str] | None = None, callbacks=None) -> dict:
    """Run the job described by `argv` (default: the command line); returns the results summary."""
    model_args, data_args, training_args, preset = parse_arguments(sys.argv[1:] if argv is None else list(argv))
    setup_logging(training_args)
    check_output_dir_writable(training_args.output_dir)
    set_torch_threads(model_args, training_args, preset)
    from modeling_mgcma.trainer import refuse_data_parallel

    refuse_data_parallel(training_args)  # before any data is read: several GPUs need one process each (DDP)
    given = explicit_argument_names(sys.argv[1:] if argv is None else list(argv))
    if "dataloader_num_workers" not in given:  # an explicit value, 0 included, is kept
        from modeling_mgcma.trainer import apply_dataloader_defaults

        changed = apply_dataloader_defaults(training_args)
        if changed:
            logger.info("Input pipeline in DataLoader workers on %s: %s", training_args.device, changed)
    from modeling_mgcma.trainer import apply_mixed_precision

    precision_note = apply_mixed_precision(training_args, explicit=bool({"bf16", "fp16"} & given))
    if precision_note:
        logger.warning(precision_note)
    if preset == "paper" and training_args.world_size > 1 and training_args.process_index == 0:
        logger.warning(
            "Global batch %d = %d processes x %d (the paper trains with 4; the learning rate is not scaled). For the "
            "paper's batch: %s.", training_args.world_size
            * training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps,
            training_args.world_size, training_args.per_device_train_batch_size,
            f"--per_device_train_batch_size {4 // training_args.world_size}" if 4 % training_args.world_size == 0
            else "2 or 4 processes with --per_device_train_batch_size 2 or 1",
        )  # fmt: skip
    logger.warning(
        "Process rank %s, world size %s, device %s, mixed precision %s; preset %s, data %s",
        training_args.process_index, training_args.world_size, training_args.device,
        "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no", preset, data_args.source,
    )  # fmt: skip

    dataset = load_data(data_args, training_args)
    if "label" not in dataset.column_names or not hasattr(dataset.features["label"], "names"):
        raise ValueError(f"the dataset needs a ClassLabel column 'label'; its columns are {dataset.column_names}.")
    folds = fold_names(dataset, data_args)
    check_classes(dataset, folds, data_args, seed=training_args.seed)
    output_dir = Path(training_args.output_dir)

    # Before any training: each fold's folder is empty, replaced (--overwrite_output_dir), resumed, or holds a finished
    # fold with the same fingerprint (reused); anything else is refused, every stale fold named at once.
    data_fp = data_fingerprint(dataset)
    fingerprints = {fold: run_fingerprint(fold, data_fp, model_args, data_args, training_args, preset) for fold in folds}
    overall_fingerprint = run_fingerprint(folds, data_fp, model_args, data_args, training_args, preset)
    fold_dirs = {fold: output_dir / f"fold_{fold}" if data_args.cross_validate else output_dir for fold in folds}
    plans, problems = {}, []
    with training_args.main_process_first(desc="checking the output folder"):
        checks = [(None, output_dir, overall_fingerprint)] if data_args.cross_validate else []
        checks += [(fold, fold_dirs[fold], fingerprints[fold]) for fold in folds]
        for fold, folder, fingerprint in checks:
            try:
                plans[fold] = prepare_run_folder(
                    folder, fingerprint, data_args, training_args, reuse_finished=data_args.cross_validate
                )
            except ValueError as error:
                problems.append(str(error))
    if problems:
        raise ValueError("\n".join(problems))

    results = []
    for fold in folds:
        fold_dir = fold_dirs[fold]
        if plans[fold] == "reuse":
            done = fold_dir / "results.json"
            logger.warning("Fold %s already finished with the same settings (%s): reusing it.", fold, done)
            try:
                results.append(json.loads(done.read_text(encoding="utf-8"))["folds"][0])
            except (ValueError, KeyError, IndexError, TypeError) as error:
                raise ValueError(f"{done} is not a readable fold result ({error!r}); pass --overwrite_output_dir to "
                                 "train the fold again.") from None  # fmt: skip
            continue
        results.append(run_fold(fold, dataset, model_args, data_args, training_args, preset, fold_dir, callbacks,
                                fingerprint=fingerprints[fold]))  # fmt: skip

    summary = summarise(results)
    if training_args.process_index == 0:
        print(markdown_results(summary))
        for fold in results:
            print(f"test session {fold['test_session']}: WA {100 * fold['wa']:.2f} %  UA {100 * fold['ua']:.2f} %")
        if data_args.cross_validate:
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / FINGERPRINT_FILE).write_text(json.dumps(overall_fingerprint, indent=2) + "\n", encoding="utf-8")
            (output_dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
            (output_dir / "results.md").write_text(markdown_results(summary))
            config = MGCMAConfig.from_pretrained(output_dir / f"fold_{results[0]['test_session']}")
            write_card(output_dir, summary, config, model_args, data_args, training_args, preset, None, with_plots=False)
        if training_args.push_to_hub:
            repo_id = push_model_folder(output_dir, training_args)
            print(f"Pushed {output_dir} to https://huggingface.co/{repo_id}")
    return summary


if __name__ == "__main__":
    main()
