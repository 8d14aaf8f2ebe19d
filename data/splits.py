"""Leave-one-session-out folds with a validation set drawn from the training sessions only."""

from __future__ import annotations

import numpy as np
import datasets

VALIDATION_STRATEGIES = ("stratified", "speaker", "none")


def loso_fold(
    dataset: datasets.Dataset,
    test_session: int,
    validation: str = "stratified",
    validation_fraction: float = 0.1,
    seed: int = 0,
    *,
    validation_speaker: str | None = None,
    session_column: str = "session",
    label_column: str = "label",
    speaker_column: str = "speaker",
) -> datasets.DatasetDict:
    """One fold of leave-one-session-out cross-validation (the paper's 5-fold protocol).

    ``test`` is every utterance of `test_session`; ``train`` and ``validation`` split the other
    sessions, so no test-session utterance is ever used for training or model selection.

    Args:
        dataset: rows with a session column (e.g. from :func:`load_iemocap`).
        test_session: the held-out session (one of the sessions present).
        validation: how the validation set is drawn from the training sessions:
            ``"stratified"`` (default): `validation_fraction` of each class's training-session
            utterances, at random (seeded); same speakers as train.
            ``"speaker"``: every utterance of one training-session speaker (`validation_speaker`,
            or one drawn with `seed`), so validation is speaker-disjoint from train (~1/8 of the
            training data on IEMOCAP).
            ``"none"``: no validation split; the result has ``train`` and ``test`` only.
        validation_fraction: the fraction held out per class for ``"stratified"``.
        seed: makes the validation draw reproducible.

    Returns:
        `datasets.DatasetDict` with ``train``, ``validation`` (unless ``"none"``) and ``test``.
    """
    if validation not in VALIDATION_STRATEGIES:
        raise ValueError(f"validation must be one of {VALIDATION_STRATEGIES}, got {validation!r}")
    missing = [c for c in (session_column,) if c not in dataset.column_names]
    if missing:
        raise ValueError(f"Dataset has no column {missing[0]!r}; columns: {dataset.column_names}")
    # read only the small columns (never decodes audio)
    sessions = np.asarray(dataset.select_columns([session_column])[session_column])
    available = sorted(int(s) for s in np.unique(sessions))
    if isinstance(test_session, bool) or not isinstance(test_session, (int, np.integer)) or int(test_session) not in available:
        raise ValueError(f"test_session must be one of the sessions in the dataset {available}, got {test_session!r}")
    if len(available) < 2:
        raise ValueError(f"Leave-one-session-out needs at least 2 sessions, the dataset has {available}")

    test_indices = np.flatnonzero(sessions == int(test_session))
    train_pool = np.flatnonzero(sessions != int(test_session))
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
