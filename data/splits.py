# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Cross-validation folds: leave one group (an IEMOCAP session, or any value of a manifest's group column) out, with a
validation set drawn from the training groups only; without groups, one stratified train / validation / test split."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable

import datasets
import numpy as np


VALIDATION_STRATEGIES = ("stratified", "speaker", "none")
# Without a group column: the share of the data that is the test split.
NO_GROUP_TEST_FRACTION = 0.1


def loso_fold(
    dataset: datasets.Dataset,
    test_group: Hashable = None,
    validation: str = "stratified",
    validation_fraction: float = 0.1,
    seed: int = 0,
    *,
    validation_speaker: str | None = None,
    group_column: str = "session",
    label_column: str = "label",
    speaker_column: str = "speaker",
    test_session: Hashable = None,
    session_column: str | None = None,
) -> datasets.DatasetDict:
    """One fold of leave-one-group-out cross-validation (on IEMOCAP: the paper's 5-fold leave-one-session-out).

    ``test`` is every utterance of `test_group`; ``train`` and ``validation`` split the other
    groups, so no test-group utterance is ever used for training or model selection.

    Args:
        dataset: rows with a group column (e.g. the sessions of :func:`load_iemocap`).
        test_group: the held-out group: a value of `group_column` (a session number, or any hashable value
            such as a manifest's speaker or recording-site name).
        validation: how the validation set is drawn from the training sessions:
            ``"stratified"`` (default): `validation_fraction` of each class's training-session
            utterances, at random (seeded); same speakers as train.
            ``"speaker"``: every utterance of one training-session speaker (`validation_speaker`,
            or one drawn with `seed`), so validation is speaker-disjoint from train (~1/8 of the
            training data on IEMOCAP).
            ``"none"``: no validation split; the result has ``train`` and ``test`` only.
        validation_fraction: the fraction held out per class for ``"stratified"``.
        seed: makes the validation draw reproducible.
        group_column: the column whose values are the groups (IEMOCAP: ``"session"``).
        test_session, session_column: the former names of `test_group` and `group_column`, still read (with a
            `FutureWarning`).

    Returns:
        `datasets.DatasetDict` with ``train``, ``validation`` (unless ``"none"``) and ``test``.
    """
    test_group = _renamed("test_session", test_session, "test_group", test_group, None)
    group_column = _renamed("session_column", session_column, "group_column", group_column, "session")
    if test_group is None:
        raise TypeError("loso_fold() needs the held-out group: loso_fold(dataset, test_group=...).")
    if validation not in VALIDATION_STRATEGIES:
        raise ValueError(f"validation must be one of {VALIDATION_STRATEGIES}, got {validation!r}")
    missing = [c for c in (group_column,) if c not in dataset.column_names]
    if missing:
        raise ValueError(f"Dataset has no column {missing[0]!r}; columns: {dataset.column_names}")
    # read only the small columns (never decodes audio)
    groups = dataset.select_columns([group_column])[group_column]
    available = sorted_groups(groups)
    if isinstance(test_group, bool) or not isinstance(test_group, Hashable) or test_group not in available:
        raise ValueError(
            f"test_group must be one of the groups of column {group_column!r} in the dataset {available}, got "
            f"{test_group!r}"
        )
    if len(available) < 2:
        raise ValueError(f"Leave-one-group-out needs at least 2 groups in column {group_column!r}, the dataset has "
                         f"{available}")  # fmt: skip

    in_test = np.fromiter((value == test_group for value in groups), dtype=bool, count=len(groups))
    test_indices = np.flatnonzero(in_test)
    train_pool = np.flatnonzero(~in_test)
    rng = np.random.default_rng(seed)

    if validation == "none":
        return datasets.DatasetDict({"train": dataset.select(train_pool), "test": dataset.select(test_indices)})

    if validation == "stratified":
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
        if label_column not in dataset.column_names:
            raise ValueError(f"Dataset has no column {label_column!r}; columns: {dataset.column_names}")
        labels = np.asarray(dataset.select_columns([label_column])[label_column])[train_pool]
        held_out = []
        for label in sorted(np.unique(labels).tolist()):
            members = train_pool[labels == label]
            count = int(round(validation_fraction * len(members)))
            held_out.extend(rng.permutation(members)[:count].tolist())
        validation_indices = np.sort(np.asarray(held_out, dtype=np.int64))
    else:
        if speaker_column not in dataset.column_names:
            raise ValueError(f"Dataset has no column {speaker_column!r}; columns: {dataset.column_names}")
        speakers = np.asarray(dataset.select_columns([speaker_column])[speaker_column])
        candidates = sorted(set(speakers[train_pool].tolist()))
        if validation_speaker is None:
            validation_speaker = candidates[int(rng.integers(len(candidates)))]
        elif validation_speaker not in candidates:
            raise ValueError(
                f"validation_speaker must be a training-session speaker {candidates}, got {validation_speaker!r}"
            )
        validation_indices = train_pool[speakers[train_pool] == validation_speaker]

    train_indices = np.setdiff1d(train_pool, validation_indices)
    return datasets.DatasetDict(
        {
            "train": dataset.select(train_indices),
            "validation": dataset.select(validation_indices),
            "test": dataset.select(test_indices),
        }
    )


