# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""WA and UA: the two metrics of speech emotion recognition papers (MGCMA's Tables I-III), as an `evaluate` module.

Load it by path (no Hub access needed)::

    import evaluate
    from modeling_mgcma.training.metrics import WA_UA_METRIC_PATH

    metric = evaluate.load(WA_UA_METRIC_PATH)
    metric.compute(predictions=[0, 1, 1, 3], references=[0, 1, 2, 3])  # {'wa': 0.75, 'ua': 0.75}
"""

import datasets
import evaluate
import numpy as np


_DESCRIPTION = """
WA (weighted accuracy) is the plain accuracy: correct predictions / all predictions; each class weighs in proportion
to its number of utterances. UA (unweighted accuracy) is the mean of the per-class recalls: each class weighs the same
whatever its size (also called balanced accuracy or macro recall). UA averages over the classes that occur in the
references (the recall of a class without references is undefined); pass `num_labels` to check that every class
occurs.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    num_labels (`int`, *optional*): number of classes; when given, class ids must lie in [0, num_labels) and a class
        missing from the references raises a ValueError (UA would silently average over fewer classes).
    return_per_class (`bool`, *optional*, defaults to `False`): also return `recall_per_class` (a list indexed by
        class id; None for a class without references) and `support_per_class`.
Returns:
    wa (`float`): accuracy in [0, 1]. ua (`float`): mean per-class recall in [0, 1].
Examples:
    >>> metric = evaluate.load("modeling_mgcma/training/metrics/wa_ua.py")
    >>> metric.compute(predictions=[0, 0, 0, 1], references=[0, 0, 0, 1])
    {'wa': 1.0, 'ua': 1.0}
    >>> metric.compute(predictions=[0, 0, 0, 0], references=[0, 0, 0, 1])
    {'wa': 0.75, 'ua': 0.5}
"""

_CITATION = """
@inproceedings{wang2025mgcma,
  title     = {Enhancing Multimodal Emotion Recognition through Multi-Granularity Cross-Modal Alignment},
  author    = {Wang and Zhao and Sun and Wang and Zhou and Qin},
  booktitle = {ICASSP 2025 - IEEE International Conference on Acoustics, Speech and Signal Processing},
  year      = {2025}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WaUa(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_labels=None, return_per_class=False):
        predictions = np.asarray(predictions, dtype=np.int64)
        references = np.asarray(references, dtype=np.int64)
        if references.size == 0:
            raise ValueError("WA/UA need at least one reference, got none.")
        if num_labels is not None:
            out_of_range = sorted(set(np.unique(np.concatenate([predictions, references])).tolist()) - set(range(num_labels)))
            if out_of_range:
                raise ValueError(f"class ids must lie in [0, {num_labels}), got {out_of_range}.")
            missing = sorted(set(range(num_labels)) - set(np.unique(references).tolist()))
            if missing:
                raise ValueError(
                    f"classes {missing} have no reference: their recall is undefined, so UA over {num_labels} "
                    "classes cannot be computed. Evaluate on data with every class or leave num_labels unset."
                )
        size = int(max(predictions.max(initial=0), references.max())) + 1 if num_labels is None else num_labels
        support = np.bincount(references, minlength=size)
        correct = np.bincount(references[predictions == references], minlength=size)
        present = support > 0
        recall = np.where(present, correct / np.maximum(support, 1), np.nan)
        result = {"wa": float((predictions == references).mean()), "ua": float(recall[present].mean())}
        if return_per_class:
            result["recall_per_class"] = [None if np.isnan(r) else float(r) for r in recall]
            result["support_per_class"] = support.tolist()
        return result
