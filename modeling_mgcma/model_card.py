# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The model card (README.md) of a trained MGCMA model, rendered from `model_cards/mgcma_template.md` with
`huggingface_hub.ModelCard`: model-index results (WA/UA per fold and their mean), data, protocol, hyperparameters,
the ablation setting, plots, intended use, limitations and citation."""

from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_mgcma import PAPER_ABLATIONS


# The template is package data in `modeling_mgcma/model_cards/`, so this works from a checkout and when installed.
TEMPLATE_PATH = Path(__file__).resolve().parent / "model_cards" / "mgcma_template.md"

# One line per data source, used in the summary and the card data.
DATA_SOURCES = {
    "demo": "the synthetic demo corpus (modeling_mgcma.data.generate_demo_corpus)",
    "iemocap": "IEMOCAP (4 classes: angry, happy = happy + excited, sad, neutral; 5,531 utterances)",
    "manifest": "a user manifest (CSV/JSONL of audio, transcript, label)",
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


def results_table(results: dict, method: str = "MGCMA") -> str:
    """Markdown table in the format of the paper's tables (| method | WA % | UA % |): one row per fold and, with more
    than one fold, the mean +- standard deviation."""
    lines = ["| method | WA % | UA % |", "|---|---|---|"]
    folds = results["folds"]
    for fold in folds:
        lines.append(f"| {method}, test session {fold['test_session']} | {100 * fold['wa']:.2f} | {100 * fold['ua']:.2f} |")
    if len(folds) > 1:
        mean, std = results["mean"], results["std"]
        lines.append(
            f"| **{method}, mean of {len(folds)} folds** | **{100 * mean['wa']:.2f} ± {100 * std['wa']:.2f}** "
            f"| **{100 * mean['ua']:.2f} ± {100 * std['ua']:.2f}** |"
        )
    return "\n".join(lines)


def _eval_results(results: dict, dataset_name: str, dataset_type: str) -> list[EvalResult]:
    entries = []
    rows = [(f"test session {f['test_session']}", f"session{f['test_session']}", f) for f in results["folds"]]
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
        results: ``{"folds": [{"test_session", "wa", "ua", ...}], "mean": {...}, "std": {...}}`` (fractions).
        config: the trained model's `MGCMAConfig`.
        data_source: ``"demo"``, ``"iemocap"`` or ``"manifest"``.
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
        raise ValueError(f"model card template not found at {template_path} (it ships in modeling_mgcma/model_cards/).")
    dataset_name = {"demo": "MGCMA synthetic demo corpus", "iemocap": "IEMOCAP", "manifest": "user manifest"}[data_source]
    dataset_type = {"demo": "mgcma-demo-corpus", "iemocap": "iemocap", "manifest": "custom"}[data_source]
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
    )


__all__ = ["render_model_card", "is_hub_id", "results_table", "ablation_description", "TEMPLATE_PATH", "DATA_SOURCES"]
