# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Learning: the width-independent distribution distance, the alignment-loss schedule, gradient balancing, the spoken
demo corpus, and the key comparison (full model vs no alignment) trained for a few epochs."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_mgcma import MGCMAConfig, MGCMAForEmotionClassification, distribution_contrastive_loss
from modeling_mgcma.training.loss_schedule import AlignmentLossWarmup, alignment_loss_scale
from modeling_mgcma.modeling_mgcma import alignment_gradient_factor, balanced_alignment_loss


ROOT = Path(__file__).resolve().parents[1]
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (scripts/setup.sh installs the Debian package): the spoken corpus needs it",
)


def layer_normed_gaussians(n, d, seed):
    generator = torch.Generator().manual_seed(seed)
    mu = F.layer_norm(torch.randn(n, d, generator=generator), (d,))
    sigma = torch.exp(0.3 * torch.randn(n, d, generator=generator))
    return mu, sigma


def logit_span(d, distance, scale):
    """Mean over rows of max - min logit, for pairs that are nearly aligned (as after some training)."""
    mu_s, sigma_s = layer_normed_gaussians(8, d, 0)
    noise_mu, noise_sigma = layer_normed_gaussians(8, d, 1)
    mu_t, sigma_t = F.layer_norm(mu_s + 0.3 * noise_mu, (d,)), sigma_s * noise_sigma**0.1
    w = torch.cdist(torch.cat([mu_s, sigma_s], -1), torch.cat([mu_t, sigma_t], -1)).pow(2)
    w = w / d if distance == "mean" else w
    logits = -scale * w / 0.07
    return float((logits.amax(1) - logits.amin(1)).mean())


def test_mean_distance_makes_the_logit_span_independent_of_the_width():
    # the sum over dimensions grows ~linearly with D: 12x wider, ~12x larger logits (and gradients)
    assert logit_span(768, "sum", 1 / 200) / logit_span(64, "sum", 1 / 200) > 8
    ratio = logit_span(768, "mean", 0.32) / logit_span(64, "mean", 0.32)
    assert 0.5 < ratio < 2  # the per-dimension distance keeps the same scale at any width


def test_mean_distance_with_rescaled_p_reproduces_the_sum_at_768():
    mu_s, sigma_s = layer_normed_gaussians(6, 768, 2)
    mu_t, sigma_t = layer_normed_gaussians(6, 768, 3)
    literal = distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, 1 / 200, 4.0, 0.07, distance="sum")
    per_dim = distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, 768 / 200, 4.0, 0.07, distance="mean")
    assert torch.allclose(literal, per_dim, rtol=1e-5)
    other = distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, 1 / 200, 4.0, 0.07, distance="mean")
    assert not torch.allclose(literal, other, rtol=1e-2)
    with pytest.raises(ValueError, match="'sum' or 'mean'"):
        distribution_contrastive_loss(mu_s, sigma_s, mu_t, sigma_t, 1.0, 0.0, 0.07, distance="max")


def test_model_uses_the_configured_distance(tiny_config_factory, tiny_batch, one_torch_thread):
    losses = {}
    for distance, scale in (("sum", 0.005), ("mean", 0.005 * 32)):  # D = 32: equal logits
        torch.manual_seed(0)
        model = MGCMAForEmotionClassification(
            tiny_config_factory(distribution_distance=distance, similarity_scale=scale)
        ).eval()
        losses[distance] = float(model(**tiny_batch).loss_da)
    assert losses["sum"] == pytest.approx(losses["mean"], rel=1e-5)
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory(distribution_distance="mean")).eval()
    assert float(model(**tiny_batch).loss_da) != pytest.approx(losses["sum"], rel=1e-3)


def test_old_configs_load_with_the_paper_behaviour(tmp_path, tiny_config_factory):
    config = tiny_config_factory()
    config.save_pretrained(tmp_path)
    saved = (tmp_path / "config.json").read_text()
    for name in ("distribution_distance", "alignment_loss_warmup"):  # a config written before these existed
        saved = re.sub(rf'\n\s*"{name}": [^\n]*,', "", saved)
    assert "distribution_distance" not in saved
    (tmp_path / "config.json").write_text(saved)
    loaded = MGCMAConfig.from_pretrained(tmp_path)
    assert loaded.distribution_distance == "sum" and loaded.alignment_loss_warmup == 0.0
    with pytest.raises(ValueError, match="distribution_distance"):
        MGCMAConfig(distribution_distance="l1")
    with pytest.raises(ValueError, match="alignment_loss_warmup"):
        MGCMAConfig(alignment_loss_warmup=1.5)


