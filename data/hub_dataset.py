# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Any dataset with audio, transcript and label columns: a Hub id, a local AudioFolder or a `save_to_disk` folder,
brought into the same columns and features as :func:`load_manifest` returns."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import datasets

from .iemocap import EMOTION_LABELS, SAMPLING_RATE


logger = logging.getLogger(__name__)

# Names of the columns every loader of this package returns (see `load_manifest`).
CORE_COLUMNS = ("id", "audio", "text", "label")
AUDIOFOLDER_METADATA = ("metadata.csv", "metadata.jsonl")


def detect_dataset_source(dataset_name: str | os.PathLike) -> str:
    """How `dataset_name` is read:

    - ``"save_to_disk"``: a folder written by ``Dataset.save_to_disk`` (it holds ``dataset_info.json`` and
      ``state.json``) or ``DatasetDict.save_to_disk`` (it holds ``dataset_dict.json``), read with `load_from_disk`;
    - ``"audiofolder"``: a folder with ``metadata.csv`` or ``metadata.jsonl`` (at its top or in a split subfolder),
      read with the AudioFolder builder (the metadata's ``file_name`` column becomes ``audio``);
    - ``"hub"``: anything else, passed to `datasets.load_dataset` (a Hub id, or a local folder of data files).
    """
    path = Path(dataset_name).expanduser()
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (
            (path / "dataset_info.json").is_file() and (path / "state.json").is_file()
        ):
            return "save_to_disk"
        if any((path / name).is_file() for name in AUDIOFOLDER_METADATA) or any(
            (child / name).is_file() for child in path.iterdir() if child.is_dir() for name in AUDIOFOLDER_METADATA
        ):
            return "audiofolder"
    return "hub"


def _normalise(label) -> str:
    return " ".join(str(label).split()).lower()


def _raw_labels(dataset: datasets.Dataset, label_column: str) -> list[str]:
    values = dataset.select_columns([label_column])[label_column]
    feature = dataset.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return [feature.int2str(int(v)) for v in values]
    return values


def _check_columns(name: str, split: str, dataset: datasets.Dataset, required: dict[str, str]) -> None:
    for role, column in required.items():
        if column not in dataset.column_names:
            raise ValueError(
                f"Dataset {name!r}, split {split!r} has no column {column!r} ({role}); its columns are "
                f"{dataset.column_names}. Pass --{role} to name the right one."
            )


