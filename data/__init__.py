"""IEMOCAP builder, demo corpus, manifests and cross-validation splits (see data/README.md)."""

from .demo_corpus import EMOTION_KEYWORDS, FILLER_WORDS, PROSODY, demo_vocabulary, generate_demo_corpus
from .manifest import load_manifest, normalize_label, read_manifest_rows
from .splits import VALIDATION_STRATEGIES, loso_fold
from .iemocap import (
    CONFIG_NAMES,
    EXCLUSION_REASONS,
    EXPECTED_4CLASS_COUNTS,
    EXPECTED_4CLASS_TOTAL,
    FOUR_CLASS_LABEL_MAP,
    IEMOCAP_LABEL_CODES,
    IemocapBuilder,
    IemocapConfig,
    IemocapSummary,
    load_iemocap,
    scan_iemocap,
)

__all__ = [
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
