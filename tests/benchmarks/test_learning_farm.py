# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""benchmarks/learning_farm.py: many learning runs at once, recorded as rows of one results file."""

import io
import json
import re
import sys
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import learning_farm  # noqa: E402


def test_runs_are_ordered_seed_by_seed_and_each_corpus_is_made_once(tmp_path):
    spec = {"recipe": "plain", "test_per_class": 80, "groups": [
        {"results": "defaults", "settings": ["S0", "S4"], "corpus": "spoken", "seeds": [21, 20]},
        {"results": "constant", "settings": ["S0"], "corpus": "spoken", "seeds": [20], "corpus_offset": 0,
         "train": {"lr_scheduler_type": "constant"}},
        {"results": "tone", "settings": ["S4"], "corpus": "demo", "seeds": [20], "corpus_offset": 100,
         "config": {"alignment_norm": "pre"}, "speech_model": "/models/w2v", "text_model": "/models/minilm"},
    ]}  # fmt: skip
    corpora, runs = learning_farm.expand(spec, tmp_path, "/cache")
    assert corpora == [("spoken", 20), ("demo", 120), ("spoken", 21)]
    assert [name for name, _ in runs] == [
        "defaults-spoken20-S0-seed20", "defaults-spoken20-S4-seed20", "constant-spoken20-S0-seed20",
        "tone-demo120-S4-seed20", "defaults-spoken21-S0-seed21", "defaults-spoken21-S4-seed21",
    ]  # fmt: skip
    command = dict(runs)["constant-spoken20-S0-seed20"]
    option = {command[i]: command[i + 1] for i in range(3, len(command) - 1) if command[i].startswith("--")}
    assert option["--results"] == str(tmp_path / "learning.csv") and option["--workdir"] == "/cache"
    assert option["--run_set"] == "constant"
    assert json.loads(option["--train"]) == {"lr_scheduler_type": "constant"} and json.loads(option["--config"]) == {}
    assert option["--corpus_offset"] == "spoken=0" and option["--test_per_class"] == "80" and option["--seeds"] == "20"
    assert "--speech_model" not in command and "--text_model" not in command
    tone = dict(runs)["tone-demo120-S4-seed20"]
    tone_option = {tone[i]: tone[i + 1] for i in range(3, len(tone) - 1) if tone[i].startswith("--")}
    assert tone_option["--speech_model"] == "/models/w2v" and tone_option["--text_model"] == "/models/minilm"
    assert "demo=100" in tone and json.loads(tone[tone.index("--config") + 1]) == {"alignment_norm": "pre"}
    with pytest.raises(ValueError, match="unknown keys \\['epochs'\\]"):
        learning_farm.expand({"groups": [{"results": "x", "settings": ["S0"], "corpus": "demo", "seeds": [0],
                                          "epochs": 3}]}, tmp_path, "/cache")  # fmt: skip
    missing = "group 0 \\(x\\): unknown keys \\[\\], missing keys \\['seeds', 'settings'\\]"
    with pytest.raises(ValueError, match=missing):
        learning_farm.expand({"groups": [{"results": "x", "corpus": "demo"}]}, tmp_path, "/cache")
    with pytest.raises(ValueError, match="`seeds` must be a list of integers, got \\['3'\\]"):
        learning_farm.expand({"groups": [{"results": "x", "settings": ["S0"], "corpus": "demo", "seeds": ["3"]}]},
                             tmp_path, "/cache")  # fmt: skip
    with pytest.raises(ValueError, match="`settings` must be a non-empty list of names .*, got 'S0'"):
        learning_farm.expand({"groups": [{"results": "x", "settings": "S0", "corpus": "demo", "seeds": [3]}]},
                             tmp_path, "/cache")  # fmt: skip
    with pytest.raises(ValueError, match="`corpus` must be a name .*, got \\['demo'\\]"):
        learning_farm.expand({"groups": [{"results": "x", "settings": ["S0"], "corpus": ["demo"], "seeds": [3]}]},
                             tmp_path, "/cache")  # fmt: skip
    with pytest.raises(ValueError, match="non-empty list `groups`.*unknown keys \\['group'\\]"):
        learning_farm.expand({"group": []}, tmp_path, "/cache")
    broken = tmp_path / "spec.json"
    broken.write_text('{"groups": [')
    with pytest.raises(SystemExit, match="^" + re.escape(f"{broken}: Expecting value")):
        learning_farm.main([str(broken), "--out", str(tmp_path / "out"), "--dry_run"])


def test_the_deadline_stops_running_runs_and_skips_the_rest(tmp_path):
    quick = [sys.executable, "-c", "print('done')"]
    slow = [sys.executable, "-c", "import time; time.sleep(60)"]
    times = io.StringIO()
    start = time.time()
    status = learning_farm.run_all([("a", quick), ("b", slow), ("c", quick), ("d", quick)], workers=2,
                                   log_dir=tmp_path, times=times, deadline=3.0, start=start)  # fmt: skip
    assert time.time() - start < 30
    assert status["a"] == 0 and status["c"] == 0 and status["d"] == 0  # "b" holds one worker; the other runs a, c, d
    assert status["b"] is None and "stopped b at the deadline" in times.getvalue()
    assert (tmp_path / "a.log").read_text().strip() == "done"
    status = learning_farm.run_all([("e", slow), ("f", slow), ("g", quick)], workers=2, log_dir=tmp_path,
                                   times=times, deadline=2.0, start=time.time())  # fmt: skip
    assert status == {"e": None, "f": None, "g": None} and "skipped g: deadline" in times.getvalue()
