# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""A fast training step: bounded batch shapes, no host waits inside the step, compiled and graph-captured steps.

At the paper's batch 4 a step is bound by the host: the GPU waits whenever the host reads a device value (an
``int(tensor)``, a boolean-mask index, ``nonzero``), and every new batch shape costs the compiler (and cuDNN) a new
plan. This module removes both, without changing what a step computes:

* **Bounded shapes** (`choose_buckets`, `paired_token_lengths`, `FastStepCollator`, `bucketed_collator`): audio is
  padded up to one of 16 lengths chosen once from the whole dataset's length distribution (the same for every
  epoch, fold and grid unit of a run; least total padding, by dynamic programming), and token ids to the length
  paired with that audio bucket (the longest transcript up to it), so a run presents at most one batch shape per
  bucket and batch size, whatever the corpus size. With length-grouped batches (every preset, through
  `configs/presets/protocol.yaml`) the padding stays small: 12.8 % of the audio samples over two epochs of an
  IEMOCAP-like fold at batch 4, 16 shapes (tests/training/test_fast_step.py).
* **Checks on the host** (`FastStepCollator`): what the model would check by reading device values (utterances
  shorter than the speech encoder's receptive field, rows without a real frame or token, labels outside
  ``[0, num_labels)``) is checked once per batch on the CPU tensors, before they are copied; the trainer then turns
  the model's own value checks off (`check_input_values = False`, see `modeling_mgcma._check_values`).
* **SpecAugment drawn on the host** (`FastStepCollator`): the time masks are drawn in the collator by transformers'
  own `_compute_mask_indices` with the speech encoder config's ``mask_time_prob`` / ``mask_time_length`` /
  ``mask_time_min_masks`` and the utterances' real frame counts (the distribution wav2vec2 draws from itself), and
  handed to the speech encoder through the model's ``mask_time_indices`` input; it applies them with `torch.where`
  (`install_fast_encoders`). Feature masks (``mask_feature_prob`` > 0; 0 in wav2vec2-base) are still drawn by
  transformers inside the step.
* **No boolean-index writes, no mask inspection** (`install_fast_encoders`): wav2vec2's encoder zeroes padded
  frames with a boolean-index write and asks transformers' mask helper whether the padding mask is all ones
  (``padding_mask.all()``, a host read that lets SDPA skip the mask); BERT's forward asks the same. The patched
  wav2vec2 encoder uses `masked_fill` and builds the attention mask itself; BERT receives a prepared 4-D mask, which
  transformers passes through unread. A batch padded to a bucket has padding in almost every batch anyway.
* **LayerDrop without a Python branch**: wav2vec2 draws ``torch.rand([])`` per layer and skips the layer in Python
  (a host read of a device value on a GPU, and a graph that changes with every draw). The patched encoder draws the
  same Bernoulli(1 - layerdrop) per layer on the device and selects the layer's output or its input with
  `torch.where`. Fidelity: the same layers contribute with the same probabilities; a dropped layer is still
  computed (about layerdrop more encoder-layer compute than skipping it) and its parameters get zero gradients
  instead of none, so Adam still moves them by their running moments in that step (as in fairseq, which zeroes
  gradients).
