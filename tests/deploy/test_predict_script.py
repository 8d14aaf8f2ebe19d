# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The exported folder's predict.py reads manifests with the strict reader of `mgcma predict` (manifest_rows.py,
copied into the folder): a bad row is an error naming the file and line, never a shorter list of results; a
byte-order mark is not part of the first column's name. Runs the copied runtime files alone, with torch and this
package made unimportable, as an exported folder runs them."""

import subprocess
import sys

import pytest

from modeling_mgcma.deploy import export, onnx_runtime


ISOLATED = (
    "import sys, json; sys.modules['torch'] = None; sys.modules['modeling_mgcma'] = None; sys.path.insert(0, '.');"
    "import onnx_runtime;"
)


@pytest.fixture
def runtime_folder(tmp_path):
    folder = tmp_path / "exported"
    folder.mkdir()
    export._write_runtime(str(folder))
    return folder


def lines(n, bad_line=None, bom=False):
    rows = ["audio,text,id"] + [f"clip{i}.wav,hello {i},u{i}" for i in range(n - 1)]
    if bad_line is not None:
        rows[bad_line - 1] = 'clip9.wav,"an unterminated quote,u9'
    return ("\ufeff" if bom else "") + "\n".join(rows) + "\n"


def run_isolated(folder, code):
    return subprocess.run([sys.executable, "-c", ISOLATED + code], cwd=folder, capture_output=True, text=True,
                          timeout=120)


def test_the_exported_folder_carries_the_strict_manifest_reader(runtime_folder):
    assert (runtime_folder / "manifest_rows.py").is_file()
    assert "manifest_rows.py" in export.RUNTIME_FILES
    assert not any("import torch" in line for line in (runtime_folder / "manifest_rows.py").read_text().splitlines())


def test_predict_script_refuses_an_unterminated_quote_naming_the_line(runtime_folder):
    bad_line = 5
    (runtime_folder / "m.csv").write_text(lines(11, bad_line))
    done = subprocess.run([sys.executable, str(runtime_folder / "predict.py"), "--manifest", "m.csv"],
                          cwd=runtime_folder, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"line {bad_line}" in done.stderr and "m.csv" in done.stderr
    assert done.stdout == ""  # no results for the rows before it


def test_runtime_reader_alone_keeps_the_first_column_name_after_a_byte_order_mark(runtime_folder):
    (runtime_folder / "m.csv").write_text(lines(4, bom=True), encoding="utf-8")
    done = run_isolated(runtime_folder, "print(json.dumps(onnx_runtime.read_manifest('m.csv')))")
    assert done.returncode == 0, done.stderr
    import json

    items = json.loads(done.stdout)
    assert [item["id"] for item in items] == ["u0", "u1", "u2"]
    assert all(item["audio"].endswith(f"clip{i}.wav") for i, item in enumerate(items))


def test_package_runtime_and_mgcma_predict_read_the_same_way(tmp_path):
    from modeling_mgcma.cli import CommandError, _read_manifest

    bad = tmp_path / "bad.csv"
    for line in (2, 5, 11):
        bad.write_text(lines(11, line))
        with pytest.raises(ValueError, match=f"line {line}"):
            onnx_runtime.read_manifest(str(bad))
        with pytest.raises(CommandError, match=f"line {line}"):
            _read_manifest(str(bad), "audio", "text", "id")
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"audio": "a.wav", "text": "x"}\n{"audio": "b.wav", "text": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        onnx_runtime.read_manifest(str(jsonl))