def test_alignment_loss_scale_ramps_linearly():
    assert alignment_loss_scale(0, 100, 0.0) == 1.0
    assert [alignment_loss_scale(s, 100, 0.5) for s in (0, 25, 50, 99)] == [0.0, 0.5, 1.0, 1.0]


def test_forward_applies_the_alignment_loss_factor(tiny_model, tiny_batch, one_torch_thread):
    tiny_model.eval()
    full = tiny_model(**tiny_batch)
    tiny_model.mgcma.alignment_loss_scale = 0.25
    ramped = tiny_model(**tiny_batch)
    tiny_model.mgcma.alignment_loss_scale = 1.0
    expected = ramped.loss_ce + 0.25 * (ramped.loss_da + ramped.loss_ia)
    assert torch.allclose(ramped.loss, expected, rtol=1e-6)
    assert torch.allclose(full.loss, full.loss_ce + full.loss_da + full.loss_ia, rtol=1e-6)


def test_trainer_ramps_the_alignment_losses(tiny_config_factory, tiny_processor, tmp_path, one_torch_thread):
    import datasets
    from transformers import TrainerCallback, TrainingArguments

    from modeling_mgcma.training.collators import MGCMADataCollator

    from modeling_mgcma.training.trainer import MGCMATrainer

    seen = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen.append(model.mgcma.alignment_loss_scale)

    rng = np.random.default_rng(0)
    rows = {
        "audio": [{"array": rng.standard_normal(4000).astype(np.float32) * 0.1, "sampling_rate": 16000} for _ in range(8)],
        "text": ["i am so happy today", "sad", "the weather is fine", "i am angry"] * 2,
        "label": [1, 2, 3, 0] * 2,
    }
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory(alignment_loss_warmup=0.5))
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=8, report_to="none", use_cpu=True,
        save_strategy="no", logging_steps=100, remove_unused_columns=False,
    )  # fmt: skip
    trainer = MGCMATrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_dict(rows),
        data_collator=MGCMADataCollator(tiny_processor), callbacks=[Record()],
    )  # fmt: skip
    assert any(isinstance(c, AlignmentLossWarmup) for c in trainer.callback_handler.callbacks)
    trainer.train()
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert model.mgcma.alignment_loss_scale == 1.0  # evaluation after training sees the full objective


def test_gradient_balance_caps_the_alignment_gradient(tiny_config_factory, tiny_batch, one_torch_thread):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory())
    params = model._shared_parameters()
    assert params and not any(p is q for p in params for q in model.classifier.parameters())

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

    # the model applies it in training (and only there): the step's gradient on the backbone is balanced
    model.config.alignment_gradient_balance = 1.0
    balanced = model(**tiny_batch)  # (the encoders' dropout makes this a different draw from `out`)
    # the value is the plain objective, the gradient on the backbone is balanced
    assert torch.allclose(balanced.loss, balanced.loss_ce + balanced.loss_da + balanced.loss_ia, rtol=1e-5)
    assert norm(balanced.loss - balanced.loss_ce) == pytest.approx(norm(balanced.loss_ce), rel=1e-3)
    assert norm(balanced.loss - balanced.loss_ce) < 0.5 * norm(balanced.loss_da + balanced.loss_ia)
    model.eval()
    evaluated = model(**tiny_batch)
    assert torch.allclose(evaluated.loss, evaluated.loss_ce + evaluated.loss_da + evaluated.loss_ia, rtol=1e-5)
    with pytest.raises(ValueError, match="alignment_gradient_balance"):
        MGCMAConfig(alignment_gradient_balance=-1.0)


