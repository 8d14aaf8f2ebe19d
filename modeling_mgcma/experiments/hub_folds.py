# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Every fold of a cross-validation (or of the ablation grid) in one Hub repository, each fold's model on its own
branch, the main branch holding the card with the cross-validation table and the fold -> revision map.

Why branches rather than subfolders: a branch is a complete model repository of its own (weights, config, code,
processor, card), so every loader takes it with the standard ``revision=`` argument —
``AutoModelForAudioClassification.from_pretrained(repo, revision="S0-fold-3", trust_remote_code=True)``,
``AutoProcessor.from_pretrained(...)`` and ``pipeline(model=repo, revision=..., trust_remote_code=True)`` alike —
while ``subfolder=`` is not accepted by ``pipeline()``, and custom code and processor files inside subfolders are
not resolved consistently by every Auto class. A download fetches one fold's files only, and the revision can be
pinned to a commit as usual.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .run_records import test_group_of


MAIN_REVISION = "main"
# Branch names: letters, digits, '-', '_' and '.'; a fold named "Ses01" or 3 gives "fold-Ses01" / "fold-3".
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,79}$")


def _branch_part(value) -> str:
    """A fold value as it appears in a branch name: the value itself when plain (``Ses01``, ``3``), else its ASCII
    letters and digits followed by a digest of the whole value, so that values differing only in characters a branch
    name cannot hold (non-ASCII names, '/', spaces) still get distinct, stable branches."""
    import hashlib
    import unicodedata

    text = str(value)
    if _PLAIN.match(text) and ".." not in text and not text.endswith((".", ".lock")):
        return text
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _UNSAFE.sub("-", ascii_text).strip("-.")[:40].strip("-.")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{digest}" if slug else digest


def fold_revision(fold, setting: str | None = None) -> str:
    """The branch that holds one fold's model: ``fold-<k>`` for a cross-validation, ``<setting>-fold-<k>`` in a
    grid of settings (see `_branch_part` for fold values that are not plain)."""
    name = f"fold-{_branch_part(fold)}"
    return f"{_UNSAFE.sub('-', setting)}-{name}" if setting else name


def unique_revisions(pairs: Sequence[tuple[str, object]]) -> None:
    """Refuse, before anything is uploaded, two folds given the same branch: ``[(revision, fold), ...]``."""
    seen: dict[str, object] = {}
    for revision, fold in pairs:
        if revision in seen and seen[revision] != fold:
            raise ValueError(f"folds {seen[revision]!r} and {fold!r} would both be pushed to the branch {revision!r}; "
                             "nothing was uploaded. Rename one of the groups.")  # fmt: skip
        seen[revision] = fold


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)


def _upload(api, repo_id: str, folder: Path, names: Sequence[str], stage_file, revision: str | None, message: str,
            delete_others: bool) -> None:  # fmt: skip
    from .hub_upload import upload_staged

    upload_staged(api, repo_id, folder, names, message, stage_file=stage_file, revision=revision,
                  delete_others=delete_others)


