# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Write small IEMOCAP-format trees and CSV manifests for the data and run tests (hand-written format, not the demo
generator)."""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Utt:
    id: str
    code: str
    text: str
    start: float = 1.0
    end: float = 2.0
    vad: tuple = (2.5, 3.0, 3.5)
    wav: bool = True  # write the sentence wav


@dataclass
class Dialog:
    name: str
    session: int
    utterances: list = field(default_factory=list)
    extra_transcript_lines: list = field(default_factory=list)  # raw lines (e.g. MXX0 segments)


def write_wav(path: Path, seconds: float = 0.1, sampling_rate: int = 16000, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.random.default_rng(seed).standard_normal(int(seconds * sampling_rate)) * 1000).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sampling_rate)
        handle.writeframes(samples.tobytes())


def write_tree(root: Path, dialogs: list[Dialog], quirks: bool = True) -> Path:
    """Write dialogs in IEMOCAP's layout under root (= IEMOCAP_full_release/)."""
    for dialog in dialogs:
        session_dir = root / f"Session{dialog.session}"
        label_dir = session_dir / "dialog" / "EmoEvaluation"
        transcript_dir = session_dir / "dialog" / "transcriptions"
        label_dir.mkdir(parents=True, exist_ok=True)
        transcript_dir.mkdir(parents=True, exist_ok=True)
        label_lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        transcript_lines = []
        for utt in dialog.utterances:
            v, a, d = utt.vad
            label_lines.append(f"[{utt.start:.4f} - {utt.end:.4f}]\t{utt.id}\t{utt.code}\t[{v:.4f}, {a:.4f}, {d:.4f}]")
            label_lines.append("C-E2:\tNeutral;\t()")
            label_lines.append("C-E3:\tNeutral; Frustration;\t(a note: with colon)")
            label_lines.append("A-E3:\tval 3; act 2; dom  2;\t()")
            label_lines.append("")
            if utt.text is not None:
                transcript_lines.append(f"{utt.id} [{utt.start:08.4f}-{utt.end:08.4f}]: {utt.text}")
            if utt.wav:
                write_wav(session_dir / "sentences" / "wav" / dialog.name / f"{utt.id}.wav", utt.end - utt.start)
        transcript_lines.extend(dialog.extra_transcript_lines)
        (label_dir / f"{dialog.name}.txt").write_text("\n".join(label_lines) + "\n")
        (transcript_dir / f"{dialog.name}.txt").write_text("\n".join(transcript_lines) + "\n")
        if quirks:
            # macOS AppleDouble metadata next to the real files: binary, not text
            (label_dir / f"._{dialog.name}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X\xff\xfe")
            (transcript_dir / f"._{dialog.name}.txt").write_bytes(b"\x00\x05\x16\x07\xff\xfe")
            for sub in ("Categorical", "Attribute", "Self-evaluation"):
                (label_dir / sub).mkdir(exist_ok=True)
                (label_dir / sub / f"{dialog.name}_e1.txt").write_text(f"[1.0 - 2.0]\t{dialog.name}_F000\tjunk\n")
    return root


def quirky_session1() -> list[Dialog]:
    """Session 1 with every quirk of the release's files that the builder handles (see data/README.md)."""
    return [
        Dialog(
            "Ses01F_impro01",
            1,
            [
                Utt("Ses01F_impro01_F000", "neu", "Excuse me."),
                Utt("Ses01F_impro01_M000", "ang", "Listen: I said no [LAUGHTER] okay?", vad=(1.5, 4.0, 4.5)),
                Utt("Ses01F_impro01_F001", "exc", "Yes: yes: yes [BREATHING]"),
                Utt("Ses01F_impro01_M001", "fru", "Whatever."),
                Utt("Ses01F_impro01_F002", "xxx", "Hm."),
            ],
            extra_transcript_lines=["Ses01F_impro01_MXX0 [010.0000-011.0000]: [GARBAGE]"],
        ),
        Dialog(
            "Ses01F_script01_1",
            1,
            [
                Utt("Ses01F_script01_1_M012", "hap", "Time: 10:30, be there."),
                Utt("Ses01F_script01_1_F003", "sad", "I miss her."),
            ],
            extra_transcript_lines=[
                "Ses01F_script01_1_FXX0 [020.0000-021.0000]: [LAUGHTER]",
                "Ses01F_script01_1_MXX1 [022.0000-023.0000]: hm",
            ],
        ),
    ]


def csv_manifest(folder, lines, name="m.csv", encoding="utf-8"):
    path = folder / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def five_session_release(tmp_path):
    dialogs = [Dialog(f"Ses0{s}F_impro01", s, [Utt(f"Ses0{s}F_impro01_F00{i}", c, "words") for i, c in enumerate(("ang", "hap", "sad", "neu"))])
               for s in range(1, 6)]  # fmt: skip
    return write_tree(tmp_path / "IEMOCAP_full_release", dialogs, quirks=False)
