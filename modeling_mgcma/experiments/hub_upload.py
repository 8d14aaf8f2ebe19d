# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Upload a trained model folder to the Hugging Face Hub: an allow-list of its files, with local paths removed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .model_card import is_hub_id


# What a push uploads: the model folder's own files, its card, plots and results (an allow-list: never a pickle such
# as training_args.bin, never checkpoints, fold folders, the fingerprint or anything else left in the folder).
HUB_UPLOAD_FILES = (
    "model.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json",
    "configuration_mgcma.py", "modeling_mgcma.py", "processing_mgcma.py", "pipeline_mgcma.py", "inference_mgcma.py",
    "processor_config.json", "preprocessor_config.json", "feature_extractor_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt",
    "spiece.model", "sentencepiece.bpe.model", "README.md", "confusion_matrix.png", "tsne.png", "loss_curves.png",
    "results.json", "results.md", "all_results.json", "train_results.json", "eval_results.json", "test_results.json",
)  # fmt: skip
HUB_UPLOAD_PATTERNS = ("model-*-of-*.safetensors",)  # sharded weights
# JSON keys that hold paths: a local one is dropped before the upload (a Hub id is kept).
_PATH_KEYS = re.compile(r"(name_or_path|_path|_dir|checkpoint)$")


def hub_upload_files(folder) -> list[str]:
    """The allow-listed files present at the top of `folder`."""
    import fnmatch

    folder = Path(folder)
    return sorted(
        p.name for p in folder.iterdir()
        if p.is_file() and (p.name in HUB_UPLOAD_FILES or any(fnmatch.fnmatch(p.name, pat) for pat in HUB_UPLOAD_PATTERNS))
    )  # fmt: skip


def without_local_paths(value):
    """`value` (parsed JSON) with every path-like key (`_name_or_path`, `best_checkpoint`, ...) whose value is a
    local path removed; Hub ids stay."""
    if isinstance(value, dict):
        return {
            key: without_local_paths(item) for key, item in value.items()
            if not (isinstance(item, str) and _PATH_KEYS.search(str(key)) and item and not is_hub_id(item))
        }  # fmt: skip
    if isinstance(value, list):
        return [without_local_paths(item) for item in value]
    return value


def stage_upload_file(source, target, local_root=None) -> None:
    """Write the uploaded copy of `source` to `target`: JSON with local paths removed (see `without_local_paths`),
    anything else copied. A JSON, Markdown or Python file that still holds `local_root` (a local folder) is refused."""
    import shutil

    source, target = Path(source), Path(target)
    if source.name.endswith(".json") and source.name != "tokenizer.json":  # tokenizer.json: the vocabulary, no paths
        cleaned = without_local_paths(json.loads(source.read_text(encoding="utf-8")))
        target.write_text(json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        shutil.copyfile(source, target)
    local = str(Path(local_root if local_root is not None else source.parent).resolve())
    if source.name.endswith((".json", ".md", ".py")) and local in target.read_text(encoding="utf-8"):
        raise ValueError(f"{source} holds the local path {local}; refusing to upload it.")


def upload_staged(api, repo_id: str, folder, names, message: str, *, stage_file=None, revision: str | None = None,
                  delete_others: bool = False) -> None:
    """Upload `names` of `folder` in one commit, each first staged by `stage_file` (default `stage_upload_file`:
    local paths removed) into a temporary folder; `delete_others` makes the revision mirror exactly these files."""
    import tempfile

    stage_file = stage_file or stage_upload_file
    with tempfile.TemporaryDirectory(prefix="mgcma-upload-") as staging:
        for name in names:
            stage_file(Path(folder) / name, Path(staging) / name)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=staging,
            revision=revision,
            allow_patterns=list(names),
            delete_patterns=["*"] if delete_others else None,  # the branch mirrors the fold (.gitattributes kept)
            commit_message=message,
        )


def push_model_folder(folder, training_args) -> str:
    """Upload the model folder's allow-listed files (`HUB_UPLOAD_FILES`: weights, config, code, processor, card, plots,
    results) to the Hub, with local paths removed from their JSON. The repository keeps its owner's visibility default
    unless --hub_private_repo says true or false."""

    from huggingface_hub import HfApi

    folder = Path(folder)
    names = hub_upload_files(folder)
    api = HfApi(token=training_args.hub_token)
    repo_id = training_args.hub_model_id
    api.create_repo(repo_id, private=training_args.hub_private_repo, exist_ok=True)  # None: the owner's default
    upload_staged(api, repo_id, folder, names, "Upload MGCMA model, processor, code and model card")
    return repo_id



__all__ = [
    "HUB_UPLOAD_FILES", "HUB_UPLOAD_PATTERNS", "hub_upload_files", "without_local_paths", "stage_upload_file",
    "upload_staged", "push_model_folder",
]  # fmt: skip
