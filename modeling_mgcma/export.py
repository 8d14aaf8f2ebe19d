# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Export of the emotion classifier for deployment: `torch.export` with a dynamic batch, audio length and token length.

    from modeling_mgcma.export import export_classifier
    program = export_classifier(model, processor(audio=clips, text=transcripts))
    logits, *rest = program.module()(input_values, speech_attention_mask, input_ids, text_attention_mask)

`MGCMAExportWrapper` is the form every graph exporter takes (positional tensors in, a tuple of tensors out, eval mode);
an ONNX export starts from the same wrapper and the same dynamic dimensions (`dynamic_shapes`).
"""

import torch
from torch import nn
from torch.export import Dim

from .modeling_mgcma import MGCMAForEmotionClassification


EXPORT_INPUT_NAMES = ("input_values", "speech_attention_mask", "input_ids", "text_attention_mask")


class MGCMAExportWrapper(nn.Module):
    """An `MGCMAForEmotionClassification` in eval mode behind a positional signature, returning a tuple of tensors
    named by `output_names`: the logits, the pooled speech and text features, and (with DAM) the utterance Gaussians
    that the pipeline's uncertainty figures come from."""

    def __init__(self, model: MGCMAForEmotionClassification):
        super().__init__()
        if not isinstance(model, MGCMAForEmotionClassification):
            raise ValueError(f"expected an MGCMAForEmotionClassification, got {type(model).__name__}.")
        self.model = model.eval()
        self.output_names = ("logits", "speech_embeds", "text_embeds")
        if model.config.use_distribution_alignment:
            self.output_names += ("speech_mu", "speech_sigma", "text_mu", "text_sigma")

    def forward(self, input_values, speech_attention_mask, input_ids, text_attention_mask):
        outputs = self.model(
            input_values=input_values,
            speech_attention_mask=speech_attention_mask,
            input_ids=input_ids,
            text_attention_mask=text_attention_mask,
            return_dict=True,
        )
        return tuple(outputs[name] for name in self.output_names)

    def train(self, mode: bool = True):
        return super().train(False)  # an inference graph: dropout stays off


def dynamic_shapes() -> dict:
    """Batch, audio length and token length of the four inputs as dynamic dimensions; their ranges are inferred from
    the model while tracing (e.g. the text encoder's maximum number of positions)."""
    batch, samples, tokens = Dim.AUTO, Dim.AUTO, Dim.AUTO
    return {
        "input_values": {0: batch, 1: samples},
        "speech_attention_mask": {0: batch, 1: samples},
        "input_ids": {0: batch, 1: tokens},
        "text_attention_mask": {0: batch, 1: tokens},
    }


def export_classifier(model: MGCMAForEmotionClassification, example_inputs) -> torch.export.ExportedProgram:
    """`torch.export.export` of the classifier for inference, dynamic in batch, audio length and token length.

    Args:
        model: the classifier (switched to eval mode).
        example_inputs: a processor output (or dict) with the four inputs of `EXPORT_INPUT_NAMES`; use more than one
            utterance and utterances of different lengths, so that no dimension is specialised to 1 or to equal sizes.
    """
    missing = [name for name in EXPORT_INPUT_NAMES if name not in example_inputs]
    if missing:
        raise ValueError(f"`example_inputs` lacks {missing}; it has {sorted(example_inputs)}.")
    args = tuple(example_inputs[name] for name in EXPORT_INPUT_NAMES)
    return torch.export.export(MGCMAExportWrapper(model), args, dynamic_shapes=dynamic_shapes())


__all__ = ["EXPORT_INPUT_NAMES", "MGCMAExportWrapper", "dynamic_shapes", "export_classifier"]
