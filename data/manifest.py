"""Bring your own data: a CSV or JSON Lines manifest of (audio path, transcript, label) rows."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import datasets

from modeling_mgcma.configuration_mgcma import DEFAULT_EMOTION_LABELS

from .iemocap import SAMPLING_RATE

MANIFEST_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}


def read_manifest_rows(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """`(line number, row)` for every row of a CSV (header on line 1) or JSON Lines manifest; blank JSONL lines are
    skipped. Raises `ValueError` naming the file (and line) for an unknown format, a missing header, invalid JSON
    or a line that is not a JSON object. Shared by `load_manifest` and `mgcma predict --manifest`."""
    path = Path(path)
    kind = MANIFEST_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"Unsupported manifest {path}: use one of {sorted(MANIFEST_FORMATS)}")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            if kind == "csv":
                reader = csv.DictReader(handle)
                if reader.fieldnames is None:
                    raise ValueError(f"Manifest {path} is empty (no header row)")
                return [(line_number, dict(row)) for line_number, row in enumerate(reader, start=2)]
            rows = []
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{line_number}: not valid JSON ({error})") from error
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{line_number}: expected a JSON object per line, got {type(row).__name__}")
                rows.append((line_number, row))
            return rows
    except UnicodeDecodeError as error:
        raise ValueError(f"Manifest {path} is not UTF-8 text: {error}") from error


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
        labels: the class names in id order. Rows with any other label are an error. When
            None: `DEFAULT_EMOTION_LABELS` if every label is one of them (ids then match the
            model's default), else the sorted distinct labels.
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
        audio_path = Path(str(row[audio_column])).expanduser()
        if not audio_path.is_absolute():
            audio_path = base / audio_path
        if not audio_path.is_file():
            raise FileNotFoundError(f"Manifest {path}, line {line}: audio file not found: {audio_path}")
        audio.append(str(audio_path))
        texts.append(str(row[text_column]))
        raw_labels.append(str(row[label_column]))

    if labels is None:
        distinct = set(raw_labels)
        labels = list(DEFAULT_EMOTION_LABELS) if distinct <= set(DEFAULT_EMOTION_LABELS) else sorted(distinct)
    labels = [str(label) for label in labels]
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels has duplicates: {labels}")
    label_ids = {label: index for index, label in enumerate(labels)}
    for line, label in zip(lines, raw_labels):
        if label not in label_ids:
            raise ValueError(f"Manifest {path}, line {line}: unknown label {label!r}; expected one of {labels}")

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