* **Trainer settings that cost a wait for nothing** (`FastStepTrainerMixin`): the Trainer's per-step nan/inf
  filter of the loss (``logging_nan_inf_filter``, a host read every step) is off; batches are copied from pinned
  memory with ``non_blocking`` (accelerate's ``non_blocking``); the FLOP count is computed once per batch shape
  instead of walking the module tree twice per step; the per-step ``model.train()`` (737 modules at paper size)
  walks the tree only when the model is not in training mode already; loss components are accumulated on the
  device and read at logging steps only (`MGCMATrainer`). Gradient balancing and projection cost one extra
  backward pass and no host read (`alignment_gradient.balanced_objective`).
* **Compilation per bucket** (``--torch_compile``): `dynamic=False`, so each bucket shape compiles once and is then
  reused (one graph per shape, no graph break: tests/training/test_fast_step.py), with the recompile limit raised
  to the number of shapes the buckets allow.
* **CUDA graphs** (``--cuda_graphs``): ``torch.compile(mode="reduce-overhead")`` captures the model's forward and
  backward, one graph per bucket shape; the fused AdamW runs outside the graphs (its step counters on the device);
  refused, with the reason, on a CPU and with the options that break capture (`cuda_graph_refusals`).

`FastStepArguments` holds the switches (``fast_step`` on by default); `MGCMATrainingArguments` inherits them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


logger = logging.getLogger(__name__)

DEFAULT_AUDIO_BUCKETS = 16
DEFAULT_TOKEN_BUCKETS = 0
AUDIO_MULTIPLE = 320
"""Audio bucket boundaries are whole multiples of wav2vec2's frame hop (320 samples = 20 ms at 16 kHz)."""
TOKEN_MULTIPLE = 8


# ---------------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class FastStepArguments:
    """The fast-step switches of `MGCMATrainingArguments` (see the module docstring)."""

    fast_step: bool = field(
        default=True,
        metadata={"help": "No host waits inside a training step: input checks and SpecAugment masks in the collator, "
                          "no boolean-index writes, no per-step nan/inf read, non-blocking copies (see "
                          "modeling_mgcma.training.fast_step)."},
    )  # fmt: skip
    audio_buckets: int = field(
        default=DEFAULT_AUDIO_BUCKETS,
        metadata={"help": "Pad audio to one of this many lengths, chosen from the data's length distribution "
                          "(run_mgcma.py: once for the whole dataset). 0: pad each batch to its longest clip."},
    )  # fmt: skip
    token_buckets: int = field(
        default=DEFAULT_TOKEN_BUCKETS,
        metadata={"help": "0: one token length per audio bucket (the longest transcript among the utterances up to "
                          "that bucket), so a run has at most one batch shape per audio bucket and batch size. N > 0: "
                          "pad token ids to one of N lengths chosen like --audio_buckets (up to N x more shapes)."},
    )  # fmt: skip
    cuda_graphs: bool = field(
        default=False,
        metadata={"help": "Capture the training step in CUDA graphs: torch.compile(mode='reduce-overhead') with a "
                          "fused AdamW outside the graphs, one graph per bucket shape. CUDA only; refused with options that "
                          "break capture."},
    )  # fmt: skip


def check_fast_step_options(args) -> None:
    """Refuse fast-step settings of the wrong type or range, naming the argument and its value."""
    for name in ("audio_buckets", "token_buckets"):
        value = getattr(args, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"--{name} must be a whole number >= 0 (0: no buckets), got {value!r}.")
    for name in ("fast_step", "cuda_graphs"):
        if not isinstance(getattr(args, name), bool):
            raise ValueError(f"--{name} must be true or false, got {getattr(args, name)!r}.")


def fast_step_on(args) -> bool:
    """`args.fast_step`, or its default (on) for arguments without it (a plain `TrainingArguments`)."""
    return bool(getattr(args, "fast_step", FastStepArguments.fast_step))


# ---------------------------------------------------------------------------------------------------------------------
# Buckets
# ---------------------------------------------------------------------------------------------------------------------


def _round_up(values, multiple: int):
    return (np.ceil(np.asarray(values, dtype=np.float64) / multiple) * multiple).astype(np.int64)


def choose_buckets(lengths: Sequence[int], count: int, multiple: int = 1, candidates: int = 200) -> tuple[int, ...]:
    """`count` padding boundaries (ascending; the last covers the longest length) that minimise the padding of
    `lengths` when each item is padded up to the smallest boundary that holds it.

    Boundaries are multiples of `multiple`, chosen among `candidates` quantiles of the lengths by dynamic
    programming. Deterministic: the same lengths give the same boundaries. `count` <= 0 or no lengths: ().
    """
    lengths = np.sort(np.asarray(lengths, dtype=np.int64))
    if count <= 0 or len(lengths) == 0:
        return ()
    points = np.unique(_round_up(np.quantile(lengths, np.linspace(0, 1, candidates + 1)[1:]), multiple))
    points = np.union1d(points, _round_up([lengths[-1]], multiple))
    prefix = np.concatenate([[0], np.cumsum(lengths, dtype=np.float64)])
    covered = np.searchsorted(lengths, points, side="right")  # items <= each point
    m, count = len(points), min(count, len(points))

    def cost(i, j):  # padding of the items in (points[i], points[j]] padded to points[j]; i = -1: from 0
        lo = covered[i] if i >= 0 else 0
        return (covered[j] - lo) * float(points[j]) - (prefix[covered[j]] - prefix[lo])

    best = np.array([cost(-1, j) for j in range(m)])
    choice = [np.full(m, -1)]
    for _ in range(1, count):  # best[j]: least padding with the buckets so far, the last one at points[j]
        new, back = np.full(m, np.inf), np.full(m, -1)
        for j in range(1, m):
            values = best[:j] + np.array([cost(i, j) for i in range(j)])
            back[j] = int(np.argmin(values))
            new[j] = values[back[j]]
        best = new
        choice.append(back)
    bounds, j = [], m - 1
    for layer in range(count - 1, -1, -1):
        bounds.append(int(points[j]))
        j = int(choice[layer][j])
        if j < 0:
            break
    return tuple(sorted(set(bounds)))


def bucket_length(length: int, buckets: Sequence[int], multiple: int = 1) -> int:
    """The smallest boundary of `buckets` that holds `length`; beyond the last, `length` rounded up to `multiple`."""
    for bound in buckets:
        if length <= bound:
            return int(bound)
    return int(_round_up([length], multiple)[0])


def bucket_padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int], buckets: Sequence[int],
                            multiple: int = 1) -> float:  # fmt: skip
    """Padded positions / all positions when each batch is padded to the bucket of its longest item."""
    lengths = np.asarray(lengths, dtype=np.int64)
    padded = real = 0
    for batch in batches:
        values = lengths[np.asarray(batch)]
        padded += bucket_length(int(values.max()), buckets, multiple) * len(values)
        real += int(values.sum())
    return (padded - real) / padded if padded else 0.0


