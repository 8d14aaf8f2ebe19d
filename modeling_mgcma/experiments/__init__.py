# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Experiments: run_mgcma.py's arguments and presets, run records, the grid of settings x folds with its evaluation,
cost estimate and plots, model cards, and uploads to the Hub."""
