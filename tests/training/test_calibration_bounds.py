# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""--calibrate keeps T = 1, with a warning and a line on the model card, when the fitted temperature says nothing:
a fit at a bound of its search, a validation split too small or without a single error."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from modeling_mgcma.training.calibration import MIN_CALIBRATION_EXAMPLES, TEMPERATURE_BOUNDS, calibrate_config


def noisy_logits(n, seed=0, classes=4, scale=1.0, accuracy=0.7):
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=n)
    logits = rng.normal(size=(n, classes)) * scale
    right = rng.random(n) < accuracy
    logits[np.arange(n)[right], labels[right]] += 2.0 * scale
    return logits, labels


def case(name):
    if name == "perfect":  # every validation utterance right: the NLL falls without end as T shrinks
        logits, labels = noisy_logits(60)
        logits[np.arange(60), labels] += 50.0
        return logits, labels
    if name == "collapsed":  # one class predicted for everything, confidently: T runs to its upper bound
        labels = np.arange(60) % 4
        logits = np.tile([8.0, 0.0, 0.0, 0.0], (60, 1)) + np.random.default_rng(1).normal(size=(60, 4)) * 1e-3
        return logits, labels
    if name == "tiny":
        return noisy_logits(MIN_CALIBRATION_EXAMPLES - 1)
    if name == "overconfident_perfect_but_one":  # a usable fit
        return noisy_logits(200, scale=3.0)
    raise AssertionError(name)


@pytest.mark.parametrize("name,word", [("perfect", "correctly"), ("collapsed", "bound"), ("tiny", "fewer")])
def test_an_unusable_fit_keeps_t_1_with_a_warning(name, word, caplog):
    config = SimpleNamespace(calibration_temperature=None)
    logits, labels = case(name)
    with caplog.at_level(logging.WARNING):
        fit = calibrate_config(config, logits, labels, split="validation")
    assert config.calibration_temperature == 1.0 and fit.temperature == 1.0
    assert word in fit.kept_default and fit.fitted_temperature is not None
    assert "T = 1" in caplog.text


def test_a_usable_fit_is_kept():
    config = SimpleNamespace(calibration_temperature=None)
    fit = calibrate_config(config, *case("overconfident_perfect_but_one"), split="validation")
    assert fit.kept_default is None
    assert TEMPERATURE_BOUNDS[0] * 1.01 < config.calibration_temperature < TEMPERATURE_BOUNDS[1] * 0.99
    assert config.calibration_temperature != 1.0


def test_the_model_card_states_why_t_1_was_kept():
    from modeling_mgcma import MGCMAConfig
    from modeling_mgcma.experiments.model_card import render_model_card

    config = MGCMAConfig(calibration_temperature=1.0)
    results = {"folds": [{"test_group": 5, "wa": 0.5, "ua": 0.5, "calibration_note":
                          "T = 1 kept instead of the fitted T = 0.05: every utterance is classified correctly"}],
               "mean": {"wa": 0.5, "ua": 0.5}, "std": {"wa": 0.0, "ua": 0.0}}  # fmt: skip
    text = str(render_model_card(results, config, model_name="m", data_source="demo", hyperparameters={}))
    assert "No usable temperature" in text and "fitted T = 0.05" in text
    assert "temperature-scaled" not in text
