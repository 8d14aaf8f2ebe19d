# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The WA / UA metric (`modeling_mgcma.training.metrics`, an `evaluate` module): WA = accuracy, UA = mean per-class recall."""

import evaluate
import pytest

from modeling_mgcma.training.metrics import WA_UA_METRIC_PATH


@pytest.fixture(scope="module")
def wa_ua():
    return evaluate.load(WA_UA_METRIC_PATH, keep_in_memory=True)


def test_wa_is_accuracy_and_ua_is_mean_class_recall(wa_ua):
    # 6 of class 0 (all right), 2 of class 1 (one right): WA = 7/8, UA = (1 + 0.5) / 2
    references = [0, 0, 0, 0, 0, 0, 1, 1]
    predictions = [0, 0, 0, 0, 0, 0, 1, 0]
    result = wa_ua.compute(predictions=predictions, references=references, return_per_class=True)
    assert result["wa"] == pytest.approx(7 / 8)
    assert result["ua"] == pytest.approx(0.75)
    assert result["recall_per_class"] == [1.0, 0.5]
    assert result["support_per_class"] == [6, 2]


def test_ua_refuses_a_missing_class_when_num_labels_given(wa_ua):
    with pytest.raises(ValueError, match=r"classes \[2, 3\] have no reference"):
        wa_ua.compute(predictions=[0, 1], references=[0, 1], num_labels=4)
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 2\)"):
        wa_ua.compute(predictions=[0, 5], references=[0, 1], num_labels=2)
