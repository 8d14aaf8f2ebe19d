# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Bring your own data: a CSV or JSON Lines manifest of (audio path, transcript, label) rows."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from pathlib import Path

import datasets

from .iemocap import EMOTION_LABELS, SAMPLING_RATE

MANIFEST_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
# Fewer rows than this in a class draws a warning: most likely a typo, and too few for train, validation and test.
FEW_ROWS_PER_CLASS = 5

logger = logging.getLogger(__name__)


def normalize_label(value) -> str:
    """A label as compared and stored: case and surrounding or repeated whitespace ignored (`" Sad "` -> `"sad"`)."""
    return " ".join(str(value).split()).lower()


def read_manifest_rows(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """`(line number, row)` for every row of a CSV (header on line 1) or JSON Lines manifest; blank lines are skipped.

    Shared by `load_manifest` and `mgcma predict --manifest`. Text is read as UTF-8 with or without a byte-order mark
    (Excel's "CSV UTF-8"). Every row of the file is returned or it is an error: raises `ValueError` naming the file
    and line for an unknown format, a missing or duplicated header name, a CSV row with more or fewer fields than the
    header, an unbalanced quote (a quoted field that runs to the end of the file or swallows later rows), invalid
    JSON, a line that is not a JSON object, a column whose JSON values mix types (text in one row, a number in
    another) and text holding a lone UTF-16 surrogate.
    """
    path = Path(path)
    kind = MANIFEST_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"Unsupported manifest {path}: use one of {sorted(MANIFEST_FORMATS)}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(f"Manifest {path}, line {line}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    rows = _read_csv(path, text) if kind == "csv" else _read_jsonl(path, text)
    for line_number, row in rows:
        for key, value in row.items():
            _check_unicode(path, line_number, key, value)
    return rows


def _lone_surrogate(value) -> str | None:
    if isinstance(value, str):
        return next((c for c in value if "\ud800" <= c <= "\udfff"), None)
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((found for found in map(_lone_surrogate, items) if found is not None), None)


def _check_unicode(path: Path, line_number: int, key, value) -> None:
    bad = _lone_surrogate(key) or _lone_surrogate(value)
    if bad is not None:
        raise ValueError(
            f"Manifest {path}, line {line_number}, field {key!r}: lone surrogate U+{ord(bad):04X} (half of a UTF-16 "
            "pair, not text); fix the \\u escape in the file"
        )


def _read_csv(path: Path, text: str) -> list[tuple[int, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise ValueError(f"Manifest {path}, line 1: cannot read the header ({error})") from None
    if header is None:
        raise ValueError(f"Manifest {path} is empty (no header row)")
    header = [name.strip() for name in header]
    unnamed = [index + 1 for index, name in enumerate(header) if not name]
    if unnamed:
        raise ValueError(f"Manifest {path}, line 1: header column(s) {unnamed} have no name; the header is {header}")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ValueError(f"Manifest {path}, line 1: header names {duplicated} more than once; each column needs its own")
    rows = []
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                raise ValueError(
                    f"Manifest {path}, line {start}: a quoted field opened on this line is never closed (it runs to "
                    "the end of the file and would swallow every later row); check for an unbalanced '\"'"
                ) from None
            raise ValueError(f"Manifest {path}, line {reader.line_num}: not valid CSV ({error})") from None
        end = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line
        span = f" (this row runs over lines {start}-{end}: an unbalanced '\"'?)" if end > start else ""
        if len(fields) != len(header):
            problem = (
                f"missing {header[len(fields):]}" if len(fields) < len(header)
                else f"extra value(s) {fields[len(header):]}; quote fields that contain a comma"
            )
            raise ValueError(
                f"Manifest {path}, line {start}: {len(fields)} field(s) where the header has {len(header)} "
                f"({', '.join(header)}): {problem}{span}"
            )
        if end > start:
            # A quoted field may hold line breaks, but not whole rows: that is a stray quote eating the rows after it.
            for name, value in zip(header, fields):
                swallowed = [line for line in value.splitlines()[1:] if line.count(",") >= len(header) - 1]
                if swallowed:
                    raise ValueError(
                        f"Manifest {path}, line {start}: field {name!r} runs over lines {start}-{end} and holds what "
                        f"look like rows ({swallowed[0]!r}); check for an unbalanced '\"' on line {start}"
                    )
        rows.append((start, dict(zip(header, fields))))
    return rows


_JSON_TYPES = {str: "text", int: "a number", float: "a number", bool: "true/false", list: "a list", dict: "an object"}


def _read_jsonl(path: Path, text: str) -> list[tuple[int, dict]]:
    rows = []
    first_of_type: dict[str, tuple[str, int, object]] = {}
    for line_number, line in enumerate(io.StringIO(text, newline=None), start=1):  # \n, \r\n or \r; not U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{line_number}: not valid JSON ({error})") from error
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{line_number}: expected a JSON object per line, got {type(row).__name__}")
        for key, value in row.items():
            if value is None:
                continue
            kind = _JSON_TYPES[type(value)]
            seen = first_of_type.setdefault(key, (kind, line_number, value))
            if seen[0] != kind:
                raise ValueError(
                    f"Manifest {path}, line {line_number}: column {key!r} is {kind} ({value!r}) but {seen[0]} "
                    f"({seen[2]!r}) on line {seen[1]}; give every row the same type (e.g. quote numbers as text)"
                )
        rows.append((line_number, row))
    return rows


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