def push_folds(
    api,
    repo_id: str,
    fold_folders: Mapping[str, str | os.PathLike],
    main_folder: str | os.PathLike,
    *,
    select_files: Callable[[Path], Sequence[str]],
    stage_file: Callable[[Path, Path], None] = _copy,
    private: bool | None = None,
    main_extra_files: Sequence[str] = (),
) -> dict[str, str]:
    """Upload each fold's model folder to its own branch of `repo_id`, then the cross-validation card and tables to
    main; returns ``{revision: folder}`` of what was pushed.

    Args:
        api: a `huggingface_hub.HfApi` (or anything with its `create_repo`, `create_branch`, `upload_folder`).
        fold_folders: ``{revision: folder}``, e.g. ``{fold_revision(3, "S0"): "out/S0/fold_3"}``.
        main_folder: the folder whose selected files (the card ``README.md``, results) go to main, with those of
            `main_extra_files` (e.g. the grid's tables and figures) that exist there.
        select_files: ``folder -> [file names]`` to upload from a folder (an allow-list: weights, config, code,
            processor, card, results; never checkpoints or pickles).
        stage_file: ``(source, target)`` writes the uploaded copy of one file (e.g. with local paths removed).
        private: the repository's visibility when it is created (None: the owner's default).

    A branch receives exactly the fold's files (files of an earlier push that the fold no longer has are deleted
    from that branch); main receives the selected files of `main_folder` and keeps its other files.
    """
    if not fold_folders:
        raise ValueError("no fold folders to push.")
    bad = [revision for revision in fold_folders if revision == MAIN_REVISION or _UNSAFE.search(revision)]
    if bad:
        raise ValueError(f"fold revisions must be branch names other than 'main' (letters, digits, '-', '_', '.'), "
                         f"got {bad}.")  # fmt: skip
    selections = {}
    for revision, folder in fold_folders.items():
        folder = Path(folder)
        names = list(select_files(folder))
        if "config.json" not in names or not any(n.endswith(".safetensors") for n in names):
            raise ValueError(f"{folder} has no trained model to push (config.json and .safetensors weights); its "
                             f"selected files are {names}.")  # fmt: skip
        selections[revision] = (folder, names)
    main_folder = Path(main_folder)
    main_names = sorted(set(select_files(main_folder)) | {n for n in main_extra_files if (main_folder / n).is_file()})
    if "README.md" not in main_names:
        raise ValueError(f"{main_folder} has no README.md (the cross-validation card) to put on main.")

    api.create_repo(repo_id, private=private, exist_ok=True)
    for revision, (folder, names) in selections.items():
        api.create_branch(repo_id, branch=revision, exist_ok=True)
        _upload(api, repo_id, folder, names, stage_file, revision, f"Upload the model of {revision}", True)
    _upload(api, repo_id, main_folder, main_names, stage_file, None,
            "Upload the cross-validation card, tables and fold -> revision map", False)  # fmt: skip
    return {revision: str(folder) for revision, (folder, _) in selections.items()}


def fold_map_markdown(repo_id: str, rows: Sequence[dict]) -> str:
    """The card section that maps folds to revisions, with the one-liners that load a chosen fold.

    `rows`: ``[{"revision", "setting", "fold", "n_test", "wa", "ua"}]`` (WA/UA in percent; setting may be None)."""
    if not rows:
        raise ValueError("no folds to list.")
    with_setting = any(row.get("setting") for row in rows)
    header = ("| setting " if with_setting else "") + "| test fold | revision | n test | WA | UA |"
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for row in rows:
        cells = ([row.get("setting") or ""] if with_setting else []) + [
            str(row["fold"]), f"`{row['revision']}`", str(row["n_test"]), f"{row['wa']:.2f}", f"{row['ua']:.2f}"
        ]
        lines.append("| " + " | ".join(cells) + " |")
    example = rows[0]["revision"]
    lines += [
        "",
        "Each fold's model is a complete model on its own branch; main holds this card and the tables only. Load a "
        "chosen fold by its revision (pin a commit of it for remote code you have reviewed):",
        "",
        "```python",
        "from transformers import AutoModelForAudioClassification, AutoProcessor, pipeline",
        "",
        f'model = AutoModelForAudioClassification.from_pretrained("{repo_id}", revision="{example}", '
        "trust_remote_code=True)",
        f'processor = AutoProcessor.from_pretrained("{repo_id}", revision="{example}", trust_remote_code=True)',
        f'classifier = pipeline(model="{repo_id}", revision="{example}", trust_remote_code=True)',
        "```",
    ]
    return "\n".join(lines) + "\n"


def fold_rows_from_tables(tables: dict) -> list[dict]:
    """:func:`fold_map_markdown` rows for every (setting, fold) of a grid's ``tables.json``."""
    return [
        {"revision": fold_revision(fold, setting), "setting": setting, "fold": fold, "n_test": scores["n"],
         "wa": scores["wa"], "ua": scores["ua"]}
        for setting, entry in tables["settings"].items()
        for fold, scores in entry.get("per_fold", {}).items()
    ]  # fmt: skip


def fold_rows_from_results(results: dict) -> list[dict]:
    """:func:`fold_map_markdown` rows for a cross-validation summary (``{"folds": [{"test_group", "wa", "ua",
    "num_test"}]}``, WA/UA as fractions)."""
    return [
        {"revision": fold_revision(test_group_of(fold)), "setting": None, "fold": test_group_of(fold),
         "n_test": fold.get("num_test", "?"), "wa": 100 * fold["wa"], "ua": 100 * fold["ua"]}
        for fold in results["folds"]
    ]  # fmt: skip


