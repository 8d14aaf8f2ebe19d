# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""`mgcma export` -> an ONNX folder whose `predict.py` runs without torch and answers as the eager model does."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
import torch
from hidden_package import PRELUDE as HIDE_PACKAGE
from test_fast_inference import trained  # noqa: F401 - a briefly trained demo model (module fixture)

from modeling_mgcma import MGCMAForEmotionClassification, MultimodalEmotionRecognitionPipeline, save_for_hub
from modeling_mgcma.cli import main
from modeling_mgcma.deploy.export import ExportError, export_onnx
from modeling_mgcma.deploy.onnx_runtime import ONNXEmotionClassifier
from modeling_mgcma.training.from_scratch import small_config, speech_encoder_config, word_processor


onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = ["i", "am", "so", "happy", "sad", "angry", "today", "fine"]
TEXTS = {"a.wav": "i am so happy today", "b.wav": "sad", "c.wav": "i am angry"}

# torch cannot be found (find_spec("torch") is None, `import torch` raises ModuleNotFoundError), as where it is not
# installed: the path finder is wrapped so that it never finds these packages. modeling_mgcma is hidden too.
WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib.machinery, sys

    class _WithoutTorch(importlib.machinery.PathFinder):
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name.partition(".")[0] in ("torch", "torchaudio", "torchvision", "torchcodec"):
                return None
            return super().find_spec(name, path, target)

    sys.meta_path[:] = [_WithoutTorch if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("torch is still importable")
    """
) + HIDE_PACKAGE


def run_predict_without_torch(folder, args, cwd):
    """`python OUT/predict.py ARGS` in a process where torch cannot be imported -> (status, records, stderr)."""
    script = WITHOUT_TORCH + textwrap.dedent(
        f"""
        import runpy
        sys.argv = ["predict.py", *{[str(a) for a in args]!r}]
        try:
            runpy.run_path({str(folder / "predict.py")!r}, run_name="__main__")
            status = 0
        except SystemExit as exit_:
            status = exit_.code
        loaded = [m for m, module in sys.modules.items() if module is not None and m.split(".")[0] == "torch"]
        assert not loaded, loaded
        sys.exit(status)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.returncode, records, result.stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A saved tiny model, its export (through the command line, with int8), three clips and the eager answers."""
    root = tmp_path_factory.mktemp("export")
    processor = word_processor(WORDS)
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer))).eval()
    with torch.no_grad():  # spread the logits so that the labels are not near-ties
        for parameter in model.classifier.parameters():
            parameter.mul_(40.0)
    save_for_hub(model, processor, root / "model")
    assert main(["export", "--model", str(root / "model"), "--output", str(root / "onnx"), "--quantize", "int8"]) == 0
    (root / "clips").mkdir()
    rng = np.random.default_rng(0)
    clips = {"a.wav": (rng.standard_normal(9000) * 0.2, 16000), "b.wav": (rng.standard_normal((11000, 2)) * 0.2, 22050),
             "c.wav": (rng.standard_normal(4000) * 0.2, 8000)}
    for name, (array, rate) in clips.items():
        soundfile.write(root / "clips" / name, array.astype(np.float32), rate)
    pipe = MultimodalEmotionRecognitionPipeline(model=model, processor=processor, device="cpu")
    reference = {name: pipe({"audio": str(root / "clips" / name), "text": TEXTS[name]}) for name in clips}
    return {"root": root, "onnx": root / "onnx", "model": model, "processor": processor, "pipe": pipe,
            "reference": reference}


def assert_same(record, reference, tolerance=1e-4):
    assert record["label"] == reference["labels"][0]["label"]
    expected = {entry["label"]: entry["score"] for entry in reference["labels"]}
    assert list(record["scores"]) == list(expected)  # same labels, same order
    assert np.allclose(list(record["scores"].values()), list(expected.values()), atol=tolerance, rtol=0)
    for key, value in reference["uncertainty"].items():
        assert abs(record["uncertainty"][key] - value) <= tolerance * max(1.0, abs(value)), key


def test_folder_contents(exported):
    folder = exported["onnx"]
    names = {path.name for path in folder.iterdir()}
    assert {"model.onnx", "model_int8.onnx", "config.json", "README.md", "predict.py", "onnx_runtime.py",
            "inference_mgcma.py", "processing_mgcma.py", "processor_config.json"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "angry", "1": "happy", "2": "sad", "3": "neutral"}
    assert config["onnx"]["opset"] == 17 and "auto_map" not in config
    import onnx

    graph = onnx.load(str(folder / "model.onnx")).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["input_values"] == ["batch", "samples"] and dims["input_ids"] == ["batch", "tokens"]
    assert [o.name for o in graph.output] == ["logits", "speech_sigma", "text_sigma", "modality_gap"]


def test_predict_py_without_torch_matches_eager(exported):
    root = exported["root"]
    names = list(TEXTS)
    args = [root / "clips" / n for n in names] + [x for n in names for x in ("--text", TEXTS[n])] + ["--batch_size", 2]
    status, records, stderr = run_predict_without_torch(exported["onnx"], args, cwd=root)
    assert status == 0, stderr
    assert [r["id"] for r in records] == [str(root / "clips" / n) for n in names]
    for record, name in zip(records, names):
        assert_same(record, exported["reference"][name])
        assert record["transcript"] == TEXTS[name]
    # the manifest form, relative paths resolved against the manifest's folder
    (root / "clips" / "list.jsonl").write_text("".join(json.dumps({"id": n, "audio": n, "text": TEXTS[n]}) + "\n"
                                                      for n in names))
    status, records, stderr = run_predict_without_torch(exported["onnx"], ["--manifest", root / "clips/list.jsonl"], root)
    assert status == 0, stderr
    assert [r["id"] for r in records] == names
    for record, name in zip(records, names):
        assert_same(record, exported["reference"][name])


def test_runtime_takes_the_pipelines_input_forms(exported):
    classifier = ONNXEmotionClassifier(exported["onnx"])
    rng = np.random.default_rng(3)
    clip = (rng.standard_normal(7000) * 0.2).astype(np.float32)
    forms = [{"audio": clip, "sampling_rate": 16000, "text": "so sad"},
             {"audio": {"array": clip, "sampling_rate": 16000}, "text": "so sad"}]
    expected = exported["pipe"](forms[0], top_k=2)
    for form in forms:
        result = classifier(form, top_k=2)
        assert set(result) == {"labels", "uncertainty", "transcript"} and len(result["labels"]) == 2
        assert [e["label"] for e in result["labels"]] == [e["label"] for e in expected["labels"]]
        assert np.allclose([e["score"] for e in result["labels"]], [e["score"] for e in expected["labels"]], atol=1e-4)
    with pytest.raises(ValueError, match="no transcript"):
        classifier({"audio": clip, "sampling_rate": 16000})
    with pytest.raises(ValueError, match="too short"):
        classifier({"audio": clip[:100], "sampling_rate": 16000, "text": "sad"})


def test_cli_predict_on_exported_folder_matches_torch_folder(exported, capsys):
    root = exported["root"]
    names = list(TEXTS)
    args = [root / "clips" / n for n in names] + [x for n in names for x in ("--text", TEXTS[n])]
    outputs = {}
    for model in ("model", "onnx"):
        assert main(["predict", "--model", str(root / model), *map(str, args)]) == 0
        outputs[model] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for onnx_record, torch_record in zip(outputs["onnx"], outputs["model"]):
        assert onnx_record["id"] == torch_record["id"] and onnx_record["label"] == torch_record["label"]
        assert np.allclose(list(onnx_record["scores"].values()), list(torch_record["scores"].values()), atol=1e-4)


def test_batched_equals_one_at_a_time_in_eager_and_onnx(exported):
    """Layer-normalised conv features: a padded batch gives each utterance's own answer, in both runtimes."""
    rng = np.random.default_rng(5)
    inputs = [{"audio": (rng.standard_normal(n) * 0.2).astype(np.float32), "sampling_rate": 16000, "text": t}
              for n, t in ((16000, "i am so happy today"), (4000, "sad"), (9000, "i am angry fine"))]
    classifier = ONNXEmotionClassifier(exported["onnx"])
    single = [classifier(x)["labels"] for x in inputs]
    batched = classifier(inputs, batch_size=3)
    eager_batched = exported["pipe"](inputs, batch_size=3)
    for one, many, eager in zip(single, batched, eager_batched):
        scores = [[e["score"] for e in labels] for labels in (one, many["labels"], eager["labels"])]
        assert np.allclose(scores[0], scores[1], atol=1e-4) and np.allclose(scores[0], scores[2], atol=1e-4)


@pytest.mark.parametrize(
    "overrides", [{"alignment_norm": "pre"}, {"classifier_features": "concat_projected"}], ids=["pre-ln", "concat-projected"]
)
def test_model_options_export_and_answer_as_eager(tmp_path, overrides):
    """Options that change the graph: pre-LN alignment blocks (context LayerNorms, a final LayerNorm per stream), and
    a classifier that also reads the pooled projected streams. Their ONNX graph, fp32 and int8, answers as the eager
    model does."""
    processor = word_processor(WORDS)
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer), **overrides)).eval()
    with torch.no_grad():  # spread the logits so that the labels are not near-ties
        for parameter in model.classifier.parameters():
            parameter.mul_(40.0)
    paths = export_onnx(model, processor, tmp_path / "onnx", quantize="int8")
    assert set(paths) == {"fp32", "int8"}
    rng = np.random.default_rng(3)
    inputs = [{"audio": (rng.standard_normal(n) * 0.2).astype(np.float32), "sampling_rate": 16000, "text": text}
              for n, text in ((9000, "i am so happy today"), (4000, "sad"), (12000, "i am angry"))]
    pipe = MultimodalEmotionRecognitionPipeline(model=model, processor=processor, device="cpu")
    eager = [{e["label"]: e["score"] for e in r["labels"]} for r in pipe(inputs, batch_size=3)]
    onnx = [{e["label"]: e["score"] for e in r["labels"]} for r in ONNXEmotionClassifier(tmp_path / "onnx")(inputs, batch_size=3)]
    for got, expected in zip(onnx, eager):
        assert np.allclose([got[k] for k in expected], list(expected.values()), atol=1e-4)


