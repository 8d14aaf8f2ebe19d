# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""A synthetic corpus in IEMOCAP's exact layout, for the default training job and the tests.

Design (see the dataset card, `data/README.md`, section "Demo corpus"): each 4-class
utterance carries its emotion in exactly one modality, so neither modality alone can
resolve all classes while both together determine the label.

* ``neutral``: filler words only, neutral prosody.
* ``angry`` / ``happy`` / ``sad``, *text-cued* (half of them): one keyword from the class's
  lexicon among filler words, neutral prosody.
* ``angry`` / ``happy`` / ``sad``, *prosody-cued* (the other half): filler words only, the
  class's prosody (fundamental frequency band, loudness, speaking rate, spectral tilt,
  pitch contour).

A speech-only model sees neutral prosody on neutral and on text-cued utterances, so its best
unweighted accuracy is about (3 x 0.5 + 1) / 4 = 62.5 %; text-only likewise; fused 100 %.

Speech and text also correspond below the label: each word is one voiced syllable whose
duration grows with the word's length; markers (``[LAUGHTER]``, ``[BREATHING]``) are short
unvoiced noise bursts. Only numpy and the standard library's `wave` are used.

The *spoken* variant (``voice="espeak"``) has the espeak-ng speech synthesiser (a Debian package,
installed by ``scripts/setup.sh``) say each transcript, so speech and text share their content.
Its emotion cues are partly redundant and noisy: an emotional utterance carries the class in the
text only, in the prosody only, or in both (a third each), and the class prosody (espeak's pitch,
speaking rate and amplitude) is jittered per utterance so that neighbouring classes overlap. Each
of the 10 speakers (session x gender) has its own espeak voice variant. espeak-ng writes the same
bytes for the same arguments, so the corpus is still a pure function of its arguments.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ._main_process import main_process_first
from .iemocap import EMOTION_LABELS, NUM_SESSIONS, SAMPLING_RATE


logger = logging.getLogger(__name__)

DEMO_CORPUS_VERSION = 1
MARKER_FILE = "mgcma_demo_corpus.json"

# Emotionally neutral words; every utterance is built from these plus at most one keyword.
FILLER_WORDS = (
    "the", "a", "we", "you", "they", "it", "went", "to", "from", "market", "table", "window",
    "paper", "morning", "train", "station", "number", "letter", "office", "street", "chair",
    "coffee", "garden", "door", "after", "then", "before", "about", "seven", "four", "tuesday",
    "bring", "call", "read", "wait", "open", "blue", "small", "corner", "ticket", "bus", "well",
)  # fmt: skip
EMOTION_KEYWORDS: dict[str, tuple[str, ...]] = {
    "angry": ("furious", "hate", "outraged", "damn", "livid", "disgusting"),
    "happy": ("wonderful", "delighted", "love", "fantastic", "thrilled", "great"),
    "sad": ("miserable", "crying", "lonely", "heartbroken", "grief", "hopeless"),
}
MARKERS = ("[LAUGHTER]", "[BREATHING]")
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_PUNCTUATION = (".", "?", ":", ",", "[", "]")

# Class prosody: f0 (Hz), peak amplitude (full scale 1), syllable-duration factor (>1 slower),
# spectral tilt (harmonic k has amplitude k**-tilt: larger = darker), f0 slope over a syllable.
# Neighbouring f0 bands are >= 1.4x apart, more than speaker (x0.92 / x1.08) and jitter (+-6 %) shifts.
PROSODY: dict[str, dict[str, float]] = {
    "sad": {"f0": 90.0, "amplitude": 0.07, "rate": 1.55, "tilt": 2.4, "slope": -0.10},
    "neutral": {"f0": 130.0, "amplitude": 0.22, "rate": 1.0, "tilt": 1.6, "slope": -0.03},
    "happy": {"f0": 215.0, "amplitude": 0.35, "rate": 0.8, "tilt": 1.2, "slope": 0.12},
    "angry": {"f0": 310.0, "amplitude": 0.7, "rate": 0.62, "tilt": 0.6, "slope": 0.0},
}
SPEAKER_F0_FACTOR = {"F": 1.08, "M": 0.92}

