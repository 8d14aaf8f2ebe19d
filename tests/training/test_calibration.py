# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Expected calibration error and temperature scaling fitted on validation data only."""

import numpy as np
import pytest

from modeling_mgcma.training.calibration import (
    apply_temperature,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)


def _synthetic(n, true_temperature, seed, num_labels=4):
    """Logits whose labels are drawn from softmax(logits / true_temperature): the calibrated temperature is known."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(n, num_labels))
    probabilities = apply_temperature(logits, true_temperature)
    labels = (rng.random((n, 1)) > probabilities.cumsum(axis=1)).sum(axis=1)
    return logits, labels


def test_ece_by_hand():
    # two predictions in the (0.8, 0.867] bin (15 bins), one right: |0.5 - 0.85| * 2/3; one at 0.6, right: |1 - 0.6|/3
    probabilities = np.array([[0.85, 0.15], [0.85, 0.15], [0.4, 0.6]])
    labels = np.array([0, 1, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx((2 * 0.35 + 0.4) / 3)
    bins = reliability_bins(probabilities, labels)
    assert bins.counts.sum() == 3 and len(bins.edges) == 16


def test_recovers_the_true_temperature():
    logits, labels = _synthetic(40000, true_temperature=2.5, seed=0)
    fit = fit_temperature(logits, labels, split="validation")
    assert fit.temperature == pytest.approx(2.5, rel=0.05)
    assert fit.nll_after < fit.nll_before


def test_fitted_temperature_lowers_ece_on_held_out_overconfident_predictions():
    validation_logits, validation_labels = _synthetic(5000, true_temperature=3.0, seed=1)
    test_logits, test_labels = _synthetic(5000, true_temperature=3.0, seed=2)  # held out, not used for fitting
    fit = fit_temperature(validation_logits, validation_labels, split="validation")
    before = expected_calibration_error(apply_temperature(test_logits, 1.0), test_labels)
    after = expected_calibration_error(apply_temperature(test_logits, fit.temperature), test_labels)
    assert before > 0.1  # over-confident by construction
    assert after < before / 3
    # the arg-max (hence WA/UA) is unchanged
    assert (apply_temperature(test_logits, fit.temperature).argmax(1) == test_logits.argmax(1)).all()


@pytest.mark.parametrize("split", ["test", "Test", "test_fold_5", "session5-TEST"])
def test_refuses_the_test_split(split):
    logits, labels = _synthetic(100, 1.0, seed=3)
    with pytest.raises(ValueError, match="refusing to fit a temperature"):
        fit_temperature(logits, labels, split=split)


def test_requires_the_split_name_and_valid_inputs():
    logits, labels = _synthetic(100, 1.0, seed=3)
    with pytest.raises(TypeError):
        fit_temperature(logits, labels)  # the split must be stated
    with pytest.raises(ValueError, match="labels must lie"):
        fit_temperature(logits, labels + 4, split="validation")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        apply_temperature(logits, 0.0)


def test_calibration_metrics_report_the_scaled_probabilities():
    logits, labels = _synthetic(3000, true_temperature=2.0, seed=4)
    raw, scaled = calibration_metrics(logits, labels), calibration_metrics(logits, labels, temperature=2.0)
    assert raw["temperature"] == 1.0 and scaled["temperature"] == 2.0
    assert scaled["ece"] == pytest.approx(expected_calibration_error(apply_temperature(logits, 2.0), labels))
    assert scaled["nll"] < raw["nll"] and scaled["ece"] < raw["ece"]
