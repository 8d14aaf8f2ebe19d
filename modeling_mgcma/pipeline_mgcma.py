# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The `multimodal-emotion-recognition` pipeline: (audio, transcript) -> emotion scores + uncertainty.

Shipped to the Hub next to the weights (as `pipeline_mgcma.py`, named in `config.json` under `custom_pipelines`), so
that `pipeline(model="org/mgcma", trust_remote_code=True)` works where this package is not installed. It imports only
torch, numpy, transformers, the standard library and its siblings `processing_mgcma` and `inference_mgcma` (both
shipped with it).

Write such a folder with [`save_for_hub`] (model + processor + pipeline code), or add the pipeline to a folder that
`model.save_pretrained` / `Trainer` already wrote with [`add_pipeline_to_folder`].
"""

import json
import os

import numpy as np
import torch
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines.base import ChunkPipeline
from transformers.utils import logging

from .inference_mgcma import (
    DEFAULT_OVERLAP_SECONDS,
    check_length,
    check_segments_in_audio,
    checked_temperature,
    plan_windows,
    recording_result,
    segments_from_asr,
    split_input,
    window_text,
)
from .processing_mgcma import checked_mono, decode_audio, resample


logger = logging.get_logger(__name__)

TASK = "multimodal-emotion-recognition"


class MultimodalEmotionRecognitionPipeline(ChunkPipeline):
    r"""
    Emotion recognition from speech and its transcript with an MGCMA model.

    ```python
    >>> from transformers import pipeline
    >>> classifier = pipeline(model="org/mgcma", trust_remote_code=True)
    >>> classifier({"audio": "clip.wav", "text": "I can't believe you did that"})
    {'labels': [{'label': 'angry', 'score': 0.71}, ...], 'uncertainty': {...}, 'transcript': "I can't ..."}
    ```

    Inputs, one utterance or a list of them (a list returns a list; `batch_size=` batches them; a generator or a
    `datasets.Dataset` with "audio" and "text" columns returns an iterator of results):

    - a dict `{"audio": AUDIO, "text": str}` (other keys, e.g. the columns of a `datasets` row, are ignored), where
      AUDIO is a file path, raw file bytes, a 1-D (mono) or 2-D (multi-channel) numpy array or torch tensor together
      with a `"sampling_rate"` key in the same dict, a datasets-style `{"array": ..., "sampling_rate": ...}` dict
      (or `{"path": ..., "bytes": ...}`), or a decoded `datasets` Audio value (torchcodec `AudioDecoder`).
      Any sampling rate and channel count is accepted: the processor mixes down to mono and resamples.
    - when `"text"` is missing (or the input is just AUDIO), the transcript comes from the `asr` pipeline given at
      construction (`pipeline(..., asr="org/asr-model")` or an `automatic-speech-recognition` pipeline object).
      Without one, a `ValueError` says how to provide a transcript.

    Output per utterance, a dict:

    - `"labels"`: a list of `{"label": str, "score": float}`, softmax probabilities sorted by score, highest first
      (`top_k` of them; default: every class).
    - `"uncertainty"`: `None` when the model has no distribution alignment module (DAM disabled), else a dict of
      three non-negative floats read off DAM's utterance-level Gaussians N(mu, diag(sigma^2)) in the model's shared
      `hidden_size`-dimensional space:
        * `"speech_sigma"`: mean over dimensions of the speech Gaussian's standard deviation sigma_s;
        * `"text_sigma"`: the same for the transcript's Gaussian, sigma_t;
        * `"modality_gap"`: the 2-Wasserstein distance between the two Gaussians divided by sqrt(hidden_size), i.e.
          sqrt(mean_d[(mu_s - mu_t)^2 + (sigma_s - sigma_t)^2]) — how far apart speech and transcript land.
      Larger means less certain (a broad Gaussian) or less agreement between the modalities. The values are in the
      units of the model's embedding space: they are comparable between utterances scored by the same model, not
      between models, and they are not calibrated probabilities.
    - `"transcript"`: the text that was classified (given or transcribed).

    Long recordings: a clip longer than `window_seconds` (default: the processor's `inference_window`, its own
    `window_seconds` setting or else its training cut `max_duration`) is not cut to its start but split into windows of that length overlapping by `overlap_seconds`, each cut moved to the quietest
    20 ms within the second before it (a pause rather than mid-word). Every window is classified; the result's
    `labels` and `uncertainty` are the means over windows weighted by each window's duration, and a `"segments"` list
    gives each window's `start` and `end` (seconds), `labels` and `transcript`. Each window gets its own text when
    `"text"` is a timed transcript (`[{"start": s, "end": s, "text": str}, ...]`) or the `asr` returns timestamps
    (`{"chunks": [{"timestamp": (s, e), "text"}]}`, e.g. an ASR pipeline built with `return_timestamps=True`);
    otherwise every window is classified with the whole transcript and `"segment_transcripts"` says
    `"whole-recording"` (else `"per-window"`). Windows are prepared one at a time: memory beyond the decoded audio
    does not grow with the recording's length.

    Args:
        model: an `MGCMAForEmotionClassification`. It is put in eval mode.
        processor: its `MGCMAProcessor` (loaded from the model folder by `pipeline(...)`).
        asr (`str`, `Pipeline` or callable, *optional*): transcribes audio when an input has no text. A model id or
            path builds `pipeline("automatic-speech-recognition", model=asr)`; a callable is called as
            `asr({"raw": mono_float32_array, "sampling_rate": rate})` and must return `{"text": str}` or a str.
        top_k (`int`, *optional*): number of labels returned per utterance (default all). Also a call argument.
        window_seconds (`float`, *optional*): window length for long recordings (default: the processor's
            `inference_window`; when that is None every clip is classified whole). Also a call argument.
        overlap_seconds (`float`, *optional*, defaults to 1.0): overlap of consecutive windows. Also a call argument.

    Padded batches give the same results as single utterances (the model masks padding). One exception: speech
    encoders with group-normalised convolutional features (`feat_extract_norm="group"`, e.g. wav2vec2-base)
    normalise over padding too, so for them the pipeline runs a batch's utterances one at a time.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False

    def __init__(self, *args, asr=None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                "the multimodal-emotion-recognition pipeline needs the model's MGCMAProcessor: pass `processor=` or "
                "load from a folder/repo that holds processor_config.json."
            )
        self.model.eval()  # `pipeline(model=obj)` leaves a model in whatever mode it was in
        self.asr = self._build_asr(asr)
        speech_config = self.model.config.speech_config
        self._padding_invariant = getattr(speech_config, "feat_extract_norm", "layer") != "group"
        self._min_samples = self.model.mgcma.min_speech_samples

    # -- transformers Pipeline API ---------------------------------------------------------------------------------------

    def _sanitize_parameters(self, top_k=None, window_seconds=None, overlap_seconds=None, **kwargs):
        if kwargs:
            raise TypeError(
                f"unexpected argument(s) {sorted(kwargs)} for the {TASK} pipeline; it takes `top_k`, `window_seconds`, "
                "`overlap_seconds` (and `asr`, `batch_size`, `device` at construction)."
            )
        preprocess_params, postprocess_params = {}, {}
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
                raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
            postprocess_params["top_k"] = top_k
        if window_seconds is not None:
            if isinstance(window_seconds, bool) or not isinstance(window_seconds, (int, float)) or not window_seconds > 0:
                raise ValueError(f"`window_seconds` must be positive seconds, got {window_seconds!r}.")
            preprocess_params["window_seconds"] = float(window_seconds)
        if overlap_seconds is not None:
            preprocess_params["overlap_seconds"] = float(overlap_seconds)
        return preprocess_params, {}, postprocess_params

    def __call__(self, inputs=None, **kwargs):
        """Classify one utterance (dict or audio) or a list of them. `pipe(audio=..., text=..., sampling_rate=...)`
        is accepted for a single utterance too. See the class docstring for the input and output formats."""
        if inputs is None:
            if "audio" not in kwargs:
                raise TypeError("pass an utterance, e.g. pipe({'audio': 'clip.wav', 'text': '...'}); got nothing.")
            inputs = {key: kwargs.pop(key) for key in ("audio", "text", "sampling_rate") if key in kwargs}
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        elif hasattr(inputs, "column_names") and hasattr(inputs, "__len__"):
            # a `datasets.Dataset` (rows with "audio" and "text"): streamed like a generator, results come lazily
            inputs = (row for row in inputs)
        if isinstance(inputs, list) and not inputs:
            return []
        return super().__call__(inputs, **kwargs)

    def get_inference_context(self):
        return torch.inference_mode

    def preprocess(self, inputs, window_seconds=None, overlap_seconds=DEFAULT_OVERLAP_SECONDS):
        audio, sampling_rate, text, segments = split_input(inputs)
        array, sampling_rate = decode_audio(audio, sampling_rate)
        array = checked_mono(array)  # before any transcription: the ASR gets valid audio too
        rate = self.processor.sampling_rate
        array = resample(array, sampling_rate, rate)  # windows are cut at the model's rate
        if text is None and segments is None:
            text, segments = self._transcribe(array, rate)
        check_segments_in_audio(segments, len(array) / rate)
        window_seconds = window_seconds if window_seconds is not None else self.processor.inference_window
        bounds = (
            [(0, len(array))] if window_seconds is None
            else plan_windows(array, rate, window_seconds, overlap_seconds, min_samples=self._min_samples)
        )  # fmt: skip
        recording = {"transcript": text, "segments": segments, "sampling_rate": rate}
        for index, (start, end) in enumerate(bounds):
            window = window_text(segments, text, start / rate, end / rate)
            features = self.processor(
                audio=array[start:end], text=window, sampling_rate=rate, return_tensors="pt", cut_to_max_duration=False
            )  # the windows replace the training cut
            check_length(int(features["speech_attention_mask"].sum()), self._min_samples, rate)
            features = dict(features)
            features.update(window=[(start, end)], recording=[recording], is_last=index == len(bounds) - 1)
            yield features

    def _forward(self, model_inputs):
        metadata = {key: model_inputs.pop(key) for key in ("window", "recording", "is_last")}
        batch_size = model_inputs["input_values"].shape[0]
        if batch_size > 1 and not self._padding_invariant:
            parts = [self._run_model(_unpad(model_inputs, index)) for index in range(batch_size)]
            outputs = {key: None if parts[0][key] is None else torch.cat([p[key] for p in parts]) for key in parts[0]}
        else:
            outputs = self._run_model(model_inputs)
        outputs.update(metadata)
        return outputs

    def _run_model(self, model_inputs):
        # the processor makes float32 waveforms; a model loaded in half precision (dtype=...) wants its own dtype
        model_inputs["input_values"] = model_inputs["input_values"].to(self.model.dtype)
        out = self.model(**model_inputs, return_dict=True)
        result = {"logits": out.logits}  # first key: the pipeline's un-batching reads the batch size from it
        result.update(uncertainty_statistics(out))
        return result

    def postprocess(self, model_outputs, top_k=None):
        """`model_outputs`: one entry per window of a recording (one for a clip that fits a window)."""
        recording = model_outputs[0]["recording"][0]
        # calibrated probabilities when a temperature was fitted on validation data (`calibration_temperature`)
        temperature = checked_temperature(getattr(self.model.config, "calibration_temperature", None)) or 1.0
        probabilities = [(out["logits"][0].float() / temperature).softmax(-1).numpy() for out in model_outputs]
        uncertainties = [
            None if out["speech_sigma"] is None
            else {key: float(out[key][0]) for key in ("speech_sigma", "text_sigma", "modality_gap")}
            for out in model_outputs
        ]
        return recording_result(
            probabilities,
            uncertainties,
            [out["window"][0] for out in model_outputs],
            recording["sampling_rate"],
            self.model.config.id2label,
            top_k,
            recording["transcript"],
            recording["segments"],
        )

    # -- transcription ---------------------------------------------------------------------------------------------------

    def _build_asr(self, asr):
        if asr is None or callable(asr):
            return asr
        if isinstance(asr, (str, os.PathLike)):
            from transformers import pipeline

            return pipeline("automatic-speech-recognition", model=str(asr), device=self.device)
        raise TypeError(
            f"`asr` must be a model id/path, an automatic-speech-recognition pipeline or a callable, "
            f"got {type(asr).__name__}."
        )

    def _transcribe(self, array: np.ndarray, sampling_rate: int) -> tuple[str, list | None]:
        if self.asr is None:
            raise ValueError(
                "this input has no transcript: pass {'audio': ..., 'text': '...'}, or build the pipeline with a speech "
                "recogniser, e.g. pipeline(..., asr='openai/whisper-small') (command line: --text or --asr)."
            )
        feature_extractor = getattr(self.asr, "feature_extractor", None)
        rate = getattr(feature_extractor, "sampling_rate", None) or sampling_rate
        result = self.asr({"raw": resample(array, sampling_rate, rate), "sampling_rate": rate})
        text = result.get("text") if isinstance(result, dict) else result
        if not isinstance(text, str):
            raise TypeError(f"the `asr` callable must return {{'text': str}} or a str, got {result!r:.200}.")
        return text, segments_from_asr(result, len(array) / sampling_rate)


