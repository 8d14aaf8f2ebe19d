# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The strict reader of CSV / JSON Lines manifests, shared by `load_manifest` (training), `mgcma predict` and the
`predict.py` of an exported ONNX folder, which carries a copy of this file: it imports the standard library only.
Every row of a file is read, or it is an error naming the file and line."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path


MANIFEST_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}


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


def manifest_items(path, audio_column: str = "audio", text_column: str = "text", id_column: str = "id",
                   transcribe: bool = False) -> list[dict]:
    """The utterances of a prediction manifest, `[{"id", "audio", "text"}]`, audio paths resolved against the
    manifest's folder (the id column when present, else the audio file name). With `transcribe` (an ASR model will
    transcribe), a missing or empty text becomes None. Raises `ValueError` naming the file and line of a bad row."""
    if not os.path.isfile(path):
        raise ValueError(f"manifest not found: {path}")
    folder = os.path.dirname(os.path.abspath(path))
    rows = read_manifest_rows(path)
    if not rows:
        raise ValueError(f"manifest {path} lists no utterances")
    items = []
    for number, row in rows:
        if transcribe and not (isinstance(row.get(text_column), str) and row[text_column].strip()):
            row = {**row, text_column: None}
        for column in (audio_column,) if row.get(text_column) is None and transcribe else (audio_column, text_column):
            value = row.get(column)
            if not isinstance(value, str) or (column == audio_column and not value.strip()):
                present = sorted(k for k in row if k is not None)
                raise ValueError(
                    f"{path}, line {number}: column {column!r} is missing or not text (columns: {present}); "
                    "choose columns with --audio_column / --text_column"
                )
        audio = os.path.expanduser(row[audio_column].strip())
        if not os.path.isabs(audio):
            audio = os.path.join(folder, audio)
        identifier = row.get(id_column)
        identifier = os.path.basename(audio) if identifier in (None, "") else identifier
        items.append({"id": identifier, "audio": audio, "text": row[text_column]})
    return items


__all__ = ["MANIFEST_FORMATS", "manifest_items", "read_manifest_rows"]
