# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Inference pieces shared by the pipeline (`pipeline_mgcma.py`) and the torch-free ONNX runtime (`onnx_runtime.py`):
input parsing, the length check, result formatting, and long recordings cut into windows.

Shipped to the Hub next to `pipeline_mgcma.py` and copied into exported ONNX folders. It imports only numpy and the
standard library, so that the ONNX runtime can use it where torch is not installed.

Long recordings. A clip longer than the window length is cut into windows of `window_seconds` that overlap by
`overlap_seconds`; each nominal boundary moves to the quietest 20 ms frame (judged over the 0.22 s around it) within
`search_seconds` before it, so that a cut falls in a pause rather than mid-word. Each window is classified on its
own, and the recording's `labels` are the mean of the windows' probabilities weighted by each window's duration (a
short tail window counts for less). The result carries a `segments` list: `{"start", "end", "labels",
"transcript"}` per window, times in seconds. Only the decoded audio is held in memory: windows are views into it,
prepared one at a time.
"""

import os

import numpy as np


# -- inputs --------------------------------------------------------------------------------------------------------------

INPUT_HELP = (
    "an utterance is a dict {'audio': AUDIO, 'text': str} (text optional with `asr`), where AUDIO is a file path, "
    "file bytes, a numpy array or tensor with a 'sampling_rate' key, or a {'array', 'sampling_rate'} dict"
)


def split_input(inputs):
    """-> (audio, sampling_rate or None, text or None, text segments or None).

    `text` may also be a list of `{"start": seconds, "end": seconds, "text": str}` segments (a timed transcript),
    which long recordings use to give each window its own text."""
    if isinstance(inputs, (str, os.PathLike, bytes, bytearray)):
        return inputs, None, None, None
    if not isinstance(inputs, dict):
        raise TypeError(f"{INPUT_HELP}; got a {type(inputs).__name__}.")
    if "audio" not in inputs:
        if "array" in inputs or "path" in inputs:  # a bare datasets Audio value
            return inputs, None, None, None
        raise ValueError(f"{INPUT_HELP}; this dict has no 'audio' key (keys: {sorted(map(str, inputs))}).")
    text, segments = inputs.get("text"), None
    if isinstance(text, (list, tuple)):
        segments, text = checked_text_segments(text), None
    elif text is not None and not isinstance(text, str):
        raise TypeError(f"'text' must be a string or a list of {{'start', 'end', 'text'}} segments, got a "
                        f"{type(text).__name__}.")
    return inputs["audio"], inputs.get("sampling_rate"), text, segments


def checked_text_segments(segments) -> list[dict]:
    """Validate a timed transcript `[{"start": s, "end": s, "text": str}, ...]` (seconds), sorted by start."""
    checked = []
    for index, segment in enumerate(segments):
        if not isinstance(segment, dict) or not {"start", "end", "text"} <= set(segment):
            raise ValueError(f"text segment #{index} must be a dict with 'start', 'end' (seconds) and 'text', "
                             f"got {segment!r:.200}.")
        start, end, text = segment["start"], segment["end"], segment["text"]
        if not isinstance(text, str):
            raise ValueError(f"text segment #{index}: 'text' must be a string, got {type(text).__name__}.")
        try:
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise ValueError(f"text segment #{index}: 'start' and 'end' must be seconds, got {start!r}, {end!r}.")
        if not (0 <= start <= end):
            raise ValueError(f"text segment #{index}: needs 0 <= start <= end, got start={start}, end={end}.")
        checked.append({"start": start, "end": end, "text": text})
    if not checked:
        raise ValueError("the list of text segments is empty.")
    return sorted(checked, key=lambda segment: segment["start"])


def check_length(num_samples: int, min_samples: int, sampling_rate: int) -> None:
    """Raise a `ValueError` when a clip is shorter than the speech encoder's receptive field."""
    if num_samples < min_samples:
        raise ValueError(
            f"the audio is too short: {num_samples} samples at {sampling_rate} Hz "
            f"({1000 * num_samples / sampling_rate:.1f} ms); this model's speech encoder needs at least {min_samples} "
            f"samples ({1000 * min_samples / sampling_rate:.1f} ms)."
        )


# -- outputs -------------------------------------------------------------------------------------------------------------


