# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The `mgcma` command.

    mgcma predict --model DIR_OR_REPO clip1.wav clip2.wav --text "first transcript" --text "second transcript"
    mgcma predict --model DIR_OR_REPO --manifest utterances.csv [--audio_column audio --text_column text]

`predict` prints one JSON object per utterance on stdout (JSON lines):
`{"id", "label", "score", "scores": {label: probability, ...}, "uncertainty": {...} or null, "transcript"}`.
Exit status: 0 on success, 2 for usage errors (argparse), 1 for anything that goes wrong at run time (missing or
unreadable file, bad manifest, model that does not load), with a one-line message on stderr.
"""

import argparse
import json
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from .deploy.onnx_runtime import positive_int

    parser = argparse.ArgumentParser(
        prog="mgcma", description="MGCMA speech + text emotion recognition (Multi-Granularity Cross-Modal Alignment)."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    predict = commands.add_parser(
        "predict",
        help="classify utterances (audio + transcript) and print JSON lines",
        description=(
            "Classify utterances with a trained MGCMA model and print one JSON object per utterance: id, label, "
            "score, scores (every returned label's probability), uncertainty (DAM's speech/text sigma and the "
            "speech-text modality gap, null without DAM) and the transcript used."
        ),
    )
    predict.add_argument("--model", required=True, help="model folder or Hub repo id (org/name)")
    predict.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (default: main)")
    inputs = predict.add_argument_group("inputs (audio files, or --manifest)")
    inputs.add_argument("audio", nargs="*", metavar="AUDIO", help="audio files (WAV; FLAC/OGG/... with soundfile)")
    inputs.add_argument(
        "--text", action="append", default=None, help="transcript; give one --text per AUDIO, in the same order"
    )
    inputs.add_argument("--manifest", default=None, help="CSV (with header) or JSONL file listing utterances")
    inputs.add_argument("--audio_column", default="audio", help="manifest column of audio paths (default: audio)")
    inputs.add_argument("--text_column", default="text", help="manifest column of transcripts (default: text)")
    inputs.add_argument(
        "--id_column", default="id", help="manifest column used as id when present, else the audio file name"
    )
    predict.add_argument(
        "--asr", default=None, help="speech recognition model (folder or repo id) transcribing inputs without text"
    )
    predict.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    predict.add_argument("--batch_size", type=positive_int, default=1, help="utterances per forward pass")
    predict.add_argument("--top_k", type=positive_int, default=None, help="labels per utterance (default: all)")
    _add_deployment_options(predict)
    predict.set_defaults(handler=_predict, command_parser=predict)
    _add_export_command(commands)
    return parser


class CommandError(Exception):
    """A run-time failure reported as one line on stderr with exit status 1."""


def _read_manifest(path: str, audio_column: str, text_column: str, id_column: str, transcribe: bool = False) -> list[dict]:
    """-> [{"id", "audio", "text"}], audio paths resolved against the manifest's folder (see
    `modeling_mgcma.data.manifest_rows.manifest_items`, which an exported folder's predict.py uses too). With
    `transcribe` (an ASR model was given), a missing or empty text becomes None: the pipeline transcribes that clip."""
    from .data.manifest_rows import manifest_items

    try:
        return manifest_items(path, audio_column, text_column, id_column, transcribe=transcribe)
    except ValueError as error:
        raise CommandError(str(error)) from None


def _check_device(device: str) -> None:
    """Fail before loading anything on a device this torch cannot use."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise CommandError(f"--device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    backends = {"cuda": torch.cuda, "xpu": getattr(torch, "xpu", None), "mps": getattr(torch.backends, "mps", None)}
    if parsed.type in backends:
        backend = backends[parsed.type]
        if backend is None or not backend.is_available():
            raise CommandError(f"--device {device}: this torch build or machine has no {parsed.type.upper()} device; use --device cpu")
        count = backend.device_count() if hasattr(backend, "device_count") else 1
        if parsed.index is not None and parsed.index >= count:
            raise CommandError(f"--device {device}: only {count} {parsed.type} device(s) here (0-{count - 1})")


