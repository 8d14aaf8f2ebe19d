# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Run an exported MGCMA folder (written by `mgcma export`) without torch: onnxruntime + numpy + transformers'
feature extractor and tokenizer.

    from onnx_runtime import ONNXEmotionClassifier          # inside an exported folder
    from modeling_mgcma.deploy.onnx_runtime import ONNXEmotionClassifier   # with this package installed
    classifier = ONNXEmotionClassifier("mgcma-onnx")       # quantized=True for the int8 graph
    classifier({"audio": "clip.wav", "text": "I can't believe you did that!"})
    # {'labels': [{'label': 'angry', 'score': 0.71}, ...], 'uncertainty': {...}, 'transcript': "I can't ..."}

Same input forms and the same output as the `multimodal-emotion-recognition` pipeline (see `pipeline_mgcma.py`),
including long recordings cut into windows (`segments`). The exported folder's `predict.py` is this module's
command line, with the same options and JSON-lines output as `mgcma predict`.

This file is copied into every exported folder next to `inference_mgcma.py`, `processing_mgcma.py` and
`manifest_rows.py` (the manifest reader of `mgcma predict`); it imports only onnxruntime, numpy, transformers, the
standard library and those files (torch is never imported).
"""

import argparse
import json
import os
import sys

import numpy as np


try:  # inside the package
    from .. import inference_mgcma, processing_mgcma
    from ..data.manifest_rows import manifest_items
except ImportError:  # inside an exported folder, run as a script next to copies of those files
    import inference_mgcma
    import processing_mgcma
    from manifest_rows import manifest_items


EXPORT_SECTION = "onnx"  # the config.json entry written by the exporter
GRAPH_FILES = {"fp32": "model.onnx", "int8": "model_int8.onnx"}
UNCERTAINTY_OUTPUTS = ("speech_sigma", "text_sigma", "modality_gap")
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


class ExportedFolderError(ValueError):
    """An exported folder that is missing a file or was not written by `mgcma export`."""


def is_exported_folder(path) -> bool:
    """Whether `path` is a folder written by `mgcma export` (holds model.onnx and config.json)."""
    path = os.path.expanduser(str(path))
    return os.path.isfile(os.path.join(path, GRAPH_FILES["fp32"])) and os.path.isfile(os.path.join(path, "config.json"))


def read_export_config(folder) -> dict:
    """config.json of an exported folder, checked: raises `ExportedFolderError` with a one-line reason."""
    folder = os.path.expanduser(str(folder))
    if not os.path.isdir(folder):
        raise ExportedFolderError(f"exported model folder not found: {folder}")
    config_file = os.path.join(folder, "config.json")
    if not os.path.isfile(config_file):
        raise ExportedFolderError(f"{folder} has no config.json: not a folder written by `mgcma export`")
    try:
        with open(config_file, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        raise ExportedFolderError(f"cannot read {config_file}: {' '.join(str(error).split())}") from None
    section = config.get(EXPORT_SECTION) if isinstance(config, dict) else None
    if not isinstance(section, dict) or not isinstance(config.get("id2label"), dict):
        raise ExportedFolderError(
            f"{config_file} has no '{EXPORT_SECTION}' section or no id2label: not a folder written by `mgcma export`"
        )
    missing = [key for key in ("inputs", "outputs", "min_speech_samples", "padding_invariant") if key not in section]
    if missing:
        raise ExportedFolderError(f"{config_file}: the '{EXPORT_SECTION}' section lacks {missing}")
    for name in ("processor_config.json", GRAPH_FILES["fp32"]):
        if not os.path.isfile(os.path.join(folder, name)):
            raise ExportedFolderError(f"{folder} has no {name}: export the model again with `mgcma export`")
    return config


class ONNXEmotionClassifier:
    """Emotion recognition with an exported MGCMA folder, on ONNX Runtime.

    Args:
        folder: a folder written by `mgcma export`.
        quantized (`bool`): run the int8 graph (`model_int8.onnx`, written by `mgcma export --quantize int8`).
        num_threads (`int`, *optional*): ONNX Runtime intra-op threads (default: ONNX Runtime's choice).
        providers (`list`, *optional*): ONNX Runtime execution providers (default: CPU).
        asr (callable, *optional*): transcribes inputs without text, called as
            `asr({"raw": mono_float32_array, "sampling_rate": rate})`, returning `{"text": str}` or a str.
        window_seconds (`float`, *optional*): window length for long recordings (default: the processor's
            `inference_window`; when that is None every clip is classified whole).
        overlap_seconds (`float`): overlap between consecutive windows.
    """

    def __init__(
        self,
        folder,
        quantized: bool = False,
        num_threads: int | None = None,
        providers=None,
        asr=None,
        window_seconds: float | None = None,
        overlap_seconds: float = inference_mgcma.DEFAULT_OVERLAP_SECONDS,
    ):
        import onnxruntime

        folder = os.path.expanduser(str(folder))
        self.config = read_export_config(folder)
        section = self.config[EXPORT_SECTION]
        graph = os.path.join(folder, GRAPH_FILES["int8" if quantized else "fp32"])
        if not os.path.isfile(graph):
            raise ExportedFolderError(
                f"{folder} has no {os.path.basename(graph)}: export with `mgcma export --quantize int8` for the int8 "
                "graph"
            )
        try:
            self.processor = processing_mgcma.MGCMAProcessor.from_pretrained(folder)
        except (OSError, ValueError, TypeError) as error:
            raise ExportedFolderError(f"cannot load the processor from {folder}: {_first_line(error)}") from None
        try:
            self.session = onnxruntime.InferenceSession(
                graph, session_options(num_threads), providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ExportedFolderError(f"ONNX Runtime cannot load {graph}: {_first_line(error)}") from None
        self.input_types = {node.name: _NUMPY_TYPES[node.type] for node in self.session.get_inputs()}
        self.input_names = list(self.input_types)
        self.output_names = [node.name for node in self.session.get_outputs()]
        self.id2label = {int(key): value for key, value in self.config["id2label"].items()}
        try:  # the model's fitted temperature (its config travels in config.json): calibrated probabilities
            self.temperature = inference_mgcma.checked_temperature(self.config.get("calibration_temperature"))
        except ValueError as error:
            raise ExportedFolderError(f"{folder}/config.json: {error}") from None
        self.min_samples = int(section["min_speech_samples"])
        self.padding_invariant = bool(section["padding_invariant"])
        self.asr = asr
        self.window_seconds = window_seconds if window_seconds is not None else self.processor.inference_window
        self.overlap_seconds = overlap_seconds
        self.sampling_rate = self.processor.sampling_rate

    # -- the pipeline's interface ----------------------------------------------------------------------------------------

    def __call__(self, inputs, top_k: int | None = None, batch_size: int = 1):
        """One utterance -> one result dict; a list (or any iterable that is not a dict/str) -> a list of them."""
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
        if isinstance(inputs, (dict, str, os.PathLike, bytes, bytearray)):
            return self._classify([inputs], top_k, batch_size)[0]
        return self._classify(list(inputs), top_k, batch_size)

    def _classify(self, inputs, top_k, batch_size):
        results, pending = [], []  # pending: (result index, window index, array, text) of short clips to batch

        def flush():
            outputs = self._run([item[2] for item in pending], [item[3] for item in pending])
            for (index, window, _, _), row in zip(pending, outputs):
                results[index]["windows"][window] = row
            pending.clear()

        for item in inputs:
            audio, sampling_rate, text, segments = inference_mgcma.split_input(item)
            array, sampling_rate = processing_mgcma.decode_audio(audio, sampling_rate)
            array = processing_mgcma.checked_mono(array)
            array = processing_mgcma.resample(array, sampling_rate, self.sampling_rate)
            transcript = text
            if transcript is None and segments is None:
                transcript, segments = self._transcribe(array)
            inference_mgcma.check_segments_in_audio(segments, len(array) / self.sampling_rate)
            bounds = self._windows(array)
            result = {"transcript": transcript, "segments": segments, "bounds": bounds, "windows": [None] * len(bounds)}
            results.append(result)
            for window, (start, end) in enumerate(bounds):
                inference_mgcma.check_length(end - start, self.min_samples, self.sampling_rate)
                rate = self.sampling_rate
                text = inference_mgcma.window_text(segments, transcript, start / rate, end / rate)
                pending.append((len(results) - 1, window, array[start:end], text))
                if len(pending) >= batch_size:
                    flush()
        if pending:
            flush()
        return [self._format(result, top_k) for result in results]

    def _windows(self, array):
        if self.window_seconds is None:
            return [(0, len(array))]
        return inference_mgcma.plan_windows(array, self.sampling_rate, self.window_seconds, self.overlap_seconds,
                                            min_samples=self.min_samples)  # fmt: skip

    def _run(self, clips, texts) -> list[dict]:
        """Clips (mono, model rate) + texts -> one dict of numpy outputs per clip."""
        if len(clips) > 1 and not self.padding_invariant:
            # group-normalised conv features normalise over padding: one clip at a time, as the pipeline does
            return [row for clip, text in zip(clips, texts) for row in self._run([clip], [text])]
        features = self.processor(
            audio=clips, text=texts, sampling_rate=self.sampling_rate, return_tensors="np", cut_to_max_duration=False
        )  # the windows replace the training cut
        feed = {name: np.asarray(features[name]).astype(dtype, copy=False) for name, dtype in self.input_types.items()}
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, feed)))
        return [{name: value[index] for name, value in outputs.items()} for index in range(len(clips))]

    def _format(self, result, top_k) -> dict:
        windows = result["windows"]
        return inference_mgcma.recording_result(
            [inference_mgcma.softmax(window["logits"], self.temperature) for window in windows],
            [_uncertainty(window) for window in windows],
            result["bounds"],
            self.sampling_rate,
            self.id2label,
            top_k,
            result["transcript"],
            result["segments"],
        )

    def _transcribe(self, array) -> str:
        if self.asr is None:
            raise ValueError(
                "this input has no transcript: pass {'audio': ..., 'text': '...'} or build the classifier with an "
                "`asr` callable (command line: --text)."
            )
        result = self.asr({"raw": array, "sampling_rate": self.sampling_rate})
        text = result.get("text") if isinstance(result, dict) else result
        if not isinstance(text, str):
            raise TypeError(f"the `asr` callable must return {{'text': str}} or a str, got {result!r:.200}.")
        return text, inference_mgcma.segments_from_asr(result, len(array) / self.sampling_rate)


def session_options(num_threads: int | None = None):
    """ONNX Runtime session options of this runtime: all graph optimisations (ONNX Runtime's default level, which
    already fuses LayerNorm, GELU and MatMul + bias), operators run one after another, `num_threads` intra-op threads
    (default: ONNX Runtime's choice, one per physical core)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    return options


def _uncertainty(window):
    if not all(name in window for name in UNCERTAINTY_OUTPUTS):
        return None
    return {name: float(window[name]) for name in UNCERTAINTY_OUTPUTS}


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- command line (predict.py of an exported folder) --------------------------------------------------------------------


def build_parser(default_model: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description=(
            "Classify utterances with an exported MGCMA model on ONNX Runtime (no torch) and print one JSON object per "
            "utterance: id, label, score, scores, uncertainty, transcript (the options and output of `mgcma predict`)."
        ),
    )
    parser.add_argument(
        "--model", default=default_model, required=default_model is None,
        help="exported folder (default: the folder this script is in)",
    )
    inputs = parser.add_argument_group("inputs (audio files, or --manifest)")
    inputs.add_argument("audio", nargs="*", metavar="AUDIO", help="audio files (WAV; FLAC/OGG/... with soundfile)")
    inputs.add_argument("--text", action="append", default=None, help="transcript; one --text per AUDIO, in order")
    inputs.add_argument("--manifest", default=None, help="CSV (with header) or JSONL file listing utterances")
    inputs.add_argument("--audio_column", default="audio", help="manifest column of audio paths (default: audio)")
    inputs.add_argument("--text_column", default="text", help="manifest column of transcripts (default: text)")
    inputs.add_argument("--id_column", default="id", help="manifest column used as id when present, else the file name")
    parser.add_argument("--device", default="cpu", help="only cpu (ONNX Runtime's CPU provider)")
    parser.add_argument("--batch_size", type=positive_int, default=1, help="utterances per run of the graph")
    parser.add_argument("--top_k", type=positive_int, default=None, help="labels per utterance (default: all)")
    add_runtime_arguments(parser)
    return parser


def add_runtime_arguments(parser) -> None:
    """Options of the ONNX runtime (also offered by `mgcma predict` for an exported folder)."""
    parser.add_argument("--int8", action="store_true", help="run the int8 graph (exported with --quantize int8)")
    parser.add_argument("--threads", type=positive_int, default=None, help="ONNX Runtime threads")
    parser.add_argument(
        "--window_seconds", type=_positive_float, default=None,
        help="cut longer recordings into windows of this length (default: the processor's window_seconds, else its "
             "max_duration)",
    )
    parser.add_argument(
        "--overlap_seconds", type=float, default=inference_mgcma.DEFAULT_OVERLAP_SECONDS,
        help="overlap between windows (seconds)",
    )


def positive_int(value: str) -> int:
    """argparse type for a count: an integer >= 1 (the command line of the package and of an exported folder)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive seconds, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected positive seconds, got {value!r}")
    return number


def read_manifest(path, audio_column="audio", text_column="text", id_column="id") -> list[dict]:
    """A CSV (with header) or JSONL manifest -> `[{"id", "audio", "text"}]`, paths resolved against its folder: the
    strict reader of `mgcma predict` (manifest_rows.py, copied into every exported folder). Raises `ValueError`
    naming the file and line of a bad row."""
    return manifest_items(path, audio_column, text_column, id_column)


def prediction_record(identifier, result) -> dict:
    """One JSON line of `predict`: id, label, score, scores, uncertainty, transcript (+ segments of a long input)."""
    best = result["labels"][0]
    record = {
        "id": identifier,
        "label": best["label"],
        "score": best["score"],
        "scores": {entry["label"]: entry["score"] for entry in result["labels"]},
        "uncertainty": result["uncertainty"],
        "transcript": result["transcript"],
    }
    if "segments" in result:
        record["segments"] = result["segments"]
        record["segment_transcripts"] = result["segment_transcripts"]
    return record


def main(argv=None, default_model: str | None = None) -> int:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # stderr carries this command's own one-line errors
    parser = build_parser(default_model)
    args = parser.parse_args(argv)
    if args.manifest is not None and args.audio:
        parser.error("give AUDIO files or --manifest, not both")
    if args.manifest is None and not args.audio:
        parser.error("give AUDIO files or --manifest")
    if args.manifest is None and (args.text is None or len(args.text) != len(args.audio)):
        parser.error(f"got {len(args.audio)} AUDIO file(s) but {len(args.text or [])} --text; give one --text per file")
    if args.manifest is not None and args.text is not None:
        parser.error("--text goes with AUDIO files; a manifest has its own text column (--text_column)")
    if args.device != "cpu":
        parser.error(f"the exported model runs on ONNX Runtime's CPU provider: --device cpu, got {args.device!r}")
    try:
        if args.manifest is not None:
            items = read_manifest(args.manifest, args.audio_column, args.text_column, args.id_column)
        else:
            items = [{"id": path, "audio": path, "text": text} for path, text in zip(args.audio, args.text)]
        for item in items:
            if not os.path.isfile(item["audio"]):
                raise ValueError(f"audio file not found: {item['audio']} (id {item['id']})")
        classifier = ONNXEmotionClassifier(
            args.model, quantized=args.int8, num_threads=args.threads,
            window_seconds=args.window_seconds, overlap_seconds=args.overlap_seconds,
        )
        results = classifier([{"audio": i["audio"], "text": i["text"]} for i in items], args.top_k, args.batch_size)
    except (ValueError, TypeError, OSError) as error:
        print(f"predict: error: {' '.join(str(error).split()) or type(error).__name__}", file=sys.stderr)
        return 1
    for item, result in zip(items, results):
        print(json.dumps(prediction_record(item["id"], result), ensure_ascii=False), flush=True)
    return 0


__all__ = [
    "ExportedFolderError",
    "GRAPH_FILES",
    "ONNXEmotionClassifier",
    "is_exported_folder",
    "main",
    "prediction_record",
    "read_export_config",
    "read_manifest",
    "session_options",
]