def token_lengths(dataset, processor, text_column: str = "text") -> list[int]:
    """Token ids per row as the processor makes them (special tokens included, cut at its `max_text_length`)."""
    encoded = processor.tokenizer(list(dataset[text_column]), truncation=True,
                                  max_length=getattr(processor, "max_text_length", None))  # fmt: skip
    return [len(ids) for ids in encoded["input_ids"]]


def paired_token_lengths(audio: Sequence[int], tokens: Sequence[int], audio_buckets: Sequence[int],
                         multiple: int = TOKEN_MULTIPLE) -> tuple[int, ...]:  # fmt: skip
    """One token length per audio bucket: the longest transcript among the utterances whose audio fits that bucket
    or a smaller one, rounded up to `multiple`. A batch whose longest clip falls in bucket k holds only utterances
    of those buckets, so padding its token ids to length k fits every transcript: a run then presents at most one
    batch shape per audio bucket (and batch size). Text is short next to audio (IEMOCAP: ~20 tokens for ~225 speech
    frames), so the extra token padding costs little."""
    audio, tokens = np.asarray(audio, dtype=np.int64), np.asarray(tokens, dtype=np.int64)
    if len(audio) != len(tokens):
        raise ValueError(f"{len(audio)} audio lengths but {len(tokens)} token lengths.")
    bounds, longest = [], multiple
    for index, bound in enumerate(audio_buckets):
        low = audio_buckets[index - 1] if index else -1
        inside = tokens[(audio > low) & (audio <= bound)]
        if len(inside):
            longest = max(longest, int(inside.max()))
        bounds.append(int(_round_up([longest], multiple)[0]))
    return tuple(bounds)


# ---------------------------------------------------------------------------------------------------------------------
# The collator
# ---------------------------------------------------------------------------------------------------------------------


def _frame_lengths(samples: torch.Tensor, kernels: Sequence[int], strides: Sequence[int]) -> torch.Tensor:
    for kernel, stride in zip(kernels, strides):
        samples = torch.div(samples - kernel, stride, rounding_mode="floor") + 1
    return samples


def _pad_to(tensor: torch.Tensor, length: int, value) -> torch.Tensor:
    extra = length - tensor.shape[-1]
    if extra <= 0:
        return tensor
    return torch.nn.functional.pad(tensor, (0, extra), value=value)


