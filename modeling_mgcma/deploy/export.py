# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Export of the emotion classifier for deployment: `torch.export` with a dynamic batch, audio length and token length.

    from modeling_mgcma.deploy.export import export_classifier
    program = export_classifier(model, processor(audio=clips, text=transcripts))
    logits, *rest = program.module()(input_values, speech_attention_mask, input_ids, text_attention_mask)

`MGCMAExportWrapper` is the form every graph exporter takes (positional tensors in, a tuple of tensors out, eval mode);
an ONNX export starts from the same wrapper and the same dynamic dimensions (`dynamic_shapes`).

ONNX: an inference folder that runs without torch (`mgcma export`).

    from modeling_mgcma.deploy.export import export_onnx
    export_onnx(model, processor, "mgcma-onnx", quantize="int8")
    # mgcma export --model DIR_OR_REPO --output mgcma-onnx --quantize int8

The folder holds:
- `model.onnx`: the classifier, inputs `input_values` [batch, samples], `speech_attention_mask` [batch, samples],
  `input_ids`, `text_attention_mask` [batch, tokens] (`EXPORT_INPUT_NAMES`; one-segment token type ids are the text
  encoder's default), every axis dynamic; outputs `logits` [batch, labels] and, when the model has DAM,
  `speech_sigma`, `text_sigma`, `modality_gap` [batch] (the pipeline's uncertainty).
- `model_int8.onnx` with `quantize="int8"`: ONNX Runtime dynamic quantisation (int8 weights of the speech stream's
  MatMuls, activations quantised per call; the text stream, convolutions, norms and attention products stay
  float32); see `quantize_int8` and `INT8_KEEP_FLOAT`.
- `config.json` (labels, the model's configuration, and an `onnx` section: inputs, outputs, opset, the shortest clip
  the speech encoder accepts, whether batches may be padded), the processor files, `README.md`;
- `predict.py`, `onnx_runtime.py`, `inference_mgcma.py`, `processing_mgcma.py`: the torch-free runtime and its
  command line (`python predict.py clip.wav --text "..."`).

Opset 17: the first opset with a `LayerNormalization` operator (one fused kernel instead of seven primitive ops for
each of the encoders' and alignment blocks' norms); every operator the graph needs exists there, and ONNX Runtime
runs it from version 1.12 on.

Every export is checked before it is written out: the graph's logits and uncertainty must equal eager float32
within 1e-4 on an unpadded clip and on a padded batch; otherwise the export fails with the difference.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import re
import shutil
import tempfile
import warnings

import numpy as np
import torch
from torch import nn
from torch.export import Dim

from ..modeling_mgcma import MGCMAForEmotionClassification
from ..pipeline_mgcma import uncertainty_statistics
from .fast_inference import convolutions_as_matmuls
from .onnx_runtime import EXPORT_SECTION, GRAPH_FILES, UNCERTAINTY_OUTPUTS, _first_line, session_options


EXPORT_INPUT_NAMES = ("input_values", "speech_attention_mask", "input_ids", "text_attention_mask")


class MGCMAExportWrapper(nn.Module):
    """An `MGCMAForEmotionClassification` in eval mode behind a positional signature, returning a tuple of tensors
    named by `output_names`: the logits, the pooled speech and text features, and (with DAM) the utterance Gaussians
    that the pipeline's uncertainty figures come from."""

    def __init__(self, model: MGCMAForEmotionClassification):
        super().__init__()
        if not isinstance(model, MGCMAForEmotionClassification):
            raise ValueError(f"expected an MGCMAForEmotionClassification, got {type(model).__name__}.")
        self.model = model.eval()
        self.output_names = ("logits", "speech_embeds", "text_embeds")
        if model.config.use_distribution_alignment:
            self.output_names += ("speech_mu", "speech_sigma", "text_mu", "text_sigma")

    def forward(self, input_values, speech_attention_mask, input_ids, text_attention_mask):
        outputs = self.model(
            input_values=input_values,
            speech_attention_mask=speech_attention_mask,
            input_ids=input_ids,
            text_attention_mask=text_attention_mask,
            return_dict=True,
        )
        return tuple(outputs[name] for name in self.output_names)

    def train(self, mode: bool = True):
        return super().train(False)  # an inference graph: dropout stays off


def dynamic_shapes() -> dict:
    """Batch, audio length and token length of the four inputs as dynamic dimensions; their ranges are inferred from
    the model while tracing (e.g. the text encoder's maximum number of positions)."""
    batch, samples, tokens = Dim.AUTO, Dim.AUTO, Dim.AUTO
    return {
        "input_values": {0: batch, 1: samples},
        "speech_attention_mask": {0: batch, 1: samples},
        "input_ids": {0: batch, 1: tokens},
        "text_attention_mask": {0: batch, 1: tokens},
    }


def export_classifier(model: MGCMAForEmotionClassification, example_inputs) -> torch.export.ExportedProgram:
    """`torch.export.export` of the classifier for inference, dynamic in batch, audio length and token length.

    Args:
        model: the classifier (switched to eval mode).
        example_inputs: a processor output (or dict) with the four inputs of `EXPORT_INPUT_NAMES`; use more than one
            utterance and utterances of different lengths, so that no dimension is specialised to 1 or to equal sizes.
    """
    missing = [name for name in EXPORT_INPUT_NAMES if name not in example_inputs]
    if missing:
        raise ValueError(f"`example_inputs` lacks {missing}; it has {sorted(example_inputs)}.")
    args = tuple(example_inputs[name] for name in EXPORT_INPUT_NAMES)
    return torch.export.export(MGCMAExportWrapper(model), args, dynamic_shapes=dynamic_shapes())



# -- ONNX --------------------------------------------------------------------------------------------------------------


OPSET = 17
TOLERANCE = 1e-4
QUANTIZATION_METHODS = ("int8",)
# The parts whose MatMuls stay float32 in the int8 graph (see `quantize_int8`): the text stream, i.e. every layer
# whose rows are text tokens. A dozen tokens against a 5 s clip's 250 speech frames: ~5 % of the arithmetic, but a
# third of int8's logit error (benchmarks/README.md). The text-to-speech cross-attention's key/value projection reads
# speech frames and is quantised.
INT8_KEEP_FLOAT: tuple[str, ...] = (
    "mgcma.text_encoder",
    "mgcma.token_alignment.layers.*.text_self_attention",
    "mgcma.token_alignment.layers.*.text_cross_attention.attention.q_proj",
    "mgcma.token_alignment.layers.*.text_cross_attention.attention.out_proj",
    "mgcma.token_alignment.layers.*.text_feed_forward",
    "mgcma.distribution_alignment.text_constructor",
)
RUNTIME_FILES = ("onnx_runtime.py", "inference_mgcma.py", "processing_mgcma.py", "manifest_rows.py")


class ExportError(ValueError):
    """What cannot be exported, or an export whose graph does not reproduce the model."""


class ONNXExportWrapper(MGCMAExportWrapper):
    """What the ONNX graph computes: the four inputs -> `logits` and, with DAM, the pipeline's per-utterance
    uncertainty (`speech_sigma`, `text_sigma`, `modality_gap`, see `uncertainty_statistics`) instead of the full
    Gaussians, so that both runtimes report the same numbers from the same formula."""

    def __init__(self, model: MGCMAForEmotionClassification):
        super().__init__(model)
        self.has_uncertainty = model.config.use_distribution_alignment
        self.onnx_output_names = ("logits", *(UNCERTAINTY_OUTPUTS if self.has_uncertainty else ()))

    def forward(self, input_values, speech_attention_mask, input_ids, text_attention_mask):
        named = dict(zip(self.output_names, super().forward(
            input_values, speech_attention_mask, input_ids, text_attention_mask)))
        statistics = uncertainty_statistics(named)
        return (named["logits"], *(statistics[name] for name in self.onnx_output_names[1:]))


def example_inputs(model, processor, batch: int, seed: int = 0, shortest_seconds: float = 0.5) -> dict:
    """`batch` random clips of different lengths (the first the longest) and transcripts of different lengths."""
    rng = np.random.default_rng(seed)
    rate = processor.sampling_rate
    shortest = max(int(shortest_seconds * rate), model.mgcma.min_speech_samples)
    clips = [rng.standard_normal(shortest + (batch - i) * rate // 4).astype(np.float32) * 0.1 for i in range(batch)]
    words = ["hello", "there", "what", "a", "day", "it", "has", "been", "today"]
    texts = [" ".join(words[: max(1, len(words) - 3 * i)]) for i in range(batch)]
    features = processor(audio=clips, text=texts, sampling_rate=rate, return_tensors="pt")
    return {name: features[name] for name in EXPORT_INPUT_NAMES}  # token_type_ids: all zeros, BERT's default


def _check_exportable(model, processor, quantize):
    if not isinstance(model, MGCMAForEmotionClassification):
        raise ExportError(
            f"only an MGCMAForEmotionClassification (encoders, alignment and classifier) can be exported, got a "
            f"{type(model).__name__}"
        )
    if processor is None:
        raise ExportError("the model's processor is needed (processor_config.json next to the weights)")
    if quantize not in (None, *QUANTIZATION_METHODS):
        raise ExportError(f"--quantize must be one of {QUANTIZATION_METHODS}, got {quantize!r}")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ExportError("export a float32 model (load it without dtype=...); the graph is written in float32")


def _run_graph(path: str, inputs: dict) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(
        path, session_options(torch.get_num_threads()), providers=["CPUExecutionProvider"]
    )
    names = {node.name for node in session.get_inputs()}
    return session.run(None, {k: v.numpy() for k, v in inputs.items() if k in names})


def _verify(wrapper, path, model, processor):
    """The graph against eager float32 on one unpadded clip and (padding-invariant encoders) a padded batch."""
    checks = [example_inputs(model, processor, 1, seed=1)]
    if _padding_invariant(model):
        checks.append(example_inputs(model, processor, 3, seed=2))
    for inputs in checks:
        with torch.inference_mode():
            reference = [t.float().numpy() for t in wrapper(*inputs.values())]
        produced = _run_graph(path, inputs)
        for name, expected, got in zip(["logits", *UNCERTAINTY_OUTPUTS], reference, produced):
            error = float(np.abs(expected - got).max())
            if not error <= TOLERANCE:
                raise ExportError(
                    f"the exported graph's {name} differ from the model's by {error:.2e} (> {TOLERANCE}) on a batch of "
                    f"{len(expected)}: this model cannot be exported faithfully"
                )


def _padding_invariant(model) -> bool:
    return getattr(model.config.speech_config, "feat_extract_norm", "layer") != "group"


def quantize_int8(source: str, target: str, keep_float: tuple[str, ...] = (), strict: bool = True) -> int:
    """ONNX Runtime dynamic quantisation: int8 weights for MatMul (per output channel), uint8 activations quantised
    per call; convolutions, norms and attention products stay float32. Returns the number of MatMuls quantised.

    Args:
        keep_float: module paths (e.g. `"mgcma.text_encoder"`, `"mgcma.token_alignment.layers.*.text_feed_forward"`,
            `*` for any layer) whose MatMuls stay float32: quantising fewer parts trades speed for agreement with
            float32. Default of the export: `INT8_KEEP_FLOAT`.
        strict: refuse a `keep_float` path that names no MatMul (the export's default list is not strict: a model
            without DAM, say, has no `distribution_alignment`).

    Weights use 7 of their 8 bits (`reduce_range`): CPUs without VNNI (AVX2, AVX-512 without VNNI) multiply uint8 by
    int8 in pairs summed into int16, which saturates with full-range weights and costs top-1 agreement with
    float32 (`tests/test_export.py` checks the agreement of the 7-bit graph)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    matmuls = [node.name for node in onnx.load(source, load_external_data=False).graph.node if node.op_type == "MatMul"]
    # torch.onnx names nodes after their module's path: "/model/mgcma/token_alignment/layers.0/.../MatMul"
    patterns = {path: re.sub(r"/(\d+|\*)/", r".\1/", "/model/" + path.strip(".").replace(".", "/") + "/") + "*"
                for path in keep_float}
    excluded = {path: fnmatch.filter(matmuls, pattern) for path, pattern in patterns.items()}
    unmatched = [path for path, names in excluded.items() if not names]
    if unmatched and strict:
        raise ExportError(f"keep_float: no MatMul inside {unmatched}; give module paths such as 'mgcma.text_encoder'")
    excluded = sorted({name for names in excluded.values() for name in names})
    logging.disable(logging.WARNING)  # its advice to pre-process the graph is for static (calibrated) quantisation
    try:
        quantize_dynamic(
            source, target, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
            op_types_to_quantize=["MatMul"], nodes_to_exclude=excluded,
        )
    finally:
        logging.disable(logging.NOTSET)
    quantised = ("MatMulInteger", "DynamicQuantizeMatMul")
    return sum(node.op_type in quantised for node in onnx.load(target, load_external_data=False).graph.node)


def export_onnx(
    model: MGCMAForEmotionClassification,
    processor,
    output_dir: str | os.PathLike,
    quantize: str | None = None,
    opset: int = OPSET,
    keep_float: tuple[str, ...] | None = None,
    quantize_convolutions: bool = False,
) -> dict:
    """Write the ONNX inference folder for `model` + `processor` into `output_dir` (which must not exist or be
    empty). Returns `{"fp32": path[, "int8": path]}`. Raises `ExportError` with a one-line reason.

    With `quantize="int8"`: `keep_float` lists the module paths whose MatMuls stay float32 (default
    `INT8_KEEP_FLOAT`, see `quantize_int8`); `quantize_convolutions=True` writes the speech feature encoder's
    convolutions as MatMuls (`ConvAsLinear`), so that they are quantised too (faster, less faithful)."""
    _check_exportable(model, processor, quantize)
    if quantize is None and (keep_float is not None or quantize_convolutions):
        raise ExportError("keep_float and quantize_convolutions apply to the int8 graph: pass quantize='int8'")
    output_dir = os.path.expanduser(str(output_dir))
    if os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise ExportError(f"{output_dir} exists and is not an empty folder; choose a new --output")
    model = model.eval()
    sample = example_inputs(model, processor, 2)
    input_names = list(EXPORT_INPUT_NAMES)
    wrapper = ONNXExportWrapper(model)  # always in eval mode, also after the exporter restores its mode
    output_names = list(wrapper.onnx_output_names)
    axes = {
        name: {0: "batch", 1: "samples" if name in ("input_values", "speech_attention_mask") else "tokens"}
        for name in input_names
    }
    axes.update({name: {0: "batch"} for name in output_names})
    staging = tempfile.mkdtemp(prefix=".mgcma-export-", dir=os.path.dirname(os.path.abspath(output_dir)) or ".")
    try:
        graph = os.path.join(staging, GRAPH_FILES["fp32"])
        try:
            speech_encoder = model.mgcma.speech_encoder
            rewrite = convolutions_as_matmuls(speech_encoder) if quantize_convolutions else contextlib.nullcontext()
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), rewrite:
                warnings.simplefilter("ignore")  # tracer warnings about the eager-only input checks
                torch.onnx.export(
                    wrapper, tuple(sample.values()), graph, input_names=input_names, output_names=output_names,
                    dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True,
                )
        except Exception as error:  # noqa: BLE001 - the exporter raises many types; reported as one line
            raise ExportError(f"torch.onnx could not export this model: {_first_line(error)}") from None
        _verify(wrapper, graph, model, processor)
        paths, keep = {"fp32": GRAPH_FILES["fp32"]}, None
        if quantize == "int8":
            keep = INT8_KEEP_FLOAT if keep_float is None else tuple(keep_float)
            quantize_int8(graph, os.path.join(staging, GRAPH_FILES["int8"]), keep, strict=keep_float is not None)
            paths["int8"] = GRAPH_FILES["int8"]
        processor.save_pretrained(staging)
        _write_config(model, processor, staging, input_names, output_names, opset, paths, keep, quantize_convolutions)
        _write_runtime(staging)
        _write_readme(model, staging, input_names, output_names, opset, paths)
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)
        os.replace(staging, output_dir)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return {kind: os.path.join(output_dir, name) for kind, name in paths.items()}


def _write_config(model, processor, folder, input_names, output_names, opset, paths, keep_float, convolutions):
    import onnxruntime
    import transformers

    config = model.config.to_dict()
    for key in ("auto_map", "custom_pipelines"):  # no torch code ships in this folder
        config.pop(key, None)
    config[EXPORT_SECTION] = {
        "graphs": paths,
        "opset": opset,
        "inputs": input_names,
        "outputs": output_names,
        "min_speech_samples": model.mgcma.min_speech_samples,
        "padding_invariant": _padding_invariant(model),
        "sampling_rate": processor.sampling_rate,
        # the int8 graph's float32 parts (module paths) and whether its feature-encoder convolutions are quantised
        **({"int8_keep_float": list(keep_float), "int8_convolutions": convolutions} if keep_float is not None else {}),
        "exported_with": {"torch": torch.__version__, "transformers": transformers.__version__,
                          "onnxruntime": onnxruntime.__version__},
    }
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        handle.write(json.dumps(config, indent=2, sort_keys=True) + "\n")


_PREDICT_SCRIPT = '''\
#!/usr/bin/env python3
# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Classify utterances with the ONNX model in this folder; needs onnxruntime, numpy and transformers (no torch).

    python predict.py clip1.wav clip2.wav --text "first transcript" --text "second transcript"
    python predict.py --manifest utterances.csv        # or .jsonl; --audio_column --text_column --id_column
    python predict.py --int8 clip.wav --text "..."     # the int8 graph, when exported with --quantize int8

One JSON line per utterance: id, label, score, scores, uncertainty, transcript (as `mgcma predict`).
"""

import os
import sys


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# running without torch is the point here: transformers' "PyTorch was not found" advice would only add noise to stderr
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from onnx_runtime import main  # noqa: E402


if __name__ == "__main__":
    sys.exit(main(default_model=HERE))
'''


def _write_runtime(folder):
    deploy = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(deploy)  # the Hub files sit at the package root, the runtime in this wing
    from ..data import manifest_rows  # standard library only: the reader `mgcma predict` uses

    data_folder = os.path.dirname(os.path.abspath(manifest_rows.__file__))
    for name in RUNTIME_FILES:
        # this wing, the package root (Hub files) or the data package (manifest_rows.py, the manifest reader)
        candidates = [os.path.join(deploy, name), os.path.join(package, name), os.path.join(data_folder, name)]
        source = next((path for path in candidates if os.path.exists(path)), candidates[0])
        shutil.copyfile(source, os.path.join(folder, name))  # exported folders stay flat
    with open(os.path.join(folder, "predict.py"), "w", encoding="utf-8") as handle:
        handle.write(_PREDICT_SCRIPT)


def _write_readme(model, folder, input_names, output_names, opset, paths):
    labels = ", ".join(model.config.id2label[i] for i in sorted(model.config.id2label))
    int8 = (
        f"- `{GRAPH_FILES['int8']}`: the same graph with int8 MatMul weights (ONNX Runtime dynamic quantisation; "
        "the layers that read text tokens stay float32); `--int8` selects it.\n" if "int8" in paths else ""
    )
    text = f"""# MGCMA emotion classifier (ONNX)

Speech + transcript emotion recognition ({labels}), exported from an MGCMA model with `mgcma export`.
Runs with `onnxruntime`, `numpy` and `transformers` only (no torch):

```bash
pip install onnxruntime numpy transformers
python predict.py clip.wav --text "I can't believe you did that!"
python predict.py --manifest utterances.csv --batch_size 8
```

```python
from onnx_runtime import ONNXEmotionClassifier   # from this folder
classifier = ONNXEmotionClassifier(".")
classifier({{"audio": "clip.wav", "text": "I can't believe you did that!"}})
```

Output per utterance: `labels` (softmax probabilities, highest first), `uncertainty` (DAM's speech/text sigma and
the speech-text modality gap; null without DAM), `transcript`. Recordings longer than the processor's
inference window (`window_seconds` in `processor_config.json`, else its training cut `max_duration`) are cut into
windows at quiet points and also get `segments` (`start`, `end`, `labels` per window).

Files:
- `{GRAPH_FILES['fp32']}`: ONNX opset {opset}, inputs {", ".join(f"`{n}`" for n in input_names)}; outputs
  {", ".join(f"`{n}`" for n in output_names)}; batch, audio length and token length are dynamic.
{int8}- `config.json`: labels, the model's configuration and the export's settings (`onnx`);
- processor files (feature extractor and tokenizer settings);
- `predict.py`, `onnx_runtime.py`, `inference_mgcma.py`, `processing_mgcma.py`: the runtime.
"""
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as handle:
        handle.write(text)


def export_from_pretrained(model_id: str, output_dir, revision: str | None = None, quantize: str | None = None):
    """Load an MGCMA model folder or Hub repo with its processor and export it (see `export_onnx`)."""
    from ..processing_mgcma import MGCMAProcessor

    try:
        model = MGCMAForEmotionClassification.from_pretrained(model_id, revision=revision)
    except (OSError, ValueError) as error:
        raise ExportError(f"cannot load an MGCMA classifier from {model_id!r}: {_first_line(error)}") from None
    architectures = getattr(model.config, "architectures", None) or []
    if architectures and "MGCMAForEmotionClassification" not in architectures:
        raise ExportError(
            f"{model_id!r} holds a {architectures[0]} without the emotion classifier; export a model trained with "
            "MGCMAForEmotionClassification"
        )
    try:
        processor = MGCMAProcessor.from_pretrained(model_id, revision=revision)
    except (OSError, ValueError, TypeError) as error:
        raise ExportError(f"cannot load the processor of {model_id!r}: {_first_line(error)}") from None
    return export_onnx(model, processor, output_dir, quantize=quantize)


__all__ = [
    "EXPORT_INPUT_NAMES",
    "ExportError",
    "MGCMAExportWrapper",
    "ONNXExportWrapper",
    "INT8_KEEP_FLOAT",
    "OPSET",
    "dynamic_shapes",
    "export_classifier",
    "export_from_pretrained",
    "export_onnx",
    "quantize_int8",
]
