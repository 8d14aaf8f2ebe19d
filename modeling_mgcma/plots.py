# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Figures written next to a trained model: confusion matrix, t-SNE of speech vs text features (the paper's Fig. 3)
and the loss-component curves. matplotlib runs with the non-interactive Agg backend (no display needed)."""

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
    from sklearn.manifold import TSNE

    plt = _pyplot()
    speech_features, text_features = np.asarray(speech_features), np.asarray(text_features)
    if speech_features.shape != text_features.shape or speech_features.ndim != 2:
        raise ValueError(
            f"need [N, D] speech and text features of the same shape, got {speech_features.shape} and {text_features.shape}."
        )
    labels = np.asarray(labels)
    points = np.concatenate([speech_features, text_features], axis=0)
    perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    n = len(speech_features)
    colours = plt.get_cmap("tab10")
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    for class_id, name in enumerate(label_names):
        members = labels == class_id
        for offset, marker, modality in ((0, "o", "speech"), (n, "^", "text")):
            xy = embedded[offset : offset + n][members]
            axis.scatter(xy[:, 0], xy[:, 1], s=14, marker=marker, color=colours(class_id % 10), alpha=0.75,
                         label=f"{name} ({modality})")  # fmt: skip
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title or "t-SNE of pooled speech (o) and text (^) features")
    axis.legend(fontsize=7, ncol=2, loc="best", markerscale=1.2)
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


__all__ = ["plot_confusion_matrix", "plot_tsne", "plot_loss_curves", "loss_curves"]
