# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Figures written next to a trained model: confusion matrix, t-SNE of speech vs text features (the paper's Fig. 3,
one setting or the four-panel figure), reliability diagram and the loss-component curves. matplotlib runs with the
non-interactive Agg backend (no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(
    predictions: Sequence[int], references: Sequence[int], label_names: Sequence[str], path: str | os.PathLike, title: str = ""
) -> str:
    """Row-normalised confusion matrix (rows: true class, so the diagonal is each class's recall), with counts."""
    plt = _pyplot()
    num_labels = len(label_names)
    counts = np.zeros((num_labels, num_labels), dtype=np.int64)
    for true, predicted in zip(references, predictions):
        counts[int(true), int(predicted)] += 1
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(1.2 * num_labels + 2, 1.2 * num_labels + 1.5))
    image = axis.imshow(rates, vmin=0.0, vmax=1.0, cmap="Blues")
    for i in range(num_labels):
        for j in range(num_labels):
            axis.text(j, i, f"{rates[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center",
                      color="white" if rates[i, j] > 0.5 else "black", fontsize=8)  # fmt: skip
    axis.set_xticks(range(num_labels), label_names, rotation=30, ha="right")
    axis.set_yticks(range(num_labels), label_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title or "Confusion matrix (row-normalised)")
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)


def plot_tsne(
    speech_features: np.ndarray,
    text_features: np.ndarray,
    labels: Sequence[int],
    label_names: Sequence[str],
    path: str | os.PathLike,
    title: str = "",
    seed: int = 0,
) -> str:
    """t-SNE of pooled speech and text features in one 2-D map (as the paper's Fig. 3): colour = emotion, marker =
    modality (o speech, ^ text). Both modalities are embedded together, so their overlap shows the alignment."""
    plt = _pyplot()
    embedded, labels = _embed_modalities(speech_features, text_features, labels, seed)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    _scatter_modalities(plt, axis, embedded, labels, label_names)
    axis.set_title(title or "t-SNE of pooled speech (o) and text (^) features")
    axis.legend(fontsize=7, ncol=2, loc="best", markerscale=1.2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)