class FastStepCollator:
    """Wraps a collator (`MGCMADataCollator` or `CachedFeatureCollator`): pads each batch to its buckets, checks on
    the CPU what the model would check on the device, and draws the speech encoder's SpecAugment time masks.

    Args:
        collator: the collator to wrap (its attributes stay readable through this one).
        model: the MGCMA model trained (read once here: receptive field, labels, encoder configs).
        audio_buckets: padding boundaries of `input_values` in samples (`choose_buckets`); () pads to the longest.
        token_buckets: padding boundaries of `input_ids`; () pads to the longest (or to `token_bounds`).
        token_bounds: one token length per audio bucket (`paired_token_lengths`): a batch whose audio is padded to
            bucket k pads its token ids to `token_bounds[k]` (or further, rounded, for a longer transcript).

    Adds ``mask_time_indices`` (`[batch, frames]` bool) to raw-audio batches when the speech encoder is a wav2vec2
    with SpecAugment (``mask_time_prob`` > 0, ``apply_spec_augment``); `FastStepTrainerMixin` hands it to the
    encoder, which applies it only in training mode.
    """

    def __init__(self, collator, model: nn.Module, audio_buckets: Sequence[int] = (), token_buckets: Sequence[int] = (),
                 token_bounds: Sequence[int] = ()):  # fmt: skip
        self.collator = collator
        self.audio_buckets = tuple(int(b) for b in audio_buckets)
        self.token_buckets = tuple(int(b) for b in token_buckets)
        self.token_bounds = tuple(int(b) for b in token_bounds)
        if self.token_bounds and len(self.token_bounds) != len(self.audio_buckets):
            raise ValueError(f"{len(self.token_bounds)} token bounds for {len(self.audio_buckets)} audio buckets.")
        backbone = getattr(model, "base_model", model)
        config = getattr(model, "config", None)
        self.num_labels = getattr(config, "num_labels", None) if hasattr(model, "classifier") else None
        self.min_speech_samples = None
        self.spec_augment = None
        processor = getattr(collator, "processor", None)
        tokenizer = getattr(processor, "tokenizer", None)
        self.pad_token_id = getattr(tokenizer, "pad_token_id", None) or 0
        encoder = getattr(backbone, "speech_encoder", None)
        if encoder is None:
            return
        self.min_speech_samples = backbone.min_speech_samples
        speech_config = encoder.config
        if (
            hasattr(encoder, "_mask_hidden_states")
            and getattr(speech_config, "apply_spec_augment", True)
            and getattr(speech_config, "mask_time_prob", 0) > 0
            and not getattr(backbone, "encoders_in_eval_mode", False)
        ):
            self.spec_augment = {
                "mask_prob": float(speech_config.mask_time_prob),
                "mask_length": int(speech_config.mask_time_length),
                "min_masks": int(getattr(speech_config, "mask_time_min_masks", 0)),
                "kernels": tuple(speech_config.conv_kernel),
                "strides": tuple(speech_config.conv_stride),
            }

    def __getattr__(self, name):
        collator = self.__dict__.get("collator")
        if collator is None:
            raise AttributeError(name)
        return getattr(collator, name)

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = dict(self.collator(rows))
        token_bound = None
        if "input_values" in batch and self.audio_buckets:
            length = bucket_length(batch["input_values"].shape[-1], self.audio_buckets, AUDIO_MULTIPLE)
            batch["input_values"] = _pad_to(batch["input_values"], length, 0.0)
            if "speech_attention_mask" in batch:
                batch["speech_attention_mask"] = _pad_to(batch["speech_attention_mask"], length, 0)
            if self.token_bounds and length in self.audio_buckets:
                token_bound = self.token_bounds[self.audio_buckets.index(length)]
        if "input_ids" in batch and (self.token_buckets or token_bound is not None):
            longest = batch["input_ids"].shape[-1]
            if token_bound is not None:
                length = token_bound if longest <= token_bound else bucket_length(longest, (), TOKEN_MULTIPLE)
            else:
                length = bucket_length(longest, self.token_buckets, TOKEN_MULTIPLE)
            batch["input_ids"] = _pad_to(batch["input_ids"], length, self.pad_token_id)
            for name in ("text_attention_mask", "token_type_ids"):
                if name in batch:
                    batch[name] = _pad_to(batch[name], length, 0)
        try:
            self.check(batch)
        except ValueError as error:  # name the batch's utterances when the rows have ids
            ids = [row.get("id") for row in rows if isinstance(row, dict) and "id" in row]
            if ids:
                raise ValueError(f"{error} The batch's utterances, in order: {ids}.") from error
            raise
        if self.spec_augment is not None and "input_values" in batch:
            batch["mask_time_indices"] = self.draw_time_masks(batch)
        return batch

    def check(self, batch: dict) -> None:
        """The model's value checks (the same functions, `modeling_mgcma.check_*`), on the batch's CPU tensors."""
        from ..modeling_mgcma import check_label_range, check_not_empty, check_speech_lengths

        mask = batch.get("speech_attention_mask")
        if mask is not None and self.min_speech_samples is not None and mask.numel():
            check_speech_lengths(mask, self.min_speech_samples)
        for key, name in (("text_attention_mask", "text token"), ("speech_features_mask", "speech frame"),
                          ("text_features_mask", "text token")):  # fmt: skip
            mask = batch.get(key)
            if mask is not None and mask.dim() == 2:
                check_not_empty(mask, name)
        labels = batch.get("labels")
        if labels is not None and self.num_labels is not None:
            check_label_range(labels, self.num_labels)

    def draw_time_masks(self, batch: dict) -> torch.Tensor:
        """SpecAugment time masks `[batch, frames]` as wav2vec2 draws them itself (transformers'
        `_compute_mask_indices` over the real frames), from numpy's global generator (seeded per worker)."""
        from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

        spec = self.spec_augment
        values = batch["input_values"]
        samples = batch.get("speech_attention_mask")
        real = samples.sum(-1) if samples is not None else torch.full((values.shape[0],), values.shape[-1])
        frames = int(_frame_lengths(torch.tensor(values.shape[-1]), spec["kernels"], spec["strides"]))
        lengths = _frame_lengths(real.long(), spec["kernels"], spec["strides"])
        frame_mask = (torch.arange(frames)[None, :] < lengths[:, None]).long()
        masks = _compute_mask_indices(
            (values.shape[0], frames), mask_prob=spec["mask_prob"], mask_length=spec["mask_length"],
            attention_mask=frame_mask if samples is not None else None, min_masks=spec["min_masks"],
        )  # fmt: skip
        return torch.from_numpy(masks).bool()