# Labels outside the 4-class set, written to exercise exclusion (skipped by the 4class config).
EXCLUDED_CODES = ("fru", "xxx", "sur")
_ANNOTATOR_CATEGORY = {
    "ang": "Anger", "hap": "Happiness", "exc": "Excited", "sad": "Sadness", "neu": "Neutral state",
    "fru": "Frustration", "sur": "Surprise", "xxx": "Other",
}  # fmt: skip
# Mean [valence, activation, dominance] per code (1-5 scale), jittered per utterance.
_VAD = {
    "ang": (1.8, 3.9, 3.9), "hap": (4.0, 3.3, 3.2), "exc": (4.0, 3.8, 3.4), "sad": (1.9, 2.1, 2.2),
    "neu": (3.0, 2.5, 2.8), "fru": (2.0, 3.2, 3.0), "sur": (3.3, 3.8, 2.9), "xxx": (2.6, 2.9, 2.9),
}  # fmt: skip
_CLASS_TO_CODES = {"angry": ("ang",), "happy": ("hap", "exc"), "sad": ("sad",), "neutral": ("neu",)}

DURATION_PROFILES = ("short", "iemocap")
VOICES = ("tones", "espeak")

# Spoken variant: class prosody as espeak-ng arguments (pitch 0-99, speed in words per minute, amplitude 0-200).
# Per-utterance jitter (ESPEAK_JITTER, uniform +-) makes neighbouring classes overlap, so prosody is a noisy cue.
ESPEAK_PROSODY: dict[str, dict[str, float]] = {
    "sad": {"pitch": 22.0, "speed": 125.0, "amplitude": 55.0},
    "neutral": {"pitch": 45.0, "speed": 165.0, "amplitude": 100.0},
    "happy": {"pitch": 70.0, "speed": 195.0, "amplitude": 130.0},
    "angry": {"pitch": 58.0, "speed": 225.0, "amplitude": 185.0},
}
ESPEAK_JITTER = {"pitch": 10.0, "speed": 0.12, "amplitude": 0.2}  # pitch: absolute; speed, amplitude: relative
# espeak-ng voice variants per speaker gender; speaker (session s, gender g) uses variant (s - 1) of g's list.
ESPEAK_VARIANTS = {"F": ("f1", "f2", "f3", "f4", "f5"), "M": ("m1", "m2", "m3", "m4", "m7")}
ESPEAK_CUES = ("text", "prosody", "both")

# A second vocabulary, for corpora of another style (`CorpusStyle.vocabulary="other"`): no word in common with the first.
OTHER_FILLER_WORDS = (
    "river", "lamp", "north", "cable", "kitchen", "between", "eleven", "monday", "carry", "green", "tall", "button",
    "plate", "forest", "pencil", "bridge", "under", "twelve", "friday", "orange", "bottle", "field", "engine",
    "across", "shelf", "wheel", "march", "metal", "copy", "drive", "print", "south", "left", "over", "three",
)  # fmt: skip
OTHER_EMOTION_KEYWORDS: dict[str, tuple[str, ...]] = {
    "angry": ("enraged", "seething", "infuriating", "hostile", "fuming", "bitter"),
    "happy": ("joyful", "cheerful", "glad", "marvellous", "ecstatic", "splendid"),
    "sad": ("gloomy", "tearful", "despair", "sorrow", "mourning", "weeping"),
}
# With `CorpusStyle.neutral_cues`, neutral utterances carry cues of their own: one of these words, a prosody of their
# own; an utterance's unmarked modality then has the plain words and the plain prosody below (no class's).
NEUTRAL_KEYWORDS = {"project": ("okay", "usual", "ordinary", "fine"), "other": ("normal", "regular", "standard", "routine")}
VOCABULARIES = {"project": (FILLER_WORDS, EMOTION_KEYWORDS), "other": (OTHER_FILLER_WORDS, OTHER_EMOTION_KEYWORDS)}
PLAIN_PROSODY = {"f0": 165.0, "amplitude": 0.28, "rate": 0.9, "tilt": 1.4, "slope": 0.0}
PLAIN_ESPEAK_PROSODY = {"pitch": 52.0, "speed": 180.0, "amplitude": 115.0}
ESPEAK_OTHER_VARIANTS = ("Adam", "Alex", "Andy", "antonio", "benjamin", "boris", "caleb", "david", "ed", "edward",
                         "Gene", "iven", "john", "Lee", "max", "Michael", "Alicia", "Andrea", "Annie", "aunty",
                         "belinda", "linda")  # fmt: skip