def _check_local_weights(folder: str) -> None:
    """A local model folder must hold whole safetensors weights: pickled weights (pytorch_model.bin) are never loaded,
    and a truncated file is named."""
    names = set(os.listdir(folder))
    weights = sorted(n for n in names if n.endswith(".safetensors"))
    if not weights:
        pickles = sorted(n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")))
        if pickles:
            raise CommandError(
                f"{folder} holds only pickled weights ({', '.join(pickles)}), which mgcma never loads (unpickling can "
                "run code); convert them to model.safetensors"
            )
        return
    from .experiments.run_records import safetensors_problem

    for name in weights:
        problem = safetensors_problem(os.path.join(folder, name))
        if problem is not None:
            raise CommandError(f"cannot load an MGCMA model from {folder!r}: {os.path.join(folder, name)}: {problem}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _checked_model_location(model: str) -> str:
    """`model` with `~` expanded; a CommandError when it looks like a path (absolute, ./, ~, or more than one /) and
    is no folder, so that a mistyped folder is not looked up as a Hub repo id."""
    looks_like_path = os.path.isabs(model) or model.startswith((".", "~")) or model.count("/") > 1
    local = os.path.expanduser(model)
    if looks_like_path and not os.path.isdir(local):
        raise CommandError(f"model folder not found: {model}")
    return local


def _load_pipeline(args):
    # The command line runs this package's own code: the classes are registered on import, so a model folder or repo
    # loads without executing code from it (no trust_remote_code).
    from transformers.utils import logging as hf_logging

    from .modeling_mgcma import MGCMAForEmotionClassification
    from .pipeline_mgcma import MultimodalEmotionRecognitionPipeline
    from .processing_mgcma import MGCMAProcessor

    hf_logging.disable_progress_bar()  # stdout carries the JSON lines; keep stderr for errors
    local = _checked_model_location(args.model)
    _check_device(args.device)
    if os.path.isdir(local):
        _check_local_weights(local)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a failed load's multi-line report would break the one-line promise
    try:
        model = MGCMAForEmotionClassification.from_pretrained(args.model, revision=args.revision, use_safetensors=True)
        processor = MGCMAProcessor.from_pretrained(args.model, revision=args.revision)
    except RuntimeError as error:
        if "mismatch" in str(error):
            raise CommandError(
                f"cannot load an MGCMA model from {args.model!r}: its weights do not fit its config.json "
                f"({_size_mismatches(args.model, args.revision) or _first_line(error)}); num_labels / id2label or the "
                "model sizes were edited after training?"
            ) from None
        raise CommandError(f"cannot load an MGCMA model from {args.model!r}: {_first_line(error)}") from None
    except Exception as error:  # OSError, ValueError, safetensors' own errors, ...
        raise CommandError(f"cannot load an MGCMA model from {args.model!r}: {_first_line(error)}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    try:
        return MultimodalEmotionRecognitionPipeline(
            model=model, processor=processor, device=args.device, asr=args.asr, batch_size=args.batch_size,
            window_seconds=args.window_seconds, overlap_seconds=args.overlap_seconds,
        )
    except (OSError, RuntimeError) as error:
        raise CommandError(f"cannot set up the pipeline on device {args.device!r}: {error}") from None


def _size_mismatches(model: str, revision: str | None) -> str:
    """"classifier.out_proj.weight: (4, 32) in the weights, (5, 32) for the config", for a local folder's
    single-file weights; "" when that cannot be told without loading."""
    import torch
    from safetensors import safe_open

    from .configuration_mgcma import MGCMAConfig
    from .modeling_mgcma import MGCMAForEmotionClassification

    path = os.path.join(os.path.expanduser(model), "model.safetensors")
    if not os.path.isfile(path):
        return ""
    try:
        config = MGCMAConfig.from_pretrained(model, revision=revision)
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in MGCMAForEmotionClassification(config).state_dict().items()}
        with safe_open(path, "pt") as handle:
            found = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    except Exception:
        return ""
    differing = [f"{k}: {found[k]} in the weights, {expected[k]} for the config" for k in sorted(found)
                 if k in expected and found[k] != expected[k]]  # fmt: skip
    return "; ".join(differing[:3])


def _check_durations(items: list[dict], pipe) -> None:
    """Name the file (and id) of a clip shorter than the speech encoder's receptive field, before any is run."""
    from .training.sampling import _header_duration

    minimum, rate = getattr(pipe, "_min_samples", None), pipe.processor.sampling_rate
    if not minimum:
        return
    for item in items:
        try:
            samples = round(_header_duration(item["audio"], None) * rate)
        except ValueError:
            continue  # unreadable headers are reported by the decoder, with the path
        if samples < minimum:
            raise CommandError(
                f"{item['audio']} (id {item['id']}) is too short: {samples} samples at {rate} Hz "
                f"({1000 * samples / rate:.1f} ms); this model's speech encoder needs at least {minimum}"
            )

# -- ONNX export and exported folders ------------------------------------------------------------------------------------


def _add_deployment_options(predict) -> None:
    from .deploy.onnx_runtime import add_runtime_arguments

    deployment = predict.add_argument_group("exported ONNX folders (--model OUT of `mgcma export`) and long recordings")
    add_runtime_arguments(deployment)


def _add_export_command(commands) -> None:
    export = commands.add_parser(
        "export",
        help="write an ONNX inference folder that runs without torch",
        description=(
            "Export a trained MGCMA classifier to an ONNX folder: model.onnx (dynamic batch, audio and token length), "
            "config.json with the labels, the processor files, a README and predict.py, which runs the folder with "
            "onnxruntime + numpy + transformers and has the options and output of `mgcma predict`."
        ),
    )
    export.add_argument("--model", required=True, help="model folder or Hub repo id (org/name)")
    export.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (default: main)")
    export.add_argument("--output", required=True, help="folder to write (must not exist or be empty)")
    export.add_argument("--quantize", choices=["int8"], default=None, help="also write an int8 graph (model_int8.onnx)")
    export.set_defaults(handler=_export, command_parser=export)


def _export(args) -> int:
    from .deploy.export import ExportError, export_from_pretrained

    model = _checked_model_location(args.model)
    try:
        paths = export_from_pretrained(model, args.output, revision=args.revision, quantize=args.quantize)
    except ExportError as error:
        raise CommandError(str(error)) from None
    print(json.dumps({"output": args.output, "graphs": paths}), flush=True)
    return 0


def _load_exported(args):
    from .deploy.onnx_runtime import ExportedFolderError, ONNXEmotionClassifier

    if args.device != "cpu":
        raise CommandError(f"an exported folder runs on ONNX Runtime's CPU provider: --device cpu, got {args.device!r}")
    if args.asr is not None:
        raise CommandError("--asr needs torch; an exported folder classifies given transcripts (--text)")
    try:
        classifier = ONNXEmotionClassifier(
            args.model, quantized=args.int8, num_threads=args.threads,
            window_seconds=args.window_seconds, overlap_seconds=args.overlap_seconds,
        )
    except ExportedFolderError as error:
        raise CommandError(str(error)) from None
    return lambda inputs, top_k=None: classifier(inputs, top_k=top_k, batch_size=args.batch_size)


def _predict(args) -> int:
    parser = args.command_parser
    if args.manifest is not None and args.audio:
        parser.error("give AUDIO files or --manifest, not both")
    if args.manifest is None and not args.audio:
        parser.error("give AUDIO files or --manifest")
    if args.manifest is not None:
        if args.text is not None:
            parser.error("--text goes with AUDIO files; a manifest has its own text column (--text_column)")
        items = _read_manifest(
            args.manifest, args.audio_column, args.text_column, args.id_column, transcribe=args.asr is not None
        )
    else:
        if args.text is None and args.asr is None:
            parser.error("give one --text per AUDIO file (or --asr MODEL to transcribe them)")
        if args.text is not None and len(args.text) != len(args.audio):
            parser.error(f"got {len(args.audio)} AUDIO file(s) but {len(args.text)} --text; give one --text per file")
        texts = args.text if args.text is not None else [None] * len(args.audio)
        for number, text in enumerate(texts, start=1):
            bad = next((c for c in text or "" if "\ud800" <= c <= "\udfff"), None)
            if bad is not None:  # bytes that were not UTF-8 on the command line arrive as lone surrogates
                raise CommandError(
                    f"--text #{number} is not valid UTF-8 text (undecodable byte 0x{ord(bad) - 0xDC00:02X} at position "
                    f"{text.index(bad)})" if "\udc80" <= bad <= "\udcff" else
                    f"--text #{number} holds a lone surrogate U+{ord(bad):04X} at position {text.index(bad)}"
                )  # fmt: skip
        items = [{"id": path, "audio": path, "text": text} for path, text in zip(args.audio, texts)]
    for item in items:  # fail before loading the model
        if not os.path.isfile(item["audio"]):
            raise CommandError(f"audio file not found: {item['audio']} (id {item['id']})")

    from .deploy.onnx_runtime import is_exported_folder

    if is_exported_folder(args.model):
        pipe = _load_exported(args)
    else:
        pipe = _load_pipeline(args)
        _check_durations(items, pipe)
    inputs = [{"audio": item["audio"]} | ({"text": item["text"]} if item["text"] is not None else {}) for item in items]
    results = pipe(inputs, top_k=args.top_k)
    for item, result in zip(items, results):
        best = result["labels"][0]
        record = {
            "id": item["id"],
            "label": best["label"],
            "score": best["score"],
            "scores": {entry["label"]: entry["score"] for entry in result["labels"]},
            "uncertainty": result["uncertainty"],
            "transcript": result["transcript"],
        }
        if "segments" in result:  # a recording longer than one window: its windows and whose text they used
            record.update(segments=result["segments"], segment_transcripts=result["segment_transcripts"])
        print(json.dumps(record, ensure_ascii=False), flush=True)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CommandError as error:
        print(f"mgcma {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError) as error:
        # Input problems raised by the pipeline/processor (unreadable audio, empty clip, ...): one line, no traceback.
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"mgcma {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mgcma {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # anything else still gets one line, with the error's type for a bug report
        print(f"mgcma {args.command}: error: {type(error).__name__}: {' '.join(_first_line(error).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