# -- batching ----------------------------------------------------------------------------------------------------------


def _unpad(model_inputs, index):
    """Item `index` of a padded batch, cut to its own length (for encoders that are not padding-invariant)."""
    speech_length = int(model_inputs["speech_attention_mask"][index].sum())
    text_length = int(model_inputs["text_attention_mask"][index].sum())
    item = {}
    for key, value in model_inputs.items():
        length = speech_length if key in ("input_values", "speech_attention_mask") else text_length
        item[key] = value[index : index + 1, :length]
    return item


def uncertainty_statistics(outputs) -> dict:
    """Per-utterance uncertainty read off DAM's utterance Gaussians (`outputs`: a model output or a dict with
    `speech_mu`, `speech_sigma`, `text_mu`, `text_sigma`; see the class docstring), as `[batch]` float32
    tensors `speech_sigma`, `text_sigma`, `modality_gap`; all None when the model has no DAM. Also what an exported
    ONNX graph computes, so that both runtimes report the same numbers."""
    if outputs.get("speech_sigma") is None or outputs.get("text_sigma") is None:
        return {"speech_sigma": None, "text_sigma": None, "modality_gap": None}
    mu_s, sigma_s = outputs["speech_mu"].float(), outputs["speech_sigma"].float()
    mu_t, sigma_t = outputs["text_mu"].float(), outputs["text_sigma"].float()
    return {
        "speech_sigma": sigma_s.mean(-1),
        "text_sigma": sigma_t.mean(-1),
        "modality_gap": ((mu_s - mu_t).pow(2) + (sigma_s - sigma_t).pow(2)).mean(-1).sqrt(),
    }


