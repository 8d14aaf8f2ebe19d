# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""What a transformers user expects of any model: output order, hidden states and attentions, eager = SDPA,
initialisation of missing weights by each encoder's own scheme, input embeddings, a resolved attention
implementation in every construction path, and value checks that stay out of traced graphs."""

import math

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel, BertModel, Wav2Vec2Model

from modeling_mgcma import MGCMAForEmotionClassification, MGCMAModel
from modeling_mgcma.training.from_scratch import speech_encoder_config, text_encoder_config


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _eval(model):
    return model.eval()


def _first_unpadded(batch):
    """The first utterance of `tiny_batch` alone, cut to its real length (8000 samples, 7 tokens): nothing padded."""
    one = {k: v[:1] if v.dim() == 1 else v[:1, : (8000 if k.startswith(("input_values", "speech")) else 7)]
           for k, v in batch.items()}  # fmt: skip
    assert one["speech_attention_mask"].all() and one["text_attention_mask"].all()
    return one


# -- output order ----------------------------------------------------------------------------------------------------


def test_loss_then_logits_first_in_dict_and_tuple(tiny_model, tiny_batch):
    model = _eval(tiny_model)
    with torch.no_grad():
        out = model(**tiny_batch)
        as_tuple = model(**tiny_batch, return_dict=False)
        no_labels = {k: v for k, v in tiny_batch.items() if k != "labels"}
        out_nl = model(**no_labels)
        tuple_nl = model(**no_labels, return_dict=False)
    assert list(out.keys())[:3] == ["loss", "logits", "loss_ce"]
    assert as_tuple[0].shape == () and torch.equal(as_tuple[0], out.loss)
    assert torch.equal(as_tuple[1], out.logits) and as_tuple[1].shape == (4, model.config.num_labels)
    assert out[0] is out.loss and out[1] is out.logits
    assert list(out_nl.keys())[0] == "logits" and torch.equal(tuple_nl[0], out_nl.logits)
    # the tuple holds the same values, in the same order, as the dict
    assert len(as_tuple) == len(out) and all(torch.equal(a, b) for a, b in zip(as_tuple, out.values()))


def test_bare_model_puts_its_loss_first(tiny_model, tiny_batch):
    backbone = _eval(tiny_model.mgcma)
    inputs = {k: v for k, v in tiny_batch.items() if k != "labels"}
    with torch.no_grad():
        out = backbone(**inputs, return_loss=True)
        as_tuple = backbone(**inputs, return_loss=True, return_dict=False)
    assert list(out.keys())[:3] == ["loss", "loss_da", "loss_ia"]
    assert torch.equal(as_tuple[0], out.loss)


# -- hidden states and attentions ----------------------------------------------------------------------------------


def _check_stack_outputs(out, config, batch, padded_frames, encoder_attentions):
    layers = config.num_alignment_layers
    b = batch["input_ids"].shape[0]
    frames, tokens = out.speech_last_hidden_state.shape[1], out.text_last_hidden_state.shape[1]
    heads, width = config.num_attention_heads, config.hidden_size
    assert len(out.speech_hidden_states) == len(out.text_hidden_states) == 2 + layers  # input, DAM, each TAM block
    assert all(h.shape == (b, frames, width) for h in out.speech_hidden_states)
    assert all(h.shape == (b, tokens, width) for h in out.text_hidden_states)
    assert torch.equal(out.speech_hidden_states[-1], out.speech_last_hidden_state)
    assert len(out.speech_attentions) == len(out.text_attentions) == 1 + layers  # DAM constructor, each TAM block
    assert all(a.shape == (b, heads, frames, frames) for a in out.speech_attentions)
    assert all(a.shape == (b, heads, tokens, tokens) for a in out.text_attentions)
    assert len(out.speech_cross_attentions) == len(out.text_cross_attentions) == layers
    assert all(a.shape == (b, heads, frames, tokens) for a in out.speech_cross_attentions)
    assert all(a.shape == (b, heads, tokens, frames) for a in out.text_cross_attentions)
    for maps in (out.speech_attentions, out.text_attentions, out.speech_cross_attentions, out.text_cross_attentions):
        for a in maps:
            torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)))
    # padded speech frames get no attention from any query
    for a in out.speech_attentions + out.text_cross_attentions:
        assert a.masked_select(padded_frames[:, None, None, :]).abs().max() == 0
    speech_layers = config.speech_config.num_hidden_layers
    assert len(out.speech_encoder_hidden_states) == speech_layers + 1
    assert len(out.text_encoder_hidden_states) == config.text_config.num_hidden_layers + 1
    if encoder_attentions:  # the encoders give attention maps with eager attention only, as everywhere in transformers
        assert len(out.speech_encoder_attentions) == speech_layers
        assert len(out.text_encoder_attentions) == config.text_config.num_hidden_layers
    else:
        assert out.speech_encoder_attentions is None and out.text_encoder_attentions is None


def test_hidden_states_and_attentions_as_arguments(tiny_model, tiny_batch):
    model = _eval(tiny_model)
    with torch.no_grad():
        plain = model(**tiny_batch)
        out = model(**tiny_batch, output_hidden_states=True, output_attentions=True)
    assert plain.speech_hidden_states is None and plain.speech_attentions is None
    assert plain.speech_encoder_hidden_states is None and plain.text_encoder_attentions is None
    torch.testing.assert_close(out.logits, plain.logits, rtol=1e-5, atol=1e-5)
    _check_stack_outputs(out, model.config, tiny_batch, out.speech_mask == 0, encoder_attentions=False)


def test_hidden_states_and_attentions_from_config(tiny_config_factory, tiny_batch):
    torch.manual_seed(0)
    model = _eval(MGCMAForEmotionClassification(tiny_config_factory(output_hidden_states=True, attn_implementation="eager")))
    model.config.output_attentions = True
    with torch.no_grad():
        out = model(**tiny_batch)
        off = model(**tiny_batch, output_hidden_states=False, output_attentions=False)
    _check_stack_outputs(out, model.config, tiny_batch, out.speech_mask == 0, encoder_attentions=True)
    assert off.speech_hidden_states is None and off.speech_cross_attentions is None


@pytest.mark.parametrize("with_masks", [True, False])
def test_eager_matches_sdpa(tiny_config_factory, tiny_batch, with_masks):
    torch.manual_seed(0)
    sdpa = _eval(MGCMAForEmotionClassification(tiny_config_factory()))
    assert sdpa.config._attn_implementation == "sdpa"
    torch.manual_seed(0)
    eager = _eval(MGCMAForEmotionClassification(tiny_config_factory(attn_implementation="eager")))
    assert eager.config._attn_implementation == "eager"
    assert eager.mgcma.speech_encoder.config._attn_implementation == "eager"
    eager.load_state_dict(sdpa.state_dict())
    batch = dict(tiny_batch)
    if not with_masks:  # one unpadded utterance: the attentions run without a mask
        batch = {k: v for k, v in _first_unpadded(batch).items() if not k.endswith("attention_mask")}
    with torch.no_grad():
        a, b = sdpa(**batch), eager(**batch)
    for key in ("loss", "logits", "speech_mu", "speech_sigma", "text_last_hidden_state", "speech_last_hidden_state"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5, msg=key)


def test_unpadded_input_needs_no_mask(tiny_model, tiny_batch):
    """Without masks every position is real: the same result as all-ones masks (the attentions then skip the mask)."""
    model = _eval(tiny_model)
    one = _first_unpadded(tiny_batch)
    with torch.no_grad():
        masked = model(**one)
        unmasked = model(**{k: v for k, v in one.items() if not k.endswith("attention_mask")})
    torch.testing.assert_close(unmasked.logits, masked.logits, rtol=1e-5, atol=1e-6)


# -- initialisation ----------------------------------------------------------------------------------------------------


def _assert_wav2vec2_init(encoder):
    """wav2vec2's own scheme, not the generic N(0, 0.02): uniform(+-1/sqrt(fan_in)) feature projection, Kaiming convs."""
    projection = encoder.feature_projection.projection
    bound = 1 / math.sqrt(projection.in_features)
    for tensor in (projection.weight, projection.bias):
        assert tensor.abs().max() <= bound
        assert tensor.std() > 0.8 * bound / math.sqrt(3)  # a uniform(-k, k) has std k / sqrt(3); N(0, 0.02) is far less
    conv = encoder.feature_extractor.conv_layers[0].conv
    fan_in = conv.in_channels * conv.kernel_size[0]
    assert float(conv.weight.std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.3)


