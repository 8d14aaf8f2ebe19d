# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Bring your own data: a CSV or JSON Lines manifest of (audio path, transcript, label) rows."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import datasets

from .iemocap import EMOTION_LABELS, SAMPLING_RATE

# The strict row reader lives in manifest_rows.py (standard library only), which exported ONNX folders carry too.
from .manifest_rows import (  # noqa: E402,F401  # noqa: E402,F401
    MANIFEST_FORMATS,
    _check_unicode,
    _lone_surrogate,
    _read_csv,
    _read_jsonl,
    manifest_items,
    read_manifest_rows,
)


# Fewer rows than this in a class draws a warning: most likely a typo, and too few for train, validation and test.
FEW_ROWS_PER_CLASS = 5

logger = logging.getLogger(__name__)


def normalize_label(value) -> str:
    """A label as compared and stored: case and surrounding or repeated whitespace ignored (`" Sad "` -> `"sad"`)."""
    return " ".join(str(value).split()).lower()


def load_manifest(
    path: str | os.PathLike,
    audio_column: str = "audio",
    text_column: str = "text",
    label_column: str = "label",
    labels: list[str] | tuple[str, ...] | None = None,
    *,
    id_column: str = "id",
    sampling_rate: int = SAMPLING_RATE,
) -> datasets.Dataset:
    """Read a manifest into a `datasets.Dataset` with the IEMOCAP builder's core features.

    Args:
        path: a ``.csv`` (header row) or ``.jsonl`` (one JSON object per line) file.
        audio_column / text_column / label_column: the manifest's column names; they become
            ``audio`` (`Audio(sampling_rate)`, decoded and resampled on access), ``text`` and
            ``label`` (`ClassLabel`). Relative audio paths are resolved against the manifest's folder.
        labels: the class names in id order. Labels are compared ignoring case and extra whitespace
            (`normalize_label`); rows with any other label are an error naming the line and value. When
            None: `EMOTION_LABELS` if every label is one of them (ids then match the
            model's default), else the sorted distinct labels, logged (WARNING) with their counts.
            A class with fewer than `FEW_ROWS_PER_CLASS` rows is a warning naming its lines.
        id_column: used as ``id`` when present, else ids are ``<manifest name>-<row number>``.

    Other columns are kept as they are. Errors name the row (1-based, header excluded), the
    file or the column.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Manifest not found: {path}")
    numbered = read_manifest_rows(path)
    rows = [row for _, row in numbered]
    lines = [line for line, _ in numbered]  # file line of each row, for error messages
    if not rows:
        raise ValueError(f"Manifest {path} has no rows")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    for role, column in (("audio_column", audio_column), ("text_column", text_column), ("label_column", label_column)):
        if column not in columns:
            raise ValueError(f"Manifest {path} has no column {column!r} ({role}); its columns are {columns}")

    base = path.resolve().parent
    audio, texts, raw_labels = [], [], []
    for line, row in numbered:
        for column in (audio_column, text_column, label_column):
            if row.get(column) is None or (column != text_column and str(row.get(column)).strip() == ""):
                raise ValueError(f"Manifest {path}, line {line}: empty value in column {column!r}")
        audio_path = Path(str(row[audio_column]).strip()).expanduser()
        if not audio_path.is_absolute():
            audio_path = base / audio_path
        if not audio_path.is_file():
            raise FileNotFoundError(f"Manifest {path}, line {line}: audio file not found: {audio_path}")
        audio.append(str(audio_path))
        texts.append(str(row[text_column]))
        raw_labels.append(normalize_label(row[label_column]))

    counts = Counter(raw_labels)
    if labels is None:
        if set(counts) <= set(EMOTION_LABELS):
            labels = list(EMOTION_LABELS)
        else:
            labels = sorted(counts)
            logger.warning(
                "Manifest %s: no label set given, so the classes are the %d distinct values of column %r: %s. Pass "
                "labels=[...] (run_mgcma.py: --class_names a,b,c) to fix the set and its id order; any other label "
                "is then an error.", path, len(labels), label_column, ", ".join(f"{n} ({counts[n]} rows)" for n in labels),
            )  # fmt: skip
    given = [str(label) for label in labels]
    labels = [normalize_label(label) for label in given]
    if len(set(labels)) != len(labels) or not all(labels):
        raise ValueError(f"labels has duplicates or empty names (case and spaces ignored): {given}")
    label_ids = {label: index for index, label in enumerate(labels)}
    unknown = {}
    for line, label in zip(lines, raw_labels):
        if label not in label_ids:
            unknown.setdefault(label, []).append(line)
    if unknown:
        first_label, first_lines = next(iter(unknown.items()))
        others = list(unknown.items())[1:]
        others = ("; also " + ", ".join(f"{label!r} (line {found[0]})" for label, found in others)) if others else ""
        raise ValueError(
            f"Manifest {path}, line {first_lines[0]}: unknown label {first_label!r}; expected one of {labels} "
            f"({len(first_lines)} row(s) have it){others}"
        )
    for label in labels:
        if 0 < counts[label] < FEW_ROWS_PER_CLASS:
            where = [line for line, raw in zip(lines, raw_labels) if raw == label]
            logger.warning(
                "Manifest %s: class %r has only %d row(s) (line(s) %s): a typo, or too few to learn and test it.",
                path, label, counts[label], ", ".join(map(str, where)),
            )  # fmt: skip

    has_id = id_column in columns
    if has_id:
        for line, row in numbered:
            if row.get(id_column) in (None, ""):
                raise ValueError(f"Manifest {path}, line {line}: no value in column {id_column!r} (other rows have one)")
    ids = [str(row[id_column]) if has_id else f"{path.stem}-{index}" for index, row in enumerate(rows)]
    if len(set(ids)) != len(ids):
        raise ValueError(f"Manifest {path}: column {id_column!r} has duplicate ids")

    core = {audio_column, text_column, label_column, id_column}
    extra_columns = [c for c in columns if c not in core and c not in {"id", "audio", "text", "label"}]
    extra = datasets.Dataset.from_dict({c: [row.get(c) for row in rows] for c in extra_columns}) if extra_columns else None
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=sampling_rate),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=labels),
            **(extra.features if extra is not None else {}),
        }
    )
    data = {"id": ids, "audio": audio, "text": texts, "label": [label_ids[label] for label in raw_labels]}
    if extra is not None:
        data.update({c: extra[c] for c in extra_columns})
    return datasets.Dataset.from_dict(data, features=features)