CUE_KINDS = ("text", "prosody", "both")


@dataclass(frozen=True)
class CorpusStyle:
    """How a demo corpus carries its classes. The defaults are the project's corpora; other values make corpora of
    the same layout and classes but another style (the learning benchmark's families, `benchmarks/learning_families.py`).

    Attributes:
        cue_mix: share of the emotional utterances cued in the text only, the prosody only, and both, e.g.
            ``{"text": 0.25, "prosody": 0.5, "both": 0.25}``; None: the voice's own (tones: half text, half prosody;
            espeak: a third each).
        prosody_strength: 1 is the class prosody; smaller values move it towards the unmarked prosody (0: none).
        jitter: scales the per-utterance prosody jitter (1: the project's).
        noise: standard deviation of the added white noise (full scale 1).
        neutral_cues: neutral utterances carry cues of their own (a neutral word, a neutral prosody, by the same
            cue mix), and the unmarked modality of any utterance has plain words and plain prosody.
        vocabulary: ``"project"`` (`FILLER_WORDS`, `EMOTION_KEYWORDS`) or ``"other"`` (no word in common).
        voices: None for the project's speakers; an integer draws other speakers from that seed (tones: f0 factor
            0.8-1.25 and spectral tilt offset per speaker; espeak: other voice variants).
    """

    cue_mix: dict | None = None
    prosody_strength: float = 1.0
    jitter: float = 1.0
    noise: float = 0.003
    neutral_cues: bool = False
    vocabulary: str = "project"
    voices: int | None = None

    def __post_init__(self):
        if self.cue_mix is not None:
            if not isinstance(self.cue_mix, dict):
                raise TypeError(f"cue_mix must be a dict of shares, e.g. {{'text': 1, 'prosody': 1}}, got {self.cue_mix!r}")
            mix = dict(self.cue_mix)
            unknown = sorted(set(mix) - set(CUE_KINDS))
            if unknown or not mix or any(not isinstance(v, (int, float)) or v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
                raise ValueError(f"cue_mix must map some of {CUE_KINDS} to non-negative shares with a positive sum, got {self.cue_mix!r}")
            object.__setattr__(self, "cue_mix", {k: float(mix[k]) for k in CUE_KINDS if mix.get(k, 0) > 0})
        if not 0.0 <= self.prosody_strength <= 1.0:
            raise ValueError(f"prosody_strength must be in [0, 1], got {self.prosody_strength!r}")
        if self.jitter < 0 or self.noise < 0:
            raise ValueError(f"jitter and noise must be >= 0, got jitter={self.jitter!r}, noise={self.noise!r}")
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(f"vocabulary must be one of {sorted(VOCABULARIES)}, got {self.vocabulary!r}")

    def params(self) -> dict:
        """The values that differ from the project's style (recorded in the corpus's marker file)."""
        default = CorpusStyle()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    @property
    def words(self) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        """(filler words, keywords per class), with the neutral keywords when neutral utterances have cues."""
        fillers, keywords = VOCABULARIES[self.vocabulary]
        if self.neutral_cues:
            keywords = {**keywords, "neutral": NEUTRAL_KEYWORDS[self.vocabulary]}
        return fillers, keywords

    def cues(self, counts: dict[str, int], voice: str) -> dict[str, list[str]]:
        """Per class, the cue of each of its `counts[class]` utterances (before shuffling)."""
        out = {}
        for label, n in counts.items():
            if label == "neutral" and not self.neutral_cues:
                out[label] = ["none"] * n
            elif self.cue_mix is None:  # cycle so the cue kinds are balanced within each session and class
                kinds = ESPEAK_CUES if voice == "espeak" else ("text", "prosody")
                out[label] = [kinds[i % len(kinds)] for i in range(n)]
            else:  # shares by largest remainder
                total = sum(self.cue_mix.values())
                exact = {k: n * v / total for k, v in self.cue_mix.items()}
                whole = {k: int(math.floor(x)) for k, x in exact.items()}
                for k in sorted(exact, key=lambda k: whole[k] - exact[k])[: n - sum(whole.values())]:
                    whole[k] += 1
                out[label] = [k for k in self.cue_mix for _ in range(whole[k])]
        return out

    def marked(self, label: str | None) -> bool:
        """Whether `label`'s prosody is a class prosody of its own (the neutral one only with neutral cues)."""
        return label is not None and (label != "neutral" or self.neutral_cues)

    def prosody(self, label: str | None, table: dict, plain: dict, log_keys: tuple[str, ...]) -> dict[str, float]:
        """The prosody of `label` (None: unmarked) from `table`, moved towards the unmarked prosody by strength."""
        unmarked = plain if self.neutral_cues else table["neutral"]
        if not self.marked(label):
            return unmarked
        target = table[label]
        if self.prosody_strength == 1.0:
            return target
        s = self.prosody_strength
        return {k: (unmarked[k] ** (1 - s) * target[k] ** s if k in log_keys else (1 - s) * unmarked[k] + s * target[k])
                for k in target}  # fmt: skip

    def speaker(self, session: int, gender: str) -> dict:
        """One speaker's voice: tones {"f0": factor, "tilt": offset}, espeak {"variant": name} (a pure function of
        the style's `voices`, the session and the gender)."""
        if self.voices is None:
            variants = ESPEAK_VARIANTS[gender]
            return {"f0": SPEAKER_F0_FACTOR[gender], "tilt": 0.0, "variant": variants[(session - 1) % len(variants)]}
        rng = np.random.default_rng([int(self.voices), session, int(gender == "F")])
        return {"f0": float(rng.uniform(0.8, 1.25)), "tilt": float(rng.uniform(-0.4, 0.4)),
                "variant": ESPEAK_OTHER_VARIANTS[int(rng.integers(len(ESPEAK_OTHER_VARIANTS)))]}  # fmt: skip

    def jittered(self, rng: np.random.Generator, low: float, high: float) -> float:
        """A uniform draw in [low, high], its spread around the middle scaled by `jitter`."""
        value = rng.uniform(low, high)
        if self.jitter != 1.0:
            middle = (low + high) / 2
            value = middle + (value - middle) * self.jitter
        return value


DEFAULT_STYLE = CorpusStyle()


def demo_vocabulary(style: CorpusStyle | None = None) -> list[str]:
    """Every token the demo transcripts (of `style`, default the project's) can produce, special tokens first.

    Build a tokenizer with ``BertTokenizer(vocab={token: i for i, token in enumerate(demo_vocabulary())})``
    (``vocab_file=`` is not needed). Markers appear both whole (``[LAUGHTER]``, for
    ``never_split``) and as the pieces BERT's basic tokenizer splits them into.
    """
    fillers, keywords_per_class = (style or DEFAULT_STYLE).words
    words = set(fillers)
    for keywords in keywords_per_class.values():
        words.update(keywords)
    for marker in MARKERS:
        words.add(marker.strip("[]").lower())
    return list(_SPECIAL_TOKENS) + list(MARKERS) + list(_PUNCTUATION) + sorted(words)


def _utterance_plan(
    rng: np.random.Generator, counts: dict[str, int], excluded: int, cues: dict[str, list[str]]
) -> list[dict]:
    """Class, code and cue of each utterance of one session (`cues`: per class, its utterances' cues), shuffled."""
    plan = []
    for label in EMOTION_LABELS:
        for cue in cues.get(label, ())[: counts.get(label, 0)]:
            codes = _CLASS_TO_CODES[label]
            code = codes[int(rng.integers(len(codes)))]
            plan.append({"label": label, "code": code, "cue": cue})
    for i in range(excluded):
        plan.append({"label": None, "code": EXCLUDED_CODES[i % len(EXCLUDED_CODES)], "cue": "none"})
    order = rng.permutation(len(plan))
    return [plan[i] for i in order]


def _words(
    rng: np.random.Generator, label: str | None, cue: str, num_words: int, style: CorpusStyle = DEFAULT_STYLE
) -> list[str]:
    fillers, keywords_per_class = style.words
    words = [fillers[int(i)] for i in rng.integers(len(fillers), size=num_words)]
    if cue in ("text", "both"):
        keywords = keywords_per_class[label]
        words[int(rng.integers(num_words))] = keywords[int(rng.integers(len(keywords)))]
    return words


def _transcript(rng: np.random.Generator, words: list[str], marker_at: int | None, marker: str) -> str:
    """Readable text: capitalised, an occasional colon after the first word, a marker, end punctuation."""
    tokens = list(words)
    tokens[0] = tokens[0].capitalize()
    if len(tokens) > 1 and rng.random() < 0.12:
        tokens[0] += ":"
    if marker_at is not None:
        tokens.insert(marker_at, marker)
    ending = "?" if rng.random() < 0.2 else "."  # independent of the class
    return " ".join(tokens) + ending


def _synthesise(
    rng: np.random.Generator, words: list[str], prosody: dict[str, float], speaker: dict, marker_at: int | None,
    style: CorpusStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """One voiced harmonic syllable per word (duration grows with word length), light noise."""
    f0 = prosody["f0"] * speaker["f0"] * style.jittered(rng, 0.94, 1.06)
    amplitude = prosody["amplitude"] * style.jittered(rng, 0.85, 1.15)
    rate = prosody["rate"] * style.jittered(rng, 0.93, 1.07)
    tilt, slope = max(prosody["tilt"] + speaker["tilt"], 0.0), prosody["slope"]
    num_harmonics = 8
    harmonic_weights = np.arange(1, num_harmonics + 1, dtype=np.float32) ** -tilt
    harmonic_weights /= harmonic_weights.sum()

    pieces = [np.zeros(int(rng.uniform(0.05, 0.15) * SAMPLING_RATE), dtype=np.float32)]
    for index, word in enumerate(words):
        if marker_at == index:  # the marker precedes this word
            pieces.append(_noise_burst(rng))
        duration = rate * (0.07 + 0.025 * len(word)) * rng.uniform(0.95, 1.05)
        n = int(duration * SAMPLING_RATE)
        t = np.linspace(0.0, 1.0, n, dtype=np.float32)
        f0_track = f0 * (1.0 + slope * (t - 0.5)) * (1.0 + 0.01 * np.sin(2 * np.pi * 5.0 * t * duration))
        f0_track = np.minimum(f0_track, SAMPLING_RATE / (2 * num_harmonics) - 1)
        phase = 2 * np.pi * np.cumsum(f0_track, dtype=np.float64) / SAMPLING_RATE
        # sin(k * phase) by the Chebyshev recurrence: cheaper than one np.sin per harmonic
        two_cos = (2 * np.cos(phase)).astype(np.float32)
        previous, current = np.zeros(n, dtype=np.float32), np.sin(phase).astype(np.float32)
        voiced = harmonic_weights[0] * current
        for k in range(1, num_harmonics):
            previous, current = current, two_cos * current - previous
            voiced += harmonic_weights[k] * current
        envelope = np.clip(np.sin(np.pi * t), 0.0, 1.0) ** 0.6
        pieces.append(amplitude * envelope * voiced)  # |voiced| <= 1: weights sum to 1
        pieces.append(np.zeros(int(rate * rng.uniform(0.04, 0.08) * SAMPLING_RATE), dtype=np.float32))
    if marker_at == len(words):
        pieces.append(_noise_burst(rng))
    pieces.append(np.zeros(int(rng.uniform(0.05, 0.15) * SAMPLING_RATE), dtype=np.float32))
    signal = np.concatenate(pieces)
    signal += rng.normal(0.0, style.noise, size=signal.shape).astype(np.float32)
    return np.clip(signal, -1.0, 1.0)


def _espeak(text: str, voice: str, pitch: float, speed: float, amplitude: float, workdir: str) -> np.ndarray:
    """espeak-ng saying `text`, as float32 at SAMPLING_RATE (espeak writes 22.05 kHz; resampled by FFT)."""
    path = os.path.join(workdir, "utterance.wav")
    command = ["espeak-ng", "-v", voice, "-p", str(int(round(pitch))), "-s", str(int(round(speed))),
               "-a", str(int(round(amplitude))), "-w", path, text]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not os.path.isfile(path):
        raise RuntimeError(f"espeak-ng failed on {text!r} (exit {result.returncode}): {result.stderr.strip()}")
    with wave.open(path, "rb") as handle:
        rate = handle.getframerate()
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    if rate == SAMPLING_RATE or pcm.size == 0:
        return pcm
    length = int(round(pcm.size * SAMPLING_RATE / rate))
    spectrum = np.fft.rfft(pcm.astype(np.float64))[: length // 2 + 1]
    return (np.fft.irfft(spectrum, length) * (length / pcm.size)).astype(np.float32)


def _speak(
    rng: np.random.Generator, words: list[str], target: dict[str, float], speaker: dict, marker_at: int | None,
    workdir: str, style: CorpusStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """The words said by espeak-ng with the prosody `target`, jittered; a marker is a noise burst."""
    pitch = float(np.clip(target["pitch"] + style.jittered(rng, -1, 1) * ESPEAK_JITTER["pitch"], 0, 99))
    speed = target["speed"] * (1 + style.jittered(rng, -1, 1) * ESPEAK_JITTER["speed"])
    amplitude = float(np.clip(target["amplitude"] * (1 + style.jittered(rng, -1, 1) * ESPEAK_JITTER["amplitude"]), 10, 200))
    voice = f"en-us+{speaker['variant']}"
    parts = [words] if marker_at is None else [words[:marker_at], words[marker_at:]]
    pieces = [np.zeros(int(rng.uniform(0.05, 0.15) * SAMPLING_RATE), dtype=np.float32)]
    for index, part in enumerate(parts):
        if index == 1:
            pieces.append(_noise_burst(rng))
        if part:
            pieces.append(_espeak(" ".join(part), voice, pitch, speed, amplitude, workdir))
    pieces.append(np.zeros(int(rng.uniform(0.05, 0.15) * SAMPLING_RATE), dtype=np.float32))
    signal = np.concatenate(pieces)
    signal += rng.normal(0.0, style.noise, size=signal.shape).astype(np.float32)
    return np.clip(signal, -1.0, 1.0)


def _noise_burst(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.12, 0.2) * SAMPLING_RATE)
    return (0.04 * np.hanning(n) * rng.normal(size=n)).astype(np.float32)


def _write_wav(path: Path, signal: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(signal * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLING_RATE)
        handle.writeframes(pcm.tobytes())


def _dialog_names(session: int, count: int) -> list[str]:
    """Ses01F_impro01, Ses01M_impro01, Ses01F_script01_1, Ses01M_script01_1, Ses01F_impro02, …"""
    names = []
    cycle = 0
    while len(names) < count:
        impro, script, take = cycle + 1, cycle // 2 + 1, cycle % 2 + 1
        for kind in ("impro", "script"):
            for letter in ("F", "M"):
                suffix = f"impro{impro:02d}" if kind == "impro" else f"script{script:02d}_{take}"
                names.append(f"Ses{session:02d}{letter}_{suffix}")
        cycle += 1
    return names[:count]


def _words_for_duration(rng: np.random.Generator, profile: str, rate: float) -> int:
    if profile == "short":
        return int(rng.integers(3, 6))  # 3-5 words: about 1-2.5 s
    # IEMOCAP-like: log-normal duration, mean ~4.5 s, tail to 30 s; ~0.27 s per word at rate 1
    seconds = float(np.clip(rng.lognormal(mean=math.log(3.76), sigma=0.6), 0.8, 30.0))
    return max(1, int(round((seconds - 0.2) / (rate * 0.26))))


def _write_session(
    root: Path, session: int, plan: list[dict], rng: np.random.Generator, durations: str, voice: str = "tones",
    style: CorpusStyle = DEFAULT_STYLE,
) -> None:
    session_dir = root / f"Session{session}"
    label_dir = session_dir / "dialog" / "EmoEvaluation"
    transcript_dir = session_dir / "dialog" / "transcriptions"
    for sub in ("Categorical", "Attribute", "Self-evaluation"):
        (label_dir / sub).mkdir(parents=True, exist_ok=True)
    transcript_dir.mkdir(parents=True, exist_ok=True)

    num_dialogs = max(4, math.ceil(len(plan) / 30))
    dialogs = _dialog_names(session, num_dialogs)
    for dialog_index, dialog in enumerate(dialogs):
        members = plan[dialog_index::num_dialogs]
        label_lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        transcript_lines = []
        categorical_lines, attribute_lines = [], []
        numbers = {"F": 0, "M": 0}
        clock = float(rng.uniform(1.0, 5.0))
        for item in members:
            gender = "F" if rng.random() < 0.5 else "M"  # independent of the dialog's letter
            utterance_id = f"{dialog}_{gender}{numbers[gender]:03d}"
            numbers[gender] += 1
            emotion = item["label"] if item["cue"] in ("prosody", "both") else None  # None: unmarked prosody
            prosody = style.prosody(emotion, PROSODY, PLAIN_PROSODY, ("f0", "amplitude", "rate"))
            num_words = _words_for_duration(rng, durations, prosody["rate"])
            words = _words(rng, item["label"], item["cue"], num_words, style)
            marker_at = int(rng.integers(num_words + 1)) if rng.random() < 0.15 else None
            marker = MARKERS[int(rng.integers(len(MARKERS)))]
            text = _transcript(rng, words, marker_at, marker)
            if voice == "espeak":
                with tempfile.TemporaryDirectory() as workdir:
                    target = style.prosody(emotion, ESPEAK_PROSODY, PLAIN_ESPEAK_PROSODY, ("speed", "amplitude"))
                    signal = _speak(rng, words, target, style.speaker(session, gender), marker_at, workdir, style)
            else:
                signal = _synthesise(rng, words, prosody, style.speaker(session, gender), marker_at, style)
            _write_wav(session_dir / "sentences" / "wav" / dialog / f"{utterance_id}.wav", signal)

            start, end = clock, clock + len(signal) / SAMPLING_RATE
            clock = end + float(rng.uniform(0.3, 2.0))
            code = item["code"]
            vad = np.clip(np.array(_VAD[code]) + rng.normal(0, 0.25, 3), 1.0, 5.0)
            category = _ANNOTATOR_CATEGORY[code]
            label_lines += [
                f"[{start:.4f} - {end:.4f}]\t{utterance_id}\t{code}\t[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]",
                f"C-E1:\t{category};\t()",
                f"C-E2:\t{category};\t()",
                f"C-E4:\t{category}; Other;\t(note: demo)",
                f"A-E1:\tval {round(vad[0])}; act {round(vad[1])}; dom  {round(vad[2])};\t()",
                "",
            ]
            transcript_lines.append(f"{utterance_id} [{start:08.4f}-{end:08.4f}]: {text}")
            categorical_lines.append(f"{utterance_id} :{category}; ()")
            attribute_lines.append(f"{utterance_id} :act {round(vad[1])}; val {round(vad[0])}; dom {round(vad[2])}; ()")
        # an unlabelled segment: transcript line only, no label and no wav
        transcript_lines.append(f"{dialog}_MXX0 [{clock:08.4f}-{clock + 1.0:08.4f}]: [GARBAGE]")
        (label_dir / f"{dialog}.txt").write_text("\n".join(label_lines) + "\n")
        (transcript_dir / f"{dialog}.txt").write_text("\n".join(transcript_lines) + "\n")
        (label_dir / "Categorical" / f"{dialog}_e1_cat.txt").write_text("\n".join(categorical_lines) + "\n")
        (label_dir / "Attribute" / f"{dialog}_e1_atr.txt").write_text("\n".join(attribute_lines) + "\n")
        (label_dir / "Self-evaluation" / f"{dialog}.anvil").write_text("<annotation/>\n")
    # macOS metadata copies (binary): the builder must skip them
    (label_dir / f"._{dialogs[0]}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xff")
    (transcript_dir / f"._{dialogs[0]}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xff")


def session_counts(utterances_per_session: int) -> dict[int, dict[str, int]]:
    """{session: {class: count}} of a corpus with `utterances_per_session` 4-class utterances in every session, split
    evenly over the classes (the first classes take the remainder): what `generate_demo_corpus` writes by default."""
    if utterances_per_session < len(EMOTION_LABELS):
        raise ValueError(f"utterances_per_session must be >= {len(EMOTION_LABELS)}, got {utterances_per_session}")
    per_class = {label: utterances_per_session // len(EMOTION_LABELS) for label in EMOTION_LABELS}
    for label in EMOTION_LABELS[: utterances_per_session % len(EMOTION_LABELS)]:
        per_class[label] += 1
    return {session: dict(per_class) for session in range(1, NUM_SESSIONS + 1)}


def generate_demo_corpus(
    output_dir: str | os.PathLike,
    seed: int = 0,
    utterances_per_session: int = 80,
    *,
    counts: dict[int, dict[str, int]] | None = None,
    excluded_per_session: int = 4,
    durations: str = "short",
    voice: str = "tones",
    style: CorpusStyle | None = None,
) -> Path:
    """Write a synthetic IEMOCAP-layout corpus (Session1 … Session5) and return its root.

    Args:
        output_dir: the folder to create; it plays the role of `IEMOCAP_full_release/`.
        seed: the corpus is a pure function of the arguments (same seed, same bytes).
        utterances_per_session: 4-class utterances per session, split evenly over the classes.
        counts: per-session, per-class 4-class counts instead of `utterances_per_session`
            (e.g. :data:`EXPECTED_4CLASS_COUNTS` for a corpus with the release's counts).
        excluded_per_session: extra utterances labelled fru / xxx / sur (skipped by ``4class``).
        durations: ``"short"`` (3-5 words, ~1-2.5 s) or ``"iemocap"`` (log-normal, mean ~4.5 s,
            tail to 30 s).
        voice: ``"tones"`` (one harmonic syllable per word, numpy only) or ``"espeak"`` (the
            spoken corpus: espeak-ng says the transcript; needs the ``espeak-ng`` program).
        style: how the classes are cued (`CorpusStyle`); default the project's corpora.

    Idempotent: a marker file records the arguments; a second call with the same arguments
    returns at once, different arguments regenerate. A non-empty folder without the marker is
    never overwritten. Under a distributed launcher the main process writes first.
    """
    if durations not in DURATION_PROFILES:
        raise ValueError(f"durations must be one of {DURATION_PROFILES}, got {durations!r}")
    if voice not in VOICES:
        raise ValueError(f"voice must be one of {VOICES}, got {voice!r}")
    if voice == "espeak" and shutil.which("espeak-ng") is None:
        raise RuntimeError(
            "voice='espeak' needs the espeak-ng program on PATH (Debian/Ubuntu: apt-get install espeak-ng; "
            "scripts/setup.sh installs it)."
        )
    if counts is None:
        counts = session_counts(utterances_per_session)
    counts = {int(session): {label: int(n) for label, n in per_class.items()} for session, per_class in counts.items()}
    if sorted(counts) != list(range(1, NUM_SESSIONS + 1)):
        raise ValueError(f"counts must have sessions 1-{NUM_SESSIONS}, got {sorted(counts)}")
    for session, per_class in counts.items():
        unknown = set(per_class) - set(EMOTION_LABELS)
        if unknown:
            raise ValueError(f"counts[{session}] has unknown classes {sorted(unknown)}; use {list(EMOTION_LABELS)}")
    params = {
        "version": DEMO_CORPUS_VERSION,
        "seed": int(seed),
        "counts": {str(session): per_class for session, per_class in counts.items()},
        "excluded_per_session": int(excluded_per_session),
        "durations": durations,
    }
    if voice != "tones":  # keeps the markers of corpora written before voices existed valid
        params["voice"] = voice
    style = style if style is not None else DEFAULT_STYLE
    if not isinstance(style, CorpusStyle):
        raise TypeError(f"style must be a CorpusStyle, got {type(style).__name__}")
    style_params = style.params()
    if style_params:  # likewise: the project's style records nothing
        params["style"] = style_params

    root = Path(output_dir).expanduser().resolve()
    with main_process_first():
        marker = root / MARKER_FILE
        if marker.is_file():
            if json.loads(marker.read_text()) == params:
                logger.info("Demo corpus already in %s (same parameters): nothing to do", root)
                return root
            logger.info("Demo corpus in %s has other parameters: regenerating", root)
            shutil.rmtree(root)
        elif root.exists() and any(root.iterdir()):
            raise FileExistsError(f"{root} is not empty and holds no demo corpus marker ({MARKER_FILE}): not overwriting it")

        # write next to the target, then rename, so a crash never leaves a half corpus behind the marker
        staging = root.with_name(f".{root.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for session in range(1, NUM_SESSIONS + 1):
            rng = np.random.default_rng([int(seed), session])
            plan = _utterance_plan(rng, counts[session], excluded_per_session, style.cues(counts[session], voice))
            _write_session(staging, session, plan, rng, durations, voice, style)
        (staging / MARKER_FILE).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
        if root.exists():
            root.rmdir()  # empty, checked above
        os.replace(staging, root)
        logger.info("Wrote demo corpus to %s", root)
    return root
