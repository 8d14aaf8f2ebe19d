# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""MGCMAModel / MGCMAForEmotionClassification: shapes, padding, training, ablations, numerics, errors."""

import pytest
import torch

from modeling_mgcma import (
    PAPER_ABLATIONS,
    MGCMAConfig,
    MGCMAForEmotionClassification,
    MGCMAModel,
)
from modeling_mgcma.training.from_scratch import speech_encoder_config, text_encoder_config


def test_output_fields_and_shapes(tiny_model, tiny_batch):
    out = tiny_model(**tiny_batch)
    batch = tiny_batch["labels"].shape[0]
    assert out.logits.shape == (batch, 4)
    for name in ("loss", "loss_ce", "loss_da", "loss_ia"):
        value = getattr(out, name)
        assert value is not None and value.dim() == 0 and torch.isfinite(value), name
    expected = out.loss_ce + out.loss_da + out.loss_ia  # default weights 1:1:1
    assert torch.allclose(out.loss, expected)
    for name in ("speech_embeds", "text_embeds", "speech_mu", "speech_sigma", "text_mu", "text_sigma"):
        assert getattr(out, name).shape == (batch, 32), name
    assert (out.speech_sigma > 0).all() and (out.text_sigma > 0).all()
    assert out.speech_mask.shape == out.speech_last_hidden_state.shape[:2]
    # the mask marks exactly the frames the encoder computes for each utterance's real samples
    lengths = tiny_model.mgcma.speech_encoder._get_feat_extract_output_lengths(tiny_batch["speech_attention_mask"].sum(-1))
    assert torch.equal(out.speech_mask.sum(-1), lengths)


def test_no_labels_means_no_loss(tiny_model, tiny_batch):
    tiny_batch.pop("labels")
    out = tiny_model(**tiny_batch)
    assert out.loss is None and out.loss_ce is None and out.loss_da is None and out.loss_ia is None
    assert out.logits.shape == (4, 4)


def test_loss_weights_apply(tiny_config_factory, tiny_batch):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(
        tiny_config_factory(distribution_loss_weight=0.5, instance_loss_weight=2.0, classification_loss_weight=3.0)
    )
    out = model(**tiny_batch)
    assert torch.allclose(out.loss, 3.0 * out.loss_ce + 0.5 * out.loss_da + 2.0 * out.loss_ia)


def test_batch_composition_invariance(tiny_model, tiny_processor, tiny_batch):
    """An utterance alone gives the same logits as when padded in a batch with longer ones."""
    tiny_model.eval()
    labels = tiny_batch.pop("labels")
    with torch.no_grad():
        batched = tiny_model(**tiny_batch).logits
        for index in range(len(labels)):
            n_samples = int(tiny_batch["speech_attention_mask"][index].sum())
            n_tokens = int(tiny_batch["text_attention_mask"][index].sum())
            alone = tiny_model(
                input_values=tiny_batch["input_values"][index : index + 1, :n_samples],
                input_ids=tiny_batch["input_ids"][index : index + 1, :n_tokens],
            ).logits
            assert torch.allclose(alone, batched[index : index + 1], atol=1e-4), index


def test_utterance_gaussians_and_losses_ignore_padding(tiny_model, tiny_batch):
    """The utterance Gaussians (and so L_DA and the pipeline's uncertainty) are the same alone as padded in a batch."""
    tiny_model.eval()
    with torch.no_grad():
        batched = tiny_model(**tiny_batch)
        for index in range(len(tiny_batch["labels"])):
            n_samples = int(tiny_batch["speech_attention_mask"][index].sum())
            n_tokens = int(tiny_batch["text_attention_mask"][index].sum())
            alone = tiny_model.mgcma(
                input_values=tiny_batch["input_values"][index : index + 1, :n_samples],
                input_ids=tiny_batch["input_ids"][index : index + 1, :n_tokens],
            )
            for name in ("speech_mu", "speech_sigma", "text_mu", "text_sigma", "speech_embeds", "text_embeds"):
                assert torch.allclose(getattr(alone, name), getattr(batched, name)[index : index + 1], atol=1e-4), name


