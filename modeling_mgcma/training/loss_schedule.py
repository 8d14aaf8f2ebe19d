# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Training-time schedule of the alignment losses: a linear warm-up of the weights of L_DA and L_IA.

With `MGCMAConfig.alignment_loss_warmup = r > 0`, the alignment losses enter the total loss with the factor
min(1, step / (r * max_steps)): the classifier's cross-entropy shapes the shared encoders first, and the contrastive
objectives, whose gradients on the shared parameters start one to two orders of magnitude larger than L_CE's, join
gradually. `MGCMATrainer` adds the callback itself when the model's config asks for it.
"""

from transformers import TrainerCallback


def alignment_loss_scale(step: int, max_steps: int, warmup: float) -> float:
    """The factor on the alignment losses' weights at optimisation step `step` (0-based) of `max_steps`."""
    if warmup <= 0 or max_steps <= 0:
        return 1.0
    return min(1.0, step / (warmup * max_steps))


def _backbone(model):
    model = getattr(model, "module", model)  # DDP / accelerate wrappers
    return model.base_model


def set_alignment_loss_scale(model, step: int, max_steps: int) -> float:
    """Set the model's alignment-loss factor for `step` from its config; returns the factor."""
    backbone = _backbone(model)
    scale = alignment_loss_scale(step, max_steps, getattr(backbone.config, "alignment_loss_warmup", 0.0))
    backbone.alignment_loss_scale = scale
    return scale


class AlignmentLossWarmup(TrainerCallback):
    """Ramps the alignment losses in over the first `config.alignment_loss_warmup` of the training steps."""

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            set_alignment_loss_scale(model, state.global_step, state.max_steps)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is not None:  # evaluation and later use see the full objective
            _backbone(model).alignment_loss_scale = 1.0

