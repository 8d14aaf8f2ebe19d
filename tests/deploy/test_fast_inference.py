# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The fast CPU inference paths predict what the float32 model predicts (tiny demo model, briefly trained)."""

import pytest
import torch


datasets = pytest.importorskip("datasets")

from modeling_mgcma import MGCMAForEmotionClassification  # noqa: E402
from modeling_mgcma.data import demo_vocabulary, generate_demo_corpus, load_iemocap  # noqa: E402
from modeling_mgcma.deploy.fast_inference import (  # noqa: E402
    FAST_INFERENCE_METHODS,
    ConvAsLinear,
    convolutions_as_matmuls,
    optimize_for_cpu_inference,
)
from modeling_mgcma.processing_mgcma import decode_audio  # noqa: E402
from modeling_mgcma.training.collators import CachedFeatureCollator  # noqa: E402
from modeling_mgcma.training.feature_cache import (  # noqa: E402
    cache_features,
    freeze_encoders_in_eval_mode,
)
from modeling_mgcma.training.from_scratch import small_config, word_processor  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast")
    corpus = generate_demo_corpus(root / "corpus", utterances_per_session=8)
    dataset = load_iemocap(corpus, config="4class", cache_dir=str(root / "hf"), strict_counts=False)
    processor = word_processor(demo_vocabulary())
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer.get_vocab())))
    freeze_encoders_in_eval_mode(model)
    # brief training of the alignment modules from cached features, so that the logits mean something
    cached = cache_features(model, processor, dataset, root / "cache")
    collate = CachedFeatureCollator()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    generator = torch.Generator().manual_seed(0)
    for _ in range(8):
        for batch in torch.randperm(len(cached), generator=generator).split(8):
            model(**collate([cached[int(i)] for i in batch])).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    rows = [dataset[i] for i in range(len(dataset))]
    audio = [decode_audio(row["audio"])[0] for i, row in enumerate(rows)]
    inputs = [processor(audio=clip, text=row["text"]) for clip, row in zip(audio, rows)]
    with torch.no_grad():
        reference = torch.cat([model(**x).logits for x in inputs])
    return model, inputs, reference


@pytest.mark.parametrize("method", FAST_INFERENCE_METHODS)
def test_fast_path_agrees_with_fp32(trained, method):
    model, inputs, reference = trained
    fast = optimize_for_cpu_inference(model, method)
    logits = torch.cat([fast(**x).logits for x in inputs])
    assert logits.dtype == torch.float32 and logits.shape == reference.shape
    top2 = reference.topk(2, dim=-1).values
    margin = top2[:, 0] - top2[:, 1]
    error = (logits - reference).abs().max(-1).values
    agree = logits.argmax(-1) == reference.argmax(-1)
    # any disagreement must be a near-tie of the float32 model (its margin within twice the rounding error)
    assert bool((agree | (margin <= 2 * error)).all()), (margin[~agree], error[~agree])
    assert agree.float().mean() >= 0.95
    assert float(margin.median()) > 10 * float(error.median())  # the trained logits are not near-ties
    assert model.training is False and next(model.parameters()).dtype == torch.float32  # original untouched
    # the path really is the one named (and not an fp32 copy that would agree trivially)
    assert float(error.max()) > 0.0
    if method == "bf16":
        assert all(p.dtype == torch.bfloat16 for p in fast.model.parameters())
    if method == "int8":
        quantised = [m for m in fast.model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
        assert quantised and not any(type(m) is torch.nn.Linear for m in fast.model.modules())
        layers = fast.model.mgcma.speech_encoder.feature_extractor.conv_layers
        assert all(type(layer.conv) is torch.nn.Conv1d for layer in layers)  # only with quantize_convolutions


def test_int8_with_quantized_convolutions(trained):
    """The feature encoder's convolutions (but the first) become quantised linear layers; the logits move further
    from float32 than without, and only where float32 itself is close to a tie do labels change."""
    model, inputs, reference = trained
    fast = optimize_for_cpu_inference(model, "int8", quantize_convolutions=True)
    layers = fast.model.mgcma.speech_encoder.feature_extractor.conv_layers
    assert type(layers[0].conv) is torch.nn.Conv1d
    assert all(isinstance(layer.conv.linear, torch.ao.nn.quantized.dynamic.Linear) for layer in layers[1:])
    logits = torch.cat([fast(**x).logits for x in inputs])
    plain = torch.cat([optimize_for_cpu_inference(model, "int8")(**x).logits for x in inputs])
    error = (logits - reference).abs().max(-1).values
    assert float(error.median()) > float((plain - reference).abs().max(-1).values.median())
    top2 = reference.topk(2, dim=-1).values
    agree = logits.argmax(-1) == reference.argmax(-1)
    assert bool((agree | (top2[:, 0] - top2[:, 1] <= 2 * error)).all())
    with pytest.raises(ValueError, match="int8"):
        optimize_for_cpu_inference(model, "bf16", quantize_convolutions=True)


def test_unknown_method():
    with pytest.raises(ValueError, match="method"):
        optimize_for_cpu_inference(torch.nn.Linear(2, 2), "fp8")


@pytest.mark.parametrize("channels, kernel, stride, bias", [(1, 10, 5, False), (6, 3, 2, True), (6, 2, 2, False)])
def test_conv_as_linear_computes_the_convolution(channels, kernel, stride, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(channels, 5, kernel, stride, bias=bias)
    replaced = ConvAsLinear(conv)
    for length in (kernel, 101, 160):  # one frame, a remainder that the convolution drops, an exact fit
        x = torch.randn(2, channels, length)
        expected = conv(x)
        assert replaced(x).shape == expected.shape
        torch.testing.assert_close(replaced(x), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="one group"):
        ConvAsLinear(torch.nn.Conv1d(4, 4, 3, groups=2))


def test_convolutions_as_matmuls_keeps_the_model_and_restores_it():
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(40)).eval()
    encoder = model.mgcma.speech_encoder
    x = {"input_values": torch.randn(2, 4000), "input_ids": torch.randint(5, 40, (2, 7))}
    with torch.no_grad():
        reference = model(**x).logits
        with convolutions_as_matmuls(encoder) as replaced:
            # the feature encoder's plain convolutions after the first (on the one-channel waveform); the grouped,
            # padded positional convolution stays too
            layers = encoder.feature_extractor.conv_layers
            assert replaced == len(layers) - 1 == 4
            assert type(layers[0].conv) is torch.nn.Conv1d
            assert isinstance(encoder.encoder.pos_conv_embed.conv, torch.nn.Conv1d)
            assert all(isinstance(layer.conv, ConvAsLinear) for layer in layers[1:])
            rewritten = model(**x).logits
    assert all(type(layer.conv) is torch.nn.Conv1d for layer in encoder.feature_extractor.conv_layers)
    torch.testing.assert_close(rewritten, reference, atol=1e-5, rtol=0)
