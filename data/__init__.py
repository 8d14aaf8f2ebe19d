"""IEMOCAP builder, demo corpus, manifests and cross-validation splits (see data/README.md)."""

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
