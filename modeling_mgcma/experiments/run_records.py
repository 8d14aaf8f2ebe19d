# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""What a training run records in its folder, and what may happen to a folder that already holds one.

A run writes `fingerprint.json` (everything that determines its result: data, model settings, training arguments)
before training, and `results.json` last. A later run into the same folder trains it (empty, or replaced under
--overwrite_output_dir), resumes it or reuses a finished cross-validation fold, each only when the fingerprints
match; anything else is refused with the differences named.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from urllib.parse import unquote


logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"
# The key of a whole cross-validation's fingerprint and folder, beside its folds' test groups (a tuple: never a group).
ALL_FOLDS = ("all folds",)
# TrainingArguments that change where and how a run is written, logged or uploaded, but not what it trains or measures.
NON_RESULT_TRAINING_ARGUMENTS = frozenset({
    "output_dir", "run_name", "project", "report_to", "logging_strategy", "logging_steps", "logging_first_step",
    "logging_nan_inf_filter", "log_level", "log_level_replica", "log_on_each_node", "disable_tqdm", "push_to_hub",
    "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push", "hub_revision",
    "resume_from_checkpoint", "save_total_limit", "save_on_each_node", "save_only_model", "dataloader_num_workers",
    "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "dataloader_multiprocessing_context", "skip_memory_metrics", "local_rank", "ddp_timeout", "debug", "do_train",
    "do_eval", "do_predict", "torch_empty_cache_steps", "include_num_input_tokens_seen", "enable_jit_checkpoint",
    "eval_accumulation_steps", "trackio_bucket_id", "trackio_space_id", "trackio_static_space_id",
})  # fmt: skip
# Arguments whose effect is already in the data fingerprint, or that only say where things are or what to do with them.
NON_RESULT_OTHER_ARGUMENTS = frozenset({
    "data_dir", "manifest", "demo_corpus_dir", "demo_utterances_per_session", "audio_column", "text_column",
    "label_column", "class_names", "strict_counts", "feature_cache_dir", "cross_validate", "test_group",
    "overwrite_output_dir", "torch_num_threads", "dataset_name", "iemocap_config", "ablations", "dry_run",
    "grid_workers", "grid_unit", "grid_tables_only", "launcher", "slurm_partition", "slurm_gpus_per_node",
    "slurm_cpus_per_task", "slurm_time", "slurm_array_parallelism", "slurm_folder",
})  # fmt: skip
# Files a run writes into its folder, deleted (with checkpoint-* and fold_* folders) when --overwrite_output_dir
# replaces it. Model files, card and plots are overwritten by the new run.
RUN_RECORD_FILES = ("results.json", "results.md", FINGERPRINT_FILE, "trainer_state.json", "all_results.json",
                    "train_results.json", "eval_results.json", "test_results.json")  # fmt: skip


# A group value used as it is in a folder name: ASCII letters, digits, '_', '-' and (not first) '.'.
_SAFE_GROUP = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")
LOCK_FILE = ".mgcma-run.lock"
# Files that only a grid of settings writes at the top of its --output_dir, and those a single run or a
# cross-validation writes there.
GRID_MARKERS = ("tables.json", "tables.md")
RUN_MARKERS = (FINGERPRINT_FILE, "results.json", "model.safetensors", "config.json")


def group_folder_name(value) -> str:
    """The folder-name form of a group value (a fold's test session, speaker, ...): the value itself when it is
    plain (letters, digits, '_', '-', '.' not first: ``Ses01``, ``3``), else every other character percent-encoded
    (``../x`` -> ``%2E%2E%2Fx``), so that no value names a path outside its folder and two values never share one.
    `group_from_folder_name` reads the value back."""
    import hashlib

    text = str(value)
    if _SAFE_GROUP.match(text):
        return text
    encoded = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "".join(f"%{b:02X}" for b in c.encode())
                      for c in text)  # fmt: skip
    if len(encoded) > 120:  # a file name has at most 255 bytes: a long value keeps its start and a digest
        encoded = f"{encoded[:96]}%~{hashlib.sha256(text.encode()).hexdigest()[:20]}"
    return encoded


def group_from_folder_name(name: str) -> str:
    """The group value (as text) of a folder name written by `group_folder_name`."""
    return unquote(name) if "%~" not in name else name


