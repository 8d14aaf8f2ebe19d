# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Training: the Trainer and its arguments, data collators, length-grouped sampling, the encoder feature cache, the
alignment-loss schedule, metrics, calibration, and small models built from scratch."""
