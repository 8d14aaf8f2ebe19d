# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Calibrated probabilities: expected calibration error and temperature scaling (Guo et al., 2017).

Temperature scaling divides every logit by one scalar T > 0 before the softmax. It never changes the arg-max, so WA
and UA stay exactly as they are; only the confidence of the scores moves. T is fitted by minimising the negative
log-likelihood on the *validation* split: fitting it on the test fold would tune the reported calibration on the
data it is reported on, so :func:`fit_temperature` takes the split's name and refuses any test split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


logger = logging.getLogger(__name__)


DEFAULT_NUM_BINS = 15
# Bounds of the fitted temperature: wide enough for any usable model, and the softmax stays finite in float64.
TEMPERATURE_BOUNDS = (0.05, 20.0)
# Fewer validation utterances than this give no usable temperature: T = 1 is kept (see `calibrate_config`).
MIN_CALIBRATION_EXAMPLES = 20


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _as_logits(logits, labels=None) -> tuple[np.ndarray, np.ndarray | None]:
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(f"logits must be [N, C] with N >= 1 and C >= 2, got shape {logits.shape}.")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain NaN or inf values.")
    if labels is None:
        return logits, None
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must be [N] = [{logits.shape[0]}], got shape {labels.shape}.")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got values in [{labels.min()}, {labels.max()}].")
    return logits, labels


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Probabilities softmax(logits / T)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    logits, _ = _as_logits(logits)
    return _softmax(logits / temperature)


@dataclass
class ReliabilityBins:
    """Equal-width confidence bins: ``edges`` (num_bins + 1), and per bin the number of predictions, their mean
    confidence and their accuracy (NaN for an empty bin)."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray


def reliability_bins(probabilities, labels, num_bins: int = DEFAULT_NUM_BINS) -> ReliabilityBins:
    """Bin predictions by confidence (the top probability) into `num_bins` equal-width bins over [0, 1]. Bin b holds
    confidences in (edges[b], edges[b+1]]; a confidence of exactly 0 (impossible for a softmax) goes to the first."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    _, labels = _as_logits(probabilities, labels)
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}.")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    counts = np.bincount(index, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=num_bins) / counts
        accuracy = np.bincount(index, weights=correct.astype(np.float64), minlength=num_bins) / counts
    return ReliabilityBins(edges, counts, mean_confidence, accuracy)


def expected_calibration_error(probabilities, labels, num_bins: int = DEFAULT_NUM_BINS) -> float:
    """ECE = sum over bins of (bin size / N) * |accuracy(bin) - mean confidence(bin)|, with `num_bins` equal-width
    confidence bins over [0, 1] (15 by default, as in Guo et al., 2017), confidence = the top-class probability. In
    [0, 1]; 0 is perfectly calibrated."""
    bins = reliability_bins(probabilities, labels, num_bins)
    filled = bins.counts > 0
    gaps = np.abs(bins.accuracy[filled] - bins.confidence[filled])
    return float(np.sum(bins.counts[filled] * gaps) / bins.counts.sum())


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    """Mean cross-entropy of softmax(logits / T) against `labels`, in nats."""
    logits, labels = _as_logits(logits, labels)
    scaled = logits / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(log_normaliser - shifted[np.arange(len(labels)), labels]))


def calibration_metrics(logits, labels, temperature: float = 1.0, num_bins: int = DEFAULT_NUM_BINS) -> dict:
    """``{"ece", "nll", "temperature"}`` of softmax(logits / T), to report next to WA/UA (ECE in [0, 1], NLL in
    nats). With the default T = 1 these describe the model's raw probabilities."""
    probabilities = apply_temperature(logits, temperature)
    return {
        "ece": expected_calibration_error(probabilities, labels, num_bins),
        "nll": negative_log_likelihood(logits, labels, temperature),
        "temperature": float(temperature),
    }