def bucketed_collator(collator, model: nn.Module, dataset, args, lengths: Sequence[int] | None = None):
    """`collator` wrapped in a `FastStepCollator` whose buckets come from the WHOLE `dataset` (pass it before any fold
    split: the same boundaries for every fold and grid unit of a run), `args.audio_buckets` of them, and token
    lengths paired with them (`args.token_buckets` = 0) or chosen apart (> 0). `lengths`: the audio lengths in
    samples when known (else read from the dataset without decoding, capped at the processor's `max_duration`).
    Cached-feature batches (`CachedFeatureCollator`) get the checks, not buckets: their step runs no encoder."""
    if not fast_step_on(args) or isinstance(collator, FastStepCollator):
        return collator
    audio, tokens, bounds = (), (), ()
    processor = getattr(collator, "processor", None)
    columns = set(getattr(dataset, "column_names", ()))
    audio_column = getattr(collator, "audio_column", "audio")
    text_column = getattr(collator, "text_column", "text")
    if processor is not None and audio_column in columns and getattr(args, "audio_buckets", DEFAULT_AUDIO_BUCKETS) > 0:
        if lengths is None:
            from .sampling import audio_lengths

            lengths = audio_lengths(dataset, audio_column=audio_column, sampling_rate=processor.sampling_rate,
                                    max_duration=processor.max_duration)  # fmt: skip
        audio = choose_buckets(lengths, args.audio_buckets, AUDIO_MULTIPLE)
        if text_column in columns and getattr(processor, "tokenizer", None) is not None:
            counts = token_lengths(dataset, processor, text_column)
            if getattr(args, "token_buckets", DEFAULT_TOKEN_BUCKETS) > 0:
                tokens = choose_buckets(counts, args.token_buckets, TOKEN_MULTIPLE)
            else:
                bounds = paired_token_lengths(lengths, counts, audio, TOKEN_MULTIPLE)
        logger.info("Bucketed padding: audio %s samples, tokens %s.", list(audio), list(tokens or bounds))
    return FastStepCollator(collator, model, audio_buckets=audio, token_buckets=tokens, token_bounds=bounds)


# ---------------------------------------------------------------------------------------------------------------------
# Encoders without host reads
# ---------------------------------------------------------------------------------------------------------------------


def prepared_attention_mask(mask: torch.Tensor, implementation: str | None, dtype: torch.dtype) -> torch.Tensor:
    """A `[B, L]` padding mask (1 = real) as the 4-D `[B, 1, L, L]` mask transformers' attention functions take:
    boolean (True = attend) for SDPA, additive (0 / dtype min) for eager. Never None: not reading the mask is the
    point (transformers' helper reads ``mask.all()`` to return None)."""
    keep = mask.bool()[:, None, None, :].expand(mask.shape[0], 1, mask.shape[1], mask.shape[1])
    if implementation == "sdpa":
        return keep
    return torch.zeros(keep.shape, dtype=dtype, device=mask.device).masked_fill(~keep, torch.finfo(dtype).min)