def fold_folder_name(fold) -> str:
    """``fold_<group>`` (``fold_split`` for the stratified split of data without groups)."""
    return "fold_split" if fold is None else f"fold_{group_folder_name(fold)}"


def atomic_write_text(path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and `os.replace`: a reader (or a later
    run) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def check_folder_kind(output_dir, grid: bool) -> None:
    """A grid of settings and a single run (or cross-validation) never share an --output_dir: the grid's card and
    tables would replace the run's card (and be pushed in its name), and the other way round."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return
    settings_with_units = [p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("fold_*/test_predictions.json"))]
    if grid:
        found = [n for n in RUN_MARKERS if (folder / n).is_file()] + [
            p.name for p in [*folder.glob("checkpoint-*"), *folder.glob("fold_*")] if p.is_dir()]  # fmt: skip
        if found:
            raise ValueError(
                f"--output_dir {str(output_dir)!r} holds a single run or cross-validation ({', '.join(sorted(found)[:4])}); "
                "a grid of settings (--ablations) needs a folder of its own: choose another --output_dir."
            )
    else:
        found = [n for n in GRID_MARKERS if (folder / n).is_file()] + settings_with_units
        if found:
            raise ValueError(
                f"--output_dir {str(output_dir)!r} holds a grid of settings ({', '.join(sorted(found)[:4])}); a single run "
                "or cross-validation needs a folder of its own: choose another --output_dir."
            )


_HELD_LOCKS: dict[str, int] = {}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_folder_lock(folder, enabled: bool = True):
    """Hold `folder` for this run: an exclusive lock file (``.mgcma-run.lock``: pid, host, start time) created with
    O_EXCL. A second run into the folder is refused naming the holder; a lock left by a process that no longer runs
    on this host is taken over. Re-entrant within one process. `enabled` False (processes other than the main one
    under `accelerate launch`) does nothing."""
    if not enabled:
        yield
        return
    folder = Path(folder)
    key = str(folder.resolve())
    if _HELD_LOCKS.get(key):
        _HELD_LOCKS[key] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for attempt in range(2):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(path.read_text(encoding="utf-8"))
                pid, host = int(other["pid"]), str(other["host"])
            except (OSError, ValueError, KeyError, TypeError):
                raise ValueError(f"{folder} is locked by {path}, which cannot be read; if no run uses the folder, "
                                 "delete that file.") from None  # fmt: skip
            if attempt == 0 and host == socket.gethostname() and not _process_alive(pid):
                logger.warning("Taking over %s: its holder (pid %s, started %s) no longer runs.", path, pid,
                               other.get("started"))  # fmt: skip
                path.unlink(missing_ok=True)
                continue
            raise ValueError(
                f"{folder} is in use by another run (pid {pid} on host {host}, started {other.get('started')}; lock "
                f"file {path}): two runs in one folder would mix their files. Wait for it to finish or choose another "
                "--output_dir; if that run is gone, delete the lock file."
            ) from None
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(holder) + "\n")
        break
    _HELD_LOCKS[key] = 1
    try:
        yield
    finally:
        _HELD_LOCKS.pop(key, None)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()


def safetensors_problem(path) -> str | None:
    """Why a ``.safetensors`` file cannot be loaded (empty, truncated, corrupt header), or None when it is whole.
    Reads only the header; used by the checkpoint checks here and by `mgcma predict`."""
    size = os.path.getsize(path)
    if size < 8:
        return f"{size} bytes: truncated (no header)"
    with open(path, "rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        if header_size > size - 8:
            return f"truncated inside its header ({size} bytes, the header alone needs {8 + header_size})"
        try:
            header = json.loads(handle.read(header_size))
            end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "not a safetensors file (its header is not valid)"
    if 8 + header_size + end > size:
        return f"truncated ({size} bytes, its tensors need {8 + header_size + end})"
    return None


def _json_safe(value):
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


def file_digest(path) -> str:
    """sha256 of a file's content (read every time: a file rewritten within one clock tick keeps its size and
    modification time)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_folder_identity(path: str | None) -> str | None:
    """For an encoder given as a local folder: a digest of its files' names and contents (a re-initialised encoder
    of the same architecture has other weights, so it is another encoder); None for a Hub id."""
    import hashlib

    if path is None or not Path(path).expanduser().is_dir():
        return None
    root = Path(path).expanduser()
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(root).as_posix()}:{file_digest(file)};".encode())
    return digest.hexdigest()[:16]


