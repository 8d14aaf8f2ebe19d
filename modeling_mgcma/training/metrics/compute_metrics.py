# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The WA/UA metric as the Trainer uses it: loaded from this folder (offline), and its `compute_metrics` function."""

from __future__ import annotations

import logging

import numpy as np

from . import WA_UA_METRIC_PATH


logger = logging.getLogger(__name__)


def load_wa_ua_metric():
    """The `evaluate` module of `wa_ua.py` beside this file, kept in memory (no cache files)."""
    import evaluate

    return evaluate.load(WA_UA_METRIC_PATH, keep_in_memory=True)


def make_compute_metrics(metric, num_labels: int):
    """`compute_metrics` for the Trainer: WA and UA of the logits' argmax (the logits are the first prediction when
    the model returns several) and the expected calibration error of their softmax; a class absent from the
    references is named in a warning."""

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
        from ..calibration import apply_temperature, expected_calibration_error

        scores = metric.compute(predictions=np.argmax(logits, axis=-1), references=references)
        return {**scores, "ece": expected_calibration_error(apply_temperature(logits, 1.0), references)}

    return compute_metrics


__all__ = ["load_wa_ua_metric", "make_compute_metrics"]