def _fast_mask_hidden_states(self, hidden_states, mask_time_indices=None, attention_mask=None):
    """wav2vec2's SpecAugment with `torch.where` instead of boolean-index writes, for time masks given to the forward
    (the fast step's collator draws them on the host); without them, transformers' own drawing (a host read)."""
    if not getattr(self.config, "apply_spec_augment", True):
        return hidden_states
    if mask_time_indices is None or self.config.mask_feature_prob > 0:
        # nothing drawn ahead, or feature masks too (drawn by transformers in numpy: mask_feature_prob is 0 in
        # wav2vec2-base and the configs built here)
        return super(type(self), self)._mask_hidden_states(hidden_states, mask_time_indices, attention_mask)
    embed = self.masked_spec_embed.to(hidden_states.dtype)
    return torch.where(mask_time_indices.to(hidden_states.device, torch.bool)[..., None], embed, hidden_states)


def _fast_encoder_forward(self, hidden_states, attention_mask=None, **kwargs):
    """wav2vec2's `Wav2Vec2Encoder` / `Wav2Vec2EncoderStableLayerNorm` forward without host reads: `masked_fill`
    for the padded frames, a prepared attention mask, LayerDrop by `torch.where` (see the module docstring)."""
    from transformers.modeling_outputs import BaseModelOutput

    stable = type(self).__name__.endswith("StableLayerNorm")  # layer norm after the layers, not before
    if attention_mask is not None:
        hidden_states = hidden_states.masked_fill(~attention_mask.bool()[..., None], 0.0)
        attention_mask = prepared_attention_mask(attention_mask, self.config._attn_implementation, hidden_states.dtype)
    hidden_states = hidden_states + self.pos_conv_embed(hidden_states).to(hidden_states.device)
    if not stable:
        hidden_states = self.layer_norm(hidden_states)
    hidden_states = self.dropout(hidden_states)
    layerdrop = self.config.layerdrop if self.training else 0.0
    for layer in self.layers:
        output = layer(hidden_states, attention_mask=attention_mask, **kwargs)
        if layerdrop > 0.0:
            keep = torch.rand((), device=hidden_states.device) >= layerdrop
            output = torch.where(keep, output, hidden_states)
        hidden_states = output
    if stable:
        hidden_states = self.layer_norm(hidden_states)
    return BaseModelOutput(last_hidden_state=hidden_states)


def _prepared_mask_hook(module, args, kwargs):
    mask = kwargs.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        embeddings = module.get_input_embeddings()
        kwargs["attention_mask"] = prepared_attention_mask(
            mask, module.config._attn_implementation, embeddings.weight.dtype if embeddings is not None else torch.float32
        )
    return args, kwargs


_FAST_CLASSES: dict[type, type] = {}


def _fast_class(cls: type, **methods) -> type:
    """A subclass of `cls` (same name) with `methods` replaced, made once per class; marked `_mgcma_fast_step`."""
    if getattr(cls, "_mgcma_fast_step", False):
        return cls
    if cls not in _FAST_CLASSES:
        namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "_mgcma_fast_step": True, **methods}
        _FAST_CLASSES[cls] = type(cls.__name__, (cls,), namespace)
    return _FAST_CLASSES[cls]


def install_fast_encoders(model: nn.Module) -> list[str]:
    """Give the model's encoders forms that read no device value (idempotent); returns what was changed.

    * wav2vec2-family speech encoders (`Wav2Vec2Encoder[StableLayerNorm]` inside): the speech model and its encoder
      become instances of same-named subclasses whose SpecAugment and encoder forward are the ones above (their
      parameters, buffers, state dict and outputs are unchanged; no attribute is added to any module).
    * encoder-only text models with transformers' mask helper (BERT, RoBERTa, ...): a forward pre-hook hands them a
      prepared 4-D mask.
    Both under SDPA or eager attention; other encoders are left as they are."""
    backbone = getattr(model, "base_model", model)
    patched = []
    speech = getattr(backbone, "speech_encoder", None)
    inner = getattr(speech, "encoder", None)
    if (
        speech is not None
        and hasattr(speech, "_mask_hidden_states")
        and type(inner).__name__ in ("Wav2Vec2Encoder", "Wav2Vec2EncoderStableLayerNorm")
        and speech.config._attn_implementation in ("sdpa", "eager")
    ):
        speech.__class__ = _fast_class(type(speech), _mask_hidden_states=_fast_mask_hidden_states)
        inner.__class__ = _fast_class(type(inner), forward=_fast_encoder_forward)
        patched.append(f"speech encoder {type(speech).__name__}")
    text = getattr(backbone, "text_encoder", None)
    if (
        text is not None
        and hasattr(text, "_create_attention_masks")
        and not getattr(text.config, "is_decoder", False)
        and text.config._attn_implementation in ("sdpa", "eager")
    ):
        if not any(hook is _prepared_mask_hook for hook in text._forward_pre_hooks.values()):
            text.register_forward_pre_hook(_prepared_mask_hook, with_kwargs=True)
        patched.append(f"text encoder {type(text).__name__}")
    return patched


