# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""IEMOCAP as a `datasets` builder that reads a local `IEMOCAP_full_release/` (never downloads).

The layout and file formats are described in the dataset card (`data/README.md`). In short:
labels come from `SessionN/dialog/EmoEvaluation/<dialog>.txt`, transcripts from
`SessionN/dialog/transcriptions/<dialog>.txt`, audio from
`SessionN/sentences/wav/<dialog>/<utterance>.wav`.

Label policy (config ``4class``, the paper's): keep ``ang``, ``sad``, ``neu`` and ``hap`` + ``exc``
merged into ``happy``; 5,531 utterances on the full release, checked per session and class
against :data:`EXPECTED_4CLASS_COUNTS`. Config ``full`` keeps every consensus label unmerged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import warnings
from collections import Counter
from pathlib import Path

import datasets

from ._main_process import main_process_first


logger = logging.getLogger(__name__)

SAMPLING_RATE = 16_000
# The four classes of the 4-class task, in the label-id order the model's config uses by default.
EMOTION_LABELS = ("angry", "happy", "sad", "neutral")
NUM_SESSIONS = 5

# IEMOCAP consensus codes -> readable names; ``full`` keeps them all, in this order (the 4-class
# names first so their ids agree between configs).
IEMOCAP_LABEL_CODES: dict[str, str] = {
    "ang": "angry",
    "hap": "happy",
    "sad": "sad",
    "neu": "neutral",
    "exc": "excited",
    "fru": "frustrated",
    "sur": "surprised",
    "fea": "fear",
    "dis": "disgust",
    "oth": "other",
    "xxx": "no_majority",
}

# The paper's 4-class policy: excited is merged into happy.
FOUR_CLASS_LABEL_MAP: dict[str, str] = {"ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad", "neu": "neutral"}

# Per-session 4-class counts of the full release (the table in data/README.md); 5,531 in all.
EXPECTED_4CLASS_COUNTS: dict[int, dict[str, int]] = {
    1: {"angry": 229, "happy": 278, "sad": 194, "neutral": 384},
    2: {"angry": 137, "happy": 327, "sad": 197, "neutral": 362},
    3: {"angry": 240, "happy": 286, "sad": 305, "neutral": 320},
    4: {"angry": 327, "happy": 303, "sad": 143, "neutral": 258},
    5: {"angry": 170, "happy": 442, "sad": 245, "neutral": 384},
}
EXPECTED_4CLASS_TOTAL = sum(sum(per_class.values()) for per_class in EXPECTED_4CLASS_COUNTS.values())

# Reasons a file, folder or line is skipped; each is counted in the scan summary.
EXCLUSION_REASONS = (
    "label_outside_config",  # a labelled utterance whose consensus code the config does not keep
    "unlabelled_segment",  # transcript line of a segment with no label and no wav (`…_MXX0`)
    "transcript_line_without_label",  # any other transcript line that has no label
    "unparsable_transcript_line",  # a non-empty transcript line that is not `<id> [span]: text`
    "hidden_file",  # macOS metadata such as `._Ses01F_impro01.txt` (any name starting with a dot)
    "annotator_subfolder",  # EmoEvaluation/Categorical, Attribute, Self-evaluation, …
    "non_txt_file",  # any other non-.txt file in EmoEvaluation/ or transcriptions/
)

_SESSION_DIR = re.compile(r"^Session(\d+)$")
_UTTERANCE_ID = re.compile(r"^Ses(?P<session>\d\d)[FM]_.+_(?P<gender>[FM])(?P<number>\d+[a-z]?)$")
_UNLABELLED_SEGMENT_ID = re.compile(r"_[FM]XX\d*$")
_NUMBER = r"[-+]?\d+(?:\.\d*)?"
_LABEL_LINE = re.compile(
    rf"^\[\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})\s*\]\s+(?P<id>\S+)\s+(?P<code>\S+)\s+"
    rf"\[\s*(?P<valence>{_NUMBER})\s*,\s*(?P<activation>{_NUMBER})\s*,\s*(?P<dominance>{_NUMBER})\s*\]\s*$"
)
# id, time span, colon, text; the text keeps its own colons because only the first `]:` splits.
_TRANSCRIPT_LINE = re.compile(r"^(?P<id>\S+)\s+\[[^\]]*\]:\s?(?P<text>.*)$")


class IemocapConfig(datasets.BuilderConfig):
    """A label policy: which consensus codes are kept and the class each one becomes.

    Args:
        label_names (`tuple[str]`): the `ClassLabel` names, in id order.
        label_map (`dict[str, str]`): IEMOCAP code -> one of `label_names`; codes not listed
            are skipped and counted as ``label_outside_config``.
    """

    def __init__(self, *, label_names: tuple[str, ...], label_map: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.label_names = tuple(label_names)
        self.label_map = dict(label_map)


CONFIGS = (
    IemocapConfig(
        name="4class",
        version=datasets.Version("1.0.0"),
        description="angry, happy (hap + exc), sad, neutral: the paper's 4-class set (5,531 utterances).",
        label_names=EMOTION_LABELS,
        label_map=FOUR_CLASS_LABEL_MAP,
    ),
    IemocapConfig(
        name="full",
        version=datasets.Version("1.0.0"),
        description="every consensus label, none merged (xxx = no majority).",
        label_names=tuple(IEMOCAP_LABEL_CODES.values()),
        label_map=IEMOCAP_LABEL_CODES,
    ),
)
CONFIG_NAMES = tuple(config.name for config in CONFIGS)


@dataclasses.dataclass
class IemocapSummary:
    """What a scan kept and skipped.

    Attributes:
        data_dir: the release root that was read.
        config: the config name.
        sessions: the session numbers found.
        counts: kept utterances per session and class name.
        excluded: skipped items per reason (see `EXCLUSION_REASONS`; zero counts omitted).
        excluded_labels: the consensus codes behind ``label_outside_config``, with counts.
    """

    data_dir: str
    config: str
    sessions: tuple[int, ...]
    counts: dict[int, dict[str, int]]
    excluded: dict[str, int]
    excluded_labels: dict[str, int]

    @property
    def num_utterances(self) -> int:
        return sum(sum(per_class.values()) for per_class in self.counts.values())

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def log_line(self) -> str:
        skipped = []
        for reason, count in self.excluded.items():
            detail = ""
            if reason == "label_outside_config" and self.excluded_labels:
                detail = " (" + ", ".join(f"{code}={n}" for code, n in self.excluded_labels.items()) + ")"
            skipped.append(f"{reason}={count}{detail}")
        return (
            f"IEMOCAP {self.config!r} from {self.data_dir}: kept {self.num_utterances} utterances from "
            f"sessions {list(self.sessions)}; skipped {', '.join(skipped) if skipped else 'nothing'}"
        )


def find_release_root(data_dir: str | os.PathLike) -> Path:
    """Return the folder that holds ``Session1`` … ``Session5``.

    Accepts `IEMOCAP_full_release/` itself or a folder that contains it.
    """
    if data_dir is None:
        raise ValueError(
            "IEMOCAP cannot be downloaded automatically (USC SAIL licence): pass data_dir=<path to your "
            "IEMOCAP_full_release/>."
        )
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"IEMOCAP folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"IEMOCAP data_dir is not a folder: {root}")
    if not _session_dirs(root) and (root / "IEMOCAP_full_release").is_dir():
        root = root / "IEMOCAP_full_release"
    if not _session_dirs(root):
        raise FileNotFoundError(
            f"No IEMOCAP sessions in {root}: expected folders Session1 … Session5 "
            "(point data_dir at IEMOCAP_full_release/)."
        )
    return root.resolve()


def _session_dirs(root: Path) -> dict[int, Path]:
    sessions = {}
    for entry in sorted(root.iterdir()) if root.is_dir() else ():
        match = _SESSION_DIR.match(entry.name)
        if match and entry.is_dir():
            sessions[int(match.group(1))] = entry
    return sessions


def _list_txt_files(folder: Path, excluded: Counter) -> list[Path]:
    """The `.txt` files of a folder, counting whatever else is there instead of reading it."""
    if not folder.is_dir():
        raise FileNotFoundError(f"IEMOCAP folder missing: {folder}")
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            excluded["hidden_file"] += 1
        elif entry.is_dir():
            excluded["annotator_subfolder"] += 1
        elif entry.suffix != ".txt":
            excluded["non_txt_file"] += 1
        else:
            files.append(entry)
    return files


def _read_text(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()  # utf-8-sig: a byte-order mark is not text
    except UnicodeDecodeError as error:
        raise ValueError(f"Not a UTF-8 text file: {path} ({error})") from error


def _parse_labels(path: Path) -> list[dict]:
    """Blocks of an EmoEvaluation file: the first line of each block, annotator lines skipped."""
    blocks = []
    for line_number, line in enumerate(_read_text(path), start=1):
        if not line.startswith("["):
            continue  # header (`%`), blank separators, annotator lines (`C-E1:`, `A-E3:`, …)
        match = _LABEL_LINE.match(line.strip())
        if match is None:
            raise ValueError(
                f"{path}:{line_number}: cannot parse label line {line!r}; expected "
                "'[start - end]<TAB>utterance_id<TAB>code<TAB>[valence, activation, dominance]'"
            )
        blocks.append(match.groupdict())
    return blocks


def _parse_transcripts(path: Path, excluded: Counter) -> dict[str, str]:
    transcripts = {}
    for line_number, line in enumerate(_read_text(path), start=1):
        if not line.strip():
            continue
        match = _TRANSCRIPT_LINE.match(line.rstrip())
        if match is None:
            excluded["unparsable_transcript_line"] += 1
            logger.debug("%s:%d: not a transcript line: %r", path, line_number, line)
            continue
        utterance_id = match.group("id")
        if utterance_id in transcripts:
            raise ValueError(f"{path}:{line_number}: utterance {utterance_id} has two transcript lines")
        transcripts[utterance_id] = match.group("text").strip()
    return transcripts


def scan_iemocap(data_dir: str | os.PathLike, config: str | IemocapConfig = "4class") -> tuple[list[dict], IemocapSummary]:
    """Read labels and transcripts (no audio) and return the kept utterances and a summary.

    Raises a clear error for a missing folder, no sessions, a labelled utterance without a wav
    or without a transcript line, or a malformed label line. Everything skipped is counted by
    reason in the summary.
    """
    config = _get_config(config)
    root = find_release_root(data_dir)
    excluded: Counter = Counter()
    excluded_labels: Counter = Counter()
    counts: dict[int, Counter] = {}
    utterances: list[dict] = []

    for session, session_dir in _session_dirs(root).items():
        counts[session] = Counter()
        label_dir = session_dir / "dialog" / "EmoEvaluation"
        transcript_dir = session_dir / "dialog" / "transcriptions"
        wav_dir = session_dir / "sentences" / "wav"
        label_files = _list_txt_files(label_dir, excluded)
        transcript_files = {path.stem: path for path in _list_txt_files(transcript_dir, excluded)}
        if not label_files:
            raise FileNotFoundError(f"No label files (<dialog>.txt) in {label_dir}")
        for label_file in label_files:
            dialog = label_file.stem
            transcript_file = transcript_files.pop(dialog, None)
            if transcript_file is None:
                raise FileNotFoundError(f"Transcript file missing for dialog {dialog}: {transcript_dir / label_file.name}")
            transcripts = _parse_transcripts(transcript_file, excluded)
            seen = set()
            for block in _parse_labels(label_file):
                utterance_id, code = block["id"], block["code"]
                if utterance_id in seen:
                    raise ValueError(f"{label_file}: utterance {utterance_id} is labelled twice")
                seen.add(utterance_id)
                if code not in IEMOCAP_LABEL_CODES:
                    raise ValueError(
                        f"{label_file}: utterance {utterance_id} has unknown label code {code!r}; "
                        f"known codes: {sorted(IEMOCAP_LABEL_CODES)}"
                    )
                text = transcripts.pop(utterance_id, None)
                if code not in config.label_map:
                    excluded["label_outside_config"] += 1
                    excluded_labels[code] += 1
                    continue
                match = _UTTERANCE_ID.match(utterance_id)
                if match is None or not utterance_id.startswith(dialog + "_"):
                    raise ValueError(
                        f"{label_file}: utterance id {utterance_id!r} is not '<dialog>_<F|M><number>' "
                        f"for dialog {dialog}"
                    )
                if int(match.group("session")) != session:
                    raise ValueError(f"{label_file}: utterance {utterance_id} is not from Session{session}")
                if text is None:
                    raise ValueError(f"Utterance {utterance_id} has no transcript line in {transcript_file}")
                wav_path = wav_dir / dialog / f"{utterance_id}.wav"
                if not wav_path.is_file():
                    raise FileNotFoundError(f"Utterance {utterance_id} has no wav: {wav_path}")
                label = config.label_map[code]
                gender = match.group("gender")
                counts[session][label] += 1
                utterances.append(
                    {
                        "id": utterance_id,
                        "audio": str(wav_path),
                        "text": text,
                        "label": label,
                        "emotion": code,
                        "session": session,
                        # the letter before the number is the speaker's, not the dialog's
                        "speaker": f"Ses{session:02d}_{gender}",
                        "gender": gender,
                        "dialog": dialog,
                        "improvised": "_impro" in dialog,
                        "start": float(block["start"]),
                        "end": float(block["end"]),
                        "valence": float(block["valence"]),
                        "activation": float(block["activation"]),
                        "dominance": float(block["dominance"]),
                    }
                )
            for leftover in transcripts:  # transcript lines that no label block claimed
                reason = "unlabelled_segment" if _UNLABELLED_SEGMENT_ID.search(leftover) else "transcript_line_without_label"
                excluded[reason] += 1
        # transcript files with no label file are not silently ignored either
        excluded["transcript_line_without_label"] += sum(
            len(_parse_transcripts(path, Counter())) for path in transcript_files.values()
        )

    summary = IemocapSummary(
        data_dir=str(root),
        config=config.name,
        sessions=tuple(counts),
        counts={session: {name: per_class.get(name, 0) for name in config.label_names} for session, per_class in counts.items()},
        excluded={reason: excluded[reason] for reason in EXCLUSION_REASONS if excluded[reason]},
        excluded_labels=dict(sorted(excluded_labels.items())),
    )
    return utterances, summary


def four_class_counts(summary: IemocapSummary) -> dict[int, dict[str, int]]:
    """Per-session 4-class counts of a summary, whatever its config (``full`` is collapsed)."""
    if summary.config == "4class":
        return summary.counts
    by_name = {name: code for code, name in IEMOCAP_LABEL_CODES.items()}
    result = {}
    for session, per_class in summary.counts.items():
        collapsed = Counter()
        for name, count in per_class.items():
            code = by_name[name]
            if code in FOUR_CLASS_LABEL_MAP:
                collapsed[FOUR_CLASS_LABEL_MAP[code]] += count
        result[session] = {name: collapsed.get(name, 0) for name in EMOTION_LABELS}
    return result


def count_mismatch_report(
    actual: dict[int, dict[str, int]], expected: dict[int, dict[str, int]] = EXPECTED_4CLASS_COUNTS
) -> str | None:
    """A table of actual vs expected 4-class counts, or None when they agree.

    Cells that differ read ``actual (expected N)``.
    """
    sessions = sorted(set(actual) | set(expected))
    columns = list(EMOTION_LABELS) + ["total"]
    mismatch = False
    rows = []
    for session in sessions:
        got = dict(actual.get(session, {}))
        want = dict(expected.get(session, {}))
        got["total"], want["total"] = sum(got.values()), sum(want.values())
        cells = []
        for column in columns:
            g, w = got.get(column, 0), want.get(column, 0)
            if g != w:
                mismatch = True
                cells.append(f"{g} (expected {w})")
            else:
                cells.append(str(g))
        rows.append([f"Session{session}"] + cells)
    if not mismatch:
        return None
    header = ["session"] + columns
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in [header] + rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def check_counts(summary: IemocapSummary, strict: bool = True) -> None:
    """Compare a full release's 4-class counts with :data:`EXPECTED_4CLASS_COUNTS`.

    Runs only when all five sessions are present (a partial copy cannot match). A mismatch
    raises ValueError with a per-session table, or warns when ``strict`` is False.
    """
    if set(summary.sessions) != set(EXPECTED_4CLASS_COUNTS):
        logger.warning(
            "IEMOCAP count check not run: sessions %s found, it needs all of %s",
            list(summary.sessions),
            sorted(EXPECTED_4CLASS_COUNTS),
        )
        return
    report = count_mismatch_report(four_class_counts(summary))
    if report is None:
        return
    message = (
        f"IEMOCAP 4-class counts in {summary.data_dir} differ from the full release's "
        f"({EXPECTED_4CLASS_TOTAL} utterances):\n{report}\n"
        "Check that the copy is complete and unmodified; pass strict_counts=False to continue anyway."
    )
    if strict:
        raise ValueError(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def check_sessions(summary: IemocapSummary, strict: bool = True) -> None:
    """A copy without one of Session1 … Session5 changes the protocol (fewer folds, other training data): an error
    naming the missing sessions when ``strict``, else a warning."""
    missing = sorted(set(range(1, NUM_SESSIONS + 1)) - set(summary.sessions))
    if not missing:
        return
    message = (
        f"IEMOCAP copy in {summary.data_dir} has no {', '.join(f'Session{n}' for n in missing)} (found sessions "
        f"{list(summary.sessions)}): leave-one-session-out would run {len(summary.sessions)} folds and results would "
        "not be comparable with the 5-session protocol. Restore the missing folder(s), or pass strict_counts=False "
        "(run_mgcma.py: --strict_counts false) to use the sessions present."
    )
    if strict:
        raise ValueError(message)
    logger.warning(message)


def _get_config(config: str | IemocapConfig) -> IemocapConfig:
    if isinstance(config, IemocapConfig):
        return config
    for candidate in CONFIGS:
        if candidate.name == config:
            return candidate
    raise ValueError(f"Unknown IEMOCAP config {config!r}; valid configs: {list(CONFIG_NAMES)}")


def _fingerprint(root: Path) -> str:
    """Cache key part that changes when label or transcript files change (size, mtime), or this parser's code."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for session_dir in _session_dirs(root).values():
        for sub in ("EmoEvaluation", "transcriptions"):
            folder = session_dir / "dialog" / sub
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                if entry.is_file():
                    stat = entry.stat()
                    digest.update(f"{entry.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


# A wav holding less than this share of its label's span (end - start) is taken as truncated.
MIN_SPAN_FRACTION = 0.5


def _check_wav(path: str, utterance_id: str, span: float | None = None) -> None:
    """Raise naming the utterance and file for an empty, unreadable or truncated wav (shorter than
    `MIN_SPAN_FRACTION` of the label's `span` seconds)."""
    import soundfile

    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"Empty wav (0 bytes) for utterance {utterance_id}: {path}")
    try:
        info = soundfile.info(path)
    except Exception as error:  # libsndfile reports corrupt headers with its own error type
        raise ValueError(f"Unreadable wav for utterance {utterance_id}: {path} ({error})") from error
    if info.frames == 0:
        raise ValueError(f"Empty wav (no samples) for utterance {utterance_id}: {path}")
    seconds = info.frames / info.samplerate
    if span is not None and span > 0 and seconds < MIN_SPAN_FRACTION * span:
        raise ValueError(
            f"Truncated wav for utterance {utterance_id}: {path} holds {seconds:.3f} s ({info.frames} samples) but "
            f"its label spans {span:.3f} s; restore the file from the release"
        )


class IemocapBuilder(datasets.GeneratorBasedBuilder):
    """Builds IEMOCAP from a local copy into datasets' Arrow cache (one ``train`` split).

    Args:
        data_dir: `IEMOCAP_full_release/` (or a folder containing it).
        config_name: ``"4class"`` (default) or ``"full"``.
        strict_counts: on a full release, a 4-class count mismatch raises (True) or warns (False).
        cache_dir: datasets' cache root.

    The cache key includes the resolved data_dir, the config and a fingerprint of the label and
    transcript files. Audio is stored as paths to the wavs, so the cache stays small and is tied
    to the copy it was built from. After :meth:`scan` (which :meth:`download_and_prepare` runs),
    :attr:`summary` holds the kept/skipped counts.
    """

    BUILDER_CONFIG_CLASS = IemocapConfig
    BUILDER_CONFIGS = list(CONFIGS)
    DEFAULT_CONFIG_NAME = "4class"
    DEFAULT_WRITER_BATCH_SIZE = 1000

    def __init__(self, *args, strict_counts: bool = True, **kwargs):
        self.strict_counts = strict_counts
        self.summary: IemocapSummary | None = None
        self._utterances: list[dict] | None = None
        config_name = kwargs.get("config_name")
        if config_name is not None:
            _get_config(config_name)  # readable error listing the valid configs
        if kwargs.get("data_dir") is not None:
            root = find_release_root(kwargs["data_dir"])
            kwargs["data_dir"] = str(root)
            if kwargs.get("hash") is None:
                kwargs["hash"] = _fingerprint(root)
        super().__init__(*args, **kwargs)

    @property
    def manual_download_instructions(self) -> str:
        return (
            "IEMOCAP is licensed by USC SAIL (https://sail.usc.edu/iemocap/). Request it there, unpack it, "
            "and pass data_dir=<path to IEMOCAP_full_release/>."
        )

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="IEMOCAP utterances with audio, transcript and consensus emotion label.",
            features=datasets.Features(
                {
                    "id": datasets.Value("string"),
                    "audio": datasets.Audio(sampling_rate=SAMPLING_RATE),
                    "text": datasets.Value("string"),
                    "label": datasets.ClassLabel(names=list(self.config.label_names)),
                    "emotion": datasets.Value("string"),
                    "session": datasets.Value("int32"),
                    "speaker": datasets.Value("string"),
                    "gender": datasets.Value("string"),
                    "dialog": datasets.Value("string"),
                    "improvised": datasets.Value("bool"),
                    "start": datasets.Value("float32"),
                    "end": datasets.Value("float32"),
                    "valence": datasets.Value("float32"),
                    "activation": datasets.Value("float32"),
                    "dominance": datasets.Value("float32"),
                }
            ),
            homepage="https://sail.usc.edu/iemocap/",
            citation=(
                "@article{busso2008iemocap, title={IEMOCAP: Interactive emotional dyadic motion capture database}, "
                "author={Busso, Carlos and others}, journal={Language Resources and Evaluation}, volume={42}, "
                "number={4}, pages={335--359}, year={2008}}"
            ),
        )

    def scan(self) -> IemocapSummary:
        """Parse labels and transcripts, log the one-line summary, run the count check."""
        if self.summary is None:
            utterances, summary = scan_iemocap(self.config.data_dir, self.config)
            logger.warning(summary.log_line())  # WARNING: shown by plain Python and run_mgcma.py alike
            check_sessions(summary, strict=self.strict_counts)
            check_counts(summary, strict=self.strict_counts)
            self._utterances, self.summary = utterances, summary
        return self.summary

    def _split_generators(self, dl_manager):
        self.scan()
        # Validate every wav here: errors raised inside _generate_examples reach the user wrapped
        # in datasets' DatasetGenerationError, which hides the path.
        for utterance in self._utterances:
            span = utterance["end"] - utterance["start"]
            _check_wav(utterance["audio"], utterance["id"], span)
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"utterances": self._utterances})]

    def _generate_examples(self, utterances):
        for utterance in utterances:
            yield utterance["id"], {**utterance, "audio": {"path": utterance["audio"], "bytes": None}}


