# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The training objective built from the loss components the model returns: the alignment losses' weights ramped in
(`alignment_loss_warmup`), and their gradient on the shared parameters projected (`alignment_gradient_projection`)
and capped (`alignment_gradient_balance`; on the backbone or the encoders alone: `alignment_gradient_balance_on`), and
kept off one encoder (`alignment_gradient_encoders`).

The model returns L_CE, L_DA, L_IA and their weighted sum, the paper's objective (`MGCMAModelOutput`); how training
weighs and reshapes their gradients is decided here, as open_clip's training task sums the `*_loss` components its
model returns. `MGCMATrainer.compute_loss` applies `alignment_objective` to every training step;
`benchmarks/bench_learning.py` calls the same function in its written-out training loop.

Gradient balancing and projection take the two losses' gradients with `torch.autograd.grad` and hand the assembled
gradient to the parameters through a term linear in them (`balanced_objective`): one extra backward pass per step,
no host read of a device value. They need a graph that supports `autograd.grad`: non-reentrant gradient
checkpointing, or none.
"""

from __future__ import annotations

import torch
from torch import nn


def shared_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The trainable parameters that the classification and the alignment losses share: the backbone's
    (`model.base_model`: encoders, projections, DAM, TAM), not the classifier's."""
    backbone = getattr(model, "base_model", model)
    return [p for p in backbone.parameters() if p.requires_grad]


ALIGNMENT_GRADIENT_ENCODERS = ("both", "speech", "text")


def alignment_exempt_parameters(model: nn.Module, encoders: str = "both") -> list[torch.Tensor]:
    """The trainable parameters that the alignment losses' gradient must not reach when only `encoders` ("speech",
    "text") receive it (`alignment_gradient_encoders`): the other encoder's. [] for "both" (the paper)."""
    if encoders not in ALIGNMENT_GRADIENT_ENCODERS:
        raise ValueError(f"alignment_gradient_encoders must be one of {ALIGNMENT_GRADIENT_ENCODERS}, got {encoders!r}.")
    if encoders == "both":
        return []
    backbone = getattr(model, "base_model", model)
    other = "text_encoder" if encoders == "speech" else "speech_encoder"
    encoder = getattr(backbone, other, None)
    if encoder is None:
        raise ValueError(f"alignment_gradient_encoders={encoders!r} keeps the alignment losses off the "
                         f"{other.replace('_', ' ')}, but the model has none.")  # fmt: skip
    return [p for p in encoder.parameters() if p.requires_grad]


BALANCE_SCOPES = ("backbone", "encoders")


def alignment_module_parameters(model: nn.Module, scope: str = "backbone") -> list[torch.Tensor]:
    """The backbone's trainable parameters left outside the gradient cap and projection under
    `alignment_gradient_balance_on=scope`: none for "backbone" (the cap covers everything the two losses share);
    for "encoders", those of the alignment modules (DAM, TAM and anything else that is not one of the two encoders
    or their projections to D), which exist for the alignment and learn from its losses in full."""
    if scope not in BALANCE_SCOPES:
        raise ValueError(f"alignment_gradient_balance_on must be one of {BALANCE_SCOPES}, got {scope!r}.")
    if scope == "backbone":
        return []
    backbone = getattr(model, "base_model", model)
    inputs = set()
    for name in ("speech_encoder", "text_encoder", "speech_projection", "text_projection"):
        module = getattr(backbone, name, None)
        if module is not None:
            inputs.update(id(p) for p in module.parameters())
    return [p for p in shared_parameters(model) if id(p) not in inputs]


