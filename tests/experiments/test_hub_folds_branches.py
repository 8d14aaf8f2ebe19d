# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Each fold gets its own, stable Hub branch, whatever its group value (non-ASCII names, '/', spaces); two folds that
would share a branch are an error before anything is uploaded. The Hub is replaced at the HfApi boundary."""

from types import SimpleNamespace

import pytest

from modeling_mgcma.experiments import hub_folds


SPEAKERS = ["\u674e\u96f7", "\u738b\u82b3", "\u5f20\u4f1f", "\u041e\u043b\u044f", "\u0410\u043d\u044f"]


def test_non_ascii_speakers_get_distinct_stable_valid_branches():
    branches = [hub_folds.fold_revision(s) for s in SPEAKERS]
    assert len(set(branches)) == len(SPEAKERS)
    assert branches == [hub_folds.fold_revision(s) for s in SPEAKERS]  # stable
    assert all(b != "fold-" and b.startswith("fold-") and not hub_folds._UNSAFE.search(b) for b in branches)
    grid = [hub_folds.fold_revision(s, "S1") for s in ["a b", "a/b", "a-b", "Jos\u00e9", "Jose"]]
    assert len(set(grid)) == 5 and all(not hub_folds._UNSAFE.search(b) for b in grid)
    assert hub_folds.fold_revision(3) == "fold-3" and hub_folds.fold_revision("Ses01", "S0") == "S0-fold-Ses01"


class RecordingApi:
    calls = []

    def __init__(self, token=None):
        pass

    def __getattr__(self, name):
        return lambda *args, **kwargs: RecordingApi.calls.append(name)


def test_a_branch_collision_is_an_error_before_any_upload(tmp_path, monkeypatch):
    import huggingface_hub

    RecordingApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    monkeypatch.setattr(hub_folds, "fold_revision", lambda fold, setting=None: "fold-")
    folders = {}
    for speaker in SPEAKERS[:2]:
        folders[speaker] = tmp_path / speaker
        folders[speaker].mkdir()
    (tmp_path / "README.md").write_text("# card\n")
    args = SimpleNamespace(hub_token=None, hub_model_id="me/model", hub_private_repo=None)
    results = {"folds": [{"test_group": s, "wa": 0.5, "ua": 0.5, "num_test": 2} for s in SPEAKERS[:2]]}
    with pytest.raises(ValueError, match="same branch|both be pushed"):
        hub_folds.push_run_folds(args, tmp_path, results=results, fold_dirs=folders)
    assert RecordingApi.calls == []
    with pytest.raises(ValueError, match="fold-"):
        hub_folds.unique_revisions([("fold-", "a"), ("fold-", "b")])