def test_fresh_model_encoders_use_their_own_init(tiny_model):
    _assert_wav2vec2_init(tiny_model.mgcma.speech_encoder)


def test_missing_speech_encoder_keys_use_wav2vec2_init(tiny_model, tmp_path):
    state = {k: v.contiguous() for k, v in tiny_model.state_dict().items() if ".speech_encoder." not in k}
    tiny_model.config.save_pretrained(tmp_path)
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = MGCMAForEmotionClassification.from_pretrained(tmp_path)
    _assert_wav2vec2_init(loaded.mgcma.speech_encoder)
    # the keys that were present are loaded unchanged
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # and our own modules, when missing, get the config's N(0, initializer_range)
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    head = MGCMAForEmotionClassification.from_pretrained(tmp_path).classifier.dense.weight
    assert float(head.std()) == pytest.approx(tiny_model.config.initializer_range, rel=0.2)


def test_from_encoders_keeps_the_pretrained_encoder_weights(tiny_processor):
    torch.manual_seed(0)
    speech = Wav2Vec2Model(speech_encoder_config())
    text = BertModel(text_encoder_config(len(tiny_processor.tokenizer)), add_pooling_layer=False)
    expected = {k: v.clone() for k, v in {**speech.state_dict(), **text.state_dict()}.items()}
    model = MGCMAForEmotionClassification.from_encoders(speech, text, hidden_size=32, num_attention_heads=4,
                                                        num_alignment_layers=1, intermediate_size=64)  # fmt: skip
    got = {**model.mgcma.speech_encoder.state_dict(), **model.mgcma.text_encoder.state_dict()}
    assert all(torch.equal(got[k], v) for k, v in expected.items())


