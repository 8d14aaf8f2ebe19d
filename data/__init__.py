# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""IEMOCAP builder, demo corpus, manifests and cross-validation splits (see data/README.md).

This package knows no model: it imports nothing from `modeling_mgcma`. Its label names and sampling rate are its own
(`EMOTION_LABELS`, `SAMPLING_RATE`); the tests check they equal the model config's and the processor's defaults.
"""

from ._main_process import launched_distributed, main_process_first
from .demo_corpus import EMOTION_KEYWORDS, FILLER_WORDS, PROSODY, demo_vocabulary, generate_demo_corpus
from .iemocap import (
    CONFIG_NAMES,
    EMOTION_LABELS,
    EXCLUSION_REASONS,
    EXPECTED_4CLASS_COUNTS,
    EXPECTED_4CLASS_TOTAL,
    FOUR_CLASS_LABEL_MAP,
    IEMOCAP_LABEL_CODES,
    NUM_SESSIONS,
    SAMPLING_RATE,
    IemocapBuilder,
    IemocapConfig,
    IemocapSummary,
    load_iemocap,
    scan_iemocap,
)
from .manifest import load_manifest, normalize_label, read_manifest_rows
from .splits import VALIDATION_STRATEGIES, loso_fold


__all__ = [
    "EMOTION_LABELS",
    "NUM_SESSIONS",
    "SAMPLING_RATE",
    "launched_distributed",
    "main_process_first",
    "load_manifest",
    "normalize_label",
    "read_manifest_rows",
    "loso_fold",
    "VALIDATION_STRATEGIES",
    "EMOTION_KEYWORDS",
    "FILLER_WORDS",
    "PROSODY",
    "demo_vocabulary",
    "generate_demo_corpus",
    "CONFIG_NAMES",
    "EXCLUSION_REASONS",
    "EXPECTED_4CLASS_COUNTS",
    "EXPECTED_4CLASS_TOTAL",
    "FOUR_CLASS_LABEL_MAP",
    "IEMOCAP_LABEL_CODES",
    "IemocapBuilder",
    "IemocapConfig",
    "IemocapSummary",
    "load_iemocap",
    "scan_iemocap",
]
