# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Figure 3's four-panel t-SNE and the reliability diagram are written, with the panels they promise."""

import re

import numpy as np
import pytest

from modeling_mgcma.experiments.plots import FIGURE3_PANELS, plot_reliability_diagram, plot_tsne_panels
from modeling_mgcma.training.calibration import apply_temperature


LABELS = ["angry", "happy", "sad", "neutral"]


def _features(seed, n=16, dim=8):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.normal(size=(n, dim)), rng.integers(0, 4, n)


def _svg_axes(path):
    """Axes ids in a matplotlib SVG (`<g id="axes_1">`, ...): one per drawn panel."""
    return re.findall(r'<g id="axes_\d+"', open(path, encoding="utf-8").read())


def test_tsne_panels_draws_four_panels(tmp_path):
    features = {setting: _features(i) for i, setting in enumerate(FIGURE3_PANELS)}
    result = plot_tsne_panels(features, LABELS, tmp_path / "figure3.svg")
    assert result["drawn"] == ["S0", "S1", "S2", "S3"] and result["missing"] == []
    text = open(result["path"], encoding="utf-8").read()
    assert len(_svg_axes(result["path"])) == 4
    for title in FIGURE3_PANELS.values():
        assert title in text


def test_tsne_panels_shows_missing_settings_as_such(tmp_path):
    features = {"S0": _features(0), "S2": _features(2), "S3": None}
    result = plot_tsne_panels(features, LABELS, tmp_path / "figure3.svg")
    assert result["drawn"] == ["S0", "S2"] and result["missing"] == ["S1", "S3"]
    assert len(_svg_axes(result["path"])) == 4  # the layout stays the paper's
    assert "missing: no features for S1" in open(result["path"], encoding="utf-8").read()


def test_tsne_panels_rejects_mismatched_features(tmp_path):
    speech, text, labels = _features(0)
    with pytest.raises(ValueError, match="same shape"):
        plot_tsne_panels({"S0": (speech, text[:5], labels)}, LABELS, tmp_path / "f.svg")


def test_reliability_diagram_is_written_with_both_series(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(200, 4))
    labels = rng.integers(0, 4, 200)
    path = plot_reliability_diagram(apply_temperature(logits, 1.0), labels, tmp_path / "reliability.svg",
                                    calibrated_probabilities=apply_temperature(logits, 3.0))  # fmt: skip
    text = open(path, encoding="utf-8").read()
    assert len(_svg_axes(path)) == 2  # bars and the histogram of confidences
    assert "uncalibrated (ECE" in text and re.search(r"(?<!un)calibrated \(ECE", text)
