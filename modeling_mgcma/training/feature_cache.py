# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Cached-feature training: compute the frozen encoders' outputs once, then train only the alignment modules.

With frozen speech and text encoders, every epoch (and every cross-validation fold) would recompute the same encoder
outputs. `cache_features` runs the encoders once per utterance and stores `last_hidden_state` (before MGCMA's
projection, the `speech_features` / `text_features` inputs of `MGCMAModel.forward`) in a memory-mapped Arrow file;
`modeling_mgcma.training.collators.CachedFeatureCollator` pads them into batches with `speech_features_mask` / `text_features_mask`.

Cache key. The folder name is a hash of everything the features depend on: the encoders' weights (every tensor's
bytes) and configs, the processor (feature extractor settings, tokenizer vocabulary and settings, `max_duration`,
`max_text_length`), the data (per row: the audio file's path, size and modification time, or the hash of its bytes;
the transcript) and the storage dtype. Changing any of them makes a new cache; the same model and data reuse it
across runs and folds (cache the whole corpus once, then split the cached dataset with `loso_fold`: the non-audio
columns are kept).

Where it runs. The encoders run on `device` (`run_mgcma.py` passes the training device, i.e. each process's GPU)
and go back where they were afterwards. Under several processes every rank encodes its own contiguous share of the
rows into a shard file, then the main process joins the shards in row order, so no rank waits long in a barrier and
the cache equals the one a single process builds (`cache_dir` must be on a filesystem all ranks share). A progress
bar counts the rows of the main process's share.

Batching. Utterances are encoded `batch_size` at a time (sorted by length within a window of rows, so batches pad
little) when padding cannot change an utterance's features: a speech encoder with layer-normalised conv features
and an attention mask (`feat_extract_norm="layer"`, as `from_scratch` models and wav2vec2-large-lv60); the text
encoder uses its attention mask. wav2vec2-base (group-normalised conv features, which read padding) is encoded one
utterance at a time.

Exactness. The encoders run in eval mode: no dropout and no SpecAugment time/feature masking (wav2vec2 masks only in
training mode). Frozen-encoder end-to-end training matches cached training (up to float rounding) only under the same
conditions, i.e. with the encoders in eval mode (`freeze_encoders_in_eval_mode`). No padding enters the features
(see Batching); end-to-end batches match this when the encoder ignores padding (wav2vec2-base's group norm reads
padding, so its end-to-end features depend on the batch and the cache holds the padding-free ones).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..processing_mgcma import decode_audio


CACHE_FORMAT_VERSION = 1
SPEECH_COLUMN = "speech_features"
TEXT_COLUMN = "text_features"


# ---------------------------------------------------------------------------------------------------------------------
# Cache key
# ---------------------------------------------------------------------------------------------------------------------


def _hash_module(digest, module: nn.Module) -> None:
    digest.update(module.config.to_json_string(use_diff=False).encode() if hasattr(module, "config") else b"")
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")


def _hash_processor(digest, processor) -> None:
    digest.update(processor.feature_extractor.to_json_string().encode())
    tokenizer = processor.tokenizer
    digest.update(type(tokenizer).__name__.encode())
    digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    init = {k: v for k, v in getattr(tokenizer, "init_kwargs", {}).items() if isinstance(v, (str, int, float, bool))}
    digest.update(json.dumps(init, sort_keys=True).encode())
    digest.update(f"max_duration={processor.max_duration};max_text_length={processor.max_text_length}".encode())


def _audio_references(dataset, audio_column: str):
    """The audio column without decoding: path strings or {'path', 'bytes'} dicts."""
    feature = dataset.features[audio_column]
    if getattr(feature, "decode", False):
        import datasets

        dataset = dataset.cast_column(audio_column, datasets.Audio(sampling_rate=feature.sampling_rate, decode=False))
    return dataset[audio_column]


def _hash_data(digest, dataset, audio_column: str, text_column: str) -> None:
    digest.update(f"rows={len(dataset)}".encode())
    for row, (audio, text) in enumerate(zip(_audio_references(dataset, audio_column), dataset[text_column])):
        if isinstance(audio, dict) and audio.get("bytes"):
            digest.update(hashlib.sha256(audio["bytes"]).digest())
        else:
            path = audio.get("path") if isinstance(audio, dict) else audio
            if not path:
                raise ValueError(f"row {row} of column {audio_column!r} has neither a path nor bytes.")
            stat = os.stat(path)
            digest.update(f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        digest.update(b"\0" + str(text).encode() + b"\0")


def feature_cache_key(model, processor, dataset, audio_column="audio", text_column="text", dtype="float32") -> str:
    """Hex key of everything the cached features depend on (see the module docstring)."""
    backbone = _backbone(model)
    digest = hashlib.sha256(f"mgcma-feature-cache-v{CACHE_FORMAT_VERSION};dtype={dtype}".encode())
    _hash_module(digest, backbone.speech_encoder)
    _hash_module(digest, backbone.text_encoder)
    _hash_processor(digest, processor)
    _hash_data(digest, dataset, audio_column, text_column)
    return digest.hexdigest()[:32]


# ---------------------------------------------------------------------------------------------------------------------
# Computing the cache
# ---------------------------------------------------------------------------------------------------------------------


def _backbone(model):
    backbone = model.base_model
    if not hasattr(backbone, "encode_speech") or not hasattr(backbone, "encode_text"):
        raise ValueError(f"expected an MGCMA model (MGCMAModel or MGCMAForEmotionClassification), got {type(model).__name__}.")
    return backbone


def padding_safe(model) -> bool:
    """True when padding an utterance in a batch cannot change its speech features (see the module docstring)."""
    config = _backbone(model).config.speech_config
    return getattr(config, "feat_extract_norm", None) == "layer"


def _row_inputs(dataset, row: int, audio_column: str, text_column: str):
    example = dataset[row]
    try:
        audio, rate = decode_audio(example[audio_column])
    except (TypeError, ValueError) as error:
        raise ValueError(f"row {row} of column {audio_column!r}: {error}") from error
    text = example[text_column]
    if not isinstance(text, str):
        raise ValueError(f"row {row} of column {text_column!r}: expected a string, got {type(text).__name__}.")
    return audio, rate, text


@torch.no_grad()
def encode_dataset(
    model, processor, dataset, audio_column="audio", text_column="text", dtype=np.float32, device=None, batch_size=None,
    rows=None, progress=None,
):  # fmt: skip
    """Yield `(speech_features [frames, H_s], text_features [tokens, H_t])` per row, in row order, encoders in eval
    mode on `device` (default: where they are; moved back afterwards).

    Args:
        batch_size: utterances per encoder call; default 16 when padding is safe (`padding_safe`), else 1. A value
            above 1 for an encoder that reads padding is refused.
        rows: the row indices to encode (default: all).
        progress: a tqdm-like object whose `update(n)` is called after each batch.
    """
    backbone = _backbone(model)
    safe = padding_safe(model)
    if batch_size is None:
        batch_size = 16 if safe else 1
    if batch_size < 1 or (batch_size > 1 and not safe):
        raise ValueError(
            f"batch_size={batch_size}: the speech encoder normalises its conv features over padding "
            "(feat_extract_norm != 'layer'), so only batch_size=1 gives padding-free features."
        )
    rows = list(range(len(dataset))) if rows is None else list(rows)
    encoders = (backbone.speech_encoder, backbone.text_encoder)
    was_training = [encoder.training for encoder in encoders]
    home = [next(encoder.parameters()).device for encoder in encoders]
    device = torch.device(device) if device is not None else home[0]
    for encoder in encoders:
        encoder.to(device)
        encoder.eval()
    window = batch_size * 16  # rows decoded at once and sorted by length, so batches pad little
    try:
        for start in range(0, len(rows), window):
            chunk = rows[start : start + window]
            inputs = [_row_inputs(dataset, row, audio_column, text_column) for row in chunk]
            order = sorted(range(len(chunk)), key=lambda i: -len(inputs[i][0]) / inputs[i][1])
            out = [None] * len(chunk)
            for b in range(0, len(order), batch_size):
                members = order[b : b + batch_size]
                batch = processor(
                    audio=[inputs[i][0] for i in members],
                    text=[inputs[i][2] for i in members],
                    sampling_rate=[inputs[i][1] for i in members],
                )
                speech, speech_mask = backbone.encode_speech(
                    batch["input_values"].to(device), batch["speech_attention_mask"].to(device)
                )
                text_hidden, text_mask = backbone.encode_text(
                    batch["input_ids"].to(device),
                    batch["text_attention_mask"].to(device),
                    batch["token_type_ids"].to(device) if "token_type_ids" in batch else None,
                )
                speech, speech_mask = speech.float().cpu(), speech_mask.cpu()
                text_hidden, text_mask = text_hidden.float().cpu(), text_mask.cpu()
                for j, i in enumerate(members):
                    out[i] = (
                        speech[j][speech_mask[j]].numpy().astype(dtype, copy=False),
                        text_hidden[j][text_mask[j]].numpy().astype(dtype, copy=False),
                    )
                if progress is not None:
                    progress.update(len(members))
            yield from out
    finally:
        for encoder, mode, where in zip(encoders, was_training, home):
            encoder.train(mode)
            encoder.to(where)


def _features(model, dtype):
    import datasets

    backbone = _backbone(model)
    return datasets.Features(
        {
            SPEECH_COLUMN: datasets.Array2D(shape=(None, backbone.config.speech_config.hidden_size), dtype=dtype),
            TEXT_COLUMN: datasets.Array2D(shape=(None, backbone.config.text_config.hidden_size), dtype=dtype),
        }
    )


def shard_rows(num_rows: int, num_shards: int, index: int) -> range:
    """The contiguous rows of shard `index` of `num_shards` (sizes differ by at most one)."""
    bounds = np.linspace(0, num_rows, num_shards + 1).round().astype(int)
    return range(int(bounds[index]), int(bounds[index + 1]))


def write_shard(folder: Path, model, processor, dataset, num_shards, index, audio_column="audio", text_column="text",
                dtype="float32", device=None, batch_size=None, show_progress=True) -> Path:  # fmt: skip
    """Encode shard `index` of `num_shards` into `folder/shard-<index>.arrow` (see `cache_features`)."""
    from datasets.arrow_writer import ArrowWriter
    from tqdm.auto import tqdm

    rows = shard_rows(len(dataset), num_shards, index)
    target = Path(folder) / f"shard-{index:05d}.arrow"
    description = "Encoding features for the cache" + (f" (rank {index} of {num_shards})" if num_shards > 1 else "")
    with tqdm(total=len(rows), desc=description, unit="utt", disable=not show_progress) as bar:
        writer = ArrowWriter(features=_features(model, dtype), path=str(target))
        for speech, text in encode_dataset(
            model, processor, dataset, audio_column, text_column, np.dtype(dtype), device=device,
            batch_size=batch_size, rows=rows, progress=bar,
        ):  # fmt: skip
            writer.write({SPEECH_COLUMN: speech, TEXT_COLUMN: text})
        writer.finalize()
        writer.close()
    return target


def merge_shards(folder: Path, path: Path, model, num_rows: int, num_shards: int, dtype="float32") -> None:
    """Join `folder`'s shards in row order into `folder/features.arrow`, then move `folder` to `path` (atomically:
    a cache folder is complete or absent)."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    folder = Path(folder)
    shards = [folder / f"shard-{index:05d}.arrow" for index in range(num_shards)]
    if num_shards == 1:
        os.replace(shards[0], folder / "features.arrow")
    else:
        writer = ArrowWriter(features=_features(model, dtype), path=str(folder / "features.arrow"))
        for shard in shards:
            writer.write_table(datasets.Dataset.from_file(str(shard)).data.table)
        writer.finalize()
        writer.close()
        for shard in shards:
            shard.unlink()
    (folder / "cache_info.json").write_text(
        json.dumps({"format_version": CACHE_FORMAT_VERSION, "rows": num_rows, "dtype": dtype}, indent=2)
    )
    os.replace(folder, path)


def _process_group():
    """(world size, rank, barrier) of the running distributed job; (1, 0, no-op) in one process."""
    import torch.distributed as dist

    from ..data import launched_distributed

    if not (dist.is_available() and dist.is_initialized()) and launched_distributed():
        from accelerate import PartialState

        PartialState()  # sets up the process group the launcher prepared
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_world_size(), dist.get_rank(), dist.barrier
    return 1, 0, lambda: None


def cache_features(
    model,
    processor,
    dataset,
    cache_dir: str | os.PathLike,
    audio_column: str = "audio",
    text_column: str = "text",
    dtype: str = "float32",
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    show_progress: bool = True,
):
    """The dataset with its audio replaced by cached encoder outputs, computing them if the cache lacks them.

    Args:
        model: an MGCMA model whose encoders are (to be) frozen.
        processor: the `MGCMAProcessor` used for training (its `max_duration` cuts long clips before encoding).
        dataset: a `datasets.Dataset` with an `Audio` column and a transcript column.
        cache_dir: parent folder; the features go to `cache_dir/<key>/features.arrow` (memory-mapped on read).
        dtype: storage dtype, "float32" (exact) or "float16" (half the disk, ~1e-3 relative rounding).
        device: where the encoders run while encoding (default: where they are), e.g. the training GPU.
        batch_size: utterances per encoder call (see `encode_dataset`; default 16 when padding is safe, else 1).
        show_progress: a progress bar on the main process.

    Returns:
        A `datasets.Dataset` with `speech_features` and `text_features` (variable-length 2-D arrays) plus every
        column of `dataset` except the audio and text columns, in the same row order.
    """
    import datasets

    if dtype not in ("float32", "float16"):
        raise ValueError(f"`dtype` must be 'float32' or 'float16', got {dtype!r}.")
    for column in (audio_column, text_column):
        if column not in dataset.column_names:
            raise ValueError(f"no column {column!r} in the dataset (columns: {dataset.column_names}).")
    for column in (SPEECH_COLUMN, TEXT_COLUMN):
        if column in dataset.column_names:
            raise ValueError(f"the dataset already has a {column!r} column; pass the raw dataset.")
    key = feature_cache_key(model, processor, dataset, audio_column, text_column, dtype)
    path = Path(cache_dir) / key
    if not (path / "features.arrow").exists():
        world, rank, barrier = _process_group()
        # every rank encodes its share into one shared temporary folder; the main process joins the shards
        tmp = Path(cache_dir) / f".tmp-{key}-{world}"
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)  # what an interrupted build left
            tmp.mkdir(parents=True)
        barrier()
        try:
            write_shard(
                tmp, model, processor, dataset, world, rank, audio_column, text_column, dtype, device=device,
                batch_size=batch_size, show_progress=show_progress and rank == 0,
            )  # fmt: skip
            barrier()
            if rank == 0:
                merge_shards(tmp, path, model, len(dataset), world, dtype)
        finally:
            if rank == 0 and tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        barrier()
    cached = datasets.Dataset.from_file(str(path / "features.arrow"))
    if len(cached) != len(dataset):
        raise ValueError(f"feature cache {path} holds {len(cached)} rows but the dataset has {len(dataset)}; delete it.")
    rest = dataset.remove_columns([audio_column, text_column])
    combined = datasets.concatenate_datasets([rest, cached], axis=1) if rest.column_names else cached
    # numpy rows: the python-list default would build 768 floats x frames as Python objects on every access
    return combined.with_format("numpy", columns=[SPEECH_COLUMN, TEXT_COLUMN], output_all_columns=True)


# ---------------------------------------------------------------------------------------------------------------------
# Training from the cache
# ---------------------------------------------------------------------------------------------------------------------


def cached_feature_lengths(dataset, batch_size: int = 1024) -> list[int]:
    """Speech frames per cached row (for the length-grouped samplers of `modeling_mgcma.training.sampling`), read from the Arrow list offsets, not the values."""
    import pyarrow as pa

    lengths = []
    for batch in dataset.select_columns([SPEECH_COLUMN]).with_format("arrow").iter(batch_size=batch_size):
        column = batch.column(SPEECH_COLUMN)
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        for chunk in chunks:
            storage = getattr(chunk, "storage", chunk)  # Array2D columns are extension arrays over list<list<...>>
            lengths.extend(storage.value_lengths().to_pylist())
    return lengths


def freeze_encoders_in_eval_mode(model) -> None:
    """Freeze both encoders and keep them in eval mode (no dropout, no SpecAugment) even under `model.train()`
    (`MGCMAModel.encoders_in_eval_mode`), which is what cached-feature training computes: use it for the end-to-end
    frozen-encoder equivalent."""
    backbone = _backbone(model)
    for encoder in (backbone.speech_encoder, backbone.text_encoder):
        encoder.requires_grad_(False)
    backbone.encoders_in_eval_mode = True
    backbone.train(backbone.training)


__all__ = [
    "CACHE_FORMAT_VERSION",
    "feature_cache_key",
    "encode_dataset",
    "padding_safe",
    "shard_rows",
    "write_shard",
    "merge_shards",
    "cache_features",
    "cached_feature_lengths",
    "freeze_encoders_in_eval_mode",
]
