# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Training MGCMA with the `transformers.Trainer`: a data collator, the trainer and the distributed feature gather.

* `MGCMADataCollator` turns dataset rows (``audio``, ``text``, ``label``) into model inputs through an
  `MGCMAProcessor`, so the Trainer must keep every column (``remove_unused_columns=False``, which `MGCMATrainer`
  enforces): the default column pruning would drop ``audio`` and ``text`` because the model's forward has no
  argument of those names.
* `MGCMATrainer` logs the loss components L_CE, L_DA and L_IA next to the total, averaged over each logging
  interval; evaluation reports its own averages (``eval_loss_ce`` ...) without touching the training ones.
* `gather_with_grad` is the open_clip-style all-gather: under multi-process training every process computes each
  contrastive loss on the features of the global batch, with gradients flowing back to the process that produced
  them. With one process it is never installed and no distributed call is made.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Trainer

from .loss_schedule import AlignmentLossWarmup
from .processing_mgcma import decode_audio as decode_audio_any
from .processing_mgcma import to_mono


logger = logging.getLogger(__name__)

LOSS_COMPONENTS = ("loss_ce", "loss_da", "loss_ia")


# ---------------------------------------------------------------------------------------------------------------------
# Distributed negatives
# ---------------------------------------------------------------------------------------------------------------------


def gather_with_grad(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """All-gather `[B, ...]` tensors of every process into `[sum_r B_r, ...]` (rank order) with gradients.

    `torch.distributed.nn.functional.all_gather` is differentiable (its backward sums, on each process, the gradients
    that all processes' losses send to that process's features); accelerate's `gather` and `torch.distributed.all_gather`
    are not. Processes may hold different batch sizes (the last batch of an epoch): the sizes are exchanged first, each
    tensor is padded to the largest size for the collective, and the padding is cut off again, so the result holds
    exactly the real rows and no padded row ever becomes a negative.
    """
    import torch.distributed as dist
    import torch.distributed.nn.functional as dist_nn

    world_size = dist.get_world_size(group)
    local_size = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.long)
    sizes = [torch.zeros_like(local_size) for _ in range(world_size)]
    dist.all_gather(sizes, local_size, group=group)
    sizes = [int(size.item()) for size in sizes]
    largest = max(sizes)
    if tensor.shape[0] < largest:
        padding = tensor.new_zeros((largest - tensor.shape[0], *tensor.shape[1:]))
        tensor = torch.cat([tensor, padding], dim=0)
    gathered = dist_nn.all_gather(tensor.contiguous(), group=group)
    return torch.cat([chunk[:size] for chunk, size in zip(gathered, sizes)], dim=0)


# ---------------------------------------------------------------------------------------------------------------------
# Data collator
# ---------------------------------------------------------------------------------------------------------------------


def decode_audio(audio: Any) -> tuple[np.ndarray, int]:
    """(mono float32 array, sampling rate) from any form a dataset row can hold (see
    `processing_mgcma.decode_audio`: a `{"array", "sampling_rate"}` dict, a torchcodec `AudioDecoder`, a
    `{"path"}`/`{"bytes"}` dict from ``Audio(decode=False)``, or a path)."""
    array, rate = decode_audio_any(audio)
    return to_mono(array), rate


class MGCMADataCollator:
    """Dataset rows -> a padded MGCMA batch with ``labels``.

    Each row holds ``audio`` (see `decode_audio`), ``text`` (the transcript) and ``label`` (a class id); other
    columns (id, session, ...) are ignored. Audio at any rate is resampled to the processor's rate.

    Args:
        processor: an `MGCMAProcessor` (feature extractor + tokenizer, optional `max_duration`).
        audio_column, text_column, label_column: the row keys to read.
    """

    def __init__(self, processor, audio_column: str = "audio", text_column: str = "text", label_column: str = "label"):
        self.processor = processor
        self.audio_column = audio_column
        self.text_column = text_column
        self.label_column = label_column

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("got an empty batch.")
        missing = [c for c in (self.audio_column, self.text_column) if c not in rows[0]]
        if missing:
            raise ValueError(f"rows have no column(s) {missing}; their columns are {sorted(rows[0])}.")
        # the processor mixes down, cuts to max_duration and resamples each clip from its own rate
        clips, rates = zip(*(decode_audio(row[self.audio_column]) for row in rows))
        batch = self.processor(audio=list(clips), text=[row[self.text_column] for row in rows], sampling_rate=list(rates))
        batch = dict(batch)
        if self.label_column in rows[0]:
            batch["labels"] = torch.tensor([int(row[self.label_column]) for row in rows], dtype=torch.long)
        return batch


# ---------------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------------


