# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The model card (README.md) of a trained MGCMA model, rendered from `model_cards/mgcma_template.md` with
`huggingface_hub.ModelCard`: model-index results (WA/UA per fold and their mean), data, protocol, hyperparameters,
the ablation setting, plots, intended use, limitations and citation; and the results tables and summaries that
`run_mgcma.py` writes beside it."""

from __future__ import annotations

import importlib.resources
import os
import re
from pathlib import Path

import numpy as np
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..configuration_mgcma import PAPER_ABLATIONS
from ..data.splits import NO_GROUP_TEST_FRACTION
from .run_records import test_group_of


# The template lives in the repository's `model_cards/`, installed as the package `modeling_mgcma.model_cards`
# (package-dir in pyproject.toml), so it is found from an editable install and from a wheel alike.
TEMPLATE_PATH = Path(str(importlib.resources.files("modeling_mgcma.model_cards") / "mgcma_template.md"))

# One line per data source, used in the summary and the card data.
DATA_SOURCES = {
    "demo": "the synthetic demo corpus (modeling_mgcma.data.generate_demo_corpus)",
    "iemocap": "IEMOCAP (4 classes: angry, happy = happy + excited, sad, neutral; 5,531 utterances)",
    "manifest": "a user manifest (CSV/JSONL of audio, transcript, label)",
    "dataset": "a dataset from the Hub or a local folder (AudioFolder or save_to_disk) with audio, transcript, label",
}


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def is_hub_id(value) -> bool:
    """True for a Hub repository id ("bert-base-uncased", "facebook/wav2vec2-base"); False for a local path
    (absolute, ~, ./, or an existing file or folder), which must not appear in anything uploaded."""
    if not isinstance(value, str) or not _HUB_ID.match(value) or ".." in value:
        return False
    return not Path(value).expanduser().exists()


def ablation_description(ablation: str | None, config) -> str:
    """"S3 (...)" for a paper ablation, else the enabled modules of `config` in order."""
    order = " -> ".join(name.upper() for name in config.enabled_modules) or "none"
    if ablation is None:
        return f"modules {order}"
    return f"{ablation} of the paper ({PAPER_ABLATIONS[ablation]}): modules {order}"


def fold_title(test_group) -> str:
    """How a fold is named in tables and plots: "test group 3" (its held-out group), or for data without groups
    "stratified test split"."""
    return "stratified test split" if test_group is None else f"test group {test_group}"


def summarise(folds: list[dict]) -> dict:
    """Per-fold WA/UA with their mean and standard deviation over folds (ddof=1, 0 for a single fold)."""
    summary = {"folds": folds, "mean": {}, "std": {}}
    for key in ("wa", "ua"):
        values = np.asarray([fold[key] for fold in folds], dtype=np.float64)
        summary["mean"][key] = float(values.mean())
        summary["std"][key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return summary


def results_table(results: dict, method: str = "MGCMA") -> str:
    """Markdown table in the format of the paper's tables (| method | WA % | UA % |): one row per fold and, with more
    than one fold, the mean +- standard deviation."""
    lines = ["| method | WA % | UA % |", "|---|---|---|"]
    folds = results["folds"]
    for fold in folds:
        lines.append(f"| {method}, {fold_title(test_group_of(fold))} | {100 * fold['wa']:.2f} | {100 * fold['ua']:.2f} |")
    if len(folds) > 1:
        mean, std = results["mean"], results["std"]
        lines.append(
            f"| **{method}, mean of {len(folds)} folds** | **{100 * mean['wa']:.2f} ± {100 * std['wa']:.2f}** "
            f"| **{100 * mean['ua']:.2f} ± {100 * std['ua']:.2f}** |"
        )
    return "\n".join(lines)


def _eval_results(results: dict, dataset_name: str, dataset_type: str) -> list[EvalResult]:
    entries = []
    rows = [
        (fold_title(test_group_of(f)), "test" if test_group_of(f) is None else f"session{test_group_of(f)}", f)
        for f in results["folds"]
    ]
    if len(results["folds"]) > 1:
        rows.append((f"mean of {len(results['folds'])} folds (leave-one-session-out)", "loso-mean", results["mean"]))
    for description, split, values in rows:
        for key, name in (("wa", "WA (accuracy)"), ("ua", "UA (mean per-class recall)")):
            entries.append(
                EvalResult(
                    task_type="audio-classification",
                    task_name="Speech + text emotion recognition",
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=split,
                    metric_type="accuracy" if key == "wa" else "recall",
                    metric_name=f"{name}, {description}",
                    metric_value=round(100 * float(values[key]), 2),
                    metric_config=key,
                )
            )
    return entries


def render_model_card(
    results: dict,
    config,
    *,
    model_name: str,
    data_source: str,
    hyperparameters: dict,
    ablation: str | None = None,
    protocol: str = "",
    training_data: str = "",
    plots: list[dict] | None = None,
    repo_id: str | None = None,
    base_models: list[str] | None = None,
    template_path: str | os.PathLike = TEMPLATE_PATH,
) -> ModelCard:
    """Render the card.

    Args:
        results: ``{"folds": [{"test_group", "wa", "ua", ...}], "mean": {...}, "std": {...}}`` (fractions).
        config: the trained model's `MGCMAConfig`.
        data_source: ``"demo"``, ``"iemocap"``, ``"manifest"`` or ``"dataset"``.
        hyperparameters: name -> value, shown as a table.
        plots: ``[{"file": "confusion_matrix.png", "title": ...}]`` relative to the model folder.
        base_models: the encoders' Hub ids; local folders among them are left out of the card.
    """
    if data_source not in DATA_SOURCES:
        raise ValueError(f"data_source must be one of {sorted(DATA_SOURCES)}, got {data_source!r}.")
    if not results.get("folds"):
        raise ValueError("results has no folds: train and evaluate at least one fold before writing the card.")
    template_path = Path(template_path)
    if not template_path.is_file():
        raise ValueError(f"model card template not found at {template_path} (it ships in model_cards/, installed as modeling_mgcma.model_cards).")
    dataset_name = {"demo": "MGCMA synthetic demo corpus", "iemocap": "IEMOCAP", "manifest": "user manifest",
                    "dataset": "user dataset"}[data_source]  # fmt: skip
    dataset_type = {"demo": "mgcma-demo-corpus", "iemocap": "iemocap", "manifest": "custom", "dataset": "custom"}[data_source]
    is_demo = data_source == "demo"
    tags = ["speech-emotion-recognition", "multimodal", "audio-classification", "mgcma"]
    if is_demo:
        tags.append("demo")
    card_data = ModelCardData(
        language="en",
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="audio-classification",
        tags=tags,
        base_model=[model for model in base_models or () if is_hub_id(model)] or None,  # local folders are not shared
        metrics=["accuracy", "recall"],
        model_name=model_name,
        eval_results=_eval_results(results, dataset_name, dataset_type),
    )
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    summary = (
        f"An MGCMA speech + text emotion classifier trained on {DATA_SOURCES[data_source]}"
        + (" — **a synthetic corpus: this is a demo model**." if is_demo else ".")
    )
    hyper_lines = ["| hyperparameter | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in hyperparameters.items()]
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        summary=summary,
        is_demo=is_demo,
        results_table=results_table(results),
        protocol=protocol,
        training_data=training_data or DATA_SOURCES[data_source],
        hyperparameters="\n".join(hyper_lines),
        ablation=ablation_description(ablation, config),
        plots=plots or [],
        repo_id=repo_id or f"<your-namespace>/{model_name}",
        label_names=", ".join(label_names),
        num_labels=len(label_names),
        calibration_temperature=getattr(config, "calibration_temperature", None),
        calibration_notes=[f"{fold_title(test_group_of(fold))}: {fold['calibration_note']}" for fold in results["folds"]
                           if fold.get("calibration_note")],
    )


def markdown_results(results: dict) -> str:
    """results.md of a run: the results table with the metrics' definitions."""
    return "# MGCMA results\n\n" + results_table(results) + "\n\nWA = accuracy, UA = mean per-class recall (%).\n"