def data_fingerprint(dataset) -> dict:
    """Identity of the data a run reads: row count, class names, and a digest of every non-audio value and of each
    audio file's content (contents, not paths, so a moved copy of the same corpus still matches, and audio replaced
    by other audio of the same length does not)."""
    import hashlib

    import datasets

    digest = hashlib.sha256()
    digest.update(json.dumps(dataset.features["label"].names).encode())
    columns = [c for c in dataset.column_names if c != "audio"]
    if columns:
        table = dataset.select_columns(columns).to_dict()
        digest.update(json.dumps(table, sort_keys=True, default=str).encode())
    if "audio" in dataset.column_names:
        audio = dataset.select_columns(["audio"])
        if isinstance(audio.features["audio"], datasets.Audio):
            audio = audio.cast_column("audio", datasets.Audio(decode=False))
        for value in audio["audio"]:
            path, data = (value.get("path"), value.get("bytes")) if isinstance(value, dict) else (value, None)
            if data:
                digest.update(hashlib.sha256(data).digest())
            else:
                digest.update(f"{file_digest(path) if path and os.path.isfile(path) else 'missing'};".encode())
    return {"rows": len(dataset), "labels": list(dataset.features["label"].names), "sha256": digest.hexdigest()[:16]}


def check_resume_checkpoint(checkpoint, fingerprint: dict) -> None:
    """Before a checkpoint folder is loaded: the run that wrote it (its parent folder's fingerprint.json) trained
    with the same settings as this one; otherwise a ValueError names the checkpoint and what differs. A checkpoint
    whose run left no fingerprint is resumed with a warning (nothing to compare)."""
    checkpoint = Path(checkpoint)
    recorded_file = checkpoint.parent / FINGERPRINT_FILE
    if not recorded_file.is_file():
        logger.warning("%s has no %s beside it: whether it was trained with these settings cannot be checked.",
                       checkpoint, FINGERPRINT_FILE)  # fmt: skip
        return
    try:
        recorded = json.loads(recorded_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"--resume_from_checkpoint {str(checkpoint)!r}: {recorded_file} is not readable JSON "
                         f"({error}).") from None  # fmt: skip
    differences = fingerprint_differences(recorded, fingerprint)
    if differences:
        raise ValueError(
            f"--resume_from_checkpoint {str(checkpoint)!r} belongs to a run trained with other settings "
            f"({recorded_file}): {'; '.join(differences)}. Resume with that run's settings, or train from the start."
        )


def encoder_identities(model_args) -> dict:
    """{"speech_model" / "text_model": digest of its files} for each encoder given as a local folder (see
    `_local_folder_identity`). Reads every weight file: computed once per run and handed to `run_fingerprint` for each
    fold or grid unit, as the data's fingerprint is."""
    identities = {key: _local_folder_identity(model_args.__dict__.get(key)) for key in ("speech_model", "text_model")}
    return {key: identity for key, identity in identities.items() if identity is not None}


def run_fingerprint(fold, data_fp, model_args, data_args, training_args, preset, encoders: dict | None = None) -> dict:
    """Everything that determines a fold's result: the data, the model settings, the data arguments that shape the
    folds and the training arguments (not output paths, logging or Hub settings). `encoders`: the run's
    `encoder_identities` (computed here when not given)."""
    model = {k: v for k, v in dataclasses.asdict(model_args).items() if k not in NON_RESULT_OTHER_ARGUMENTS}
    model["preset"] = preset
    for key, identity in (encoder_identities(model_args) if encoders is None else encoders).items():
        model[key] = f"local folder, files {identity}"  # no local path: the fingerprint may be read elsewhere
    data = {k: v for k, v in dataclasses.asdict(data_args).items() if k not in NON_RESULT_OTHER_ARGUMENTS}
    training = {k: v for k, v in training_args.to_dict().items() if k not in NON_RESULT_TRAINING_ARGUMENTS}
    training["processes"] = training_args.world_size
    for key in ("speech_encoder_learning_rate", "text_encoder_learning_rate"):  # unset: as in runs recorded before them
        if training.get(key) is None:
            training.pop(key, None)
    return _json_safe({"fold": fold, "data": data_fp, "model": model, "data_arguments": data, "training": training})