def test_group_norm_encoder_runs_one_at_a_time(tmp_path):
    """wav2vec2-base-style group norm normalises over padding: the runtime falls back to one clip per run."""
    processor = word_processor(WORDS)
    config = small_config(len(processor.tokenizer))
    config.speech_config = speech_encoder_config(feat_extract_norm="group", do_stable_layer_norm=False)
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(config).eval()
    export_onnx(model, processor, tmp_path / "onnx")
    classifier = ONNXEmotionClassifier(tmp_path / "onnx")
    assert classifier.padding_invariant is False
    rng = np.random.default_rng(6)
    inputs = [{"audio": (rng.standard_normal(n) * 0.2).astype(np.float32), "sampling_rate": 16000, "text": "sad"}
              for n in (16000, 5000)]
    single = [classifier(x)["labels"][0]["score"] for x in inputs]
    batched = [r["labels"][0]["score"] for r in classifier(inputs, batch_size=2)]
    assert np.allclose(single, batched, atol=1e-6)
    pipe = MultimodalEmotionRecognitionPipeline(model=model, processor=processor, device="cpu")
    eager = [r["labels"][0]["score"] for r in pipe(inputs, batch_size=2)]
    assert np.allclose(single, eager, atol=1e-4)


def test_int8_graph_agrees_on_a_trained_model(trained, tmp_path):  # noqa: F811
    model, inputs, reference = trained
    from modeling_mgcma.data import demo_vocabulary

    processor = word_processor(demo_vocabulary())
    paths = export_onnx(model, processor, tmp_path / "onnx", quantize="int8")
    sessions = {kind: onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
                for kind, path in paths.items()}
    logits = {kind: [] for kind in sessions}
    for x in inputs:
        for kind, session in sessions.items():
            names = {node.name: node.type for node in session.get_inputs()}
            feed = {k: v.numpy().astype(np.int32 if names[k] == "tensor(int32)" else v.numpy().dtype)
                    for k, v in x.items() if k in names}
            logits[kind].append(session.run(["logits"], feed)[0])
    reference = reference.numpy()
    fp32, int8 = np.concatenate(logits["fp32"]), np.concatenate(logits["int8"])
    assert np.abs(fp32 - reference).max() <= 1e-4
    error = np.abs(int8 - reference).max(-1)
    assert error.max() > 0  # really quantised
    agree = int8.argmax(-1) == reference.argmax(-1)
    top2 = np.sort(reference, -1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    assert bool((agree | (margin <= 2 * error)).all())  # a disagreement only where fp32 itself is a near-tie
    assert agree.mean() >= 0.99, (agree.mean(), len(agree))


# -- refusals and bad folders: one-line errors ---------------------------------------------------------------------------


def test_export_refusals(exported, tmp_path, capsys):
    from modeling_mgcma import MGCMAModel

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    status = main(["export", "--model", str(exported["root"] / "model"), "--output", str(tmp_path / "full")])
    err = capsys.readouterr().err
    assert status == 1 and "not an empty folder" in err and len(err.strip().splitlines()) == 1
    bare = MGCMAModel(exported["model"].config)
    bare.save_pretrained(tmp_path / "bare")
    exported["processor"].save_pretrained(tmp_path / "bare")
    status = main(["export", "--model", str(tmp_path / "bare"), "--output", str(tmp_path / "o1")])
    err = capsys.readouterr().err
    assert status == 1 and "without the emotion classifier" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ExportError, match="float32"):
        export_onnx(exported["model"].to(torch.bfloat16), exported["processor"], tmp_path / "o2")
    exported["model"].float()
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("damage", ["no_section", "corrupt_graph", "no_int8", "no_processor"])
def test_bad_exported_folders(exported, tmp_path, damage, capsys):
    import shutil

    folder = tmp_path / "onnx"
    shutil.copytree(exported["onnx"], folder)
    extra = []
    if damage == "no_section":
        config = json.loads((folder / "config.json").read_text())
        del config["onnx"]
        (folder / "config.json").write_text(json.dumps(config))
    elif damage == "corrupt_graph":
        (folder / "model.onnx").write_bytes(b"not a graph")
    elif damage == "no_int8":
        (folder / "model_int8.onnx").unlink()
        extra = ["--int8"]
    else:
        (folder / "processor_config.json").unlink()
    clip = exported["root"] / "clips" / "a.wav"
    status = main(["predict", "--model", str(folder), str(clip), "--text", "sad", *extra])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert {"no_section": "no 'onnx' section", "corrupt_graph": "cannot load", "no_int8": "model_int8.onnx",
            "no_processor": "processor_config.json"}[damage] in err
    status, records, stderr = run_predict_without_torch(folder, [clip, "--text", "sad", *extra], tmp_path)
    assert status == 1 and not records and len(stderr.strip().splitlines()) == 1, stderr