def _name(value) -> str:
    """An enum's value ("adamw_torch"), else the value itself."""
    return str(getattr(value, "value", value))


def hyperparameter_table(training_args, config, preset: str | None, from_scratch: bool = False) -> dict:
    """The card's hyperparameter table: model, losses, optimisation, processes, precision and what was frozen."""
    from ..training.trainer import training_regime

    world, regime = max(1, training_args.world_size), training_regime(training_args)
    return {
        "preset": preset or "none",
        "encoders": f"{config.speech_config.model_type} + {config.text_config.model_type}" + (" (from scratch)" if from_scratch else ""),
        "alignment width D / heads / TAM blocks": f"{config.hidden_size} / {config.num_attention_heads} / {config.num_alignment_layers}",
        "temperature tau": config.temperature,
        "loss weights CE / DA / IA": f"{config.classification_loss_weight} / {config.distribution_loss_weight} / {config.instance_loss_weight}",
        "optimizer": f"{_name(training_args.optim)}, weight decay {training_args.weight_decay}",
        "learning rate / schedule": f"{training_args.learning_rate} / {_name(training_args.lr_scheduler_type)}",
        "batch size (global)": training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * world,
        "epochs": training_args.num_train_epochs,
        "processes": world,
        "contrastive negatives": "global batch (gathered)" if world > 1 and regime["gather_distributed_negatives"] else "local batch",
        "mixed precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no",
        "seed": training_args.seed,
        "frozen": ", ".join(n for n, f in (("speech encoder", regime["freeze_speech_encoder"]), ("text encoder", regime["freeze_text_encoder"]),
                                           ("conv feature encoder", regime["freeze_feature_encoder"])) if f) or "nothing",
    }  # fmt: skip


