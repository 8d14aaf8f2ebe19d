# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The training objective built from the loss components the model returns: the alignment losses' weights ramped in
(`alignment_loss_warmup`), and their gradient on the shared parameters projected (`alignment_gradient_projection`)
and capped (`alignment_gradient_balance`).

The model returns L_CE, L_DA, L_IA and their weighted sum, the paper's objective (`MGCMAModelOutput`); how training
weighs and reshapes their gradients is decided here, as open_clip's training task sums the `*_loss` components its
model returns. `MGCMATrainer.compute_loss` applies `alignment_objective` to every training step;
`benchmarks/bench_learning.py` calls the same function in its written-out training loop.

Gradient balancing and projection take the two losses' gradients on the shared parameters with `torch.autograd.grad`
(two extra backward passes per step, which keep the graph for the step's own backward), so they need a graph that
supports it: non-reentrant gradient checkpointing, or none.
"""

from __future__ import annotations

import torch
from torch import nn


def shared_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The trainable parameters that the classification and the alignment losses share: the backbone's
    (`model.base_model`: encoders, projections, DAM, TAM), not the classifier's."""
    backbone = getattr(model, "base_model", model)
    return [p for p in backbone.parameters() if p.requires_grad]


def alignment_gradient_factor(
    classification_loss: torch.Tensor, alignment_loss: torch.Tensor, shared: list[torch.Tensor], ratio: float
) -> torch.Tensor:
    """Factor c in (0, 1] that caps the alignment losses' gradient on the shared parameters at `ratio` times the
    classification loss's: c = min(1, ratio * ||d L_CE / d theta|| / ||d L_align / d theta||), theta = `shared`.

    Gradient balancing across losses (`MGCMATrainingArguments.alignment_gradient_balance`): from scratch the
    contrastive losses' gradients on the encoders start one to two orders of magnitude larger than L_CE's (and grow
    with the width), so under Adam the shared parameters follow them and the classifier's signal is lost. c is a
    detached constant: the step's gradient is grad L_CE + c * grad L_align (the loss value reported stays the plain
    weighted sum). Costs two extra backward passes, which keep the graph for the step's own backward.
    """
    norms = []
    for term in (classification_loss, alignment_loss):
        grads = torch.autograd.grad(term, shared, retain_graph=True, allow_unused=True)
        squares = [g.float().pow(2).sum() for g in grads if g is not None]
        norms.append(torch.stack(squares).sum().sqrt() if squares else torch.zeros((), device=term.device))
    ce_norm, alignment_norm = norms
    if alignment_norm == 0:
        return torch.ones((), device=alignment_loss.device)
    return (ratio * ce_norm / alignment_norm).clamp(max=1.0).detach()


def balanced_alignment_loss(
    classification_loss: torch.Tensor,
    alignment_loss: torch.Tensor,
    shared: list[torch.Tensor],
    ratio: float,
    project: bool,
) -> torch.Tensor:
    """The alignment loss to add to the classification loss, with its gradient on `shared` reshaped.

    Its value is `alignment_loss`'s; its gradient is c * g_align', where g_CE and g_align are the two losses' gradients
    on the shared parameters theta:
    - `project` (`alignment_gradient_projection`): where g_align points against g_CE (<g_align, g_CE> < 0),
      g_align' = g_align - <g_align, g_CE> / |g_CE|^2 * g_CE, the part of g_align orthogonal to g_CE (gradient
      projection as in PCGrad, Yu et al. 2020, applied to the auxiliary losses only); otherwise g_align' = g_align.
      The alignment losses then never undo, to first order, what the step does for L_CE, and keep training in every
      direction that does not.
    - `ratio` > 0 (`alignment_gradient_balance`): c = min(1, ratio * |g_CE| / |g_align'|); else c = 1.
    Both are detached constants of the step. The parameters outside `shared` (none today: the classifier does not
    receive the alignment losses) get c * their gradient of `alignment_loss`. Costs two extra backward passes, which
    keep the graph for the step's own backward.
    """
    if not project:  # the balance alone (or nothing): a factor on the whole gradient
        if ratio <= 0:
            return alignment_loss
        factor = alignment_gradient_factor(classification_loss, alignment_loss, shared, ratio)
        # value: the unbalanced objective (comparable loss curves); gradient: factor * grad alignment
        return factor * alignment_loss + ((1 - factor) * alignment_loss).detach()
    ce_grads = torch.autograd.grad(classification_loss, shared, retain_graph=True, allow_unused=True)
    alignment_grads = torch.autograd.grad(alignment_loss, shared, retain_graph=True, allow_unused=True)
    zero = torch.zeros((), device=alignment_loss.device)
    ce_sq = sum((g.float().pow(2).sum() for g in ce_grads if g is not None), zero)
    alignment_sq = sum((g.float().pow(2).sum() for g in alignment_grads if g is not None), zero)
    dot = sum(
        ((a.float() * b.float()).sum() for a, b in zip(ce_grads, alignment_grads) if a is not None and b is not None),
        zero,
    )
    coefficient = zero  # g_align' = g_align + coefficient * g_CE
    if dot < 0 and ce_sq > 0:
        coefficient = -dot / ce_sq
        alignment_sq = (alignment_sq - dot * dot / ce_sq).clamp_min(0)
    factor = torch.ones((), device=alignment_loss.device)
    if ratio > 0 and alignment_sq > 0:
        factor = (ratio * ce_sq.sqrt() / alignment_sq.sqrt()).clamp(max=1.0)
    factor, coefficient = factor.detach(), coefficient.detach()
    # value: the unbalanced objective (comparable loss curves); gradient: factor * grad alignment
    term = factor * alignment_loss + ((1 - factor) * alignment_loss).detach()
    if coefficient > 0:  # + factor * coefficient * g_CE on theta, through a term linear in theta whose value is 0
        pull = [
            ((factor * coefficient).to(g.dtype) * g.detach() * p).sum()
            for p, g in zip(shared, ce_grads)
            if g is not None
        ]
        correction = torch.stack([value.float() for value in pull]).sum()
        term = term + correction - correction.detach()
    return term


def alignment_objective(
    outputs,
    config,
    shared: list[torch.Tensor] | None = None,
    balance: float = 0.0,
    projection: bool = False,
    alignment_scale: float = 1.0,
) -> torch.Tensor:
    """The training loss of one step from the model's loss components:
    w_ce * L_CE + A, with A = alignment_scale * (w_da * L_DA + w_ia * L_IA) over the components that exist.

    With `balance` > 0 or `projection`, A's gradient on `shared` (see `shared_parameters`) is reshaped by
    `balanced_alignment_loss`; its value stays A's. `alignment_scale` is the warm-up factor of the step
    (`modeling_mgcma.training.loss_schedule.alignment_loss_scale`). With every option off (scale 1, no balance, no
    projection) this is the model's own `loss`, the paper's weighted sum. Weights w come from `config`.

    Args:
        outputs: the model's output, with `loss_ce` (None for the bare model), `loss_da` and `loss_ia` (each None
            when its module is off).
        config: the model's `MGCMAConfig` (the loss weights).
    """
    terms = []
    if outputs.loss_da is not None:
        terms.append(alignment_scale * config.distribution_loss_weight * outputs.loss_da)
    if outputs.loss_ia is not None:
        terms.append(alignment_scale * config.instance_loss_weight * outputs.loss_ia)
    alignment = sum(terms) if terms else None
    if outputs.loss_ce is None:  # the bare model: the alignment losses alone, nothing to balance them against
        return alignment
    loss = config.classification_loss_weight * outputs.loss_ce
    if alignment is None:
        return loss
    if (balance > 0 or projection) and alignment.requires_grad:
        if shared is None:
            raise ValueError(
                f"alignment_gradient_balance={balance!r} / alignment_gradient_projection={projection!r} reshape the "
                "gradient on the shared parameters: pass them as `shared` (see `shared_parameters`)."
            )
        alignment = balanced_alignment_loss(loss, alignment, shared, balance, projection)
    return loss + alignment


__all__ = ["shared_parameters", "alignment_gradient_factor", "balanced_alignment_loss", "alignment_objective"]