# ---------------------------------------------------------------------------------------------------------------------
# CUDA graphs
# ---------------------------------------------------------------------------------------------------------------------


def cuda_graph_refusals(args, model: nn.Module | None = None, device_type: str | None = None) -> list[str]:
    """Why the training step cannot be captured in CUDA graphs with these settings (empty: it can)."""
    reasons = []
    device_type = device_type or args.device.type
    if device_type != "cuda":
        reasons.append(f"CUDA graphs need a CUDA device; this run is on {device_type}")
    if not fast_step_on(args):
        reasons.append("--fast_step false leaves host reads in the step, which capture cannot hold")
    if getattr(args, "audio_buckets", DEFAULT_AUDIO_BUCKETS) <= 0:
        reasons.append("--audio_buckets 0 leaves the batch shapes unbounded (a graph and its memory per shape)")
    if args.gradient_checkpointing:
        reasons.append("gradient checkpointing re-runs the forward inside backward")
    if args.optim not in ("adamw_torch_fused", "adamw_torch"):
        reasons.append(f"--optim {getattr(args.optim, 'value', args.optim)}: only AdamW is supported (fused: no host read in its step)")
    if args.world_size > 1:
        reasons.append("several processes: DDP's gradient buckets and the gathered negatives are not captured here")
    if args.torch_empty_cache_steps:
        reasons.append("--torch_empty_cache_steps frees the memory the graphs hold")
    if (getattr(args, "alignment_gradient_balance", 0) or getattr(args, "alignment_gradient_projection", False)
            or getattr(args, "alignment_gradient_encoders", "both") != "both"):
        reasons.append("gradient balancing / projection / one encoder off the alignment take the losses' gradients "
                       "with autograd.grad, twice over one captured graph")  # fmt: skip
    speech = getattr(getattr(model, "base_model", model), "speech_encoder", None) if model is not None else None
    trained = speech is not None and any(p.requires_grad for p in speech.parameters())
    if trained and getattr(speech.config, "mask_feature_prob", 0) > 0:
        reasons.append("the speech encoder draws SpecAugment feature masks in numpy inside the step "
                       "(mask_feature_prob > 0)")  # fmt: skip
    return reasons


def apply_cuda_graph_settings(args, model: nn.Module | None = None) -> None:
    """Turn `--cuda_graphs` into its settings, or raise ValueError with every reason it cannot be captured."""
    reasons = cuda_graph_refusals(args, model)
    if reasons:
        raise ValueError("--cuda_graphs cannot capture this training step: " + "; ".join(reasons) + ".")
    args.torch_compile = True
    args.torch_compile_mode = "reduce-overhead"
    args.torch_compile_backend = args.torch_compile_backend or "inductor"
    args.optim = "adamw_torch_fused"


# ---------------------------------------------------------------------------------------------------------------------
# Compilation
# ---------------------------------------------------------------------------------------------------------------------


def shape_bound(collator) -> int | None:
    """At most how many batch shapes the collator's buckets allow in training (None: unbounded)."""
    audio, tokens = getattr(collator, "audio_buckets", ()), getattr(collator, "token_buckets", ())
    if audio and getattr(collator, "token_bounds", ()):
        return len(audio)
    if not audio or not tokens:
        return None
    return len(audio) * len(tokens)


def allow_recompiles(count: int) -> None:
    """Raise dynamo's per-frame recompile limit to at least `count` (one graph per bucket shape, x2 for train/eval)."""
    import torch._dynamo.config as dynamo_config

    name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    setattr(dynamo_config, name, max(getattr(dynamo_config, name), count))
    if hasattr(dynamo_config, "accumulated_recompile_limit"):
        dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, 4 * count)


# ---------------------------------------------------------------------------------------------------------------------
# The trainer side
# ---------------------------------------------------------------------------------------------------------------------