def _embed_modalities(speech_features, text_features, labels, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One joint t-SNE of [speech; text] rows: the first N rows of the result are speech, the next N text."""
    from sklearn.manifold import TSNE

    speech_features, text_features = np.asarray(speech_features), np.asarray(text_features)
    if speech_features.shape != text_features.shape or speech_features.ndim != 2:
        raise ValueError(
            f"need [N, D] speech and text features of the same shape, got {speech_features.shape} and {text_features.shape}."
        )
    labels = np.asarray(labels)
    if labels.shape != (len(speech_features),):
        raise ValueError(f"need one label per utterance ({len(speech_features)}), got shape {labels.shape}.")
    points = np.concatenate([speech_features, text_features], axis=0)
    perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    return embedded, labels


def _scatter_modalities(plt, axis, embedded: np.ndarray, labels: np.ndarray, label_names: Sequence[str]) -> None:
    n = len(labels)
    colours = plt.get_cmap("tab10")
    for class_id, name in enumerate(label_names):
        members = labels == class_id
        for offset, marker, modality in ((0, "o", "speech"), (n, "^", "text")):
            xy = embedded[offset : offset + n][members]
            axis.scatter(xy[:, 0], xy[:, 1], s=14, marker=marker, color=colours(class_id % 10), alpha=0.75,
                         label=f"{name} ({modality})")  # fmt: skip
    axis.set_xticks([])
    axis.set_yticks([])


# The panels of the paper's Fig. 3, in its order: setting -> panel title.
FIGURE3_PANELS = {"S0": "MGCMA", "S1": "w/o DAM", "S2": "w/o TAM", "S3": "w/o IAM"}


def plot_tsne_panels(
    features: dict,
    label_names: Sequence[str],
    path: str | os.PathLike,
    panels: dict[str, str] | None = None,
    seed: int = 0,
) -> dict:
    """Fig. 3's analogue: one figure, one t-SNE panel per setting (MGCMA, w/o DAM, w/o TAM, w/o IAM by default),
    each embedding the speech and text features of the same test utterances (colour = emotion, marker = modality).

    Args:
        features: ``{setting: (speech [N, D], text [N, D], labels [N])}``; a setting that is absent or None gets a
            panel that says "missing" rather than being dropped, so the layout always matches the paper's.
        panels: ``{setting: title}`` in display order; defaults to `FIGURE3_PANELS`.
    Returns ``{"path", "drawn": [settings], "missing": [settings]}``.
    """
    plt = _pyplot()
    panels = dict(FIGURE3_PANELS if panels is None else panels)
    columns = min(len(panels), 2)
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 5.0 * rows), squeeze=False)
    drawn, missing = [], []
    for axis, (setting, title) in zip(axes.flat, panels.items()):
        entry = features.get(setting)
        if entry is None:
            missing.append(setting)
            axis.text(0.5, 0.5, f"missing: no features for {setting} ({title})", ha="center", va="center",
                      transform=axis.transAxes)  # fmt: skip
            axis.set_xticks([])
            axis.set_yticks([])
        else:
            speech, text, labels = entry
            embedded, labels = _embed_modalities(speech, text, labels, seed)
            _scatter_modalities(plt, axis, embedded, labels, label_names)
            drawn.append(setting)
        axis.set_title(f"{title} ({setting})")
    for axis in list(axes.flat)[len(panels) :]:
        figure.delaxes(axis)
    handles, names = next(((a.get_legend_handles_labels()) for a in axes.flat if a.get_legend_handles_labels()[0]),
                          ([], []))  # fmt: skip
    if handles:
        figure.legend(handles, names, loc="lower center", ncol=min(len(names), 4), fontsize=8)
    figure.suptitle("t-SNE of speech (o) and text (^) features of the same test utterances")
    figure.tight_layout(rect=(0, 0.08 if handles else 0, 1, 0.96))
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return {"path": str(path), "drawn": drawn, "missing": missing}


def plot_reliability_diagram(
    probabilities,
    labels: Sequence[int],
    path: str | os.PathLike,
    num_bins: int | None = None,
    title: str = "",
    calibrated_probabilities=None,
) -> str:
    """Reliability diagram: accuracy against mean confidence per equal-width confidence bin, with the diagonal of
    perfect calibration, the ECE in the legend, and the share of predictions per bin underneath. Pass
    `calibrated_probabilities` (e.g. after temperature scaling) to draw both."""
    from ..training.calibration import DEFAULT_NUM_BINS, expected_calibration_error, reliability_bins

    plt = _pyplot()
    num_bins = num_bins or DEFAULT_NUM_BINS
    series = [("uncalibrated", probabilities)]
    if calibrated_probabilities is not None:
        series.append(("calibrated", calibrated_probabilities))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    width = 1.0 / num_bins
    for index, (name, values) in enumerate(series):
        bins = reliability_bins(values, labels, num_bins)
        ece = expected_calibration_error(values, labels, num_bins)
        filled = bins.counts > 0
        centres = (bins.edges[:-1] + bins.edges[1:]) / 2
        shift = (index - (len(series) - 1) / 2) * width / len(series)
        top.bar(centres[filled] + shift, bins.accuracy[filled], width=width / len(series), alpha=0.7,
                edgecolor="black", label=f"{name} (ECE = {100 * ece:.2f} %)")  # fmt: skip
        bottom.bar(centres + shift, bins.counts / bins.counts.sum(), width=width / len(series), alpha=0.7)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(title or f"Reliability diagram ({num_bins} equal-width bins)")
    top.legend(loc="upper left", fontsize=8)
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("share")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)


def loss_curves(log_history: Sequence[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """(steps, values) of the training `loss` and of `loss_ce`, `loss_da`, `loss_ia` from a Trainer log history."""
    curves = {}
    for key in ("loss", "loss_ce", "loss_da", "loss_ia"):
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
        if points:
            curves[key] = ([s for s, _ in points], [v for _, v in points])
    return curves


def plot_loss_curves(log_history: Sequence[dict], path: str | os.PathLike, title: str = "") -> str:
    """Training loss components over steps (L_CE, L_DA, L_IA and the weighted total), from the Trainer's logs."""
    plt = _pyplot()
    curves = loss_curves(log_history)
    if not curves:
        raise ValueError("the log history holds no training loss: set logging_steps so that training logs at least once.")
    names = {"loss": "total", "loss_ce": "L_CE", "loss_da": "L_DA", "loss_ia": "L_IA"}
    figure, axis = plt.subplots(figsize=(6.5, 4.0))
    for key, (steps, values) in curves.items():
        axis.plot(steps, values, marker="." if len(steps) < 40 else None, label=names[key],
                  linewidth=2.2 if key == "loss" else 1.4)  # fmt: skip
    axis.set_xlabel("optimisation step")
    axis.set_ylabel("loss (mean over logging interval)")
    axis.set_title(title or "Training losses")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)


__all__ = [
    "FIGURE3_PANELS",
    "plot_confusion_matrix",
    "plot_tsne",
    "plot_tsne_panels",
    "plot_reliability_diagram",
    "plot_loss_curves",
    "loss_curves",
]