def add_fold_map_to_card(card_path: str | os.PathLike, repo_id: str, rows: Sequence[dict]) -> str:
    """Append the fold -> revision section to the card at `card_path` (written before: the cross-validation card or
    the grid's), once: a card that already has the section gets it replaced."""
    card_path = Path(card_path)
    heading = "## Folds and revisions"
    text = card_path.read_text(encoding="utf-8") if card_path.is_file() else "# Cross-validation\n"
    text = text.split("\n" + heading + "\n")[0].rstrip("\n")
    card_path.write_text(f"{text}\n\n{heading}\n\n{fold_map_markdown(repo_id, rows)}", encoding="utf-8")
    return str(card_path)


def push_cross_validation(
    api,
    repo_id: str,
    output_dir: str | os.PathLike,
    fold_folders: Mapping[str, str | os.PathLike],
    rows: Sequence[dict],
    *,
    select_files: Callable[[Path], Sequence[str]],
    stage_file: Callable[[Path, Path], None] = _copy,
    private: bool | None = None,
    main_card: str | None = None,
    main_extra_files: Sequence[str] = (),
) -> dict[str, str]:
    """``--push_to_hub`` after ``--cross_validate`` or a grid: write the main card (`main_card`, else the card already
    in `output_dir`), add the fold -> revision map to it, and push (see :func:`push_folds`)."""
    card = Path(output_dir) / "README.md"
    if main_card is not None:
        card.write_text(main_card, encoding="utf-8")
    add_fold_map_to_card(card, repo_id, rows)
    return push_folds(api, repo_id, fold_folders, output_dir, select_files=select_files, stage_file=stage_file,
                      private=private, main_extra_files=main_extra_files)  # fmt: skip


def push_run_folds(training_args, output_dir, *, tables: dict | None = None, results: dict | None = None,
                   fold_dirs: Mapping | None = None) -> dict[str, str]:  # fmt: skip
    """``run_mgcma.py --push_to_hub`` after a grid (`tables`: its ``tables.json``; units in ``<setting>/fold_<k>/``) or
    a cross-validation (`results` over the folds in `fold_dirs`, ``{fold: folder}``): every fold on its own branch
    of ``--hub_model_id``, the card with the table and the fold -> revision map on main. Files are chosen and
    cleaned of local paths as for a single model (`hub_upload`)."""
    from huggingface_hub import HfApi

    from .grid import GRID_FILES
    from .hub_upload import hub_upload_files, stage_upload_file

    output_dir = Path(output_dir)
    from .run_records import fold_folder_name

    if tables is not None:
        rows = fold_rows_from_tables(tables)
        unique_revisions([(row["revision"], (row["setting"], row["fold"])) for row in rows])
        folders = {row["revision"]: output_dir / row["setting"] / fold_folder_name(row["fold"]) for row in rows}
        card = grid_card_text((output_dir / "tables.md").read_text(encoding="utf-8"), f"{training_args.hub_model_id}: the grid")
    else:
        rows = fold_rows_from_results(results)
        unique_revisions([(fold_revision(fold), fold) for fold in fold_dirs])
        folders = {fold_revision(fold): folder for fold, folder in fold_dirs.items()}
        card = None
    return push_cross_validation(
        HfApi(token=training_args.hub_token), training_args.hub_model_id, output_dir, folders, rows,
        select_files=hub_upload_files, stage_file=stage_upload_file, private=training_args.hub_private_repo,
        main_card=card, main_extra_files=GRID_FILES,
    )  # fmt: skip


def grid_card_text(tables_markdown: str, title: str) -> str:
    """The main revision's card of a grid: Hub metadata, then the grid's tables (``tables.md``)."""
    body = tables_markdown.split("\n", 1)[1] if tables_markdown.startswith("# ") else tables_markdown
    metadata = "---\nlibrary_name: transformers\npipeline_tag: audio-classification\ntags:\n- mgcma\n- speech-emotion-recognition\n---\n"
    return f"{metadata}\n# {title}\n{body}"


__all__ = [
    "MAIN_REVISION",
    "add_fold_map_to_card",
    "fold_map_markdown",
    "fold_revision",
    "fold_rows_from_results",
    "fold_rows_from_tables",
    "grid_card_text",
    "push_cross_validation",
    "push_run_folds",
    "push_folds",
    "unique_revisions",
]
