#!/usr/bin/env python
# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Train and evaluate MGCMA (speech + text emotion recognition) with leave-one-session-out cross-validation.

    python run_mgcma.py                                   # demo: synthetic corpus, small model, one fold
    accelerate launch run_mgcma.py                        # the same under accelerate (CPU, 1 GPU or N GPUs)
    python run_mgcma.py --data_dir /data/IEMOCAP_full_release --preset paper --cross_validate
    python run_mgcma.py --manifest my_data.csv --speech_model facebook/wav2vec2-base --text_model bert-base-uncased
    python run_mgcma.py config.yaml                       # every argument from one JSON/YAML file

Data: the demo corpus (generated on first use), IEMOCAP (`--data_dir`) or a CSV/JSONL manifest (`--manifest`). Folds
(`data/splits.py`): one held-out group (`--test_group k`) or all (`--cross_validate`, each in `fold_k/`). Inside a
fold, a validation set drawn from the training groups picks the best checkpoint (validation UA); the test group
is evaluated once, at the end, with that model. Presets: configs/presets/*.yaml. A folder that already holds a run is
trained again, resumed or reused only as `modeling_mgcma.experiments.run_records` allows.

Outputs (per fold): the model folder (safetensors weights, config with `auto_map`, code files, processor),
`results.json`, plots and the model card `README.md`; with `--cross_validate` also `results.json`/`results.md` over
the folds and a card with every fold.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import transformers
from accelerate import PartialState
from transformers import set_seed

from modeling_mgcma.configuration_mgcma import PAPER_ABLATIONS, MGCMAConfig
from modeling_mgcma.data.hub_dataset import load_joined_splits
from modeling_mgcma.data.iemocap import NUM_SESSIONS
from modeling_mgcma.data.splits import check_classes, held_out_groups, make_fold
from modeling_mgcma.experiments import run_records
from modeling_mgcma.experiments.cost_estimate import dry_run_estimate
from modeling_mgcma.experiments.grid import parse_ablations, run_settings_grid, save_unit_outputs
from modeling_mgcma.experiments.hub_folds import push_run_folds
from modeling_mgcma.experiments.hub_upload import push_model_folder
from modeling_mgcma.experiments.model_card import (
    fold_title,
    markdown_results,
    summarise,
    validation_description,
    write_card,
)
from modeling_mgcma.experiments.run_arguments import (
    PRESETS,
    apply_runtime_settings,
    check_data_arguments,
    check_model_arguments,
    load_preset,
    parse_config_overrides,
    read_arguments,
)
from modeling_mgcma.processing_mgcma import DEFAULT_MAX_DURATION
from modeling_mgcma.training.collators import build_training_inputs
from modeling_mgcma.training.fast_step import bucketed_collator
from modeling_mgcma.training.from_scratch import DEMO_MODEL_SIZE
from modeling_mgcma.training.sampling import check_audio_lengths
from modeling_mgcma.training.trainer import MGCMATrainingArguments


logger = logging.getLogger(__name__)

PAPER_SPEECH_MODEL = "facebook/wav2vec2-base"
PAPER_TEXT_MODEL = "bert-base-uncased"


@dataclass
class ModelArguments:
    """Which model to train, and how."""

    speech_model: str | None = field(
        default=None,
        metadata={"help": f"Speech encoder: a Hub id or local folder (default with --data_dir/--manifest: {PAPER_SPEECH_MODEL}; "
                          "the demo builds a small one from scratch)."},
    )  # fmt: skip
    text_model: str | None = field(
        default=None, metadata={"help": f"Text encoder: a Hub id or local folder (default with data: {PAPER_TEXT_MODEL})."}
    )
    preset: str | None = field(
        default=None,
        metadata={"help": f"Hyperparameter preset, one of {list(PRESETS)}: 'paper' = the paper's settings; 'demo' (the "
                          "default without --data_dir/--manifest) = a small model for the synthetic corpus. "
                          "Its values are configs/presets/<preset>.yaml; explicit arguments override them."},
    )  # fmt: skip
    ablation: str | None = field(
        default=None,
        metadata={"help": f"The paper's ablation setting, one of {sorted(PAPER_ABLATIONS)} (Table II: S1 no DAM, S2 no "
                          "TAM, S3 no IAM, S4 none; Table III: S5-S9 module orders)."},
    )  # fmt: skip
    ablations: str | None = field(default=None, metadata={"help": "The grid: 'all' or 'S0,S1,...' (modeling_mgcma.experiments.grid)."})
    grid_workers: str = field(
        default="1",
        metadata={"help": "Grid units trained at once, each its own process (docs/grid.md): N, or 'auto' (as many per "
                          "GPU as fit in its free memory at a unit's measured peak; 1 on a CPU). 1: one after another "
                          "in this process."},
    )  # fmt: skip
    grid_unit: str | None = field(
        default=None, metadata={"help": "Run only this unit of the --ablations grid, '<setting>/fold_<k>' (e.g. S0/fold_3); no tables."}
    )
    grid_tables_only: bool = field(
        default=False, metadata={"help": "Train nothing: build the grid's tables from its finished units, naming the missing ones."}
    )
    launcher: str = field(
        default="local",
        metadata={"help": "Where the grid's units run: 'local' (this machine, --grid_workers at once), 'slurm' (one SLURM "
                          "job each, through submitit) or 'submitit_local' (the same jobs as local processes)."},
    )  # fmt: skip
    slurm_partition: str | None = field(default=None, metadata={"help": "SLURM partition of the grid's jobs."})
    slurm_gpus_per_node: int = field(default=1, metadata={"help": "GPUs per job (accelerate launch --num_processes)."})
    slurm_cpus_per_task: int | None = field(default=None, metadata={"help": "CPU cores per job (DataLoader workers: this - 1)."})
    slurm_time: str = field(default="24:00:00", metadata={"help": "Time limit per job (sbatch --time); a killed job requeues and resumes."})
    slurm_array_parallelism: int | None = field(default=None, metadata={"help": "Most jobs of the array running at once."})
    slurm_folder: str | None = field(default=None, metadata={"help": "submitit's folder (job scripts, logs); default <output_dir>/slurm."})
    calibrate: bool = field(default=False, metadata={"help": "Fit a temperature on the validation split, saved in the config."})
    dry_run: bool = field(default=False, metadata={"help": "Time a few real steps, print the hours per fold / setting / total, exit."})
    freeze_encoders: bool = field(
        default=False, metadata={"help": "Freeze both encoders: sets --freeze_speech_encoder and --freeze_text_encoder."}
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "More MGCMAConfig settings, 'key=value,...' (e.g. 'temperature=0.1,pooling=max')."}
    )
    scratch_hidden_size: int = field(default=DEMO_MODEL_SIZE["hidden_size"], metadata={"help": "Demo model width."})
    scratch_num_layers: int = field(default=DEMO_MODEL_SIZE["num_layers"], metadata={"help": "Demo encoder and TAM layers."})
    scratch_num_heads: int = field(default=DEMO_MODEL_SIZE["num_heads"], metadata={"help": "Demo attention heads."})
    scratch_intermediate_size: int = field(default=DEMO_MODEL_SIZE["intermediate_size"], metadata={"help": "Demo FFN width."})
    max_duration: float | None = field(
        default=DEFAULT_MAX_DURATION,
        metadata={"help": f"Cut each clip to this many seconds (default {DEFAULT_MAX_DURATION:g}: about 1 %% of IEMOCAP's "
                          "4-class utterances are longer; the length-grouped sampler uses the same cap). 0 keeps every "
                          "clip whole."},
    )  # fmt: skip
    torch_num_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads per process for torch ops. Default: 1 for the demo on CPU (its tiny matrices gain "
                          "nothing from intra-op threads, whose synchronisation costs more than they save), torch's "
                          "default otherwise."},
    )  # fmt: skip

    def __post_init__(self):
        check_model_arguments(self)


@dataclass
class DataArguments:
    """Which data to train and evaluate on."""

    data_dir: str | None = field(default=None, metadata={"help": "IEMOCAP_full_release/ (your licensed local copy)."})
    manifest: str | None = field(default=None, metadata={"help": "A .csv or .jsonl manifest of audio, text, label rows."})
    dataset_name: str | None = field(default=None, metadata={"help": "Hub id, AudioFolder or save_to_disk folder."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    dataset_splits: str | None = field(default=None, metadata={"help": "The dataset's splits to use, 'a,b' (default: all)."})
    iemocap_config: str = field(default="4class", metadata={"help": "IEMOCAP: '4class' (the paper's) or 'full' (all labels)."})
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
    test_group: int | None = field(
        default=None,
        metadata={"help": f"Run the one fold that holds out this group: an IEMOCAP session 1-{NUM_SESSIONS}, or with "
                          "--manifest / --dataset_name the k-th value of --group_column in sorted order (default: the "
                          "last). --test_session is read as a synonym."},
    )  # fmt: skip
    cross_validate: bool = field(default=False, metadata={"help": "Run every fold (leave one group out)."})
    strict_counts: bool = field(
        default=True,
        metadata={"help": "IEMOCAP: a missing session or 4-class counts that differ from the full "
                          "release are errors; false makes them warnings (e.g. for a partial or modified copy)."},
    )  # fmt: skip
    validation_strategy: str = field(
        default="stratified", metadata={"help": "Validation set from the training sessions: 'stratified' or 'speaker'."}
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
                          "--freeze_encoders; see modeling_mgcma.training.feature_cache)."},
    )  # fmt: skip
    feature_cache_dir: str | None = field(default=None, metadata={"help": "Default: <output_dir>/feature_cache/."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace a run already in --output_dir (its results, checkpoints and folds are deleted and "
                          "trained again). Without it, a run into a folder that holds one is refused, except to reuse "
                          "cross-validation folds trained with the same settings or to --resume_from_checkpoint."},
    )  # fmt: skip

    def __post_init__(self):
        check_data_arguments(self)

    @property
    def source(self) -> str:
        return "iemocap" if self.data_dir else "manifest" if self.manifest else "dataset" if self.dataset_name else "demo"


def read_run_arguments(argv: list[str]):
    """(model_args, data_args, training_args, preset, given): see `modeling_mgcma.experiments.run_arguments.read_arguments`."""
    model_args, data_args, training_args, preset, given = read_arguments(
        argv, (ModelArguments, DataArguments, MGCMATrainingArguments)
    )
    if model_args.freeze_encoders:
        training_args.freeze_speech_encoder = training_args.freeze_text_encoder = True
    return model_args, data_args, training_args, preset, given


def parse_arguments(argv: list[str]):
    """(model_args, data_args, training_args, preset) of `argv`."""
    return read_run_arguments(argv)[:4]


def load_data(data_args, training_args):
    """The whole dataset with `audio`, `text`, `label` (ClassLabel) and, when folds exist, a `session` column."""
    from modeling_mgcma.data import generate_demo_corpus, load_iemocap, load_manifest

    if data_args.source == "iemocap":
        return load_iemocap(data_args.data_dir, config=data_args.iemocap_config, strict_counts=data_args.strict_counts)
    labels = [name.strip() for name in data_args.class_names.split(",")] if data_args.class_names else None
    if data_args.source == "dataset":  # its splits joined; folds by --group_column, as for manifests
        folds_asked = data_args.cross_validate or data_args.test_group is not None  # the column is checked there
        return load_joined_splits(data_args.dataset_name, data_args.dataset_config_name, data_args.dataset_splits, labels=labels,
                                  group_column=data_args.group_column if folds_asked else None,
                                  **{k: getattr(data_args, k) for k in ("audio_column", "text_column", "label_column")})  # fmt: skip
    if data_args.source == "manifest":
        return load_manifest(data_args.manifest, data_args.audio_column, data_args.text_column, data_args.label_column, labels)
    root = generate_demo_corpus(
        data_args.demo_corpus_dir, utterances_per_session=data_args.demo_utterances_per_session, voice=data_args.demo_voice
    )
    return load_iemocap(root, strict_counts=False)  # the demo corpus is smaller than the real release


def fold_splits(dataset, fold, data_args, seed):
    """DatasetDict(train, validation, test) of one fold (`fold` None: the stratified split of data without groups)."""
    return make_fold(
        dataset, fold, "session" if data_args.source not in ("manifest", "dataset") else data_args.group_column,
        validation=data_args.validation_strategy, validation_fraction=data_args.validation_fraction, seed=seed,
        max_samples={"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
                     "test": data_args.max_eval_samples},
    )  # fmt: skip


def checked_validation(fold, splits, data_args):
    """`splits`, once its validation split is known to hold utterances (model selection and --calibrate read it)."""
    if len(splits["validation"]) == 0:
        where = "the stratified split" if fold is None else f"the fold that tests group {fold!r}"
        raise ValueError(
            f"--validation_fraction {data_args.validation_fraction:g} leaves the validation split of {where} empty "
            f"({len(splits['train'])} training utterances): raise it, or add data."
        )
    return splits


def check_max_duration(model_args, data_args) -> None:
    """--max_duration must hold the speech encoder's receptive field, or every clip becomes too short to encode; read
    from the encoder's config alone (no weights), before any model is built."""
    from modeling_mgcma.processing_mgcma import TARGET_SAMPLING_RATE
    from modeling_mgcma.training.sampling import receptive_field_samples

    if model_args.max_duration is None:
        return
    if model_args.speech_model is None and data_args.source == "demo":
        from modeling_mgcma.training.from_scratch import demo_config

        speech_config = demo_config(8, hidden_size=model_args.scratch_hidden_size, num_layers=model_args.scratch_num_layers,
                                    num_heads=model_args.scratch_num_heads,
                                    intermediate_size=model_args.scratch_intermediate_size).speech_config  # fmt: skip
    else:
        from transformers import AutoConfig

        try:
            speech_config = AutoConfig.from_pretrained(model_args.speech_model or PAPER_SPEECH_MODEL, local_files_only=True)
        except (OSError, ValueError):  # not on this machine yet: the encoder's own loading reports it
            return
    field = receptive_field_samples(speech_config)
    if field is not None and model_args.max_duration * TARGET_SAMPLING_RATE < field:
        raise ValueError(
            f"--max_duration {model_args.max_duration:g} is below the speech encoder's receptive field ({field} samples "
            f"= {1000 * field / TARGET_SAMPLING_RATE:.1f} ms at {TARGET_SAMPLING_RATE} Hz): no clip could be encoded."
        )


def config_kwargs(model_args, preset, label_names) -> dict:
    """MGCMAConfig values: labels, the preset file's `model_config`, the ablation, then --config_overrides."""
    kwargs = {
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        **load_preset(preset)[1],
    }
    if model_args.ablation is not None:
        kwargs.update(MGCMAConfig.ablation_kwargs(model_args.ablation))
    kwargs.update(parse_config_overrides(model_args.config_overrides))
    return kwargs


def build_model_and_processor(model_args, data_args, preset, label_names):
    """(model, processor, the encoders' names or None): pretrained encoders, or the demo model from scratch."""
    from modeling_mgcma import MGCMAForEmotionClassification, MGCMAProcessor
    from modeling_mgcma.training.from_scratch import demo_config, word_processor

    kwargs = config_kwargs(model_args, preset, label_names)
    speech_model, text_model = model_args.speech_model, model_args.text_model
    if speech_model is None and data_args.source != "demo":
        speech_model, text_model = PAPER_SPEECH_MODEL, PAPER_TEXT_MODEL
    if speech_model is not None:
        model = MGCMAForEmotionClassification.from_encoders(speech_model, text_model, **kwargs)
        processor = MGCMAProcessor.from_encoders(speech_model, text_model, max_duration=model_args.max_duration)
        return model, processor, [speech_model, text_model]

    from modeling_mgcma.data import demo_vocabulary

    processor = word_processor(demo_vocabulary(), max_duration=model_args.max_duration)
    config = demo_config(
        len(processor.tokenizer), hidden_size=model_args.scratch_hidden_size, num_layers=model_args.scratch_num_layers,
        num_heads=model_args.scratch_num_heads, intermediate_size=model_args.scratch_intermediate_size,
        no_dropout=preset == "demo", **kwargs,
    )  # fmt: skip
    return MGCMAForEmotionClassification(config), processor, None


def card_settings(model_args, data_args, preset) -> dict:
    """What `write_card` needs from the arguments, beside the results, config and training arguments."""
    return {
        "data_source": data_args.source, "preset": preset, "ablation": model_args.ablation, "validation_fraction": data_args.validation_fraction,
        "validation": validation_description(data_args.validation_strategy, data_args.validation_fraction),
        "from_scratch": model_args.speech_model is None and data_args.source == "demo",  # build_model_and_processor
    }  # fmt: skip


def run_fold(fold, dataset, model_args, data_args, training_args, preset, fold_dir, callbacks=None, fingerprint=None, estimate_for=None):
    """Train on one fold, select on validation UA, test once; write the model and artefacts. `fingerprint` (see
    `run_fingerprint`) is written first; `estimate_for` = (settings, folds): time a few steps, return `dry_run_estimate`'s
    (cost, timing, table). The main process holds the fold's folder (`run_records.run_folder_lock`) while it runs."""
    with run_records.run_folder_lock(fold_dir, enabled=training_args.process_index == 0 and estimate_for is None):
        return _run_fold(fold, dataset, model_args, data_args, training_args, preset, fold_dir, callbacks, fingerprint,
                         estimate_for)  # fmt: skip


def _run_fold(fold, dataset, model_args, data_args, training_args, preset, fold_dir, callbacks, fingerprint, estimate_for):
    from modeling_mgcma import add_pipeline_to_folder
    from modeling_mgcma.experiments.plots import plot_confusion_matrix, plot_loss_curves, plot_tsne
    from modeling_mgcma.training.calibration import calibrate_with_trainer, calibration_report
    from modeling_mgcma.training.metrics.compute_metrics import load_wa_ua_metric, make_compute_metrics
    from modeling_mgcma.training.trainer import MGCMATrainer

    args = dataclasses.replace(training_args, output_dir=str(fold_dir))
    args.push_to_hub = False  # uploaded once, by `push_model_folder`, with the card written here
    label_names = dataset.features["label"].names
    if fingerprint is not None and args.process_index == 0:
        run_records.write_fingerprint(fold_dir, fingerprint)
    set_seed(args.seed)
    model, processor, base_models = build_model_and_processor(model_args, data_args, preset, label_names)
    check_audio_lengths(dataset, model, processor.sampling_rate)  # a clip too short fails here, named, not mid-training
    cache_dir = data_args.feature_cache_dir or str(Path(training_args.output_dir) / "feature_cache")  # serves every fold
    dataset, collator = build_training_inputs(dataset, model, processor, data_args.cache_features and cache_dir, args.device)
    # padding buckets from the whole dataset, before the fold split: the same batch shapes in every fold and grid unit
    collator = bucketed_collator(collator, model, dataset, args)
    splits = fold_splits(dataset, fold, data_args, seed=args.seed)
    logger.info("Fold %s: %s", fold, {name: len(split) for name, split in splits.items()})
    metric = load_wa_ua_metric()
    trainer = MGCMATrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],  # the validation split of the training sessions: selection never sees the test
        data_collator=collator,
        processing_class=processor,
        compute_metrics=make_compute_metrics(metric, len(label_names)),
        callbacks=callbacks,
    )
    if estimate_for is not None:
        return dry_run_estimate(trainer, *estimate_for, test_utterances_per_fold=len(splits["test"]))

    resume = args.resume_from_checkpoint
    if resume and resume.lower() in ("true", "last"):
        resume = run_records.last_complete_checkpoint(fold_dir)
        if resume is None:
            logger.warning("No checkpoint in %s to resume from: training from the start.", fold_dir)
    train_result = trainer.train(resume_from_checkpoint=resume or None)
    calibration = None
    if model_args.calibrate:  # T from the validation split of the training sessions, saved in config.json
        calibration = calibrate_with_trainer(trainer, splits["validation"])
    trainer.save_model()  # the selected (best-on-validation) model: safetensors, config with auto_map, code files
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        processor.save_pretrained(args.output_dir)
        # `custom_pipelines` + pipeline_mgcma.py, so `pipeline(model=folder_or_repo, trust_remote_code=True)` works
        add_pipeline_to_folder(args.output_dir)

    trainer.collect_embeddings = True  # the test group, once, with the selected model
    prediction = trainer.predict(splits["test"], metric_key_prefix="test")
    trainer.collect_embeddings = False
    logits, speech_embeds, text_embeds = prediction.predictions
    predictions, references = np.argmax(logits, axis=-1), prediction.label_ids
    detail = metric.compute(predictions=predictions, references=references, return_per_class=True)
    trainer.log_metrics("test", prediction.metrics)
    trainer.save_metrics("test", prediction.metrics)

    result = run_records.fold_result(
        fold, detail, label_names, splits, trainer.state, train_result.metrics, args.metric_for_best_model
    )
    result.update(calibration_report(logits, references, model.config.calibration_temperature))
    if calibration is not None and calibration.kept_default:  # the card says why T = 1 was kept
        result["calibration_note"] = (f"T = 1 kept instead of the fitted T = {calibration.fitted_temperature:.4g}: "
                                      f"{calibration.kept_default}")  # fmt: skip
    if trainer.is_world_process_zero():
        out, title = Path(args.output_dir), fold_title(fold)
        plot_confusion_matrix(predictions, references, label_names, out / "confusion_matrix.png", f"Confusion matrix, {title}")
        plot_tsne(speech_embeds, text_embeds, references, label_names, out / "tsne.png", f"t-SNE, {title}", seed=args.seed)
        plot_loss_curves(trainer.state.log_history, out / "loss_curves.png", f"Training losses, {title}")
        fold_results = summarise([result])
        write_card(out, fold_results, model.config, args, base_models=base_models, **card_settings(model_args, data_args, preset))
        # last: results.json marks a finished fold (cross-validation reuses it), test_predictions.json a grid unit
        run_records.atomic_write_text(out / "results.json", json.dumps(fold_results, indent=2) + "\n")
        test_ids = np.asarray(splits["test"]["id"])[trainer.prediction_order(splits["test"])].tolist()  # predictions' order
        save_unit_outputs(out, test_ids, logits, references, model.config.calibration_temperature, speech_embeds, text_embeds)
    trainer.accelerator.wait_for_everyone()
    return result

# What each grid unit's process runs (`--grid_workers`, `--launcher`): this script, with `--grid_unit`.
GRID_UNIT_SCRIPT = Path(__file__).resolve()
# Arguments of the process that launches the units, not passed on to them.
LAUNCH_ARGUMENTS = ("grid_workers", "launcher", "slurm_partition", "slurm_gpus_per_node", "slurm_cpus_per_task",
                    "slurm_time", "slurm_array_parallelism", "slurm_folder")  # fmt: skip
# One unit's own arguments: the launch arguments only apply to a grid (--ablations).
SINGLE_UNIT = {"grid_workers": "1", "grid_unit": None, "grid_tables_only": False, "launcher": "local"}
# Set by `grid_dry_run` for the unit processes it times at once: where each writes its median step time.
DRY_RUN_RECORD_VARIABLE = "MGCMA_DRY_RUN_RECORD"


def unit_command(argv, unit, overrides: dict, launch_prefix=()) -> list[str]:
    """The command that runs one grid unit in its own process: `launch_prefix` (e.g. accelerate launch), this script,
    the grid's arguments without the launcher's own, `--grid_unit` and `overrides`."""
    from modeling_mgcma.experiments import grid_launch

    args = grid_launch.without_arguments(argv, LAUNCH_ARGUMENTS) if not (len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml"))) else argv
    overrides = {"grid_unit": grid_launch.unit_selector(unit), **overrides}
    if len(args) == 1 and args[0].endswith((".json", ".yaml", ".yml")):
        overrides.update(dict.fromkeys((n for n in LAUNCH_ARGUMENTS if n != "slurm_gpus_per_node"), None))
        overrides.update(grid_workers="1", launcher="local")
        overrides = {k: v for k, v in overrides.items() if v is not None}
    return [*launch_prefix, str(GRID_UNIT_SCRIPT), *grid_launch.unit_arguments(args, overrides, unit.directory)]


def local_unit_overrides(training_args, concurrent: int) -> dict:
    """DataLoader settings of one of `concurrent` units on this machine: this run's workers divided among them."""
    from modeling_mgcma.experiments.grid_launch import dataloader_workers_per_unit

    workers = dataloader_workers_per_unit(training_args.dataloader_num_workers, concurrent)
    overrides = {"dataloader_num_workers": workers}
    if workers > 0:
        overrides["dataloader_persistent_workers"] = training_args.dataloader_persistent_workers
        if training_args.dataloader_prefetch_factor:
            overrides["dataloader_prefetch_factor"] = training_args.dataloader_prefetch_factor
    return overrides


def grid_dry_run(argv, cost, timing, model_args, first_fold) -> str:
    """The dry run's concurrency lines: with `--grid_workers N` (N > 1) on this machine, N unit processes time their
    steps at once, so the figure is measured; otherwise only N=1 is."""
    import subprocess

    from modeling_mgcma.experiments import grid_launch
    from modeling_mgcma.experiments.cost_estimate import format_concurrency_plan

    workers = grid_launch.parse_grid_workers(model_args.grid_workers)
    concurrent = workers if isinstance(workers, int) else 1
    measured = {1: timing.median}
    launcher = model_args.launcher
    if launcher == "local" and concurrent > 1:
        # the first unit's dry run, `concurrent` times at once (each in its own scratch folder, nothing trained)
        selector = f"{cost.settings[0]}/fold_{first_fold}"
        with tempfile.TemporaryDirectory() as scratch:
            processes = []
            for index in range(concurrent):
                env = {**os.environ, DRY_RUN_RECORD_VARIABLE: str(Path(scratch) / f"{index}.json")}
                command = [sys.executable, str(GRID_UNIT_SCRIPT), *grid_launch.without_arguments(argv, LAUNCH_ARGUMENTS),
                           "--grid_unit", selector]  # fmt: skip
                processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            codes = [process.wait() for process in processes]
            records = [Path(scratch) / f"{i}.json" for i in range(concurrent)]
            steps = [json.loads(r.read_text())["seconds_per_step"] for r in records if r.is_file()]
        if len(steps) == concurrent and not any(codes):
            measured[concurrent] = float(np.mean(steps))
        else:
            logger.warning("Timing %d units at once failed (exit statuses %s): only N=1 is measured.", concurrent, codes)
    gpus = model_args.slurm_gpus_per_node if launcher != "local" else max(1, torch_gpu_count())
    return format_concurrency_plan(cost, concurrent=concurrent, gpus=gpus, launcher=launcher,
                                   array_parallelism=model_args.slurm_array_parallelism, seconds_per_step=measured)  # fmt: skip


def torch_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_grid_command(argv, dataset, folds, settings, model_args, data_args, training_args, preset, callbacks):
    """`--ablations`: the whole grid in this process (one unit after another), one unit (`--grid_unit`), the tables
    of finished units (`--grid_tables_only`), or every unit in its own process (`--grid_workers N`, `--launcher`),
    the tables and the Hub push then done once here, after every unit has ended."""
    import time

    from modeling_mgcma.experiments import grid_launch
    from modeling_mgcma.experiments.grid import grid_units, plan_grid, write_grid_report

    output_dir, main = Path(training_args.output_dir), training_args.process_index == 0
    data_fp, label_names = run_records.data_fingerprint(dataset), dataset.features["label"].names
    unit_args = lambda setting: dataclasses.replace(model_args, ablation=setting, ablations=None, **SINGLE_UNIT)  # noqa: E731
    # a unit that was killed or preempted resumes from its newest complete checkpoint: --resume_from_checkpoint last
    resuming = dataclasses.replace(training_args, resume_from_checkpoint=training_args.resume_from_checkpoint or "last")

    def run_unit(setting, fold, directory, fingerprint):
        args = resuming if run_records.last_complete_checkpoint(directory) else training_args
        return run_fold(fold, dataset, unit_args(setting), data_args, args, preset, directory, callbacks, fingerprint)

    encoders = run_records.encoder_identities(model_args)  # the same encoders for every unit: hashed once
    fingerprint_of = lambda s, f: run_records.run_fingerprint(f, data_fp, unit_args(s), data_args, training_args, preset,  # noqa: E731
                                                              encoders)  # fmt: skip
    prepare = lambda d, fp: run_records.prepare_run_folder(d, fp, data_args, resuming, reuse_finished=False)  # noqa: E731
    grid = dict(label_names=label_names, seed=training_args.seed, run_unit=run_unit, fingerprint_of=fingerprint_of,
                prepare=prepare, planning=training_args.main_process_first)  # fmt: skip
    units = grid_units(output_dir, settings, folds)
    workers = grid_launch.parse_grid_workers(model_args.grid_workers)

    if model_args.grid_unit is not None:  # one unit, in this process; the tables are the launcher's
        unit = grid_launch.select_unit(units, model_args.grid_unit)
        start, cuda = time.perf_counter(), training_args.device.type == "cuda"
        if cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        outcome = run_settings_grid(output_dir, settings, folds, only=[unit.key], **grid)["outcome"][unit.key]
        if main and outcome != "reused":
            grid_launch.write_unit_record(unit.directory, {
                "unit": grid_launch.unit_selector(unit), "outcome": outcome, "seconds": time.perf_counter() - start,
                "peak_gpu_memory_bytes": torch.cuda.max_memory_reserved() if cuda else None,
            })  # fmt: skip
        return {"outcome": {grid_launch.unit_selector(unit): outcome}}

    if model_args.grid_tables_only or workers != 1 or model_args.launcher != "local":
        if training_args.world_size > 1:
            raise ValueError(f"--grid_workers {model_args.grid_workers} / --launcher {model_args.launcher} start each "
                             "unit's own processes: run `python run_mgcma.py ...`, not under accelerate launch or "
                             "torchrun.")  # fmt: skip
        plans = plan_grid(units, fingerprint_of=lambda u: fingerprint_of(u.setting, u.fold), prepare=prepare)
        pending = [unit for unit in units if plans[unit.key][0] != "reuse"]
        failed = [(grid_launch.unit_selector(u), "not finished (run the grid without --grid_tables_only)")
                  for u in pending] if model_args.grid_tables_only else []  # fmt: skip
        if pending and not model_args.grid_tables_only:
            failed = launch_units(argv, pending, model_args, training_args, units)
        report = write_grid_report(output_dir, settings, label_names, seed=training_args.seed,
                                   folds=sorted({unit.directory.name for unit in units}))  # fmt: skip
        print(Path(report["files"]["tables_md"]).read_text(encoding="utf-8"))
        pushing = training_args.push_to_hub and not model_args.grid_tables_only
        if failed:
            raise grid_launch.GridUnitsFailed(failed, "The tables show their cells as missing"
                                              + ("; nothing was pushed to the Hub." if pushing else "."))  # fmt: skip
        if pushing:
            print(f"Pushed the grid's folds: {push_run_folds(training_args, output_dir, tables=report['tables'])}")
        return report["tables"]

    result = run_settings_grid(output_dir, settings, folds, write_report=main, **grid)  # rank 0 empties stale folders first
    if main and training_args.push_to_hub:
        print(f"Pushed the grid's folds: {push_run_folds(training_args, output_dir, tables=result['tables'])}")
    return result.get("tables", {})


def launch_units(argv, pending, model_args, training_args, units) -> list[tuple[str, str]]:
    """Run `pending` units each in its own process (`--launcher`); returns (unit, why) for each that failed."""
    from modeling_mgcma.experiments import grid_launch
    from modeling_mgcma.experiments.evaluation import PREDICTIONS_FILE

    workers = grid_launch.parse_grid_workers(model_args.grid_workers)
    if model_args.launcher == "local":
        device = training_args.device.type
        free = None
        if device == "cuda":
            import torch

            free = torch.cuda.mem_get_info()[0]  # before any unit starts
        gpus = max(1, torch_gpu_count())
        chosen = {}

        def limit() -> int:
            if workers != "auto":
                return workers
            count, why = grid_launch.auto_grid_workers(device, pending_units=len(pending), free_memory_bytes=free,
                                                       unit_peak_bytes=grid_launch.measured_peak_memory(units), gpus=gpus)  # fmt: skip
            if chosen.get("count") != count:
                logger.warning("--grid_workers auto: %s.", why)
                chosen["count"] = count
            return count

        if device == "cuda" and (workers == "auto" or workers > gpus):
            logger.warning("Several units share a GPU: start the CUDA MPS daemon (nvidia-cuda-mps-control -d) so their "
                           "kernels run side by side instead of time-sliced (docs/grid.md).")  # fmt: skip
        command_of = lambda unit: unit_command(argv, unit, local_unit_overrides(training_args, max(1, -(-limit() // gpus))),  # noqa: E731
                                               launch_prefix=[sys.executable])  # fmt: skip
        runs = grid_launch.run_units_concurrently(pending, command_of, limit)
    else:
        gpus_per_job = model_args.slurm_gpus_per_node
        prefix = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(gpus_per_job),
                  *(["--multi_gpu"] if gpus_per_job > 1 else [])]  # fmt: skip
        parameters = {"slurm_partition": model_args.slurm_partition, "slurm_gpus_per_node": gpus_per_job,
                      "slurm_cpus_per_task": model_args.slurm_cpus_per_task, "slurm_time": model_args.slurm_time,
                      "slurm_array_parallelism": model_args.slurm_array_parallelism, "tasks_per_node": 1, "nodes": 1,
                      # the same limit for submitit's local executor, which ignores slurm_time (its own default: 2 min)
                      "timeout_min": grid_launch.slurm_time_minutes(model_args.slurm_time)}  # fmt: skip
        folder = model_args.slurm_folder or str(Path(training_args.output_dir) / "slurm")
        runs = grid_launch.submit_units(pending, lambda unit: unit_command(argv, unit, {}, launch_prefix=prefix),
                                        folder=folder, cluster="local" if model_args.launcher == "submitit_local" else "slurm",
                                        parameters=parameters)  # fmt: skip
    failed = []
    for run in runs:
        if run.failed:
            failed.append((grid_launch.unit_selector(run.unit), f"exit status {run.returncode}, log {run.log}"))
        elif not (run.unit.directory / PREDICTIONS_FILE).is_file():
            failed.append((grid_launch.unit_selector(run.unit), f"ended without {PREDICTIONS_FILE}, log {run.log}"))
    return failed


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


def main(argv: list[str] | None = None, callbacks=None) -> dict:
    """Run the job described by `argv` (default: the command line); returns the results summary."""
    argv = sys.argv[1:] if argv is None else list(argv)
    model_args, data_args, training_args, preset, given = read_run_arguments(argv)
    setup_logging(training_args)
    run_records.check_output_dir_writable(training_args.output_dir)
    apply_runtime_settings(model_args, training_args, preset, given, data_args.source)  # before any data is read
    writes = not model_args.dry_run
    if writes:
        run_records.check_folder_kind(training_args.output_dir, grid=bool(model_args.ablations))
    # one run per folder at a time: the main process holds it (a second run is refused naming the holder); a grid
    # unit started by the grid's launcher (--grid_unit) runs under the launcher's hold and locks its own unit folder
    holds = writes and training_args.process_index == 0 and model_args.grid_unit is None
    with run_records.run_folder_lock(training_args.output_dir, enabled=holds):
        return run_job(model_args, data_args, training_args, preset, given, callbacks, argv)


def run_job(model_args, data_args, training_args, preset, given, callbacks=None, argv=()) -> dict:
    """`main` once the arguments are read and the output folder is held."""
    check_max_duration(model_args, data_args)
    dataset = load_data(data_args, training_args)
    if "label" not in dataset.column_names or not hasattr(dataset.features["label"], "names"):
        raise ValueError(f"the dataset needs a ClassLabel column 'label'; its columns are {dataset.column_names}.")
    manifest = data_args.source in ("manifest", "dataset")
    folds = held_out_groups(
        dataset, data_args.group_column if manifest else "session", all_groups=data_args.cross_validate,
        test_group=data_args.test_group, by_position=manifest,
        required=manifest and (data_args.cross_validate or data_args.test_group is not None or "group_column" in given),
    )  # fmt: skip
    check_classes(
        dataset, ((fold, checked_validation(fold, fold_splits(dataset, fold, data_args, training_args.seed), data_args))
                  for fold in folds),
        hint=" Pass --class_names with the classes the manifest has." if manifest else "",
    )  # fmt: skip

    output_dir, settings = Path(training_args.output_dir), model_args.ablations and parse_ablations(model_args.ablations)
    unit_args = lambda setting: dataclasses.replace(model_args, ablation=setting, ablations=None, **SINGLE_UNIT)  # noqa: E731
    if model_args.dry_run:  # the first fold's trainer at the run's settings, timed, multiplied out; nothing trained
        with tempfile.TemporaryDirectory() as scratch:  # the estimate is printed
            cost, timing, table = run_fold(folds[0], dataset, unit_args((settings or [model_args.ablation])[0]), data_args,
                                           training_args, preset, scratch, estimate_for=(settings or [model_args.ablation or "S0"], len(folds)))  # fmt: skip
        if os.environ.get(DRY_RUN_RECORD_VARIABLE):  # a unit process timed beside others (`grid_dry_run`)
            Path(os.environ[DRY_RUN_RECORD_VARIABLE]).write_text(json.dumps({"seconds_per_step": timing.median}))
        if settings and not model_args.grid_unit and training_args.process_index == 0:
            plan = grid_dry_run(argv, cost, timing, model_args, folds[0])
            print(plan)
            table += "\n" + plan
        return {"dry_run": table}
    if settings:  # the grid: each (setting, fold) a unit, reused when finished with the same fingerprint
        return run_grid_command(argv, dataset, folds, settings, model_args, data_args, training_args, preset, callbacks)

    # Before any training: each fold's folder is empty, replaced (--overwrite_output_dir), resumed, or holds a finished
    # fold with the same fingerprint (reused); anything else is refused, every stale fold named at once.
    fingerprints = run_records.fold_fingerprints(dataset, folds, model_args, data_args, training_args, preset)
    fold_dirs = {fold: output_dir / run_records.fold_folder_name(fold) for fold in folds}  # never a path of the value
    if not data_args.cross_validate:
        fold_dirs = dict.fromkeys(folds, output_dir)
    resume = training_args.resume_from_checkpoint
    if resume and resume.lower() not in ("true", "last"):  # a checkpoint folder (single runs only: check_arguments)
        run_records.check_resume_checkpoint(resume, fingerprints[folds[0]])
    with training_args.main_process_first(desc="checking the output folder"):
        plans = run_records.plan_run_folders(
            {**({run_records.ALL_FOLDS: output_dir} if data_args.cross_validate else {}), **fold_dirs}, fingerprints, data_args,
            training_args, reuse_finished=data_args.cross_validate,
        )  # fmt: skip

    results = []
    for fold in folds:
        if plans[fold] == "reuse":
            logger.warning("Fold %s already finished with the same settings (%s): reusing it.", fold, fold_dirs[fold])
            results.append(run_records.finished_fold_result(fold_dirs[fold]))
        else:
            results.append(run_fold(fold, dataset, model_args, data_args, training_args, preset, fold_dirs[fold],
                                    callbacks, fingerprint=fingerprints[fold]))  # fmt: skip

    summary = summarise(results)
    if training_args.process_index == 0:
        print(markdown_results(summary))
        for fold in results:
            print(f"{fold_title(run_records.test_group_of(fold))}: WA {100 * fold['wa']:.2f} %  UA {100 * fold['ua']:.2f} %")
        if data_args.cross_validate:
            run_records.write_fingerprint(output_dir, fingerprints[run_records.ALL_FOLDS])
            run_records.atomic_write_text(output_dir / "results.json", json.dumps(summary, indent=2) + "\n")
            run_records.atomic_write_text(output_dir / "results.md", markdown_results(summary))
            config = MGCMAConfig.from_pretrained(fold_dirs[folds[0]])
            write_card(output_dir, summary, config, training_args, with_plots=False, **card_settings(model_args, data_args, preset))
        if training_args.push_to_hub and data_args.cross_validate:  # every fold on its own branch, the card on main
            print(f"Pushed the folds: {push_run_folds(training_args, output_dir, results=summary, fold_dirs=fold_dirs)}")
        elif training_args.push_to_hub:
            print(f"Pushed {output_dir} to https://huggingface.co/{push_model_folder(output_dir, training_args)}")
    return summary


if __name__ == "__main__":
    from modeling_mgcma.experiments.grid_launch import GridUnitsFailed

    try:
        main()
    except GridUnitsFailed as failure:  # the tables are written; say which units to rerun, exit non-zero
        logger.error("%s", failure)
        sys.exit(1)
    PartialState().destroy_process_group()  # every rank is past its last collective: close the group cleanly