def _to_mgcma_columns(
    dataset: datasets.Dataset,
    split: str,
    name: str,
    label_names: list[str],
    audio_column: str,
    text_column: str,
    label_column: str,
    id_column: str,
    sampling_rate: int,
) -> datasets.Dataset:
    label_ids = {label: index for index, label in enumerate(label_names)}
    labels = []
    for row, value in enumerate(_raw_labels(dataset, label_column)):
        if value is None or _normalise(value) == "":
            raise ValueError(f"Dataset {name!r}, split {split!r}, row {row}: empty value in column {label_column!r}")
        if _normalise(value) not in label_ids:
            raise ValueError(
                f"Dataset {name!r}, split {split!r}, row {row}: unknown label {value!r} in column {label_column!r}; "
                f"expected one of {label_names}"
            )
        labels.append(label_ids[_normalise(value)])
    texts = dataset.select_columns([text_column])[text_column]
    for row, text in enumerate(texts):
        if text is None:
            raise ValueError(f"Dataset {name!r}, split {split!r}, row {row}: empty value in column {text_column!r}")
    has_id = id_column in dataset.column_names
    if has_id:
        ids = [str(v) for v in dataset.select_columns([id_column])[id_column]]
        empty = [row for row, v in enumerate(ids) if v in ("", "None")]
        if empty:
            raise ValueError(f"Dataset {name!r}, split {split!r}, row {empty[0]}: no value in column {id_column!r}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"Dataset {name!r}, split {split!r}: column {id_column!r} has duplicate ids")
    else:
        ids = [f"{split}-{row}" for row in range(len(dataset))]
    audio_feature = dataset.features[audio_column]
    if not isinstance(audio_feature, datasets.Audio) and audio_feature != datasets.Value("string"):
        raise ValueError(
            f"Dataset {name!r}, split {split!r}: column {audio_column!r} must be an Audio feature or file paths "
            f"(strings), got {audio_feature}."
        )

    sources = {audio_column, text_column, label_column, id_column}
    clashing = [c for c in dataset.column_names if c in CORE_COLUMNS and c not in sources]
    if clashing:
        logger.warning(
            "Dataset %r, split %r: dropping column(s) %s, whose names are taken by the columns read from %s.",
            name, split, clashing, sorted(sources & set(dataset.column_names)),
        )  # fmt: skip
    dataset = dataset.remove_columns(clashing + [c for c in (label_column, id_column) if c in dataset.column_names])
    dataset = dataset.rename_columns({c: t for c, t in ((audio_column, "audio"), (text_column, "text")) if c != t})
    dataset = dataset.cast_column("audio", datasets.Audio(sampling_rate=sampling_rate))
    if dataset.features["text"] != datasets.Value("string"):
        dataset = dataset.cast_column("text", datasets.Value("string"))
    dataset = dataset.add_column("label", labels, feature=datasets.ClassLabel(names=label_names))
    dataset = dataset.add_column("id", ids, feature=datasets.Value("string"))
    extras = [c for c in dataset.column_names if c not in CORE_COLUMNS]
    # CSV readers give `large_string`; the manifest loader's columns are `string`, and so are ours.
    large = [c for c in extras if dataset.features[c] == datasets.Value("large_string")]
    if large:
        dataset = dataset.cast(datasets.Features({**dataset.features, **{c: datasets.Value("string") for c in large}}))
    return dataset.select_columns([*CORE_COLUMNS, *extras])


def _resolve_relative_audio(loaded, audio_column: str, folder: Path):
    """A save_to_disk dataset's relative audio paths (file paths as text, or an Audio feature holding paths without
    bytes) made absolute against the dataset's own folder, not the working directory."""
    def resolve(part: datasets.Dataset) -> datasets.Dataset:
        if audio_column not in part.column_names:
            return part  # the column check names it
        feature = part.features[audio_column]
        if feature == datasets.Value("string") or feature == datasets.Value("large_string"):
            values = part.select_columns([audio_column])[audio_column]
            if not any(v and not os.path.isabs(os.path.expanduser(v)) for v in values):
                return part
            fixed = [v if not v or os.path.isabs(os.path.expanduser(v)) else str(folder / v) for v in values]
            return part.remove_columns([audio_column]).add_column(audio_column, fixed, feature=feature)
        if isinstance(feature, datasets.Audio):
            raw = part.select_columns([audio_column]).cast_column(audio_column, datasets.Audio(decode=False))[audio_column]
            if not any(v and not v.get("bytes") and v.get("path") and not os.path.isabs(v["path"]) for v in raw):
                return part
            fixed = [v if not v or v.get("bytes") or not v.get("path") or os.path.isabs(v["path"])
                     else {"path": str(folder / v["path"]), "bytes": None} for v in raw]  # fmt: skip
            return part.remove_columns([audio_column]).add_column(
                audio_column, fixed, feature=datasets.Audio(decode=False)).cast_column(audio_column, feature)
        return part

    if isinstance(loaded, datasets.DatasetDict):
        return datasets.DatasetDict({name: resolve(part) for name, part in loaded.items()})
    return resolve(loaded)


def load_dataset_for_mgcma(
    dataset_name: str | os.PathLike,
    config_name: str | None = None,
    *,
    split: str | Sequence[str] | None = None,
    audio_column: str = "audio",
    text_column: str = "text",
    label_column: str = "label",
    group_column: str | None = None,
    id_column: str = "id",
    labels: Sequence[str] | None = None,
    sampling_rate: int = SAMPLING_RATE,
    cache_dir: str | None = None,
    **load_kwargs,
) -> datasets.Dataset | datasets.DatasetDict:
    """Load a dataset from the Hub or a local folder with the columns and features of :func:`load_manifest`:
    ``id`` (string), ``audio`` (`Audio(sampling_rate)`, decoded and resampled on access), ``text`` (string),
    ``label`` (`ClassLabel`), followed by the source's other columns (the group column among them; `large_string` becomes `string`).

    Args:
        dataset_name: a Hub id (``datasets.load_dataset(dataset_name, config_name)``), a local AudioFolder (a folder
            with ``metadata.csv``/``metadata.jsonl`` whose ``file_name`` column names the audio files) or a folder
            written by ``save_to_disk``; see :func:`detect_dataset_source`.
        config_name: the dataset configuration (Hub datasets only).
        split: one split name (returns a `Dataset`), several (a `DatasetDict` of those) or None (every split; a
            `save_to_disk` folder of a single `Dataset` returns that `Dataset`). An unknown name is an error that
            lists the splits that exist.
        audio_column / text_column / label_column: the source's column names; they become ``audio``, ``text``
            and ``label``. A missing column is an error listing the columns that exist. Another source column
            already called ``id``/``audio``/``text``/``label`` is dropped with a warning.
        group_column: the column that defines cross-validation folds (leave one group out); checked to exist and
            have no empty value, kept under its own name.
        id_column: used as ``id`` when present, else ids are ``<split>-<row index>``.
        labels: the class names in id order. Labels are compared after normalising case and whitespace
            (``" Happy "`` is ``happy``); a value outside the set is an error naming the value, split and row
            (0-based row index). When None: the source's `ClassLabel` names in their order if the label column is
            one, else `EMOTION_LABELS` if every label is one of them (ids then match the model's default),
            else the sorted distinct labels. The same label set is used for every split.
        load_kwargs: passed to `datasets.load_dataset` (e.g. ``revision``, ``token``, ``trust_remote_code``).
    """
    name = str(dataset_name)
    source = detect_dataset_source(dataset_name)
    if source == "save_to_disk":
        if config_name is not None:
            raise ValueError(f"{name} is a save_to_disk folder, which has no configurations; drop config_name.")
        loaded = datasets.load_from_disk(str(Path(dataset_name).expanduser()))
        loaded = _resolve_relative_audio(loaded, audio_column, Path(dataset_name).expanduser().resolve())
    elif source == "audiofolder":
        loaded = datasets.load_dataset("audiofolder", data_dir=str(Path(dataset_name).expanduser()),
                                       cache_dir=cache_dir, **load_kwargs)  # fmt: skip
    else:
        loaded = datasets.load_dataset(name, config_name, cache_dir=cache_dir, **load_kwargs)

    single = isinstance(loaded, datasets.Dataset)
    splits = datasets.DatasetDict({"train": loaded}) if single else loaded
    if split is not None:
        wanted = [split] if isinstance(split, str) else list(split)
        unknown = [s for s in wanted if s not in splits]
        if unknown:
            raise ValueError(f"Dataset {name!r} has no split(s) {unknown}; its splits are {list(splits)}.")
        splits = datasets.DatasetDict({s: splits[s] for s in wanted})

    required = {"audio_column": audio_column, "text_column": text_column, "label_column": label_column}
    if group_column is not None:
        required["group_column"] = group_column
    for split_name, part in splits.items():
        _check_columns(name, split_name, part, required)
        if group_column is not None:
            groups = part.select_columns([group_column])[group_column]
            empty = [row for row, g in enumerate(groups) if g is None or str(g).strip() == ""]
            if empty:
                raise ValueError(f"Dataset {name!r}, split {split_name!r}, row {empty[0]}: empty value in column "
                                 f"{group_column!r} (group_column); {len(empty)} row(s) have none.")  # fmt: skip

    if labels is None:
        feature = next(iter(splits.values())).features[label_column]
        if isinstance(feature, datasets.ClassLabel):
            labels = [_normalise(n) for n in feature.names]
        else:
            distinct = {_normalise(v) for part in splits.values() for v in _raw_labels(part, label_column)}
            distinct.discard("")
            labels = list(EMOTION_LABELS) if distinct <= set(EMOTION_LABELS) else sorted(distinct)
    else:
        labels = [_normalise(label) for label in labels]
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels has duplicates after normalising case and whitespace: {labels}")

    converted = datasets.DatasetDict(
        {
            split_name: _to_mgcma_columns(part, split_name, name, labels, audio_column, text_column, label_column,
                                          id_column, sampling_rate)  # fmt: skip
            for split_name, part in splits.items()
        }
    )
    if isinstance(split, str) or (split is None and single):
        return next(iter(converted.values()))
    return converted


def load_joined_splits(dataset_name, config_name=None, splits: str | Sequence[str] | None = None, **kwargs) -> datasets.Dataset:
    """:func:`load_dataset_for_mgcma` of the named splits (a list, or ``"a,b"``; None: every split) joined into one
    `Dataset`, e.g. for cross-validation folds drawn by a group column. `kwargs` go to `load_dataset_for_mgcma`."""
    if isinstance(splits, str):
        splits = [name.strip() for name in splits.split(",") if name.strip()]
    loaded = load_dataset_for_mgcma(dataset_name, config_name, split=list(splits) if splits else None, **kwargs)
    if isinstance(loaded, datasets.DatasetDict):
        first_split = {}
        for split_name, part in loaded.items():  # ids are unique within each split; joined, they must stay unique
            for utterance_id in part["id"]:
                if first_split.setdefault(utterance_id, split_name) != split_name:
                    raise ValueError(
                        f"Dataset {str(dataset_name)!r}: id {utterance_id!r} is in split {first_split[utterance_id]!r} "
                        f"and in split {split_name!r}; joined splits need distinct ids (rename them, or load one split)."
                    )
        return datasets.concatenate_datasets(list(loaded.values()))
    return loaded


__all__ = ["load_dataset_for_mgcma", "load_joined_splits", "detect_dataset_source", "CORE_COLUMNS"]