def test_padding_content_does_not_matter(tiny_model, tiny_batch):
    tiny_model.eval()
    tiny_batch.pop("labels")
    with torch.no_grad():
        reference = tiny_model(**tiny_batch).logits
        noisy = dict(tiny_batch)
        pad_audio = tiny_batch["speech_attention_mask"] == 0
        noisy["input_values"] = tiny_batch["input_values"].masked_fill(pad_audio, 5.0)
        pad_text = tiny_batch["text_attention_mask"] == 0
        noisy["input_ids"] = tiny_batch["input_ids"].masked_fill(pad_text, 7)
        assert torch.allclose(tiny_model(**noisy).logits, reference, atol=1e-4)


def test_training_step_updates_every_trainable_parameter(tiny_model, tiny_batch):
    tiny_model.train()
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.Adam([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-3)
    tiny_model(**tiny_batch).loss.backward()
    no_grad = [n for n, p in tiny_model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    optimizer.step()
    unchanged = [n for n, p in tiny_model.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
    assert not unchanged, f"parameters not updated: {unchanged}"
    # freezing is a training argument applied by MGCMATrainer: the model as built trains every parameter
    assert all(p.requires_grad for p in tiny_model.parameters())


def test_loss_goes_down_when_overfitting_a_tiny_batch(tiny_model, tiny_batch):
    tiny_model.train()
    optimizer = torch.optim.Adam([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-3)
    first = None
    for _ in range(30):
        out = tiny_model(**tiny_batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if first is None:
            first = (out.loss.item(), out.loss_ce.item(), out.loss_da.item(), out.loss_ia.item())
    last = tiny_model(**tiny_batch)
    assert last.loss.item() < 0.5 * first[0]
    assert last.loss_ce.item() < first[1] and last.loss_da.item() < first[2] and last.loss_ia.item() < first[3]


MODULE_PREFIXES = {
    "use_distribution_alignment": "mgcma.distribution_alignment.",
    "use_token_alignment": "mgcma.token_alignment.",
}


@pytest.mark.parametrize("ablation", sorted(PAPER_ABLATIONS))
def test_every_paper_ablation_runs(ablation, tiny_config_factory, tiny_batch):
    config = tiny_config_factory(**MGCMAConfig.ablation_kwargs(ablation))
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(config)
    out = model(**tiny_batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    names = [n for n, _ in model.named_parameters()]
    for switch, prefix in MODULE_PREFIXES.items():
        owned = [n for n in names if n.startswith(prefix)]
        assert bool(owned) == getattr(config, switch), (switch, owned[:3])
    assert (out.loss_da is not None) == config.use_distribution_alignment
    assert (out.loss_ia is not None) == config.use_instance_alignment
    assert (out.speech_mu is not None) == config.use_distribution_alignment
    terms = [out.loss_ce] + [t for t in (out.loss_da, out.loss_ia) if t is not None]
    assert torch.allclose(out.loss, sum(terms))


def test_module_order_changes_the_computation(tiny_config_factory, tiny_batch):
    """S0 and S8 hold the same parameters; only the wiring differs, so the same weights give other logits."""
    # larger initial weights: at the default std of 0.02 every residual block is close to the identity
    torch.manual_seed(0)
    s0 = MGCMAForEmotionClassification(tiny_config_factory(initializer_range=0.3)).eval()
    s8 = MGCMAForEmotionClassification(tiny_config_factory(initializer_range=0.3, **MGCMAConfig.ablation_kwargs("S8"))).eval()
    s8.load_state_dict(s0.state_dict())
    tiny_batch.pop("labels")
    with torch.no_grad():
        a, b = s0(**tiny_batch), s8(**tiny_batch)
    assert (a.speech_embeds - b.speech_embeds).abs().max() > 1e-2
    assert not torch.allclose(a.logits, b.logits, atol=1e-4)


def test_iam_position_changes_instance_loss_only(tiny_config_factory, tiny_batch):
    """Moving IAM (S0 -> S5: dam, iam, tam) keeps logits and L_DA but computes L_IA on other features."""
    torch.manual_seed(0)
    s0 = MGCMAForEmotionClassification(tiny_config_factory()).eval()
    s5 = MGCMAForEmotionClassification(tiny_config_factory(**MGCMAConfig.ablation_kwargs("S5"))).eval()
    s5.load_state_dict(s0.state_dict())
    with torch.no_grad():
        a, b = s0(**tiny_batch), s5(**tiny_batch)
    assert torch.allclose(a.logits, b.logits) and torch.allclose(a.loss_da, b.loss_da)
    assert not torch.allclose(a.loss_ia, b.loss_ia)


@pytest.mark.parametrize(
    "overrides",
    [
        {"dam_output": "sample"},
        {"dam_output": "input"},
        {"sigma_activation": "softplus"},
        {"distribution_pooling": "first"},
        {"pooling": "max"},
        {"pooling": "first"},
        {"share_cross_attention": True},
        {"classifier_features": "speech"},
        {"learnable_similarity": True},
        {"normalize_instance_embeddings": False},
        {"alignment_norm": "pre"},
        {"alignment_norm": "pre", "share_cross_attention": True},
    ],
)
def test_config_options_run(overrides, tiny_config_factory, tiny_batch):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory(**overrides))
    out = model(**tiny_batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    if overrides.get("learnable_similarity"):
        assert model.mgcma.log_similarity_scale.grad is not None
        assert torch.allclose(model.mgcma.log_similarity_scale.exp(), torch.tensor(1 / 200))
    if overrides.get("share_cross_attention"):
        block = model.mgcma.token_alignment.layers[0]
        assert block.speech_cross_attention.attention is block.text_cross_attention.attention


def test_pre_layer_norm_keeps_an_identity_path_through_the_alignment_blocks(tiny_config_factory, tiny_batch):
    """With every residual branch's output projection zeroed, a pre-LN TAM passes its input through to the final
    LayerNorm, and a pre-LN DAM passes it through as mu; the post-LN stack normalises after every sub-layer instead."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory(alignment_norm="pre")).eval()
    # zero the output layer of every residual branch: out_proj of every attention, fc2 of every feed-forward (incl.
    # the DAM branches)
    for stage in (model.mgcma.distribution_alignment, model.mgcma.token_alignment):
        for name, module in stage.named_modules():
            if name.endswith(("out_proj", "fc2")):
                torch.nn.init.zeros_(module.weight)
                torch.nn.init.zeros_(module.bias)
    tiny_batch.pop("labels")
    with torch.no_grad():
        out = model(**tiny_batch, output_hidden_states=True)
    projected = out.speech_hidden_states[0]
    dam_mu_tokens = out.speech_hidden_states[1]
    assert torch.equal(dam_mu_tokens, projected)  # mu = h + 0, h = x + 0: no normalisation on the way
    norm = model.mgcma.token_alignment.speech_final_layer_norm
    assert torch.allclose(out.speech_last_hidden_state, norm(projected), atol=1e-6)
    eps = model.config.layer_norm_eps
    assert torch.allclose(out.speech_last_hidden_state, F.layer_norm(projected, projected.shape[-1:], eps=eps), atol=1e-5)


def test_pre_and_post_layer_norm_weights_are_named_apart(tiny_config_factory, tmp_path):
    """Pre-LN adds a context LayerNorm to each cross-attention and a final LayerNorm per stream; a saved pre-LN model
    reloads to the same outputs."""
    post = set(MGCMAForEmotionClassification(tiny_config_factory()).state_dict())
    model = MGCMAForEmotionClassification(tiny_config_factory(alignment_norm="pre")).eval()
    added = set(model.state_dict()) - post
    layers = model.config.num_alignment_layers
    assert len([k for k in added if "context_layer_norm" in k]) == 2 * 2 * layers  # weight + bias, two directions
    assert {k for k in added if "final_layer_norm" in k} == {
        f"mgcma.token_alignment.{stream}_final_layer_norm.{p}" for stream in ("speech", "text") for p in ("weight", "bias")
    }
    assert set(model.state_dict()) - added == post
    model.save_pretrained(tmp_path)
    reloaded = MGCMAForEmotionClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.alignment_norm == "pre"
    for key, value in model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key


def test_instance_loss_uses_the_pooled_features_normalised_or_not(tiny_config_factory, tiny_batch):
    """In the paper's order IAM comes last, so L_IA is computed on the pooled final features (L2-normalised by
    default, as given with normalize_instance_embeddings=False)."""
    import torch.nn.functional as F

    from modeling_mgcma import instance_contrastive_loss

    for normalise in (True, False):
        torch.manual_seed(0)
        model = MGCMAForEmotionClassification(tiny_config_factory(normalize_instance_embeddings=normalise)).eval()
        with torch.no_grad():
            out = model(**tiny_batch)
        x_s, x_t = out.speech_embeds, out.text_embeds
        if normalise:
            x_s, x_t = F.normalize(x_s, dim=-1), F.normalize(x_t, dim=-1)
        assert torch.allclose(out.loss_ia, instance_contrastive_loss(x_s, x_t, temperature=0.07), atol=1e-5), normalise


def test_dam_output_sample_is_stochastic_in_training_only(tiny_config_factory, tiny_batch):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory(dam_output="sample"))
    tiny_batch.pop("labels")
    with torch.no_grad():
        model.train()
        first, second = model(**tiny_batch).speech_embeds, model(**tiny_batch).speech_embeds
        assert not torch.allclose(first, second)  # a fresh sample mu + sigma * eps each pass
        model.eval()
        assert torch.equal(model(**tiny_batch).speech_embeds, model(**tiny_batch).speech_embeds)  # mu at inference


def test_precomputed_features_give_the_same_outputs(tiny_model, tiny_batch):
    tiny_model.eval()
    with torch.no_grad():
        direct = tiny_model(**tiny_batch)
        speech, speech_mask = tiny_model.mgcma.encode_speech(tiny_batch["input_values"], tiny_batch["speech_attention_mask"])
        text, text_mask = tiny_model.mgcma.encode_text(tiny_batch["input_ids"], tiny_batch["text_attention_mask"])
        cached = tiny_model(
            speech_features=speech,
            speech_features_mask=speech_mask,
            text_features=text,
            text_features_mask=text_mask,
            labels=tiny_batch["labels"],
        )
    assert torch.allclose(direct.logits, cached.logits, atol=1e-6)
    assert torch.allclose(direct.loss, cached.loss, atol=1e-6)


def test_projection_when_encoder_width_differs(tiny_processor):
    config = MGCMAConfig(
        speech_config=speech_encoder_config(hidden_size=24, num_heads=4),
        text_config=text_encoder_config(len(tiny_processor.tokenizer), hidden_size=16, num_heads=4),
        hidden_size=32,
        num_attention_heads=4,
        num_alignment_layers=1,
        intermediate_size=64,
    )
    model = MGCMAModel(config)
    assert model.speech_projection.in_features == 24 and model.text_projection.in_features == 16
    out = model(**tiny_processor(audio=[torch.randn(4000).numpy()], text=["i am happy"]), return_loss=False)
    assert out.speech_embeds.shape == (1, 32)


def test_gradient_checkpointing_gives_same_gradients(tiny_config_factory, tiny_batch):
    torch.manual_seed(0)
    plain = MGCMAForEmotionClassification(tiny_config_factory())
    checkpointed = MGCMAForEmotionClassification(tiny_config_factory())
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable()
    plain.train(), checkpointed.train()
    torch.manual_seed(1)  # same dropout masks in both runs (the encoders keep their dropout)
    plain(**tiny_batch).loss.backward()
    torch.manual_seed(1)
    checkpointed(**tiny_batch).loss.backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def paper_width_model():
    """Alignment stack at paper width (D = 768, 12 heads, 6 blocks) on 768-wide one-layer encoders."""
    config = MGCMAConfig(
        speech_config=speech_encoder_config(hidden_size=768, num_layers=1, num_heads=12, intermediate_size=3072, conv_dim=64),
        text_config=text_encoder_config(vocab_size=64, hidden_size=768, num_layers=1, num_heads=12, intermediate_size=3072),
    )
    assert (config.hidden_size, config.num_attention_heads, config.num_alignment_layers) == (768, 12, 6)
    torch.manual_seed(0)
    return MGCMAForEmotionClassification(config)


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_paper_width_numerics(dtype):
    model = paper_width_model().train()
    torch.manual_seed(1)
    inputs = dict(
        input_values=torch.randn(4, 16000),
        speech_attention_mask=torch.ones(4, 16000, dtype=torch.long),
        input_ids=torch.randint(5, 64, (4, 12)),
        text_attention_mask=torch.ones(4, 12, dtype=torch.long),
        labels=torch.tensor([0, 1, 2, 3]),
    )
    inputs["speech_attention_mask"][1, 9000:] = 0
    inputs["text_attention_mask"][2, 5:] = 0
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
        out = model(**inputs)
    for name in ("loss", "loss_ce", "loss_da", "loss_ia"):
        value = getattr(out, name)
        assert value.dtype == torch.float32 and torch.isfinite(value), (name, value)
    out.loss.backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, bad


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "divisible"),
        ({"module_order": ["dam", "tam"]}, "permutation"),
        ({"module_order": ["dam", "tam", "xam"]}, "permutation"),
        ({"temperature": 0.0}, "temperature"),
        ({"similarity_scale": -1.0}, "similarity_scale"),
        ({"pooling": "median"}, "pooling"),
        ({"dam_output": "z"}, "dam_output"),
        ({"sigma_activation": "relu"}, "sigma_activation"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"instance_loss_weight": -1}, "instance_loss_weight"),
        ({"num_alignment_layers": 0}, "num_alignment_layers"),
        ({"classifier_features": "both"}, "classifier_features"),
        ({"alignment_norm": "sandwich"}, "alignment_norm.*sandwich"),
    ],
)
def test_bad_config_values_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MGCMAConfig(**kwargs)


def test_unknown_ablation_is_rejected():
    with pytest.raises(ValueError, match="S0"):
        MGCMAConfig.ablation_kwargs("S10")


def test_mismatched_inputs_raise_clear_errors(tiny_model, tiny_batch):
    batch = dict(tiny_batch)
    with pytest.raises(ValueError, match="batch sizes differ between inputs"):
        tiny_model(**{**batch, "input_ids": batch["input_ids"][:2], "text_attention_mask": batch["text_attention_mask"][:2]})
    with pytest.raises(ValueError, match="speech_attention_mask"):
        tiny_model(**{**batch, "speech_attention_mask": batch["speech_attention_mask"][:, :100]})
    with pytest.raises(ValueError, match="text_attention_mask"):
        tiny_model(**{**batch, "text_attention_mask": batch["text_attention_mask"][:, :2]})
    with pytest.raises(ValueError, match="input_values"):
        tiny_model(**{**batch, "input_values": batch["input_values"][:, None]})
    with pytest.raises(ValueError, match="labels"):
        tiny_model(**{**batch, "labels": torch.tensor([0, 1, 2, 9])})
    with pytest.raises(ValueError, match="exactly one of `input_values`"):
        tiny_model(input_ids=batch["input_ids"])
    with pytest.raises(ValueError, match="unexpected inputs"):
        tiny_model(**batch, pixel_values=torch.zeros(1))
    speech = torch.zeros(4, 10, 32)
    with pytest.raises(ValueError, match="speech_features_mask` shape"):
        tiny_model(speech_features=speech, speech_features_mask=torch.ones(1, 10), input_ids=batch["input_ids"])
    with pytest.raises(ValueError, match=r"`text_features` must be \[batch, length, 32\]"):
        tiny_model(speech_features=speech, text_features=torch.zeros(4, 5, 8))
    with pytest.raises(ValueError, match=r"utterance\(s\) \[2\] of the batch have no real text token"):
        mask = torch.ones(4, 5, dtype=torch.bool)
        mask[2] = False
        tiny_model(speech_features=speech, text_features=torch.zeros(4, 5, 32), text_features_mask=mask)
    with pytest.raises(ValueError, match="too short"):
        tiny_model(input_values=torch.randn(1, 50), speech_attention_mask=torch.ones(1, 50, dtype=torch.long), input_ids=batch["input_ids"][:1])


def test_from_encoders_is_defined_once_for_both_model_classes():
    from modeling_mgcma import MGCMAPreTrainedModel

    assert "from_encoders" in vars(MGCMAPreTrainedModel)
    assert "from_encoders" not in vars(MGCMAModel) and "from_encoders" not in vars(MGCMAForEmotionClassification)


def test_encoders_kept_in_eval_mode_is_a_visible_model_setting(tiny_model):
    from modeling_mgcma.training.feature_cache import freeze_encoders_in_eval_mode

    backbone = tiny_model.base_model
    assert backbone is tiny_model.mgcma and backbone.encoders_in_eval_mode is False
    freeze_encoders_in_eval_mode(tiny_model)
    tiny_model.train()
    assert backbone.encoders_in_eval_mode is True and tiny_model.training and backbone.token_alignment.training
    assert not backbone.speech_encoder.training and not backbone.text_encoder.training
    assert not any(m.training for m in backbone.speech_encoder.modules())
    assert not any(p.requires_grad for p in (*backbone.speech_encoder.parameters(), *backbone.text_encoder.parameters()))
    assert "train" not in vars(backbone.speech_encoder) and "train" not in vars(backbone.text_encoder)  # no patched method
    backbone.encoders_in_eval_mode = False
    tiny_model.train()
    assert backbone.speech_encoder.training and backbone.text_encoder.training


# ---------------------------------------------------------------------------------------------------------------------
# Configuration: older config.json files, the training settings that left it, boolean settings
# ---------------------------------------------------------------------------------------------------------------------


def test_old_configs_load_with_the_paper_behaviour(tmp_path, tiny_config_factory):
    import re

    config = tiny_config_factory()
    config.save_pretrained(tmp_path)
    saved = (tmp_path / "config.json").read_text()
    saved = re.sub(r'\n\s*"distribution_distance": [^\n]*,', "", saved)  # a config written before it existed
    assert "distribution_distance" not in saved
    (tmp_path / "config.json").write_text(saved)
    loaded = MGCMAConfig.from_pretrained(tmp_path)
    assert loaded.distribution_distance == "sum"
    with pytest.raises(ValueError, match="distribution_distance"):
        MGCMAConfig(distribution_distance="l1")


def test_old_configs_with_training_settings_still_load(tmp_path, tiny_model, caplog):
    """config.json files written when the training settings were config fields load, with one warning that names
    them as training arguments; the values are not kept."""
    import json
    import logging

    from modeling_mgcma.configuration_mgcma import TRAINING_SETTINGS

    old = {"freeze_feature_encoder": True, "freeze_speech_encoder": True, "freeze_text_encoder": False,
           "gather_distributed_negatives": False, "alignment_gradient_balance": 1.0,
           "alignment_gradient_projection": True, "alignment_loss_warmup": 0.3}  # fmt: skip
    assert set(old) == set(TRAINING_SETTINGS)
    tiny_model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert not set(old) & set(saved)
    saved.update(old)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with caplog.at_level(logging.WARNING):
        model = MGCMAForEmotionClassification.from_pretrained(tmp_path)
    warnings = [record.getMessage() for record in caplog.records if "are training arguments now" in record.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert all(f"`{name}`" in warnings[0] and f"--{name}" in warnings[0] for name in old)
    assert "MGCMATrainingArguments" in warnings[0]
    assert not any(hasattr(model.config, name) or name in model.config.to_dict() for name in old)
    assert all(p.requires_grad for p in model.parameters())
    for name, value in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        MGCMAConfig(alignment_gradient_balance=1.0)
    assert "`alignment_gradient_balance` is a training argument now" in caplog.text


def test_every_boolean_setting_refuses_strings_and_numbers():
    import dataclasses

    from modeling_mgcma.configuration_mgcma import BOOLEAN_FIELDS

    # MGCMA's own true/false fields (the dataclass fields typed bool that MGCMAConfig declares, not its base's)
    declared = vars(MGCMAConfig)["__annotations__"]
    own = {f.name for f in dataclasses.fields(MGCMAConfig) if f.type is bool and f.name in declared}
    assert own == set(BOOLEAN_FIELDS) and {"use_distribution_alignment", "share_cross_attention"} <= own
    for name in sorted(own):
        for value in ("False", "false", 0, 1, None):
            with pytest.raises(ValueError, match=rf"`{name}` must be true or false, got {value!r}"):
                MGCMAConfig(**{name: value})
        assert getattr(MGCMAConfig(**{name: False}), name) is False


def test_the_model_leaves_the_training_objective_to_the_trainer(tiny_model, tiny_batch):
    """The model returns its loss components and the paper's weighted sum, in training too: no gradient reshaping,
    no warm-up factor, no training options in its config (they are `MGCMATrainingArguments`)."""
    import inspect

    from modeling_mgcma import modeling_mgcma

    assert "autograd.grad" not in inspect.getsource(modeling_mgcma)
    for name in ("alignment_gradient_balance", "alignment_gradient_projection", "alignment_loss_warmup"):
        assert not hasattr(tiny_model.config, name)
    assert not hasattr(tiny_model.mgcma, "alignment_loss_scale")
    tiny_model.train()
    out = tiny_model(**tiny_batch)
    assert torch.allclose(out.loss, out.loss_ce + out.loss_da + out.loss_ia, rtol=1e-6)
    shared = [p for p in tiny_model.mgcma.parameters() if p.requires_grad]
    used = torch.autograd.grad(out.loss - out.loss_ce, shared, retain_graph=True, allow_unused=True)
    plain = torch.autograd.grad(out.loss_da + out.loss_ia, shared, retain_graph=True, allow_unused=True)
    assert all((a is None) == (b is None) and (a is None or torch.allclose(a, b)) for a, b in zip(used, plain))


# ---------------------------------------------------------------------------------------------------------------------
# Learning options: the configured distance, a classifier reading the projected streams
# ---------------------------------------------------------------------------------------------------------------------


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