def _reshaping(ce_grads, alignment_grads, ratio: float, project: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(factor c, coefficient k) of the reshaped alignment gradient c * (g_align + k * g_CE) on the shared
    parameters, from the two losses' gradients there. Branch-free (`torch.where`): no host read of a device value.

    k = -<g_align, g_CE> / |g_CE|^2 where `project` and the two conflict (<g_align, g_CE> < 0), else 0;
    c = min(1, ratio * |g_CE| / |g_align + k g_CE|) where `ratio` > 0 and that norm is not 0, else 1."""
    zero, one, tiny = torch.zeros((), device=device), torch.ones((), device=device), torch.finfo(torch.float32).tiny
    ce_sq = sum((g.float().pow(2).sum() for g in ce_grads if g is not None), zero)
    alignment_sq = sum((g.float().pow(2).sum() for g in alignment_grads if g is not None), zero)
    coefficient = zero
    if project:
        pairs = [(a, b) for a, b in zip(ce_grads, alignment_grads) if a is not None and b is not None]
        dot = sum(((a.float() * b.float()).sum() for a, b in pairs), zero)
        conflict = (dot < 0) & (ce_sq > 0)
        coefficient = torch.where(conflict, -dot / ce_sq.clamp_min(tiny), zero)
        alignment_sq = torch.where(conflict, (alignment_sq - dot * dot / ce_sq.clamp_min(tiny)).clamp_min(0), alignment_sq)
    if ratio <= 0:
        return one, coefficient.detach()
    capped = (ratio * ce_sq.sqrt() / alignment_sq.sqrt().clamp_min(tiny)).clamp(max=1.0)
    return torch.where(alignment_sq > 0, capped, one).detach(), coefficient.detach()


def balanced_objective(
    classification_loss: torch.Tensor,
    alignment_loss: torch.Tensor,
    shared: list[torch.Tensor],
    ratio: float,
    project: bool,
    others: list[torch.Tensor] = (),
    exempt: list[torch.Tensor] = (),
    uncapped: list[torch.Tensor] = (),
) -> torch.Tensor:
    """`classification_loss + alignment_loss` with the alignment gradient on the shared parameters reshaped.

    Its value is the plain sum; its gradient on each parameter theta of `shared` is g_CE + c * g_align', and on each
    of `others` (the trainable parameters outside the backbone, e.g. the classifier) g_CE + c * g_align, where g_CE
    and g_align are the two losses' gradients and:
    - `project` (`alignment_gradient_projection`): where g_align points against g_CE on the shared parameters
      (<g_align, g_CE> < 0), g_align' = g_align - <g_align, g_CE> / |g_CE|^2 * g_CE, the part of g_align orthogonal
      to g_CE (gradient projection as in PCGrad, Yu et al. 2020, applied to the auxiliary losses only); otherwise
      g_align' = g_align. The alignment losses then never undo, to first order, what the step does for L_CE.
    - `ratio` > 0 (`alignment_gradient_balance`): c = min(1, ratio * |g_CE| / |g_align'|); else c = 1.
    - `exempt` (a subset of `shared`; `alignment_gradient_encoders`): these parameters get g_CE alone, and the
      projection and the cap are computed on the rest of `shared`, the parameters g_align still reaches.
    - `uncapped` (a subset of `shared`; `alignment_gradient_balance_on="encoders"`): these parameters get the plain
      g_CE + g_align, and the projection and the cap are computed on the rest of `shared`.
    c and the projection coefficient are detached constants of the step, computed with `torch.where` (no host read).

    Cost: ONE extra backward pass over a plain step. The two gradients are taken with `torch.autograd.grad` (keeping
    the graph), and the tensor returned is linear in the parameters (value: the plain sum), so the step's own
    `backward()` only hands the assembled gradient to the parameters and runs no pass through the network.
    Parameters that neither loss reaches get no gradient (None), as in a plain step.
    """
    exempt_ids, uncapped_ids = {id(p) for p in exempt}, {id(p) for p in uncapped} - {id(p) for p in exempt}
    exempt = [p for p in shared if id(p) in exempt_ids]
    uncapped = [p for p in shared if id(p) in uncapped_ids]
    shared = [p for p in shared if id(p) not in exempt_ids | uncapped_ids]
    others = [p for p in others if p.requires_grad]
    params = shared + exempt + uncapped + others
    value = (classification_loss + alignment_loss).detach()
    if not params:
        return classification_loss + alignment_loss
    ce_grads = torch.autograd.grad(classification_loss, params, retain_graph=True, allow_unused=True)
    alignment_grads = torch.autograd.grad(alignment_loss, params, retain_graph=True, allow_unused=True)
    if exempt:
        alignment_grads = [None if id(p) in exempt_ids else g for p, g in zip(params, alignment_grads)]
    n, plain = len(shared), range(len(shared) + len(exempt), len(shared) + len(exempt) + len(uncapped))
    factor, coefficient = _reshaping(ce_grads[:n], alignment_grads[:n], ratio, project, alignment_loss.device)
    terms = []
    for index, (parameter, ce, alignment) in enumerate(zip(params, ce_grads, alignment_grads)):
        if ce is None and alignment is None:
            continue
        gradient = torch.zeros_like(parameter) if ce is None else ce
        if index < n and ce is not None:
            gradient = gradient + (factor * coefficient).to(ce.dtype) * ce
        if alignment is not None:
            gradient = gradient + (alignment if index in plain else factor.to(alignment.dtype) * alignment)
        terms.append((gradient.detach() * parameter).sum().float())
    if not terms:
        return classification_loss + alignment_loss
    linear = torch.stack(terms).sum()
    return value + (linear - linear.detach())


def other_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The trainable parameters of `model` outside `shared_parameters` (the classifier's)."""
    shared = {id(p) for p in shared_parameters(model)}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in shared]


def alignment_gradient_factor(
    classification_loss: torch.Tensor, alignment_loss: torch.Tensor, shared: list[torch.Tensor], ratio: float
) -> torch.Tensor:
    """Factor c in (0, 1] that caps the alignment losses' gradient on the shared parameters at `ratio` times the
    classification loss's: c = min(1, ratio * ||d L_CE / d theta|| / ||d L_align / d theta||), theta = `shared`.

    Gradient balancing across losses (`MGCMATrainingArguments.alignment_gradient_balance`): from scratch the
    contrastive losses' gradients on the encoders start one to two orders of magnitude larger than L_CE's (and grow
    with the width), so under Adam the shared parameters follow them and the classifier's signal is lost. c is a
    detached constant: the step's gradient is grad L_CE + c * grad L_align (the loss value reported stays the plain
    weighted sum).
    """
    ce_grads = torch.autograd.grad(classification_loss, shared, retain_graph=True, allow_unused=True)
    alignment_grads = torch.autograd.grad(alignment_loss, shared, retain_graph=True, allow_unused=True)
    return _reshaping(ce_grads, alignment_grads, ratio, False, alignment_loss.device)[0]


def alignment_objective(
    outputs,
    config,
    shared: list[torch.Tensor] | None = None,
    balance: float = 0.0,
    projection: bool = False,
    alignment_scale: float = 1.0,
    others: list[torch.Tensor] | None = None,
    exempt: list[torch.Tensor] | None = None,
    uncapped: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The training loss of one step from the model's loss components:
    w_ce * L_CE + A, with A = alignment_scale * (w_da * L_DA + w_ia * L_IA) over the components that exist.

    With `balance` > 0 or `projection`, A's gradient on `shared` (see `shared_parameters`) is reshaped by
    `balanced_objective`; its value stays the plain sum, and the trainable parameters outside `shared` (`others`: the
    classifier's; see `other_parameters`) receive their plain gradient from it. Parameters in `exempt` (see
    `alignment_exempt_parameters`) get no gradient from A at all (the same reshaped path, with or without balance);
    those in `uncapped` (see `alignment_module_parameters`) get A's plain gradient, outside the cap and projection.
    `alignment_scale` is the warm-up factor of the step (`modeling_mgcma.training.loss_schedule.alignment_loss_scale`).
    With every option off (scale 1, no balance, no projection, no exempt encoder) this is the model's own `loss`, the
    paper's weighted sum. Weights w come from `config`.

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
    if (balance > 0 or projection or exempt) and alignment.requires_grad:
        if shared is None:
            raise ValueError(
                f"alignment_gradient_balance={balance!r} / alignment_gradient_projection={projection!r} / an exempt "
                "encoder reshape the gradient on the shared parameters: pass them as `shared` (see "
                "`shared_parameters`)."
            )
        if others is None:
            raise ValueError(
                "the reshaped objective hands every trainable parameter its gradient: pass those outside `shared` "
                "as `others` (see `other_parameters`; [] when there are none)."
            )
        return balanced_objective(loss, alignment, shared, balance, projection, others=others, exempt=exempt or (),
                                  uncapped=uncapped or ())  # fmt: skip
    return loss + alignment


__all__ = [
    "ALIGNMENT_GRADIENT_ENCODERS",
    "shared_parameters",
    "other_parameters",
    "alignment_exempt_parameters",
    "BALANCE_SCOPES",
    "alignment_module_parameters",
    "alignment_gradient_factor",
    "balanced_objective",
    "alignment_objective",
]