def fingerprint_differences(recorded: dict, current: dict) -> list[str]:
    """Human-readable differences, e.g. "--learning_rate 5e-05 -> 0.0001"; empty when they match."""
    differences = []
    if recorded.get("fold") != current.get("fold"):
        differences.append(f"test group {recorded.get('fold')!r} -> {current.get('fold')!r}")
    if recorded.get("data") != current.get("data"):
        old, new = recorded.get("data") or {}, current.get("data") or {}
        detail = [f"{old.get(k)} -> {new.get(k)} {k}" for k in ("rows", "labels") if old.get(k) != new.get(k)]
        differences.append("the data (" + ("; ".join(detail) or "same rows and labels, other content") + ")")
    for section in ("model", "data_arguments", "training"):
        old, new = recorded.get(section) or {}, current.get(section) or {}
        for key in sorted(set(old) | set(new)):
            if old.get(key, "<absent>") != new.get(key, "<absent>"):
                differences.append(f"--{key} {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return differences


def _checkpoint_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("checkpoint-*") if p.is_dir()) if folder.is_dir() else []


def checkpoint_problem(checkpoint) -> str | None:
    """Why a checkpoint folder cannot be resumed from (half-written when the run was killed: no trainer state,
    truncated weights or optimizer state), or None."""
    import zipfile


    checkpoint = Path(checkpoint)
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return f"no {state.name}"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return f"{state} is not valid JSON (truncated?)"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights:
        return "no .safetensors weights"
    for file in weights:
        problem = safetensors_problem(file)
        if problem is not None:
            return f"{file}: {problem}"
    for file in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth")]):  # torch.save writes zip archives
        if not zipfile.is_zipfile(file):
            return f"{file}: truncated or not a torch.save archive"
    return None