def test_shared_inference_module_is_torch_free_and_ships_with_the_pipeline(exported):
    """inference_mgcma.py runs in the torch-free runtime and next to the pipeline on the Hub."""
    import ast
    import pathlib

    import modeling_mgcma

    source = pathlib.Path(modeling_mgcma.__file__).parent / "inference_mgcma.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert all(name.split(".")[0] in {"os", "numpy"} for name in names), names
    assert (exported["root"] / "model" / "inference_mgcma.py").is_file()  # copied by save_for_hub


def test_int8_keep_float_and_quantized_convolutions(exported, tmp_path):
    import onnx

    from modeling_mgcma.deploy.export import quantize_int8

    model, processor = exported["model"], exported["processor"]
    source = str(exported["onnx"] / "model.onnx")

    def quantised(path):  # names of the MatMuls that ONNX Runtime's dynamic quantisation replaced
        kinds = ("MatMulInteger", "DynamicQuantizeMatMul")
        return [node.name for node in onnx.load(path).graph.node if node.op_type in kinds]

    # the exported int8 graph keeps the text stream in float32 (INT8_KEEP_FLOAT), the speech stream is quantised
    from modeling_mgcma.deploy.export import INT8_KEEP_FLOAT

    section = json.loads((exported["onnx"] / "config.json").read_text())["onnx"]
    assert section["int8_keep_float"] == list(INT8_KEEP_FLOAT) and section["int8_convolutions"] is False
    default = quantised(str(exported["onnx"] / "model_int8.onnx"))
    assert not any("/text_encoder/" in name or "/text_feed_forward/" in name for name in default)
    assert any("/speech_encoder/" in name for name in default)
    assert any("/speech_feed_forward/" in name for name in default)
    assert any("/text_cross_attention/attention/kv_proj/" in name for name in default)  # reads speech frames
    assert quantize_int8(source, str(tmp_path / "all.onnx")) == len(quantised(str(tmp_path / "all.onnx"))) > len(default)
    assert any("/text_encoder/" in name for name in quantised(str(tmp_path / "all.onnx")))
    count = quantize_int8(source, str(tmp_path / "kept.onnx"), ("mgcma.text_encoder", "mgcma.token_alignment.layers.0"))
    kept = quantised(str(tmp_path / "kept.onnx"))
    assert count == len(kept) > 0
    assert not any("/text_encoder/" in name or "/token_alignment/layers.0/" in name for name in kept)
    assert any("/token_alignment/layers.1/" in name for name in kept)
    with pytest.raises(ExportError, match="no MatMul inside"):
        quantize_int8(source, str(tmp_path / "bad.onnx"), ("mgcma.no_such_module",))
    with pytest.raises(ExportError, match="int8"):
        export_onnx(model, processor, tmp_path / "none", keep_float=("mgcma.text_encoder",))

    # the feature encoder's convolutions as MatMuls: quantised in the int8 graph; the float32 graph still the model's
    paths = export_onnx(model, processor, tmp_path / "conv", quantize="int8", quantize_convolutions=True)
    convolutions = [n for n in onnx.load(paths["fp32"]).graph.node if n.op_type == "Conv"]
    assert {n.name.split("/")[-3] for n in convolutions} == {"conv_layers.0", "pos_conv_embed"}
    assert any("/feature_extractor/conv_layers.1/" in name for name in quantised(paths["int8"]))
    clip = {"audio": (np.random.default_rng(3).standard_normal(9000) * 0.2).astype(np.float32),
            "sampling_rate": 16000, "text": "i am so happy today"}
    onnx_scores = [e["score"] for e in ONNXEmotionClassifier(tmp_path / "conv")(clip)["labels"]]
    eager_scores = [e["score"] for e in exported["pipe"](clip)["labels"]]
    assert np.allclose(onnx_scores, eager_scores, atol=1e-4)
