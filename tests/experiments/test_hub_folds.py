# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Every fold to the Hub: which files go to which revision, checked at the HfApi boundary (no server accepts
uploads here); the calls are bound to the real HfApi signatures."""

import inspect
import json
import re
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from modeling_mgcma.experiments.hub_folds import fold_map_markdown, fold_revision, push_cross_validation, push_folds


class RecordingApi:
    """Records create_repo / create_branch / upload_folder, each call checked against HfApi's own signature; an
    upload records the staged files' names and contents (the staging folder is gone after the call)."""

    def __init__(self):
        self.calls = []

    def _record(self, name, *args, **kwargs):
        inspect.signature(getattr(HfApi, name)).bind(None, *args, **kwargs)  # a wrong argument fails here
        self.calls.append((name, args, kwargs))

    def create_repo(self, *args, **kwargs):
        self._record("create_repo", *args, **kwargs)

    def create_branch(self, *args, **kwargs):
        self._record("create_branch", *args, **kwargs)

    def upload_folder(self, **kwargs):
        self._record("upload_folder", **kwargs)
        staged = Path(kwargs["folder_path"])
        self.calls[-1][2]["files"] = {p.name: p.read_text() for p in staged.iterdir()}

    def uploads(self):
        return {kwargs["revision"] or "main": kwargs for name, _, kwargs in self.calls if name == "upload_folder"}


ALLOWED = ("model.safetensors", "config.json", "README.md", "results.json", "tables.md", "tables.json")


def select_files(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file() and p.name in ALLOWED)


def _fold_folder(root, setting, fold):
    folder = root / setting / f"fold_{fold}"
    (folder / "checkpoint-10").mkdir(parents=True)
    (folder / "model.safetensors").write_text(f"weights {setting} {fold}")
    (folder / "config.json").write_text(json.dumps({"_name_or_path": str(root), "fold": fold}))
    (folder / "README.md").write_text(f"card of {setting} fold {fold}")
    (folder / "training_args.bin").write_text("pickle")  # never uploaded
    return folder


def test_each_fold_goes_to_its_own_branch_and_the_card_to_main(tmp_path):
    folders = {fold_revision(f, s): _fold_folder(tmp_path, s, f) for s in ("S0", "S1") for f in (1, 2)}
    (tmp_path / "tables.md").write_text("| S0 | ... |")
    (tmp_path / "training_args.bin").write_text("pickle")

    def scrub(source, target):  # stands for the removal of local paths from JSON files
        text = source.read_text().replace(str(tmp_path), "<local>")
        target.write_text(text)

    api = RecordingApi()
    rows = [{"revision": r, "setting": r[:2], "fold": r[-1], "n_test": 10, "wa": 50.0, "ua": 50.0} for r in folders]
    pushed = push_cross_validation(api, "org/mgcma-cv", tmp_path, folders, rows, select_files=select_files,
                                   stage_file=scrub, private=True, main_card="# Grid card\n",
                                   main_extra_files=["tables.md", "figure3_tsne.png"])  # fmt: skip
    assert sorted(pushed) == ["S0-fold-1", "S0-fold-2", "S1-fold-1", "S1-fold-2"]
    assert api.calls[0] == ("create_repo", ("org/mgcma-cv",), {"private": True, "exist_ok": True})
    branches = [kwargs["branch"] for name, _, kwargs in api.calls if name == "create_branch"]
    assert branches == ["S0-fold-1", "S0-fold-2", "S1-fold-1", "S1-fold-2"]
    uploads = api.uploads()
    assert sorted(uploads) == ["S0-fold-1", "S0-fold-2", "S1-fold-1", "S1-fold-2", "main"]
    s1_fold2 = uploads["S1-fold-2"]
    assert sorted(s1_fold2["files"]) == ["README.md", "config.json", "model.safetensors"]  # no pickle, no checkpoint
    assert s1_fold2["files"]["model.safetensors"] == "weights S1 2" and s1_fold2["delete_patterns"] == ["*"]
    assert "<local>" in s1_fold2["files"]["config.json"] and str(tmp_path) not in s1_fold2["files"]["config.json"]
    assert sorted(uploads["main"]["files"]) == ["README.md", "tables.md"] and uploads["main"]["delete_patterns"] is None
    main_card = uploads["main"]["files"]["README.md"]
    assert main_card.startswith("# Grid card") and "| S1 | 2 | `S1-fold-2` | 10 |" in main_card
    # every branch exists before anything is uploaded to it
    order = [(name, kwargs.get("branch") or kwargs.get("revision")) for name, _, kwargs in api.calls[1:]]
    assert all(order.index(("create_branch", r)) < order.index(("upload_folder", r)) for r in pushed)


def test_refuses_a_fold_without_a_model_or_a_main_without_card(tmp_path):
    folder = _fold_folder(tmp_path, "S0", 1)
    (folder / "model.safetensors").unlink()
    api = RecordingApi()
    with pytest.raises(ValueError, match="no trained model to push"):
        push_folds(api, "org/x", {"fold-1": folder}, tmp_path, select_files=select_files)
    assert api.calls == []  # checked before anything is created
    (folder / "model.safetensors").write_text("w")
    with pytest.raises(ValueError, match="no README.md"):
        push_folds(api, "org/x", {"fold-1": folder}, tmp_path, select_files=select_files)
    with pytest.raises(ValueError, match="branch names other than 'main'"):
        push_folds(api, "org/x", {"main": folder}, tmp_path, select_files=select_files)


def test_revision_names_and_fold_map():
    assert fold_revision(3) == "fold-3" and fold_revision("Ses01", "S2") == "S2-fold-Ses01"
    # a value a branch name cannot hold keeps its letters and digits, plus a digest of the whole value
    assert re.fullmatch(r"S2-fold-Ses-01-F-[0-9a-f]{10}", fold_revision("Ses 01/F", "S2"))
    assert fold_revision("Ses 01/F", "S2") != fold_revision("Ses-01-F", "S2") == "S2-fold-Ses-01-F"
    rows = [{"revision": "S0-fold-1", "setting": "S0", "fold": "1", "n_test": 80, "wa": 92.5, "ua": 91.25}]
    text = fold_map_markdown("org/mgcma-cv", rows)
    assert "| S0 | 1 | `S0-fold-1` | 80 | 92.50 | 91.25 |" in text
    assert 'pipeline(model="org/mgcma-cv", revision="S0-fold-1", trust_remote_code=True)' in text


def test_fold_map_section_is_added_once_to_the_card(tmp_path):
    from modeling_mgcma.experiments.hub_folds import add_fold_map_to_card, fold_rows_from_results

    card = tmp_path / "README.md"
    card.write_text("---\nlibrary_name: transformers\n---\n# CV card\n\n| fold | WA |\n")
    results = {"folds": [{"test_group": 1, "wa": 0.5, "ua": 0.25, "num_test": 40},
                         {"test_group": 2, "wa": 1.0, "ua": 1.0, "num_test": 38}]}  # fmt: skip
    add_fold_map_to_card(card, "org/cv", fold_rows_from_results(results))
    add_fold_map_to_card(card, "org/cv", fold_rows_from_results(results))  # a second push: replaced, not repeated
    text = card.read_text()
    assert text.startswith("---\nlibrary_name: transformers") and text.count("## Folds and revisions") == 1
    assert "| 1 | `fold-1` | 40 | 50.00 | 25.00 |" in text and "| 2 | `fold-2` | 38 | 100.00 | 100.00 |" in text