def validation_description(strategy: str, fraction: float) -> str:
    """The card's words for the validation set of `loso_fold`'s `strategy`."""
    if strategy == "speaker":
        return "one held-out speaker of the training sessions"
    return f"stratified by class, {fraction:.0%} of the training sessions"


def write_card(folder, results, config, training_args, *, data_source, preset, ablation, validation: str,
               from_scratch=False, base_models=None, with_plots=True, validation_fraction: float = 0.1) -> ModelCard:
    """Render the card of the run in `folder` (with the plots found there) and save it as its README.md.
    `validation` is `validation_description`'s text; `validation_fraction` the validation share of data without
    groups (`data.splits.stratified_split`)."""
    folder = Path(folder)
    protocol = (
        "Leave-one-session-out: train on the other sessions, test on the held-out one. Inside each fold a validation "
        f"set ({validation}) selects the checkpoint with the best validation "
        f"{training_args.metric_for_best_model.upper()}; the test session is evaluated once, with that checkpoint."
    )
    if test_group_of(results["folds"][0]) is None:
        train = 1 - NO_GROUP_TEST_FRACTION - validation_fraction
        protocol = (f"One stratified train ({train:.0%}) / validation ({validation_fraction:.0%}) / test "
                    f"({NO_GROUP_TEST_FRACTION:.0%}) split; the best validation checkpoint is tested once.")  # fmt: skip
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
        data_source=data_source,
        hyperparameters=hyperparameter_table(training_args, config, preset, from_scratch),
        ablation=ablation,
        protocol=protocol,
        plots=plots,
        repo_id=training_args.hub_model_id,
        base_models=base_models,
    )
    card.save(folder / "README.md")
    return card


__all__ = [
    "render_model_card", "write_card", "is_hub_id", "fold_title", "summarise", "results_table", "markdown_results",
    "hyperparameter_table", "validation_description", "ablation_description", "TEMPLATE_PATH", "DATA_SOURCES",
]  # fmt: skip
