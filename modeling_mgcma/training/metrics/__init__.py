# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Evaluation metrics shipped with MGCMA as `evaluate` modules, loaded by path (works offline)."""

from pathlib import Path


# WA (accuracy) and UA (mean per-class recall): `evaluate.load(WA_UA_METRIC_PATH)`.
WA_UA_METRIC_PATH = str(Path(__file__).with_name("wa_ua.py"))

__all__ = ["WA_UA_METRIC_PATH"]
