# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""modeling_mgcma/training/alignment_gradient.py: the training objective built from the model's loss components,
gradient balancing and gradient projection, against gradients computed directly."""

import pytest
import torch

from modeling_mgcma import MGCMAConfig, MGCMAForEmotionClassification
from modeling_mgcma.training.alignment_gradient import (
    alignment_exempt_parameters,
    alignment_gradient_factor,
    alignment_module_parameters,
    alignment_objective,
    balanced_objective,
    other_parameters,
    shared_parameters,
)


def _flat_gradient(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def test_shared_parameters_are_the_trainable_backbone(tiny_model):
    params = shared_parameters(tiny_model)
    assert params and not any(p is q for p in params for q in tiny_model.classifier.parameters())
    assert [id(p) for p in params] == [id(p) for p in tiny_model.mgcma.parameters() if p.requires_grad]
    tiny_model.mgcma.text_encoder.requires_grad_(False)
    text = {id(p) for p in tiny_model.mgcma.text_encoder.parameters()}
    assert not text & {id(p) for p in shared_parameters(tiny_model)}


def test_gradient_balance_caps_the_alignment_gradient(tiny_config_factory, tiny_batch, one_torch_thread):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory())
    params = shared_parameters(model)

    def norm(loss):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return float(torch.sqrt(sum(g.pow(2).sum() for g in grads if g is not None)))

    out = model(**tiny_batch)
    alignment = out.loss - out.loss_ce
    ce_norm, aux_norm = norm(out.loss_ce), norm(alignment)
    assert aux_norm > 3 * ce_norm  # the alignment losses dominate the shared parameters at initialisation
    factor = float(alignment_gradient_factor(out.loss_ce, alignment, params, ratio=1.0))
    assert factor == pytest.approx(ce_norm / aux_norm, rel=1e-4)
    assert float(alignment_gradient_factor(out.loss_ce, alignment, params, ratio=1e6)) == 1.0  # never amplifies

    # the objective built from the components: the value is the plain objective, the gradient on the backbone balanced
    balanced = alignment_objective(out, model.config, params, balance=1.0, others=other_parameters(model))
    assert torch.allclose(balanced, out.loss_ce + out.loss_da + out.loss_ia, rtol=1e-5)
    assert norm(balanced - out.loss_ce) == pytest.approx(ce_norm, rel=1e-3)
    assert norm(balanced - out.loss_ce) < 0.5 * aux_norm
    # the model's own loss stays the paper's weighted sum, its gradient untouched
    assert norm(out.loss - out.loss_ce) == pytest.approx(aux_norm, rel=1e-6)
    with pytest.raises(ValueError, match="shared"):
        alignment_objective(out, model.config, None, balance=1.0)


@pytest.mark.parametrize("ratio", [0.0, 1.0, 0.05])
def test_gradient_projection_removes_only_the_part_against_the_classifier(ratio):
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(size, generator=generator, requires_grad=True) for size in (6, 3)]
    x = torch.randn(6, generator=generator)
    ce = (params[0] * x).sum() ** 2 + params[1].sum()
    against = -3 * (params[0] * x).sum() + params[1].pow(2).sum()  # its gradient points against ce's here
    g_ce = _flat_gradient(ce, params)
    for alignment in (against, -against):
        g = _flat_gradient(alignment, params)
        conflict = float(g @ g_ce) < 0
        term = balanced_objective(ce, alignment, params, ratio, project=True) - ce
        assert torch.allclose(term, alignment)  # the value is the alignment loss's
        projected = g - (g @ g_ce) / (g_ce @ g_ce) * g_ce if conflict else g
        factor = min(1.0, ratio * float(g_ce.norm() / projected.norm())) if ratio > 0 else 1.0
        got = _flat_gradient(term, params)
        assert torch.allclose(got, factor * projected, atol=1e-5)
        if conflict:
            assert abs(float(got @ g_ce)) < 1e-4 * float(g_ce.norm() * got.norm())  # orthogonal to L_CE's
            assert float(got.norm()) > 0.1 * factor * float(g.norm())  # the rest of the gradient is kept
        # without the projection: the balance alone, as alignment_gradient_factor gives it
        plain = _flat_gradient(balanced_objective(ce, alignment, params, ratio, project=False) - ce, params)
        expected = float(alignment_gradient_factor(ce, alignment, params, ratio)) if ratio > 0 else 1.0
        assert torch.allclose(plain, expected * g, atol=1e-5)


def test_objective_applies_gradient_projection(tiny_config_factory, tiny_batch, one_torch_thread):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory())
    params = shared_parameters(model)
    model.train()
    out = model(**tiny_batch)
    loss = alignment_objective(out, model.config, params, projection=True, others=other_parameters(model))
    g_ce = _flat_gradient(out.loss_ce, params)
    g_plain = _flat_gradient(out.loss_da + out.loss_ia, params)
    g_used = _flat_gradient(loss - out.loss_ce, params)
    assert torch.allclose(loss, out.loss_ce + out.loss_da + out.loss_ia, rtol=1e-5)
    dot = float(g_plain @ g_ce)
    assert dot < 0  # the tiny model starts with a conflict: the projection has work to do
    expected = g_plain - dot / float(g_ce @ g_ce) * g_ce
    assert torch.allclose(g_used, expected, atol=1e-6 * float(g_plain.norm()) + 1e-8)
    assert float(g_used @ g_ce) >= -1e-5 * float(g_used.norm() * g_ce.norm())
    # the model's own loss: the plain weighted sum, nothing reshaped
    assert torch.allclose(_flat_gradient(out.loss - out.loss_ce, params), g_plain, atol=1e-6)


def test_objective_scales_the_alignment_losses_and_keeps_the_weights(tiny_config_factory, tiny_batch, one_torch_thread):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(
        tiny_config_factory(classification_loss_weight=0.5, distribution_loss_weight=2.0, instance_loss_weight=0.25)
    ).eval()
    out = model(**tiny_batch)
    assert torch.equal(alignment_objective(out, model.config), out.loss)  # every option off: the model's loss
    ramped = alignment_objective(out, model.config, alignment_scale=0.25)
    expected = 0.5 * out.loss_ce + 0.25 * (2.0 * out.loss_da + 0.25 * out.loss_ia)
    assert torch.allclose(ramped, expected, rtol=1e-6)
    # without DAM and IAM there is nothing to scale or balance: L_CE alone
    torch.manual_seed(0)
    s4 = MGCMAForEmotionClassification(tiny_config_factory(**MGCMAConfig.ablation_kwargs("S4")))
    out = s4(**tiny_batch)
    balanced = alignment_objective(out, s4.config, shared_parameters(s4), balance=1.0, projection=True, others=[])
    assert torch.equal(balanced, out.loss)


def test_the_reshaped_objective_gives_every_parameter_its_gradient_in_one_extra_pass(
    tiny_config_factory, tiny_batch, one_torch_thread
):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory()).train()
    shared, others = shared_parameters(model), other_parameters(model)
    assert others and all(any(p is q for q in model.classifier.parameters()) for p in others)
    # count the backward passes through the network at a module both losses reach: a plain step runs it once
    runs = []
    model.mgcma.speech_projection.register_full_backward_hook(lambda *_: runs.append(1))
    out = model(**tiny_batch)
    alignment = out.loss_da + out.loss_ia
    g_ce = [_flat_gradient(out.loss_ce, group) for group in (shared, others)]
    g_align = _flat_gradient(alignment, shared)
    factor = float(alignment_gradient_factor(out.loss_ce, alignment, shared, ratio=1.0))
    assert factor < 1  # the balance has work to do
    runs.clear()
    loss = alignment_objective(out, model.config, shared, balance=1.0, others=others)
    model.zero_grad()
    loss.backward()
    assert len(runs) == 2  # L_CE's and the alignment losses' gradients once each; backward() adds no pass
    got_shared = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros_like(p).flatten() for p in shared])
    got_others = torch.cat([p.grad.flatten() for p in others])
    torch.testing.assert_close(got_shared, g_ce[0] + factor * g_align, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got_others, g_ce[1])  # the classifier: its plain L_CE gradient
    with pytest.raises(ValueError, match="others"):
        alignment_objective(out, model.config, shared, balance=1.0)


@pytest.mark.parametrize("balance", [0.0, 1.0])
@pytest.mark.parametrize("encoders", ["speech", "text"])
def test_one_encoder_kept_off_the_alignment_losses(tiny_config_factory, tiny_batch, one_torch_thread, encoders, balance):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory()).train()
    shared, others = shared_parameters(model), other_parameters(model)
    exempt = alignment_exempt_parameters(model, encoders)
    off = model.mgcma.text_encoder if encoders == "speech" else model.mgcma.speech_encoder
    assert {id(p) for p in exempt} == {id(p) for p in off.parameters() if p.requires_grad}
    kept = [p for p in shared if id(p) not in {id(q) for q in exempt}]
    out = model(**tiny_batch)
    alignment = out.loss_da + out.loss_ia
    assert float(_flat_gradient(alignment, exempt).norm()) > 0  # the plain objective does reach that encoder
    loss = alignment_objective(out, model.config, shared, balance=balance, others=others, exempt=exempt)
    assert torch.allclose(loss, out.loss_ce + alignment, rtol=1e-5)  # the value is the plain sum
    # the exempt encoder follows L_CE alone; the rest of the backbone gets L_CE's gradient plus c * the alignment's,
    # c capped on the gradient the alignment losses actually apply (the kept parameters only)
    torch.testing.assert_close(_flat_gradient(loss, exempt), _flat_gradient(out.loss_ce, exempt), rtol=1e-4, atol=1e-7)
    g_ce, g_align = _flat_gradient(out.loss_ce, kept), _flat_gradient(alignment, kept)
    factor = min(1.0, balance * float(g_ce.norm() / g_align.norm())) if balance > 0 else 1.0
    assert factor < 1 or balance == 0
    torch.testing.assert_close(_flat_gradient(loss, kept), g_ce + factor * g_align, rtol=1e-4, atol=1e-6)
    assert alignment_exempt_parameters(model, "both") == []
    with pytest.raises(ValueError, match="alignment_gradient_encoders"):
        alignment_exempt_parameters(model, "audio")


@pytest.mark.parametrize("projection", [False, True])
def test_the_cap_on_the_encoders_leaves_the_alignment_modules_their_plain_gradient(
    tiny_config_factory, tiny_batch, one_torch_thread, projection
):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory()).train()
    shared, others = shared_parameters(model), other_parameters(model)
    modules = alignment_module_parameters(model, "encoders")
    backbone = model.mgcma
    expected_modules = {id(p) for name in ("distribution_alignment", "token_alignment")
                        for p in getattr(backbone, name).parameters() if p.requires_grad}  # fmt: skip
    assert expected_modules and expected_modules <= {id(p) for p in modules}
    inputs = [p for p in shared if id(p) not in {id(q) for q in modules}]
    encoder_ids = {id(p) for p in backbone.speech_encoder.parameters()} | {id(p) for p in backbone.text_encoder.parameters()}
    assert encoder_ids & {id(p) for p in inputs} and not encoder_ids & {id(p) for p in modules}
    out = model(**tiny_batch)
    alignment = out.loss_da + out.loss_ia
    loss = alignment_objective(out, model.config, shared, balance=1.0, projection=projection, others=others,
                               uncapped=modules)  # fmt: skip
    # the alignment modules: the plain sum's gradient
    torch.testing.assert_close(_flat_gradient(loss, modules), _flat_gradient(out.loss_ce + alignment, modules),
                               rtol=1e-4, atol=1e-7)  # fmt: skip
    # the encoders and their projections: L_CE's plus the reshaped alignment gradient, computed on them alone
    expected = balanced_objective(out.loss_ce, alignment, inputs, 1.0, projection)
    torch.testing.assert_close(_flat_gradient(loss, inputs), _flat_gradient(expected, inputs), rtol=1e-4, atol=1e-7)
    g_ce, g_align = _flat_gradient(out.loss_ce, inputs), _flat_gradient(alignment, inputs)
    assert float(g_align.norm()) > float(g_ce.norm())  # the cap has work to do on the encoders
    assert alignment_module_parameters(model, "backbone") == []
    with pytest.raises(ValueError, match="alignment_gradient_balance_on"):
        alignment_module_parameters(model, "modules")
