# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""MGCMA processor: a speech feature extractor and a tokenizer behind one call.

Shipped to the Hub next to the weights. Hub users may have only `torch` + `transformers` (+ numpy): librosa and
soundfile are used when present (imports guarded), and otherwise WAV files are read with the standard library's
`wave` and audio is resampled with an FFT-based resampler written in numpy.
"""

import io
import os
import wave

import numpy as np


try:
    import torch
except ImportError:  # the exported ONNX runtime reads and prepares audio where torch is not installed
    torch = None

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import is_librosa_available, is_soundfile_available, logging


if is_librosa_available():
    import librosa
if is_soundfile_available():
    import soundfile


logger = logging.get_logger(__name__)

TARGET_SAMPLING_RATE = 16_000
# Seconds of audio a training run keeps per utterance unless told otherwise (`MGCMAProcessor(max_duration=...)`;
# the processor itself cuts nothing by default). benchmarks/README.md shows IEMOCAP's durations against it.
DEFAULT_MAX_DURATION = 15.0


def load_audio(source) -> tuple[np.ndarray, int]:
    """Read audio from a file path or raw bytes into a float32 array (channels-first when multi-channel).

    Uses soundfile when installed (WAV, FLAC, OGG, ...), else the standard library's `wave` (PCM WAV only).
    Returns `(array, sampling_rate)`. Raises `ValueError` naming the file when it cannot be read or is empty.
    """
    name = source if isinstance(source, (str, os.PathLike)) else "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise ValueError(f"audio file not found: {source}")
        handle = source
    elif isinstance(source, (bytes, bytearray)):
        handle = io.BytesIO(source)
    else:
        raise ValueError(f"cannot read audio from a {type(source).__name__}; pass a file path or bytes.")
    try:
        if is_soundfile_available():
            array, rate = soundfile.read(handle, dtype="float32", always_2d=True)
            array = array.T  # [channels, samples]
        else:
            array, rate = _read_wav_stdlib(handle)
    except Exception as error:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"could not read audio from {name}: {error}") from error
    if array.size == 0:
        raise ValueError(f"audio file {name} contains no samples.")
    array = array[0] if array.shape[0] == 1 else array
    return np.ascontiguousarray(array, dtype=np.float32), int(rate)


AUDIO_FORMS = (
    "a file path, file bytes, a numpy array or tensor with its sampling rate, a {'array', 'sampling_rate'} "
    "(or {'path'} / {'bytes'}) dict, or a decoded datasets Audio value"
)


def decode_audio(audio, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Any supported audio value -> `(float32 array, sampling rate)`; multi-channel arrays keep their channels.

    Accepts a file path or file bytes (read with `load_audio`; the file's own rate wins over `sampling_rate`), a
    datasets-style dict (`{"array", "sampling_rate"}`, `{"bytes"}` or `{"path"}`), a torchcodec `AudioDecoder` (what
    `datasets` Audio columns decode to), or a numpy array / torch tensor / list of floats with `sampling_rate`.
    Raises `ValueError` / `TypeError` saying what was received and what is expected.
    """
    if isinstance(audio, (str, os.PathLike, bytes, bytearray)):
        if isinstance(audio, (bytes, bytearray)) and not audio:
            raise ValueError("the audio bytes are empty.")
        return load_audio(audio)
    if isinstance(audio, dict):
        if audio.get("array") is not None:
            return decode_audio(audio["array"], audio.get("sampling_rate", sampling_rate))
        if audio.get("bytes") is not None:
            return load_audio(audio["bytes"])
        if audio.get("path") is not None:
            return load_audio(audio["path"])
        raise ValueError(
            f"an audio dict needs 'array' and 'sampling_rate' (or 'bytes' / 'path'), got keys {sorted(map(str, audio))}."
        )
    if hasattr(audio, "get_all_samples"):  # torchcodec AudioDecoder, what `datasets` Audio columns decode to
        samples = audio.get_all_samples()
        return samples.data.float().numpy(), int(samples.sample_rate)
    if torch is not None and isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().float().numpy()
    if isinstance(audio, list):
        audio = np.asarray(audio, dtype=np.float32)
    if isinstance(audio, np.ndarray):
        if not np.issubdtype(audio.dtype, np.number):
            raise TypeError(f"audio arrays must be numeric, got dtype {audio.dtype}.")
        if sampling_rate is None:
            raise ValueError(
                "an audio array needs its sampling rate: pass {'audio': array, 'sampling_rate': 16000, 'text': ...} "
                "or {'audio': {'array': array, 'sampling_rate': 16000}, 'text': ...}."
            )
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
            raise ValueError(f"'sampling_rate' must be a positive integer (Hz), got {sampling_rate!r}.")
        if audio.ndim not in (1, 2):
            raise ValueError(f"audio arrays must be 1-D (mono) or 2-D (multi-channel), got shape {audio.shape}.")
        if audio.size == 0:
            raise ValueError("the audio array is empty (0 samples).")
        return audio.astype(np.float32, copy=False), int(sampling_rate)
    raise TypeError(f"unsupported audio type {type(audio).__name__}; expected {AUDIO_FORMS}.")


