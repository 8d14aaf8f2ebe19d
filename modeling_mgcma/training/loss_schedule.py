# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Training-time schedule of the alignment losses: a linear warm-up of the weights of L_DA and L_IA.

With `MGCMATrainingArguments.alignment_loss_warmup = r > 0`, the alignment losses enter the training loss with the
factor min(1, step / (r * max_steps)): the classifier's cross-entropy shapes the shared encoders first, and the
contrastive objectives, whose gradients on the shared parameters start one to two orders of magnitude larger than
L_CE's, join gradually. `MGCMATrainer.compute_loss` applies the factor of each optimisation step to the loss
components the model returns (`modeling_mgcma.training.alignment_gradient.alignment_objective`); evaluation and the
model's own `loss` always use the full weights.
"""


def alignment_loss_scale(step: int, max_steps: int, warmup: float) -> float:
    """The factor on the alignment losses' weights at optimisation step `step` (0-based) of `max_steps`."""
    if warmup <= 0 or max_steps <= 0:
        return 1.0
    return min(1.0, step / (warmup * max_steps))


__all__ = ["alignment_loss_scale"]
