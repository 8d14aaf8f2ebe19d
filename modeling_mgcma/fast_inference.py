# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Fast CPU inference for MGCMA: bf16 weights or dynamic int8 linear layers, measured in `benchmarks/bench_inference.py`.

    from modeling_mgcma.fast_inference import optimize_for_cpu_inference
    fast = optimize_for_cpu_inference(model, method="bf16")   # a new model; `model` is left untouched
    logits = fast(**processor(audio=clip, text=transcript)).logits   # float32 logits

Methods:
- `"bf16"` (default): every weight in bfloat16 and the computation in bfloat16 (oneDNN bf16 kernels on CPUs with
  AVX512-BF16 / AMX); float inputs are cast on the way in, logits returned as float32. The contrastive losses are
  still computed in float32 (the model casts them).
- `"int8"`: `torch.ao.quantization.quantize_dynamic` on every `nn.Linear` (int8 weights, activations quantised per
  batch); convolutions, attention products and norms stay float32.
- `"bf16-autocast"`: float32 weights under `torch.autocast("cpu", torch.bfloat16)` (casts weights every call; slower
  than `"bf16"`, kept for comparison).

All three change the logits by rounding (bf16: 8-bit mantissa). Predictions agree with float32 except where float32's
top-two logits are closer than that rounding: see the agreement and margin figures in `benchmarks/README.md`.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


FAST_INFERENCE_METHODS = ("bf16", "int8", "bf16-autocast")
_FLOAT_INPUTS = ("input_values", "speech_features", "text_features")


class CPUInferenceModel(nn.Module):
    """Wraps an optimised copy of an MGCMA model: same call signature, float32 logits out, always in eval mode."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model = model
        self.method = method
        self.config = model.config

    @torch.inference_mode()
    def forward(self, **inputs):
        if self.method == "bf16":
            inputs = {
                k: v.to(torch.bfloat16) if k in _FLOAT_INPUTS and torch.is_tensor(v) and v.is_floating_point() else v
                for k, v in inputs.items()
            }
            outputs = self.model(**inputs)
        elif self.method == "bf16-autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                outputs = self.model(**inputs)
        else:
            outputs = self.model(**inputs)
        if getattr(outputs, "logits", None) is not None:
            outputs.logits = outputs.logits.float()
        return outputs

    def train(self, mode: bool = True):
        return super().train(False)  # an inference copy: dropout stays off


def optimize_for_cpu_inference(model: nn.Module, method: str = "bf16") -> CPUInferenceModel:
    """An eval-mode copy of `model` set up for fast CPU inference with `method` (see the module docstring)."""
    if method not in FAST_INFERENCE_METHODS:
        raise ValueError(f"`method` must be one of {FAST_INFERENCE_METHODS}, got {method!r}.")
    fast = copy.deepcopy(model).eval()
    fast.requires_grad_(False)
    if method == "bf16":
        fast = fast.to(torch.bfloat16)
    elif method == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the eager quantisation API is deprecated in favour of torchao
            fast = torch.ao.quantization.quantize_dynamic(fast, {nn.Linear}, dtype=torch.qint8)
    return CPUInferenceModel(fast, method).eval()


__all__ = ["FAST_INFERENCE_METHODS", "CPUInferenceModel", "optimize_for_cpu_inference"]