@dataclass
class TemperatureFit:
    temperature: float
    split: str
    num_examples: int
    nll_before: float  # at T = 1
    nll_after: float
    # Why the fitted temperature was not kept (T = 1 instead), or None when it was: see `calibrate_config`.
    kept_default: str | None = None
    fitted_temperature: float | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def fit_temperature(
    logits: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    split: str,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    tolerance: float = 1e-7,
) -> TemperatureFit:
    """Fit T > 0 minimising the NLL of softmax(logits / T) on a held-out split that is not the test split.

    Args:
        split: the name of the split the logits come from, required so that the caller states it. Any name that
            contains "test" (case-insensitive) is refused with a ValueError: the temperature must come from the
            validation data of the training sessions, never from the fold it is evaluated on.
        bounds: the search interval for T.

    Method: with beta = 1/T, the NLL  mean(logsumexp(beta * z) - beta * z_y)  is convex in beta (a log-sum-exp of
    linear functions minus a linear function), so a golden-section search over beta in [1/bounds[1], 1/bounds[0]]
    finds the global minimum on the interval; it is deterministic and needs no optimiser state. A minimum on the
    boundary of `bounds` is returned as is (check `temperature` against the bounds if that matters).
    """
    if not isinstance(split, str) or not split.strip():
        raise ValueError(f"split must name the split the logits come from (e.g. 'validation'), got {split!r}.")
    if "test" in split.lower():
        raise ValueError(
            f"refusing to fit a temperature on split {split!r}: fit it on the validation split drawn from the "
            "training sessions, never on the test fold it will be evaluated on."
        )
    logits, labels = _as_logits(logits, labels)
    low_t, high_t = bounds
    if not 0 < low_t < high_t:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}.")
    low, high = 1.0 / high_t, 1.0 / low_t  # search over beta = 1 / T

    def objective(beta: float) -> float:
        return negative_log_likelihood(logits, labels, 1.0 / beta)

    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = objective(c), objective(d)
    while b - a > tolerance * max(1.0, a):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = objective(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = objective(d)
    candidates = [(objective(low), low), (objective(high), high), (objective((a + b) / 2), (a + b) / 2)]
    best_nll, best_beta = min(candidates)
    return TemperatureFit(
        temperature=float(1.0 / best_beta),
        split=split,
        num_examples=len(labels),
        nll_before=negative_log_likelihood(logits, labels, 1.0),
        nll_after=float(best_nll),
    )


def calibrate_config(config, logits, labels, *, split: str) -> TemperatureFit:
    """Fit a temperature on `split` (see :func:`fit_temperature`: never a test split) and store it as the model
    config's ``calibration_temperature``, which the pipeline, the command line and the ONNX runtime apply. The
    logits must be the model's raw ones (computed with no temperature)."""
    fit = fit_temperature(logits, labels, split=split)
    reason = unusable_fit_reason(fit, logits, labels)
    if reason is not None:
        logger.warning("--calibrate: keeping T = 1 (plain softmax) instead of the fitted T = %.4g: %s.",
                       fit.temperature, reason)  # fmt: skip
        fit.fitted_temperature, fit.kept_default, fit.temperature = fit.temperature, reason, 1.0
    config.calibration_temperature = fit.temperature
    return fit


def unusable_fit_reason(fit: TemperatureFit, logits, labels, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> str | None:
    """Why a fitted temperature says nothing about the model's calibration, or None when it is usable: the
    validation split is too small (`MIN_CALIBRATION_EXAMPLES`), has no misclassified utterance (the NLL then falls
    without end as T shrinks), or the fit stopped at a bound of the search (e.g. T = 20 after a collapsed run)."""
    logits, labels = _as_logits(logits, labels)
    if fit.num_examples < MIN_CALIBRATION_EXAMPLES:
        return (f"the {fit.split} split has {fit.num_examples} utterance(s), fewer than the {MIN_CALIBRATION_EXAMPLES} "
                "a temperature needs")  # fmt: skip
    if bool(np.all(logits.argmax(axis=1) == labels)):
        return f"every utterance of the {fit.split} split is classified correctly, so no temperature is determined"
    low, high = bounds
    if fit.temperature <= low * (1 + 1e-3) or fit.temperature >= high * (1 - 1e-3):
        return (f"the fit stopped at the bound T = {low if fit.temperature <= low * (1 + 1e-3) else high:g} of its "
                f"search [{low:g}, {high:g}]")  # fmt: skip
    return None


def calibrate_with_trainer(trainer, dataset, *, split: str = "validation") -> TemperatureFit:
    """Predict `dataset` (the validation split of the training data, never the test fold) with a
    `transformers.Trainer`'s model and store the fitted temperature in that model's config (see
    :func:`calibrate_config`); saving the model afterwards saves the temperature with it."""
    prediction = trainer.predict(dataset, metric_key_prefix=split)
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return calibrate_config(trainer.model.config, logits, prediction.label_ids, split=split)


def calibration_report(logits, labels, temperature: float | None) -> dict:
    """ECE (a fraction, like WA/UA in a run's results) of the probabilities a model serves on its test split, next to
    the raw softmax's: ``{"ece", "ece_uncalibrated", "calibration_temperature"}`` (the two ECEs are equal without a
    temperature)."""
    served = calibration_metrics(logits, labels, temperature if temperature is not None else 1.0)["ece"]
    raw = calibration_metrics(logits, labels)["ece"] if temperature is not None else served
    return {"ece": served, "ece_uncalibrated": raw, "calibration_temperature": temperature}


__all__ = [
    "calibrate_config",
    "calibrate_with_trainer",
    "calibration_report",
    "MIN_CALIBRATION_EXAMPLES",
    "unusable_fit_reason",
    "DEFAULT_NUM_BINS",
    "TEMPERATURE_BOUNDS",
    "ReliabilityBins",
    "TemperatureFit",
    "apply_temperature",
    "calibration_metrics",
    "expected_calibration_error",
    "fit_temperature",
    "negative_log_likelihood",
    "reliability_bins",
]