def _renamed(old_name: str, old_value, new_name: str, new_value, default):
    """`new_value`, or the value passed under the former name `old_name` (with a FutureWarning); both is an error."""
    if old_value is None:
        return new_value
    if new_value is not None and new_value != default:
        raise TypeError(f"pass {new_name} (the current name) or {old_name} (its former name), not both.")
    warnings.warn(f"loso_fold(..., {old_name}=) is now called {new_name}=.", FutureWarning, stacklevel=3)
    return old_value


def sorted_groups(values: Iterable) -> list:
    """The distinct group values, numbers before text, each in its own order."""
    return sorted(set(values), key=lambda value: (not isinstance(value, (int, float)), value))


def held_out_groups(
    dataset: datasets.Dataset,
    group_column: str,
    *,
    all_groups: bool = False,
    test_group: Hashable | None = None,
    by_position: bool = False,
    required: bool = False,
) -> list:
    """The held-out groups of a run: every group (`all_groups`), `test_group`, or by default the last group in sorted
    order. With `by_position`, `test_group` is a 1-based position in that order (for groups named by text).

    A dataset without `group_column` has no groups: the result is ``[None]``, one stratified split (see `make_fold`),
    unless the folds were asked for (`required`: --cross_validate, --test_group or an explicit --group_column), when
    it is an error listing the columns that exist. Raises ValueError for rows without a group value and for a
    `test_group` the data do not have."""
    if group_column not in dataset.column_names:
        if required:
            raise ValueError(
                f"--group_column {group_column!r} is not a column of the data, so there are no folds to hold out "
                f"(--cross_validate / --test_group need one); its columns are {dataset.column_names}."
            )
        return [None]
    values = dataset.select_columns([group_column])[group_column]  # never decodes audio
    empty = [index for index, value in enumerate(values) if value is None or str(value).strip() == ""]
    if empty:
        raise ValueError(
            f"{len(empty)} row(s) have no value in the group column {group_column!r} (row(s) {empty[:10]}, counted "
            "from 0 without the header): every row needs a group, or none (then a stratified split is used)."
        )
    groups = sorted_groups(values)
    if all_groups:
        return groups
    if test_group is None:
        return [groups[-1]]
    if by_position:
        if not 1 <= test_group <= len(groups):
            raise ValueError(
                f"--test_group must pick one of the {len(groups)} groups of column {group_column!r} (1-{len(groups)}, "
                f"in sorted order {groups}), got {test_group}."
            )
        return [groups[test_group - 1]]
    if test_group not in groups:
        raise ValueError(f"--test_group {test_group} is not among the dataset's groups ({group_column!r}) {groups}.")
    return [test_group]


