# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Shared pieces of the benchmarks: paper-size / tiny models, inputs, matmul peak, timing and FLOP counting."""

from __future__ import annotations

import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from modeling_mgcma import MGCMAConfig, MGCMAForEmotionClassification
from modeling_mgcma.training.from_scratch import small_config


warnings.filterwarnings("ignore", message=".*quantiz.*")


def build_model(size: str, seed: int = 0, **config_kwargs) -> MGCMAForEmotionClassification:
    """"paper": MGCMAConfig() defaults (wav2vec2-base + BERT-base sized random encoders, D=768, 12 heads, 6 blocks);
    "tiny": the test size (hidden 32, 2 layers)."""
    torch.manual_seed(seed)
    config = MGCMAConfig(**config_kwargs) if size == "paper" else small_config(1000, **config_kwargs)
    model = MGCMAForEmotionClassification(config)
    model.freeze_feature_encoder()  # as MGCMATrainer does with its default training arguments
    return model


def make_inputs(model, batch: int, seconds: float, tokens: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    samples = int(seconds * 16_000)
    vocab = model.config.text_config.vocab_size
    return {
        "input_values": torch.randn(batch, samples, generator=generator),
        "speech_attention_mask": torch.ones(batch, samples, dtype=torch.long),
        "input_ids": torch.randint(5, vocab, (batch, tokens), generator=generator),
        "text_attention_mask": torch.ones(batch, tokens, dtype=torch.long),
        "labels": torch.randint(0, model.config.num_labels, (batch,), generator=generator),
    }


@torch.no_grad()
def encoder_feature_inputs(model, inputs: dict) -> dict:
    """The model's inputs as precomputed encoder features (`speech_features`/`text_features`, as in cached-feature
    training), encoded once from the raw inputs of `make_inputs`."""
    speech, speech_mask = model.mgcma.encode_speech(inputs["input_values"], inputs["speech_attention_mask"])
    text, text_mask = model.mgcma.encode_text(inputs["input_ids"], inputs["text_attention_mask"])
    return {"speech_features": speech, "speech_features_mask": speech_mask, "text_features": text,
            "text_features_mask": text_mask, "labels": inputs["labels"]}  # fmt: skip


class EncodersOnlyBaseline(nn.Module):
    """The two encoders + masked mean pooling + a linear head on [speech; text]: what MGCMA adds to is visible."""

    def __init__(self, mgcma_model: MGCMAForEmotionClassification):
        super().__init__()
        backbone = mgcma_model.mgcma
        self.backbone = backbone  # encoders reached through encode_speech / encode_text (same masks, same freezing)
        widths = backbone.config.speech_config.hidden_size + backbone.config.text_config.hidden_size
        self.head = nn.Linear(widths, backbone.config.num_labels)

    def forward(self, input_values, speech_attention_mask, input_ids, text_attention_mask, labels):
        speech, speech_mask = self.backbone.encode_speech(input_values, speech_attention_mask)
        text, text_mask = self.backbone.encode_text(input_ids, text_attention_mask)
        pooled = []
        for hidden, mask in ((speech, speech_mask), (text, text_mask)):
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled.append((hidden * m).sum(1) / m.sum(1).clamp_min(1))
        logits = self.head(torch.cat(pooled, -1))
        return F.cross_entropy(logits.float(), labels)


def matmul_flops_per_second(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Large square matmul throughput: this machine's practical limit for dense layers."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def bf16_matmul_is_native(n: int = 512) -> bool:
    """Whether a bf16 matmul runs at least half as fast as fp32 on this CPU. Without native bf16 dot products (an
    AVX2-only CPU, say) PyTorch emulates bf16 at ~1 GFLOP/s, and a large bf16 benchmark would run for hours; this
    small probe takes about a second either way."""
    fp32 = matmul_flops_per_second(torch.float32, n, repeats=1)
    return matmul_flops_per_second(torch.bfloat16, n, repeats=1) >= 0.5 * fp32


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def time_calls(fn, repeats: int, warmup: int = 1, sync=None) -> list[float]:
    """Seconds of each of `repeats` calls after `warmup` calls; `sync` (e.g. torch.cuda.synchronize) runs before each
    clock reading, so that asynchronous device work is counted in the call that queued it."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def interleaved_times(fns: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time several functions in turn (a, b, c, a, b, c, ...) so that load from other jobs hits all sides alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(values) -> float:
    return statistics.median(values)


def table(rows: list[list], header: list[str]) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def wav2vec2_frames(num_samples, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2)):
    """Frames wav2vec2's convolutional feature encoder makes of `num_samples` (int or array)."""
    import numpy as np

    frames = np.asarray(num_samples, dtype=np.int64)
    for kernel, stride in zip(conv_kernel, conv_stride):
        frames = (frames - kernel) // stride + 1
    return np.maximum(frames, 0)
