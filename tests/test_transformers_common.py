# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""transformers' own common model and config tests (ModelTesterMixin, ConfigTester, vendored from the source
distribution of the locked transformers version under tests/transformers_common/ by
scripts/vendor_transformers_tests.py) run against MGCMAModel and
MGCMAForEmotionClassification with a tiny tester (hidden 32, 2 layers, 4 heads).

Every common test passes or is skipped below with the reason it cannot apply to a two-encoder audio + text model.
"""

import unittest

import pytest
import torch
import transformers
from parameterized import parameterized
from transformers_common import TRANSFORMERS_VERSION


if transformers.__version__ != TRANSFORMERS_VERSION:
    pytest.fail(
        f"tests/transformers_common/ holds transformers {TRANSFORMERS_VERSION}'s common tests, but transformers "
        f"{transformers.__version__} is installed: install the lock (bash scripts/setup.sh) or vendor the matching "
        f"files (python scripts/vendor_transformers_tests.py)",
        pytrace=False,
    )

from transformers_common.configuration_common import ConfigTester  # noqa: E402
from transformers_common.modeling_common import (  # noqa: E402
    TEST_EAGER_MATCHES_SDPA_INFERENCE_PARAMETERIZATION,
    ModelTesterMixin,
    _test_eager_matches_sdpa_inference,
    floats_tensor,
    ids_tensor,
)

from modeling_mgcma import MGCMAConfig, MGCMAForEmotionClassification, MGCMAModel  # noqa: E402
from modeling_mgcma.training.from_scratch import small_config  # noqa: E402


class MGCMAModelTester:
    def __init__(self, parent, batch_size=3, num_samples=1600, seq_length=7, vocab_size=99, hidden_size=32,
                 num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, num_labels=4, is_training=True):  # fmt: skip
        self.parent = parent
        self.batch_size = batch_size
        self.num_samples = num_samples  # 0.1 s at 16 kHz: 19 frames of the tiny wav2vec2
        self.seq_length = seq_length
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.num_labels = num_labels
        self.is_training = is_training

    def get_config(self):
        return small_config(
            self.vocab_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_hidden_layers,
            num_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            num_labels=self.num_labels,
        )

    def prepare_config_and_inputs(self):
        input_values = floats_tensor([self.batch_size, self.num_samples])
        speech_attention_mask = torch.ones(self.batch_size, self.num_samples, dtype=torch.long)
        speech_attention_mask[-1, self.num_samples * 3 // 4 :] = 0  # one padded utterance
        input_values[-1, self.num_samples * 3 // 4 :] = 0.0
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        text_attention_mask = torch.ones(self.batch_size, self.seq_length, dtype=torch.long)
        text_attention_mask[0, -2:] = 0
        labels = ids_tensor([self.batch_size], self.num_labels)
        return self.get_config(), input_values, speech_attention_mask, input_ids, text_attention_mask, labels

    def prepare_config_and_inputs_for_common(self):
        config, input_values, speech_attention_mask, input_ids, text_attention_mask, _ = self.prepare_config_and_inputs()
        inputs = {
            "input_values": input_values,
            "speech_attention_mask": speech_attention_mask,
            "input_ids": input_ids,
            "text_attention_mask": text_attention_mask,
        }
        return config, inputs

    def create_and_check_model(self, config, input_values, speech_attention_mask, input_ids, text_attention_mask, labels):
        model = MGCMAModel(config).eval()
        with torch.no_grad():
            result = model(input_values, input_ids, speech_attention_mask, text_attention_mask, return_loss=True)
        self.parent.assertEqual(result.speech_embeds.shape, (self.batch_size, self.hidden_size))
        self.parent.assertEqual(result.text_last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size))
        self.parent.assertEqual(result.loss.shape, ())

    def create_and_check_classifier(self, config, input_values, speech_attention_mask, input_ids, text_attention_mask, labels):
        model = MGCMAForEmotionClassification(config).eval()
        with torch.no_grad():
            result = model(input_values, input_ids, speech_attention_mask, text_attention_mask, labels=labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.num_labels))
        self.parent.assertTrue(torch.isfinite(result.loss))


class MGCMAModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (MGCMAModel, MGCMAForEmotionClassification)
    # the inputs have no `inputs_embeds`, `hidden_states` or `attentions` in transformers' single-stream sense:
    # both streams are checked in tests/test_model_conformance.py
    test_attention_outputs = False
    test_pruning = False
    test_head_masking = False
    _is_composite = True
    has_attentions = True
    additional_model_inputs = ["input_ids"]  # the second modality, next to main_input_name (input_values)

    def setUp(self):
        torch.set_num_threads(1)
        self.model_tester = MGCMAModelTester(self)
        self.config_tester = ConfigTester(self, config_class=MGCMAConfig, has_text_modality=False,
                                          common_properties=["hidden_size", "num_attention_heads"])  # fmt: skip

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        if return_labels:  # transformers adds labels only to the head types it knows
            if model_class is MGCMAForEmotionClassification:
                inputs["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
            else:
                inputs["return_loss"] = True  # the contrastive losses, as CLIP's tester does
        return inputs

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        self.model_tester.create_and_check_model(*self.model_tester.prepare_config_and_inputs())

    def test_classifier(self):
        self.model_tester.create_and_check_classifier(*self.model_tester.prepare_config_and_inputs())

    @unittest.skip(reason="two streams: hidden states are speech_/text_hidden_states (tests/test_model_conformance.py)")
    def test_hidden_states_output(self):
        pass

    @unittest.skip(reason="the speech stream starts from raw audio (input_values); there is no single inputs_embeds")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="reads the single-stream `hidden_states`/`attentions`; MGCMA returns one per stream")
    def test_retain_grad_hidden_states_attentions(self):
        pass

    @parameterized.expand(TEST_EAGER_MATCHES_SDPA_INFERENCE_PARAMETERIZATION)
    def test_eager_matches_sdpa_inference(self, name, dtype, padding_side, use_attention_mask, output_attentions,
                                          enable_kernels):  # fmt: skip
        # The upstream check compares `logits` of a *Classification class, else the single-stream `hidden_states`;
        # MGCMAModel has one per stream, compared eager vs SDPA in tests/test_model_conformance.py.
        self.all_model_classes = (MGCMAForEmotionClassification,)
        _test_eager_matches_sdpa_inference(
            self, name, dtype, padding_side, use_attention_mask, output_attentions, enable_kernels
        )