def softmax(logits, temperature: float | None = None) -> np.ndarray:
    """softmax(logits / T) over the last axis; T = `temperature` (a model's fitted `calibration_temperature`), None
    for the plain softmax."""
    logits = np.asarray(logits, dtype=np.float32)
    if temperature is not None:
        logits = logits / np.float32(checked_temperature(temperature))
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def checked_temperature(temperature) -> float | None:
    """A config's `calibration_temperature`: None, or a finite number > 0 (anything else is a ValueError)."""
    if temperature is None:
        return None
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < float("inf"):
        raise ValueError(f"calibration_temperature must be a finite number > 0 or None, got {temperature!r}.")
    return float(temperature)


def ranked_labels(probabilities, id2label: dict, top_k: int | None = None) -> list[dict]:
    """`[{"label", "score"}]`, highest probability first (ties keep class order), `top_k` of them (default all)."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    order = np.argsort(-probabilities, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    return [{"label": id2label[int(i)], "score": float(probabilities[i])} for i in order]


# -- long recordings -----------------------------------------------------------------------------------------------------

DEFAULT_OVERLAP_SECONDS = 1.0
DEFAULT_SEARCH_SECONDS = 1.0
_FRAME_SECONDS = 0.02
_SMOOTHING_FRAMES = 5  # frames on each side: energy judged over 0.22 s


def plan_windows(
    audio: np.ndarray,
    sampling_rate: int,
    window_seconds: float,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    search_seconds: float = DEFAULT_SEARCH_SECONDS,
    min_samples: int = 1,
) -> list[tuple[int, int]]:
    """Cut a mono clip into windows `[(start_sample, end_sample), ...]` of at most `window_seconds`.

    One window when the clip fits. Otherwise each window ends at the quietest 20 ms frame (lowest mean square over the
    0.22 s around it) within the last `search_seconds` before its nominal end, and the next window starts
    `overlap_seconds` before that cut (never before the previous start). The last window ends at the clip's end; when
    the tail after the last cut is shorter than `min_samples` (the speech encoder's shortest input), it starts earlier
    so that it is `min_samples` long, rather than failing the whole recording. Every sample lies in some window; no
    window is longer than `window_seconds`.
    """
    if window_seconds <= 0:
        raise ValueError(f"the window length must be positive seconds, got {window_seconds!r}.")
    if not 0 <= overlap_seconds < window_seconds:
        raise ValueError(f"the window overlap must lie in [0, window length {window_seconds}), got {overlap_seconds!r}.")
    if search_seconds < 0:
        raise ValueError(f"the boundary search span must be >= 0 seconds, got {search_seconds!r}.")
    total = len(audio)
    window = max(1, int(round(window_seconds * sampling_rate)))
    overlap = int(round(overlap_seconds * sampling_rate))
    # never search so far back that a window would not advance past the overlap
    search = min(int(round(search_seconds * sampling_rate)), max(0, window - overlap - 1))
    frame = max(1, int(round(_FRAME_SECONDS * sampling_rate)))
    windows, start = [], 0
    while True:
        nominal_end = start + window
        if nominal_end >= total:
            windows.append((min(start, max(0, total - min(min_samples, window))), total))
            return windows
        end = _quietest_point(audio, nominal_end - search, nominal_end, frame) if search else nominal_end
        windows.append((start, end))
        start = max(end - overlap, start + 1)


def _quietest_point(audio: np.ndarray, low: int, high: int, frame: int) -> int:
    """The centre of the quietest `frame`-sample frame in `audio[low:high]`, judged by the mean energy of the frames
    within 0.1 s on either side of it, 0.22 s in all (so that a long pause beats a short gap between two words);
    among equals the latest."""
    span = np.asarray(audio[low:high], dtype=np.float64)
    count = len(span) // frame
    if count == 0:
        return high
    energy = (span[: count * frame].reshape(count, frame) ** 2).mean(-1)
    kernel = np.ones(2 * _SMOOTHING_FRAMES + 1)
    smoothed = np.convolve(energy, kernel, mode="same") / np.convolve(np.ones(count), kernel, mode="same")
    quietest = count - 1 - int(np.argmin(smoothed[::-1]))  # ties: the latest frame, keeping windows long
    return low + quietest * frame + frame // 2


# A timed transcript's segment may start this many seconds after the audio ends (rounding of the times) at most.
SEGMENT_START_TOLERANCE_SECONDS = 0.5


def check_segments_in_audio(segments: list[dict] | None, duration: float) -> None:
    """Refuse a timed transcript whose segments start after the audio's end (`duration` seconds) by more than
    `SEGMENT_START_TOLERANCE_SECONDS`: their text would be reported but never classified (times given in
    milliseconds instead of seconds, or the transcript of another recording)."""
    if not segments:
        return
    late = [(index, s) for index, s in enumerate(segments) if s["start"] > duration + SEGMENT_START_TOLERANCE_SECONDS]
    if late:
        index, segment = late[0]
        raise ValueError(
            f"text segment #{index} starts at {segment['start']:g} s, after the audio's end ({duration:.3f} s); "
            f"{len(late)} of {len(segments)} segment(s) do. Segment times are seconds (milliseconds given?)."
        )


def window_text(segments: list[dict] | None, transcript: str | None, start: float, end: float) -> str:
    """The text of the window `[start, end)` seconds: the segments that overlap it, joined with spaces, or the whole
    `transcript` when no segments were given."""
    if segments is None:
        return transcript
    return " ".join(s["text"].strip() for s in segments if s["start"] < end and s["end"] > start and s["text"].strip())


def aggregate_windows(window_probabilities, window_bounds, sampling_rate: int) -> np.ndarray:
    """The recording's class probabilities: the mean of the windows' probabilities weighted by each window's seconds."""
    weights = np.array([(end - start) / sampling_rate for start, end in window_bounds], dtype=np.float64)
    stacked = np.asarray(window_probabilities, dtype=np.float64)
    return (stacked * weights[:, None]).sum(0) / weights.sum()


def recording_result(
    probabilities, uncertainties, bounds, sampling_rate: int, id2label: dict, top_k=None, transcript=None, segments=None
) -> dict:
    """One recording's result from its windows: `probabilities` `[windows, classes]`, `uncertainties` (one dict or
    None per window), `bounds` `[(start_sample, end_sample)]`. One window: `labels`, `uncertainty`, `transcript`.
    Several: `labels` and `uncertainty` are duration-weighted means over the windows, and `segments` lists each
    window's `start`, `end` (seconds), `labels` and `transcript`; `segment_transcripts` says whether each window had
    its own text (`"per-window"`, from timed segments) or the whole recording's (`"whole-recording"`)."""
    if segments is not None:  # the segments the windows used, not every segment given
        first, last = min(b[0] for b in bounds) / sampling_rate, max(b[1] for b in bounds) / sampling_rate
        transcript = window_text(segments, None, first, last)
    if len(bounds) == 1:
        return {"labels": ranked_labels(probabilities[0], id2label, top_k), "uncertainty": uncertainties[0],
                "transcript": transcript}
    weights = np.array([end - start for start, end in bounds], dtype=np.float64)
    uncertainty = None
    if uncertainties[0] is not None:
        uncertainty = {key: float(np.dot(weights, [u[key] for u in uncertainties]) / weights.sum())
                       for key in uncertainties[0]}
    return {
        "labels": ranked_labels(aggregate_windows(probabilities, bounds, sampling_rate), id2label, top_k),
        "uncertainty": uncertainty,
        "transcript": transcript,
        "segments": [
            {
                "start": round(start / sampling_rate, 3),
                "end": round(end / sampling_rate, 3),
                "labels": ranked_labels(p, id2label, top_k),
                "transcript": window_text(segments, transcript, start / sampling_rate, end / sampling_rate),
            }
            for (start, end), p in zip(bounds, probabilities)
        ],
        "segment_transcripts": "per-window" if segments is not None else "whole-recording",
    }


def segments_from_asr(result, duration: float) -> list[dict] | None:
    """Timed segments from a speech recogniser's output with timestamps (`{"chunks": [{"timestamp": (start, end),
    "text"}]}`, what transformers' ASR pipeline returns with `return_timestamps`), else None."""
    chunks = result.get("chunks") if isinstance(result, dict) else None
    if not chunks:
        return None
    segments = []
    for chunk in chunks:
        start, end = chunk.get("timestamp", (None, None))
        if start is None:
            return None
        segments.append({"start": start, "end": duration if end is None else end, "text": chunk.get("text", "")})
    return checked_text_segments(segments)


__all__ = [
    "recording_result",
    "segments_from_asr",
    "check_segments_in_audio",
    "SEGMENT_START_TOLERANCE_SECONDS",
    "DEFAULT_OVERLAP_SECONDS",
    "DEFAULT_SEARCH_SECONDS",
    "INPUT_HELP",
    "aggregate_windows",
    "check_length",
    "checked_temperature",
    "checked_text_segments",
    "plan_windows",
    "ranked_labels",
    "softmax",
    "split_input",
    "window_text",
]