class MGCMATrainer(Trainer):
    """A `Trainer` for `MGCMAForEmotionClassification`.

    * Logs ``loss_ce``, ``loss_da`` and ``loss_ia`` with every training ``loss`` (console, `log_history` and every
      `report_to` integration), each the mean over the micro-batches of the logging interval (so gradient
      accumulation does not change the scale) and over processes. Evaluation accumulates separately and adds
      ``eval_loss_ce`` ... to its metrics.
    * Under multi-process training (and `config.gather_distributed_negatives`), installs `gather_with_grad` as the
      model's `contrastive_feature_gatherer`, so the contrastive losses see the global batch.
    * `prediction_step` returns only the logits (plus the pooled speech and text features when
      `collect_embeddings` is set, for the t-SNE plot), not every hidden state.
    * The MGCMA losses are batch means (a contrastive loss does not decompose into per-item terms), so
      `num_items_in_batch` is accepted and not used; the Trainer scales for gradient accumulation itself.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.remove_unused_columns:
            logger.info("MGCMATrainer sets remove_unused_columns=False: the data collator reads `audio` and `text`.")
            self.args.remove_unused_columns = False
        # The model's forward takes **kwargs (to reject them with a clear error), which the Trainer would read as
        # "accepts num_items_in_batch"; it does not.
        self.model_accepts_loss_kwargs = False
        self.collect_embeddings = False
        self._component_sums = {"train": collections.defaultdict(float), "eval": collections.defaultdict(float)}
        self._component_counts = {"train": collections.Counter(), "eval": collections.Counter()}
        self._install_feature_gatherer()
        if getattr(getattr(self.model, "config", None), "alignment_loss_warmup", 0) > 0:
            self.add_callback(AlignmentLossWarmup())  # ramps L_DA / L_IA in (see modeling_mgcma.loss_schedule)

    # -- length-grouped batching (`--train_sampling_strategy group_by_length`) -------------------------------------

    def _audio_lengths(self, dataset) -> list[int]:
        """Per-row lengths without decoding audio: the `length_column_name` column, the cached speech frames, or
        `end - start` / file headers capped at the collator's processor `max_duration` (what the model sees)."""
        from .feature_cache import SPEECH_COLUMN, cached_feature_lengths
        from .sampling import audio_lengths

        cache = self.__dict__.setdefault("_length_cache", {})
        key = getattr(dataset, "_fingerprint", None) or id(dataset)
        if key not in cache:
            if self.args.length_column_name in dataset.column_names:
                cache[key] = list(dataset[self.args.length_column_name])
            elif SPEECH_COLUMN in dataset.column_names:
                cache[key] = cached_feature_lengths(dataset)
            else:
                processor = getattr(self.data_collator, "processor", None)
                cache[key] = audio_lengths(
                    dataset,
                    audio_column=getattr(self.data_collator, "audio_column", "audio"),
                    sampling_rate=getattr(processor, "sampling_rate", 16_000),
                    max_duration=getattr(processor, "max_duration", None),
                )
        return cache[key]

    def _get_train_sampler(self, train_dataset=None):
        train_dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or not hasattr(train_dataset, "column_names"):
            return super()._get_train_sampler(train_dataset)
        from .sampling import build_length_grouped_sampler

        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return build_length_grouped_sampler(self._audio_lengths(train_dataset), self.args.train_batch_size, seed=seed)

    def _get_eval_sampler(self, eval_dataset):
        if self.args.train_sampling_strategy != "group_by_length" or not hasattr(eval_dataset, "column_names"):
            return super()._get_eval_sampler(eval_dataset)
        from .sampling import build_length_grouped_sampler

        # sorted by length, deterministic; predictions and label_ids come back in this order, together
        return build_length_grouped_sampler(self._audio_lengths(eval_dataset), self.args.eval_batch_size, shuffle=False)

    def _install_feature_gatherer(self):
        model = self.accelerator.unwrap_model(self.model)
        backbone = getattr(model, "mgcma", model)
        if not hasattr(backbone, "contrastive_feature_gatherer"):
            return
        use_gather = self.accelerator.num_processes > 1 and model.config.gather_distributed_negatives
        backbone.contrastive_feature_gatherer = gather_with_grad if use_gather else None
        if use_gather:
            logger.info(
                "Contrastive losses use the negatives of all %d processes (gathered with gradients).",
                self.accelerator.num_processes,
            )

    # -- loss ----------------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if outputs.loss is None:
            raise ValueError(f"the model returned no loss: the batch needs `labels`; it has {sorted(inputs)}.")
        phase = "train" if model.training else "eval"
        for name in LOSS_COMPONENTS:
            value = getattr(outputs, name, None)
            if value is not None:
                self._component_sums[phase][name] = self._component_sums[phase][name] + value.detach().float()
                self._component_counts[phase][name] += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def _flush_components(self, phase: str) -> dict[str, float]:
        """Means of the accumulated components since the last flush, averaged over processes; then reset."""
        sums, counts = self._component_sums[phase], self._component_counts[phase]
        means = {}
        for name in LOSS_COMPONENTS:  # the same names on every process: the model config is the same
            if counts[name] == 0:
                continue
            mean = torch.as_tensor(sums[name], dtype=torch.float32, device=self.args.device) / counts[name]
            if self.accelerator.num_processes > 1:
                mean = self.accelerator.reduce(mean, reduction="mean")
            means[name] = round(float(mean.item()), 6)
        sums.clear()
        counts.clear()
        return means

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # The periodic training log is the one with a plain "loss" (evaluation logs "eval_loss", the end of training
        # "train_loss"). Every process reaches it at the same step, so the reduction inside is safe.
        if "loss" in logs:
            logs.update(self._flush_components("train"))
        super().log(logs, start_time)

    # -- evaluation ----------------------------------------------------------------------------------------------------

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        self._component_sums["eval"].clear()
        self._component_counts["eval"].clear()
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        for name, value in self._flush_components("eval").items():
            output.metrics[f"{metric_key_prefix}_{name}"] = value
        return output

    def prediction_step(self, model: nn.Module, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        with torch.no_grad():
            if labels is not None:
                with self.compute_loss_context_manager():
                    loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
                loss = loss.detach().mean()
            else:
                loss, outputs = None, model(**inputs)
        if prediction_loss_only:
            return loss, None, None
        logits = outputs.logits.detach()
        if self.collect_embeddings:
            logits = (logits, outputs.speech_embeds.detach().float(), outputs.text_embeds.detach().float())
        return loss, logits, labels


__all__ = ["MGCMADataCollator", "MGCMATrainer", "gather_with_grad", "decode_audio", "LOSS_COMPONENTS"]