# -- saving --------------------------------------------------------------------------------------------------------------


def custom_pipelines_entry() -> dict:
    """The `custom_pipelines` value written to config.json: what `transformers.pipeline` reads to find this class."""
    cls = MultimodalEmotionRecognitionPipeline
    return {
        TASK: {
            "impl": f"{cls.__module__.split('.')[-1]}.{cls.__name__}",
            "pt": ["AutoModelForAudioClassification"],
            "type": "multimodal",
        }
    }


def add_pipeline_to_folder(save_directory: str | os.PathLike) -> None:
    """Make a folder written by `model.save_pretrained` (and `processor.save_pretrained`) answer
    `pipeline(model=folder, trust_remote_code=True)`: adds `custom_pipelines` to its config.json and copies
    `pipeline_mgcma.py` (and the files it imports) next to it. Use on `Trainer` checkpoints or before `upload_folder`."""
    config_file = os.path.join(save_directory, "config.json")
    if not os.path.isfile(config_file):
        raise ValueError(f"{save_directory} has no config.json: save the model there first (model.save_pretrained).")
    with open(config_file, encoding="utf-8") as handle:
        config = json.load(handle)
    config["custom_pipelines"] = custom_pipelines_entry()
    with open(config_file, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    custom_object_save(MultimodalEmotionRecognitionPipeline, save_directory)
    if not os.path.isfile(os.path.join(save_directory, "processor_config.json")):
        logger.warning(
            f"{save_directory} has no processor_config.json: call processor.save_pretrained on it too, or the "
            "pipeline cannot be loaded from it."
        )


def save_for_hub(model, processor, save_directory: str | os.PathLike, **kwargs) -> None:
    """Save `model` and `processor` with their code and the pipeline's, so that the folder (or a Hub repo holding
    it) loads with `AutoModel`, `AutoModelForAudioClassification`, `AutoProcessor` and
    `pipeline(model=..., trust_remote_code=True)` where this package is not installed. `kwargs` go to
    `model.save_pretrained` (e.g. `safe_serialization`, `max_shard_size`)."""
    os.makedirs(save_directory, exist_ok=True)
    model.save_pretrained(save_directory, **kwargs)
    processor.save_pretrained(save_directory)
    add_pipeline_to_folder(save_directory)


__all__ = [
    "MultimodalEmotionRecognitionPipeline",
    "TASK",
    "add_pipeline_to_folder",
    "custom_pipelines_entry",
    "save_for_hub",
    "uncertainty_statistics",
]
