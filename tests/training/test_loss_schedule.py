# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""modeling_mgcma/training/loss_schedule.py: the warm-up factor of the alignment losses."""

import pytest

from modeling_mgcma.training.loss_schedule import alignment_loss_scale


def test_alignment_loss_scale_ramps_linearly():
    assert alignment_loss_scale(0, 100, 0.0) == 1.0
    assert [alignment_loss_scale(s, 100, 0.5) for s in (0, 25, 50, 99)] == [0.0, 0.5, 1.0, 1.0]
    assert [alignment_loss_scale(s, 8, 0.3) for s in range(4)] == pytest.approx([0.0, 1 / 2.4, 2 / 2.4, 1.0])
    assert alignment_loss_scale(3, 0, 0.5) == 1.0  # no known length (max_steps 0): the full weights
