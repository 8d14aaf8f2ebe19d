# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Fast CPU inference for MGCMA: bf16 weights or dynamic int8 linear layers, measured in `benchmarks/bench_inference.py`.

    from modeling_mgcma.deploy.fast_inference import optimize_for_cpu_inference
    fast = optimize_for_cpu_inference(model, method="bf16")   # a new model; `model` is left untouched
    logits = fast(**processor(audio=clip, text=transcript)).logits   # float32 logits

Methods:
- `"bf16"` (default): every weight in bfloat16 and the computation in bfloat16 (oneDNN bf16 kernels on CPUs with
  AVX512-BF16 / AMX); float inputs are cast on the way in, logits returned as float32. The contrastive losses are
  still computed in float32 (the model casts them).
- `"int8"`: `torch.ao.quantization.quantize_dynamic` on every `nn.Linear` (int8 weights, activations quantised per
  batch); convolutions, attention products and norms stay float32. With `quantize_convolutions=True` the speech
  feature encoder's convolutions (but the first, on the raw waveform) are rewritten as linear layers
  (`ConvAsLinear`) and quantised too.
- `"bf16-autocast"`: float32 weights under `torch.autocast("cpu", torch.bfloat16)` (casts weights every call; slower
  than `"bf16"`, kept for comparison).

All three change the logits by rounding (bf16: 8-bit mantissa). Predictions agree with float32 except where float32's
top-two logits are closer than that rounding: see the agreement and margin figures in `benchmarks/README.md`.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import torch
from torch import nn


FAST_INFERENCE_METHODS = ("bf16", "int8", "bf16-autocast")
_FLOAT_INPUTS = ("input_values", "speech_features", "text_features")


class ConvAsLinear(nn.Module):
    """A 1-D convolution (one group, no padding, no dilation) as strided slices + one `nn.Linear`.

    The wav2vec2-style feature encoder's convolutions are about a fifth of a clip's arithmetic. As convolutions they
    stay float32 under dynamic int8 quantisation (`torch.ao.quantization.quantize_dynamic` takes `nn.Linear` only; ONNX
    Runtime quantises `MatMul`); as linear layers they are quantised like every other dense layer. Same input and
    output layout as `nn.Conv1d` (`[batch, channels, time]`); in float32 the result is the convolution's up to
    summation order."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        if not self.applies_to(conv):
            raise ValueError(f"only a 1-D convolution with one group, no padding and no dilation, got {conv}.")
        self.kernel_size, self.stride = conv.kernel_size[0], conv.stride[0]
        self.linear = nn.Linear(conv.in_channels * self.kernel_size, conv.out_channels, bias=conv.bias is not None)
        self.linear.to(conv.weight.device, conv.weight.dtype)
        with torch.no_grad():  # [out, in, k] -> [out, k * in]: column j * in + c reads channel c at kernel offset j
            self.linear.weight.copy_(conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1))
            if conv.bias is not None:
                self.linear.bias.copy_(conv.bias)

    @staticmethod
    def applies_to(module: nn.Module) -> bool:
        return (
            type(module) is nn.Conv1d and module.groups == 1 and module.dilation == (1,)
            and module.padding in ((0,), "valid") and module.padding_mode == "zeros"
        )

    @staticmethod
    def worth_quantizing(module: nn.Module) -> bool:
        """A convolution over more than one input channel: the first convolution reads the raw waveform (one
        channel), a per-clip 8-bit grid would erase quiet passages, and it is under 1 % of the encoder's arithmetic."""
        return ConvAsLinear.applies_to(module) and module.in_channels > 1

    def forward(self, hidden_states):
        kernel, stride = self.kernel_size, self.stride
        frames = (hidden_states.shape[-1] - kernel) // stride + 1
        hidden_states = hidden_states.transpose(1, 2)
        span = stride * (frames - 1) + 1
        columns = torch.cat([hidden_states[:, offset : offset + span : stride] for offset in range(kernel)], dim=-1)
        return self.linear(columns).transpose(1, 2)


def _plain_convolutions(module: nn.Module):
    return [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
        if ConvAsLinear.worth_quantizing(child)
    ]


def replace_convolutions(module: nn.Module) -> int:
    """Replace the plain 1-D convolutions over more than one channel inside `module` by `ConvAsLinear` modules (in
    place), so that dynamic int8 quantisation reaches them; returns how many."""
    found = _plain_convolutions(module)
    for parent, name, child in found:
        setattr(parent, name, ConvAsLinear(child))
    return len(found)


@contextlib.contextmanager
def convolutions_as_matmuls(module: nn.Module):
    """Within the block, the convolutions that `replace_convolutions` would replace are `ConvAsLinear` modules; the
    original modules are put back afterwards (for a graph exporter to trace the linear form)."""
    found = _plain_convolutions(module)
    for parent, name, child in found:
        setattr(parent, name, ConvAsLinear(child))
    try:
        yield len(found)
    finally:
        for parent, name, child in found:
            setattr(parent, name, child)


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


def optimize_for_cpu_inference(
    model: nn.Module, method: str = "bf16", quantize_convolutions: bool = False
) -> CPUInferenceModel:
    """An eval-mode copy of `model` set up for fast CPU inference with `method` (see the module docstring).
    `quantize_convolutions` (int8 only): quantise the speech feature encoder's convolutions too (faster, less
    faithful: see `benchmarks/README.md`)."""
    if method not in FAST_INFERENCE_METHODS:
        raise ValueError(f"`method` must be one of {FAST_INFERENCE_METHODS}, got {method!r}.")
    if quantize_convolutions and method != "int8":
        raise ValueError(f"`quantize_convolutions` goes with method='int8', got method={method!r}.")
    fast = copy.deepcopy(model).eval()
    fast.requires_grad_(False)
    if method == "bf16":
        fast = fast.to(torch.bfloat16)
    elif method == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the eager quantisation API is deprecated in favour of torchao
            if quantize_convolutions:
                replace_convolutions(fast)  # the feature encoder's convolutions as linear layers, quantised too
            fast = torch.ao.quantization.quantize_dynamic(fast, {nn.Linear}, dtype=torch.qint8)
    return CPUInferenceModel(fast, method).eval()


__all__ = [
    "FAST_INFERENCE_METHODS",
    "CPUInferenceModel",
    "ConvAsLinear",
    "convolutions_as_matmuls",
    "optimize_for_cpu_inference",
    "replace_convolutions",
]