def stratified_split(
    dataset: datasets.Dataset, validation_fraction: float = 0.1, seed: int = 0, *, label_column: str = "label",
    missing_group_column: str | None = None,
) -> datasets.DatasetDict:
    """Train / validation / test for data without groups: `NO_GROUP_TEST_FRACTION` of each class is the test split,
    `validation_fraction` the validation split. Raises ValueError, with the rows per class, when a split would miss
    a class (`missing_group_column`, if given, is named as the column that would have defined folds)."""
    try:
        first = dataset.train_test_split(test_size=NO_GROUP_TEST_FRACTION, stratify_by_column=label_column, seed=seed)
        second = first["train"].train_test_split(
            test_size=validation_fraction / (1 - NO_GROUP_TEST_FRACTION), stratify_by_column=label_column, seed=seed
        )
    except ValueError as error:
        names = dataset.features[label_column].names
        counts = np.bincount(dataset.select_columns([label_column])[label_column], minlength=len(names))
        column = f" ({missing_group_column!r} is not in the data)" if missing_group_column else ""
        raise ValueError(
            f"{len(dataset)} rows are too few for the stratified train / validation / test split used without a "
            f"group column{column}: every split needs each of the {len(names)} classes (rows per class: "
            f"{dict(zip(names, counts.tolist()))}; the validation split is --validation_fraction "
            f"{validation_fraction:g} of them). Add rows, raise --validation_fraction, or add a group column to leave "
            f"out. ({error})"
        ) from None
    return datasets.DatasetDict({"train": second["train"], "validation": second["test"], "test": first["test"]})


def make_fold(
    dataset: datasets.Dataset,
    test_group: Hashable | None,
    group_column: str,
    *,
    validation: str = "stratified",
    validation_fraction: float = 0.1,
    seed: int = 0,
    max_samples: dict[str, int | None] | None = None,
) -> datasets.DatasetDict:
    """DatasetDict(train, validation, test) holding out `test_group` (`loso_fold`), or for ``None`` (no groups, see
    `held_out_groups`) one `stratified_split`. `max_samples` maps a split name to a row limit (a seeded random subset)."""
    if test_group is None:
        splits = stratified_split(dataset, validation_fraction, seed, missing_group_column=group_column)
    else:
        splits = loso_fold(
            dataset, test_group, validation=validation, validation_fraction=validation_fraction, seed=seed,
            group_column=group_column,
        )  # fmt: skip
    for name, limit in (max_samples or {}).items():
        if limit is not None and len(splits[name]) > limit:
            splits[name] = splits[name].shuffle(seed=seed).select(range(limit))
    return splits


def check_classes(dataset: datasets.Dataset, folds: Iterable[tuple], *, hint: str = "", label_column: str = "label"):
    """Before anything is trained: the data hold at least 2 classes and every class, and each fold's train and test
    splits hold every class, so no model is trained blind to a class and no UA is reported over classes never
    tested. `folds` yields (test group, DatasetDict) pairs; `hint` is appended to the error about absent classes.
    Raises ValueError naming the missing classes and the fold."""
    names = dataset.features[label_column].names
    counts = np.bincount(dataset.select_columns([label_column])[label_column], minlength=len(names))
    if len(names) < 2:
        raise ValueError(f"the data have a single class {names}: emotion recognition needs at least 2.")
    missing = [name for name, count in zip(names, counts) if count == 0]
    if missing:
        raise ValueError(
            f"the data have no utterance of class(es) {missing} (rows per class: {dict(zip(names, counts.tolist()))}): "
            f"a model cannot learn them, and WA / UA over {len(names)} classes would claim what was never tested.{hint}"
        )
    for fold, splits in folds:
        for split in ("train", "test"):
            present = set(splits[split].select_columns([label_column])[label_column])
            absent = [name for index, name in enumerate(names) if index not in present]
            if absent:
                where = "the stratified split" if fold is None else f"the fold that tests group {fold!r}"
                consequence = "the model could not learn them" if split == "train" else (
                    "their recall, and so UA, would be undefined")  # fmt: skip
                raise ValueError(
                    f"In {where}, the {split} set ({len(splits[split])} rows) has no utterance of class(es) "
                    f"{absent}: {consequence}. Choose other groups or --test_group, or add data."
                )