def _flat_gradient(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


@pytest.mark.parametrize("ratio", [0.0, 1.0, 0.05])
def test_gradient_projection_removes_only_the_part_against_the_classifier(ratio):
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(6, generator=generator, requires_grad=True), torch.randn(3, generator=generator, requires_grad=True)]
    x = torch.randn(6, generator=generator)
    ce = (params[0] * x).sum() ** 2 + params[1].sum()
    against = -3 * (params[0] * x).sum() + params[1].pow(2).sum()  # its gradient points against ce's here
    g_ce = _flat_gradient(ce, params)
    for alignment in (against, -against):
        g = _flat_gradient(alignment, params)
        conflict = float(g @ g_ce) < 0
        term = balanced_alignment_loss(ce, alignment, params, ratio, project=True)
        assert torch.allclose(term, alignment)  # the value is the alignment loss's
        projected = g - (g @ g_ce) / (g_ce @ g_ce) * g_ce if conflict else g
        factor = min(1.0, ratio * float(g_ce.norm() / projected.norm())) if ratio > 0 else 1.0
        got = _flat_gradient(term, params)
        assert torch.allclose(got, factor * projected, atol=1e-5)
        if conflict:
            assert abs(float(got @ g_ce)) < 1e-4 * float(g_ce.norm() * got.norm())  # orthogonal to L_CE's
            assert float(got.norm()) > 0.1 * factor * float(g.norm())  # the rest of the gradient is kept
        # without the projection: the balance alone, as alignment_gradient_factor gives it
        plain = _flat_gradient(balanced_alignment_loss(ce, alignment, params, ratio, project=False), params)
        expected = float(alignment_gradient_factor(ce, alignment, params, ratio)) if ratio > 0 else 1.0
        assert torch.allclose(plain, expected * g, atol=1e-5)


def test_model_applies_gradient_projection_in_training(tiny_config_factory, tiny_batch, one_torch_thread):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory(alignment_gradient_projection=True))
    params = model._shared_parameters()
    model.train()
    out = model(**tiny_batch)
    g_ce = _flat_gradient(out.loss_ce, params)
    g_plain = _flat_gradient(out.loss_da + out.loss_ia, params)
    g_used = _flat_gradient(out.loss - out.loss_ce, params)
    assert torch.allclose(out.loss, out.loss_ce + out.loss_da + out.loss_ia, rtol=1e-5)
    dot = float(g_plain @ g_ce)
    if dot < 0:
        expected = g_plain - dot / float(g_ce @ g_ce) * g_ce
    else:
        expected = g_plain
    assert torch.allclose(g_used, expected, atol=1e-6 * float(g_plain.norm()) + 1e-8)
    assert float(g_used @ g_ce) >= -1e-5 * float(g_used.norm() * g_ce.norm())
    model.eval()  # evaluation: the plain weighted sum, nothing reshaped
    evaluated = model(**tiny_batch)
    assert torch.allclose(
        _flat_gradient(evaluated.loss - evaluated.loss_ce, params),
        _flat_gradient(evaluated.loss_da + evaluated.loss_ia, params),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="alignment_gradient_projection"):
        MGCMAConfig(alignment_gradient_projection="yes")


def test_classifier_reads_projected_features_beside_aligned_ones(tiny_config_factory, tiny_batch, one_torch_thread):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory(classifier_features="concat_projected")).eval()
    width = model.config.hidden_size
    assert model.classifier.dense.in_features == 4 * width
    seen = {}
    model.classifier.register_forward_hook(lambda module, args, output: seen.update(features=args[0]))
    out = model(**tiny_batch)
    pooled = model.mgcma(**{k: v for k, v in tiny_batch.items() if k != "labels"}, output_hidden_states=True)
    mask_s, mask_t = pooled.speech_mask.bool(), pooled.text_mask.bool()
    projected_s = (pooled.speech_hidden_states[0] * mask_s[..., None]).sum(1) / mask_s.sum(1, keepdim=True)
    projected_t = (pooled.text_hidden_states[0] * mask_t[..., None]).sum(1) / mask_t.sum(1, keepdim=True)
    assert torch.allclose(out.speech_projected_embeds, projected_s, atol=1e-6)
    assert torch.allclose(out.text_projected_embeds, projected_t, atol=1e-6)
    expected = torch.cat([out.speech_embeds, out.text_embeds, projected_s, projected_t], dim=-1)
    assert torch.allclose(seen["features"], expected, atol=1e-6)
    assert not torch.allclose(out.speech_embeds, projected_s, atol=1e-3)  # the aligned pair is another pair

    # without DAM and TAM the projected features are the aligned ones: the classifier reads "concat"'s pair
    ablation = MGCMAConfig.ablation_kwargs("S4")
    torch.manual_seed(0)
    plain = MGCMAForEmotionClassification(tiny_config_factory(**ablation)).eval()
    torch.manual_seed(0)
    same = MGCMAForEmotionClassification(tiny_config_factory(classifier_features="concat_projected", **ablation)).eval()
    assert same.classifier.dense.in_features == 2 * width
    result = same(**tiny_batch)
    assert result.speech_projected_embeds is None
    assert torch.allclose(result.logits, plain(**tiny_batch).logits)
    # the plain "concat" model returns no projected pair
    torch.manual_seed(0)
    assert MGCMAForEmotionClassification(tiny_config_factory()).eval()(**tiny_batch).speech_projected_embeds is None