def load_iemocap(
    data_dir: str | os.PathLike,
    config: str = "4class",
    *,
    strict_counts: bool = True,
    cache_dir: str | os.PathLike | None = None,
    return_summary: bool = False,
):
    """Load IEMOCAP from a local copy as a `datasets.Dataset`, one row per utterance.

    Args:
        data_dir: `IEMOCAP_full_release/` (or a folder containing it). Nothing is downloaded.
        config: ``"4class"`` (angry, happy = hap + exc, sad, neutral) or ``"full"``.
        strict_counts: on a full release (all five sessions), 4-class counts that differ from
            :data:`EXPECTED_4CLASS_COUNTS` raise a ValueError with a per-session table; False
            turns it into a warning (e.g. for a modified copy). Partial copies are not checked.
        cache_dir: datasets' cache root (default: ``HF_DATASETS_CACHE``).
        return_summary: also return the :class:`IemocapSummary` (kept counts, skipped items by reason).

    Preparation runs once (cached as Arrow) and, under a distributed launcher, on the main
    process first while the other processes wait.
    """
    config_name = _get_config(config).name
    with main_process_first():
        builder = IemocapBuilder(
            config_name=config_name,
            data_dir=str(data_dir),
            cache_dir=None if cache_dir is None else str(cache_dir),
            strict_counts=strict_counts,
        )
        summary = builder.scan()
        builder.download_and_prepare()
    dataset = builder.as_dataset(split="train")
    return (dataset, summary) if return_summary else dataset
