# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""torch.compile (inference and a training step equal eager, no graph break in the alignment stack) and torch.export
(dynamic batch, audio length and token length; outputs equal eager)."""

import copy

import numpy as np
import pytest
import torch

from modeling_mgcma import MGCMAForEmotionClassification
from modeling_mgcma.deploy.export import EXPORT_INPUT_NAMES, MGCMAExportWrapper, export_classifier
from modeling_mgcma.modeling_mgcma import attention_bias


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(processor, lengths, texts, labels=None):
    rng = np.random.default_rng(len(lengths))
    batch = dict(processor(audio=[rng.standard_normal(n).astype(np.float32) * 0.1 for n in lengths], text=texts))
    if labels is not None:
        batch["labels"] = torch.tensor(labels)
    return batch


@pytest.fixture
def small_model(tiny_config_factory):
    """One alignment layer and no dropout anywhere (encoders included): a training step is deterministic."""
    config = tiny_config_factory(num_layers=1)
    for name in ("hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout", "final_dropout"):
        setattr(config.speech_config, name, 0.0)
    config.text_config.hidden_dropout_prob = config.text_config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    return MGCMAForEmotionClassification(config)


def test_alignment_stack_compiles_as_one_graph(small_model):
    """fullgraph=True raises on any graph break inside DAM and TAM (padding in both streams)."""
    backbone = small_model.mgcma.eval()
    speech, text = torch.randn(4, 20, 32), torch.randn(4, 6, 32)
    speech_mask, text_mask = torch.ones(4, 20, dtype=torch.bool), torch.ones(4, 6, dtype=torch.bool)
    speech_mask[1, 15:] = False
    text_mask[2, 3:] = False
    speech_bias, text_bias = attention_bias(speech_mask, torch.float32), attention_bias(text_mask, torch.float32)
    dam = torch.compile(backbone.distribution_alignment, fullgraph=True, backend="eager")
    tam = torch.compile(backbone.token_alignment, fullgraph=True, backend="eager")
    with torch.no_grad():
        got = dam(speech, speech_mask, speech_bias, text, text_mask, text_bias)
        want = backbone.distribution_alignment(speech, speech_mask, speech_bias, text, text_mask, text_bias)
        torch.testing.assert_close(got[0][2], want[0][2])
        got = tam(speech, speech_bias, text, text_bias)
        want = backbone.token_alignment(speech, speech_bias, text, text_bias)
        torch.testing.assert_close(got[:2], want[:2])


def test_compiled_model_matches_eager_inference_and_training_step(small_model, tiny_batch):
    """The whole classifier under torch.compile, forward and backward. The "aot_eager" backend traces the same graphs
    (TorchDynamo, AOTAutograd) as the default inductor backend without its C++ code generation, which takes minutes on
    two cores; benchmarks/bench_compile.py checks inductor's outputs against eager before timing it."""
    eager = small_model
    compiled_copy = copy.deepcopy(small_model)
    compiled = torch.compile(compiled_copy, backend="aot_eager")
    eager.eval(), compiled_copy.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(**tiny_batch).logits, eager(**tiny_batch).logits, rtol=1e-4, atol=1e-4)

    eager.train(), compiled_copy.train()  # no dropout: both steps are deterministic
    losses = {}
    for name, model, module in (("eager", eager, eager), ("compiled", compiled, compiled_copy)):
        module.zero_grad()
        out = model(**tiny_batch)
        out.loss.backward()
        losses[name] = out.loss.detach()
    torch.testing.assert_close(losses["compiled"], losses["eager"], rtol=1e-4, atol=1e-4)
    grads = {n: p.grad for n, p in eager.named_parameters() if p.grad is not None}
    compiled_grads = {n: p.grad for n, p in compiled_copy.named_parameters() if p.grad is not None}
    assert grads.keys() == compiled_grads.keys() and len(grads) > 50
    for name, grad in grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-4, atol=1e-4, msg=name)


def test_exported_classifier_has_dynamic_batch_audio_and_token_length(small_model, tiny_processor):
    example = _batch(tiny_processor, (8000, 4800, 6400), ["i am happy", "sad", "the weather is fine"])
    program = export_classifier(small_model, example)
    exported = program.module()
    wrapper = MGCMAExportWrapper(small_model)
    assert wrapper.output_names[0] == "logits" and "speech_sigma" in wrapper.output_names
    # other batch sizes, audio lengths and token lengths than the example's, with padding in both modalities
    for lengths, texts in (
        ((12000, 3200), ["i am", "the weather is fine today i am so happy"]),
        ((5600,), ["angry"]),
        ((4000, 9600, 7200, 8000), ["so", "sad today", "i am angry", "fine"]),
    ):
        inputs = _batch(tiny_processor, lengths, texts)
        args = tuple(inputs[name] for name in EXPORT_INPUT_NAMES)
        with torch.no_grad():
            got, want = exported(*args), wrapper(*args)
        assert len(got) == len(wrapper.output_names)
        assert got[0].shape == (len(lengths), small_model.config.num_labels)
        for name, a, b in zip(wrapper.output_names, got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)
    # the graph holds no host syncs: no tensor value is read back (item() / tolist() / nonzero) while it runs
    host_syncs = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default, torch.ops.aten.nonzero.default}
    assert not [node for node in program.graph.nodes if node.target in host_syncs]