class FastStepTrainerMixin:
    """The trainer side of the fast step; `MGCMATrainer` inherits it (first base). Active with `args.fast_step`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fast_step = fast_step_on(self.args)
        self._flops_per_shape: dict = {}
        self._cuda_graphs = bool(getattr(self.args, "cuda_graphs", False))
        if not self._fast_step:
            return
        model = self.accelerator.unwrap_model(self.model)
        self.args.logging_nan_inf_filter = False  # a host read of the loss every step
        if self.data_collator is not None and not isinstance(self.data_collator, FastStepCollator):
            from .collators import CachedFeatureCollator, MGCMADataCollator

            if isinstance(self.data_collator, (MGCMADataCollator, CachedFeatureCollator)):
                self.data_collator = FastStepCollator(self.data_collator, model)  # checks + masks, no buckets
        backbone = getattr(model, "base_model", model)
        if isinstance(self.data_collator, FastStepCollator) and hasattr(backbone, "check_input_values"):
            backbone.check_input_values = False  # the collator checks every batch on the host
        patched = install_fast_encoders(model)
        logger.info("Fast training step: %s patched; input checks in the collator.", ", ".join(patched) or "nothing")
        if self.args.torch_compile:
            bound = shape_bound(self.data_collator)
            allow_recompiles(2 * (bound or 32) + 2)

    def create_accelerator_and_postprocess(self):
        if getattr(self.args, "cuda_graphs", False):
            apply_cuda_graph_settings(self.args, self.model)
        if fast_step_on(self.args) and self.args.dataloader_pin_memory:
            config = self.args.accelerator_config
            if hasattr(config, "non_blocking"):
                config.non_blocking = True  # pinned batches copied without blocking the host
        result = super().create_accelerator_and_postprocess()
        plugin = getattr(self.accelerator.state, "dynamo_plugin", None)
        if fast_step_on(self.args) and plugin is not None and self.args.torch_compile:
            plugin.dynamic = False  # bounded shapes: one static graph per bucket, no dynamic-shape recompile
        return result

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step; with the fast step, its `model.train()` walks the module tree (737 modules at paper
        size) only when the model is not in training mode already (after evaluation, or at the first step)."""
        if self.__dict__.get("_cuda_graphs", False):
            torch.compiler.cudagraph_mark_step_begin()
        if not (self.__dict__.get("_fast_step", False) and model.training and "train" not in vars(model)):
            return super().training_step(model, inputs, num_items_in_batch)
        model.train = lambda mode=True: model if mode else nn.Module.train(model, False)
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            del model.train

    def _clip_grad_norm(self, model):
        """With the fast step and plain (or DDP) data parallelism, `torch.nn.utils.clip_grad_norm_` over the trainable
        parameters listed once: the same norm and clipping as the Trainer's path through accelerate, whose
        DTensor-aware grouping (an `isinstance` and a dictionary per parameter, every step) costs ~6 ms of host time
        per step for a model of ~400 parameter tensors (benchmarks/bench_trainer_step.py). FSDP, DeepSpeed, XLA and
        DTensor parameters keep the Trainer's path."""
        from accelerate.utils import DistributedType

        plain = (DistributedType.NO, DistributedType.MULTI_GPU, DistributedType.MULTI_CPU)
        if not self.__dict__.get("_fast_step", False) or self.accelerator.distributed_type not in plain:
            return super()._clip_grad_norm(model)
        cached = self.__dict__.get("_clipped_parameters")
        if cached is None or cached[0] is not model:
            parameters = [p for p in model.parameters() if p.requires_grad]
            if torch.distributed.is_available():
                from torch.distributed.tensor import DTensor

                parameters = None if any(isinstance(p, DTensor) for p in parameters) else parameters
            cached = (model, parameters)
            self._clipped_parameters = cached
        if cached[1] is None:
            return super()._clip_grad_norm(model)
        self.accelerator.unscale_gradients()
        return torch.nn.utils.clip_grad_norm_(cached[1], self.args.max_grad_norm)

    def floating_point_ops(self, inputs) -> int:
        """The Trainer's FLOP estimate walks the module tree twice per step; with the fast step, once per shape."""
        if not self.__dict__.get("_fast_step", False):
            return super().floating_point_ops(inputs)
        key = tuple(sorted((name, tuple(value.shape)) for name, value in inputs.items() if isinstance(value, torch.Tensor)))
        if key not in self._flops_per_shape:
            self._flops_per_shape[key] = super().floating_point_ops(inputs)
        return self._flops_per_shape[key]


__all__ = [
    "FastStepArguments",
    "FastStepCollator",
    "FastStepTrainerMixin",
    "fast_step_on",
    "check_fast_step_options",
    "choose_buckets",
    "bucket_length",
    "bucket_padding_fraction",
    "bucketed_collator",
    "token_lengths",
    "install_fast_encoders",
    "prepared_attention_mask",
    "cuda_graph_refusals",
    "apply_cuda_graph_settings",
    "allow_recompiles",
    "shape_bound",
]