def _read_wav_stdlib(handle) -> tuple[np.ndarray, int]:
    with wave.open(handle, "rb") as wav:
        channels, width, rate, frames = wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()
        raw = wav.readframes(frames)
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        bytes_ = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        ints = bytes_[:, 0].astype(np.int32) | (bytes_[:, 1].astype(np.int32) << 8) | (bytes_[:, 2].astype(np.int32) << 16)
        data = (np.where(ints >= 1 << 23, ints - (1 << 24), ints)).astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"unsupported WAV sample width {width} bytes")
    return data.reshape(-1, channels).T, rate


def to_mono(array: np.ndarray) -> np.ndarray:
    """Average channels. 2-D input is channels-first `[C, T]`, or channels-last `[T, C]` when it has more rows than
    columns and at most 8 columns (soundfile's layout)."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 1:
        return array
    if array.ndim != 2:
        raise ValueError(f"audio must be 1-D (mono) or 2-D (multi-channel), got shape {array.shape}.")
    if array.shape[1] <= 8 and array.shape[0] > array.shape[1]:
        array = array.T
    return array.mean(axis=0)


def checked_mono(audio) -> np.ndarray:
    """One clip (numpy array, tensor or list of floats) -> mono float32, rejecting empty or non-finite audio."""
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    array = to_mono(np.asarray(audio, dtype=np.float32))
    if array.size == 0:
        raise ValueError("the audio is empty (0 samples).")
    if not np.isfinite(array).all():
        raise ValueError("the audio contains NaN or infinite samples.")
    return array


def resample(array: np.ndarray, orig_rate: int, target_rate: int = TARGET_SAMPLING_RATE) -> np.ndarray:
    """Resample a 1-D signal: librosa (soxr) when installed, else band-limited FFT resampling in numpy."""
    if orig_rate == target_rate:
        return array
    if orig_rate <= 0:
        raise ValueError(f"sampling rate must be positive, got {orig_rate}.")
    if is_librosa_available():
        return librosa.resample(array, orig_sr=orig_rate, target_sr=target_rate).astype(np.float32)
    num_out = int(round(len(array) * target_rate / orig_rate))
    spectrum = np.fft.rfft(array)
    wanted = num_out // 2 + 1
    if wanted <= len(spectrum):
        spectrum = spectrum[:wanted]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(wanted - len(spectrum), dtype=spectrum.dtype)])
    return (np.fft.irfft(spectrum, n=num_out) * (num_out / len(array))).astype(np.float32)


class MGCMAProcessor(ProcessorMixin):
    r"""
    Prepares (audio, transcript) pairs for MGCMA: audio at any sampling rate, mono or multi-channel, is mixed down to
    mono, resampled to the feature extractor's rate (16 kHz), optionally cut to `max_duration` seconds, then
    normalised and padded by the speech feature extractor; the transcript is tokenised.

    Args:
        feature_extractor: a speech feature extractor (e.g. `Wav2Vec2FeatureExtractor`).
        tokenizer: a tokenizer (e.g. `BertTokenizer`).
        max_duration (`float`, *optional*): seconds kept from the start of each clip in training and evaluation;
            longer clips are cut and a warning counts them. `None` keeps everything.
        max_text_length (`int`, *optional*, defaults to 128): longest token sequence (longer transcripts are cut).
        window_seconds (`float`, *optional*): at inference (the pipeline, the ONNX runtime), recordings longer than
            this are classified in overlapping windows of this length instead of being cut; see `inference_window`.
            `None`: windows as long as `max_duration`.

    Returns a `BatchFeature` with `input_values`, `speech_attention_mask`, `input_ids`, `text_attention_mask` (and
    `token_type_ids` when the tokenizer makes them).
    """

    def __init__(
        self,
        feature_extractor,
        tokenizer,
        max_duration: float | None = None,
        max_text_length: int = 128,
        window_seconds: float | None = None,
    ):
        super().__init__(feature_extractor, tokenizer)
        for name, value in (("max_duration", max_duration), ("window_seconds", window_seconds)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise ValueError(f"`{name}` must be positive seconds or None, got {value!r}.")
        self.max_duration = max_duration
        self.max_text_length = max_text_length
        self.window_seconds = window_seconds

    @property
    def inference_window(self) -> float | None:
        """The window length (seconds) for long recordings at inference: `window_seconds`, or when it is None (and in
        processors saved before it existed) `max_duration`, the longest clip the model was trained on; None when both
        are None (every clip is classified whole)."""
        return self.window_seconds if self.window_seconds is not None else self.max_duration

    @classmethod
    def from_encoders(cls, speech_model: str, text_model: str, max_duration: float | None = None, **kwargs):
        """The processor matching `MGCMAForEmotionClassification.from_encoders(speech_model, text_model)`: the speech
        encoder's feature extractor (with attention masks) and the text encoder's tokenizer, from the Hub or local
        folders. `kwargs` go to both `from_pretrained` calls (e.g. `revision`, `cache_dir`)."""
        from transformers import AutoFeatureExtractor, AutoTokenizer

        feature_extractor = AutoFeatureExtractor.from_pretrained(speech_model, return_attention_mask=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(text_model, **kwargs)
        return cls(feature_extractor, tokenizer, max_duration=max_duration)

    @property
    def sampling_rate(self) -> int:
        return getattr(self.feature_extractor, "sampling_rate", TARGET_SAMPLING_RATE)

    def _prepared_clip(self, audio, sampling_rate: int | None, cut_to_max_duration: bool) -> tuple[np.ndarray, bool]:
        """(mono clip at the model's rate, cut to `max_duration` before resampling; whether it was cut)."""
        array = checked_mono(audio)
        if sampling_rate is None:
            sampling_rate = self.sampling_rate
        cut = False
        if self.max_duration is not None and cut_to_max_duration:
            limit = int(self.max_duration * sampling_rate)
            cut = len(array) > limit
            array = array[:limit]
        return resample(array, sampling_rate, self.sampling_rate), cut

    def __call__(
        self,
        audio=None,
        text=None,
        sampling_rate: int | list[int] | None = None,
        padding: bool | str = True,
        return_tensors: str | None = "pt",
        cut_to_max_duration: bool = True,
        **kwargs,
    ) -> BatchFeature:
        """
        Args:
            audio: one clip or a list of clips (1-D/2-D numpy arrays, tensors or lists of floats).
            text: one transcript or a list of transcripts.
            sampling_rate: rate of `audio` (default: the feature extractor's, 16 kHz), or one rate per clip. Other
                rates are resampled.
            cut_to_max_duration: cut clips to `max_duration` (training, evaluation); inference passes False, since
                it splits long recordings into windows of `inference_window` seconds first.
        """
        if audio is None and text is None:
            raise ValueError("pass `audio`, `text` or both.")
        data = {}
        if audio is not None:
            clips = audio if isinstance(audio, (list, tuple)) and not _is_flat_number_list(audio) else [audio]
            rates = list(sampling_rate) if isinstance(sampling_rate, (list, tuple)) else [sampling_rate] * len(clips)
            if len(rates) != len(clips):
                raise ValueError(f"got {len(rates)} sampling rates for {len(clips)} audio clips.")
            prepared, was_cut = zip(
                *(self._prepared_clip(clip, rate, cut_to_max_duration) for clip, rate in zip(clips, rates))
            )
            if any(was_cut):
                logger.warning(f"cut {sum(was_cut)} of {len(clips)} clip(s) to max_duration={self.max_duration}s.")
            speech = self.feature_extractor(
                list(prepared),
                sampling_rate=self.sampling_rate,
                padding=padding,
                return_attention_mask=True,
                return_tensors=return_tensors,
            )
            data["input_values"] = speech["input_values"]
            data["speech_attention_mask"] = speech["attention_mask"]
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            for index, item in enumerate(texts):
                if not isinstance(item, str):
                    raise ValueError(f"text #{index} must be a string, got {type(item).__name__}.")
                surrogate = next((c for c in item if "\ud800" <= c <= "\udfff"), None)
                if surrogate is not None:  # tokenizers would fail with an unrelated type error
                    raise ValueError(
                        f"text #{index} holds a lone surrogate U+{ord(surrogate):04X} at position {item.index(surrogate)}: "
                        f"not valid Unicode (text decoded from bytes that were not UTF-8?): {item[:60]!r}"
                    )
            encoded = self.tokenizer(
                texts,
                padding=padding,
                truncation=True,
                max_length=self.max_text_length,
                return_tensors=return_tensors,
                **kwargs,
            )
            data["input_ids"] = encoded["input_ids"]
            data["text_attention_mask"] = encoded["attention_mask"]
            if "token_type_ids" in encoded:
                data["token_type_ids"] = encoded["token_type_ids"]
        if audio is not None and text is not None and len(data["input_values"]) != len(data["input_ids"]):
            raise ValueError(f"got {len(data['input_values'])} audio clips but {len(data['input_ids'])} transcripts.")
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self):
        return ["input_values", "speech_attention_mask", "input_ids", "text_attention_mask", "token_type_ids"]


def _is_flat_number_list(value) -> bool:
    return len(value) > 0 and all(isinstance(item, (int, float, np.floating, np.integer)) for item in value)


__all__ = [
    "MGCMAProcessor",
    "checked_mono",
    "decode_audio",
    "load_audio",
    "to_mono",
    "resample",
    "TARGET_SAMPLING_RATE",
    "DEFAULT_MAX_DURATION",
]