def last_complete_checkpoint(folder) -> str | None:
    """The newest checkpoint-N in `folder` that is complete (see `checkpoint_problem`); newer half-written ones are
    skipped with a warning naming what is wrong."""
    def step(path):
        return int(path.name.split("-")[-1]) if path.name.split("-")[-1].isdigit() else -1

    for checkpoint in sorted(_checkpoint_folders(Path(folder)), key=step, reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        logger.warning("Not resuming from %s: %s (half-written when the run stopped?).", checkpoint, problem)
    return None


def clear_run(folder: Path) -> None:
    """Delete what a run recorded in `folder` (results, fingerprint, trainer state, checkpoints, fold folders)."""
    import shutil

    for name in RUN_RECORD_FILES:
        (folder / name).unlink(missing_ok=True)
    for sub in [*_checkpoint_folders(folder), *(p for p in folder.glob("fold_*") if p.is_dir())]:
        shutil.rmtree(sub)


def prepare_run_folder(folder, fingerprint: dict, data_args, training_args, *, reuse_finished: bool) -> str:
    """What to do with a run folder: "train" (empty, or replaced under --overwrite_output_dir), "reuse" (a finished
    cross-validation fold with the same fingerprint) or "resume" (--resume_from_checkpoint, same fingerprint).
    Raises ValueError naming the folder and what differs for anything else: nothing is overwritten or reused
    silently."""
    folder = Path(folder)
    results, recorded_file = folder / "results.json", folder / FINGERPRINT_FILE
    checkpoints = _checkpoint_folders(folder)
    finished = results.is_file()
    if not (finished or checkpoints or (folder / "model.safetensors").is_file()):
        return "train"  # nothing trained here yet (at most the fingerprint of a run that died before its first save)
    if data_args.overwrite_output_dir:
        logger.warning("--overwrite_output_dir: deleting the run in %s and training it again.", folder)
        clear_run(folder)
        return "train"
    recorded = None
    if recorded_file.is_file():
        try:
            recorded = json.loads(recorded_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{recorded_file} is not readable JSON ({error}); pass --overwrite_output_dir to replace "
                             "the run.") from None  # fmt: skip
    differences = fingerprint_differences(recorded, fingerprint) if recorded is not None else None
    what = "a finished run (results.json)" if finished else (
        f"an unfinished run ({', '.join(p.name for p in checkpoints) or 'no checkpoint'})")
    fix = "pass --overwrite_output_dir to train it again, or choose another --output_dir."
    if differences:
        raise ValueError(f"{folder} holds {what} trained with other settings: {'; '.join(differences)}. "
                         f"Its results cannot stand for this run: {fix}")  # fmt: skip
    if recorded is None:
        raise ValueError(f"{folder} holds {what} without a {FINGERPRINT_FILE} (written by an older version), so "
                         f"whether it matches these settings is unknown: {fix}")  # fmt: skip
    if finished and reuse_finished:
        return "reuse"
    if training_args.resume_from_checkpoint:
        return "resume"
    raise ValueError(f"{folder} holds {what}; a new run would overwrite it. Pass --resume_from_checkpoint last to "
                     f"continue it, or {fix}")  # fmt: skip


def check_output_dir_writable(output_dir) -> None:
    """Fail now, not at the first checkpoint an epoch later, when --output_dir cannot be created or written."""
    import tempfile

    path = Path(output_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ValueError(f"--output_dir {str(output_dir)!r} is not a writable folder: {error}") from None



def fold_fingerprints(dataset, folds, model_args, data_args, training_args, preset) -> dict:
    """`run_fingerprint` of each fold (by test group) and, under `ALL_FOLDS`, of the whole cross-validation."""
    data_fp, encoders = data_fingerprint(dataset), encoder_identities(model_args)  # each read once for every fold
    fingerprints = {fold: run_fingerprint(fold, data_fp, model_args, data_args, training_args, preset, encoders)
                    for fold in folds}  # fmt: skip
    return {**fingerprints,
            ALL_FOLDS: run_fingerprint(list(folds), data_fp, model_args, data_args, training_args, preset, encoders)}


def write_fingerprint(folder, fingerprint: dict) -> None:
    """Record `fingerprint` (see `run_fingerprint`) in `folder`, so a later run can tell whether it matches."""
    atomic_write_text(Path(folder) / FINGERPRINT_FILE, json.dumps(fingerprint, indent=2) + "\n")


def plan_run_folders(folders: dict, fingerprints: dict, data_args, training_args, *, reuse_finished: bool) -> dict:
    """`prepare_run_folder` for each of `folders` (key -> folder, with `fingerprints` under the same keys): key ->
    "train", "reuse" or "resume". Raises one ValueError naming every folder that cannot be used, not just the first."""
    plans, problems = {}, []
    for key, folder in folders.items():
        try:
            plans[key] = prepare_run_folder(folder, fingerprints[key], data_args, training_args, reuse_finished=reuse_finished)
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ValueError("\n".join(problems))
    return plans


def test_group_of(fold: dict):
    """The held-out group of a fold entry of `results.json` (``"test_group"``; results written before that name was
    used have ``"test_session"``)."""
    if "test_group" in fold:
        return fold["test_group"]
    if "test_session" in fold:
        return fold["test_session"]
    raise KeyError(f"a fold result names its held-out group under 'test_group'; this one has keys {sorted(fold)}.")


def finished_fold_result(folder) -> dict:
    """The fold result recorded in a finished run's `results.json`, its held-out group under ``"test_group"``."""
    done = Path(folder) / "results.json"
    try:
        fold = dict(json.loads(done.read_text(encoding="utf-8"))["folds"][0])
        fold["test_group"] = test_group_of(fold)
        fold.pop("test_session", None)
        return fold
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ValueError(f"{done} is not a readable fold result ({error!r}); pass --overwrite_output_dir to train the "
                         "fold again.") from None  # fmt: skip


def fold_result(fold, detail: dict, label_names, splits, state, train_metrics: dict, metric_name: str) -> dict:
    """One fold's entry in results.json, from the WA/UA metric's `detail` (with `return_per_class`), the fold's
    `splits`, the `TrainerState`, the training metrics and the name of the selection metric. Every class is named, also those absent from the test
    group (recall None, support 0)."""
    padded = {key: detail[key] + [fill] * len(label_names) for key, fill in (("recall_per_class", None), ("support_per_class", 0))}
    return {
        "test_group": fold,
        "wa": detail["wa"],
        "ua": detail["ua"],
        **{key: dict(zip(label_names, values)) for key, values in padded.items()},
        **{f"num_{name}": len(split) for name, split in splits.items()},
        # the folder name only (checkpoint-N): results are uploaded and must not carry local paths
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        "best_validation_metric": {metric_name: state.best_metric},
        "train_runtime_s": train_metrics.get("train_runtime"),
        "global_steps": state.global_step,
    }