# -- input embeddings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MGCMAModel, MGCMAForEmotionClassification])
def test_input_embeddings_are_the_text_encoders_and_resize(cls, tiny_config_factory, tiny_batch):
    torch.manual_seed(0)
    model = _eval(cls(tiny_config_factory()))
    text_encoder = model.text_encoder if cls is MGCMAModel else model.mgcma.text_encoder
    assert model.get_input_embeddings() is text_encoder.embeddings.word_embeddings
    old = model.config.text_config.vocab_size
    model.resize_token_embeddings(old + 3)
    assert model.get_input_embeddings().num_embeddings == old + 3
    assert model.config.text_config.vocab_size == text_encoder.config.vocab_size == old + 3
    inputs = {k: v for k, v in tiny_batch.items() if k != "labels"}
    inputs["input_ids"] = inputs["input_ids"].clone()
    inputs["input_ids"][0, 1] = old + 2  # a new token id
    with torch.no_grad():
        model(**inputs)
    replacement = torch.nn.Embedding(old + 3, model.config.text_config.hidden_size)
    model.set_input_embeddings(replacement)
    assert text_encoder.embeddings.word_embeddings is replacement


# -- attention implementation in every construction path --------------------------------------------------------------


def _implementations(model):
    return {
        name or "<top>": module.config._attn_implementation
        for name, module in model.named_modules()
        if hasattr(module, "config") and hasattr(module.config, "_attn_implementation")
    }


def test_attn_implementation_is_resolved_in_every_path(tiny_processor, tiny_config_factory, tmp_path):
    vocab = len(tiny_processor.tokenizer)
    AutoModel.from_config(speech_encoder_config()).save_pretrained(tmp_path / "speech")
    AutoModel.from_config(text_encoder_config(vocab)).save_pretrained(tmp_path / "text")
    size = dict(hidden_size=32, num_attention_heads=4, num_alignment_layers=1, intermediate_size=64)
    from_folders = MGCMAForEmotionClassification.from_encoders(tmp_path / "speech", tmp_path / "text", **size)
    assert set(_implementations(from_folders).values()) == {"sdpa"}, _implementations(from_folders)
    eager_speech = AutoModel.from_pretrained(tmp_path / "speech", attn_implementation="eager")
    mixed = MGCMAForEmotionClassification.from_encoders(eager_speech, AutoModel.from_pretrained(tmp_path / "text"), **size)
    assert mixed.mgcma.speech_encoder.config._attn_implementation == "eager"  # the encoder keeps its own choice
    assert mixed.mgcma.text_encoder.config._attn_implementation == "sdpa"
    eager = MGCMAForEmotionClassification.from_encoders(
        tmp_path / "speech", tmp_path / "text", attn_implementation="eager", **size
    )
    assert set(_implementations(eager).values()) == {"eager"}
    fresh = MGCMAForEmotionClassification(tiny_config_factory())
    fresh.save_pretrained(tmp_path / "model")
    for loaded, expected in (
        (MGCMAForEmotionClassification.from_pretrained(tmp_path / "model"), {"sdpa"}),
        (MGCMAForEmotionClassification.from_pretrained(tmp_path / "model", attn_implementation="eager"), {"eager"}),
        (MGCMAForEmotionClassification._from_config(tiny_config_factory(), attn_implementation="eager"), {"eager"}),
    ):
        assert set(_implementations(loaded).values()) == expected


def test_dataloader_pin_memory_follows_the_device():
    from modeling_mgcma.experiments.run_arguments import preset_defaults

    _, defaults = preset_defaults("demo", has_data=False)
    assert defaults["dataloader_pin_memory"] == torch.accelerator.is_available()


# -- value checks stay out of traced graphs --------------------------------------------------------------------------


def test_forward_traces_without_graph_breaks_and_eager_keeps_its_checks(tiny_model, tiny_batch):
    model = _eval(tiny_model)
    explanation = torch._dynamo.explain(model)(**tiny_batch)
    assert explanation.graph_break_count == 0, [str(r.reason) for r in explanation.break_reasons]
    with pytest.raises(ValueError, match="labels"):
        model(**{**tiny_batch, "labels": torch.tensor([0, 1, 2, 9])})
    short = {**tiny_batch, "speech_attention_mask": tiny_batch["speech_attention_mask"].clone()}
    short["speech_attention_mask"][1, 100:] = 0
    with pytest.raises(ValueError, match="too short"):
        model(**short)
