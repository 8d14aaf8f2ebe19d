# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""save_pretrained -> a process without the package -> Auto classes with trust_remote_code; from_encoders."""

import json

import numpy as np
import pytest
import torch
from hidden_package import run_without_package
from transformers import AutoModel, AutoModelForAudioClassification, AutoProcessor

from modeling_mgcma import MGCMAConfig, MGCMAForEmotionClassification, MGCMAModel, MGCMAProcessor
from modeling_mgcma.training.from_scratch import speech_encoder_config, text_encoder_config


HUB_FILES = {"configuration_mgcma.py", "modeling_mgcma.py", "processing_mgcma.py"}


def test_saved_folder_has_weights_config_code_and_processor(tmp_path, tiny_model, tiny_processor):
    tiny_model.save_pretrained(tmp_path)
    tiny_processor.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    assert HUB_FILES <= files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "mgcma"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_mgcma.MGCMAConfig",
        "AutoModel": "modeling_mgcma.MGCMAModel",
        "AutoModelForAudioClassification": "modeling_mgcma.MGCMAForEmotionClassification",
    }
    assert config["id2label"] == {"0": "angry", "1": "happy", "2": "sad", "3": "neutral"}
    processor_config = json.loads((tmp_path / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_mgcma.MGCMAProcessor"


def test_hub_files_import_only_torch_transformers_and_each_other():
    """Hub users have torch + transformers only: every other import must be guarded (try / is_*_available)."""
    import ast
    import pathlib

    import modeling_mgcma

    package = pathlib.Path(modeling_mgcma.__file__).parent
    allowed = {"torch", "transformers", "numpy", "io", "os", "wave", "math", "dataclasses", "collections", "typing",
               "json", "warnings", "inspect", "functools", "importlib", "base64", "urllib", "tempfile", "contextlib"}
    for name in HUB_FILES | ({"pipeline_mgcma.py"} if (package / "pipeline_mgcma.py").exists() else set()):
        tree = ast.parse((package / name).read_text())
        guarded = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) or (isinstance(node, ast.If) and "available" in ast.unparse(node.test)):
                guarded.update(id(c) for c in ast.walk(node) if isinstance(c, (ast.Import, ast.ImportFrom)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert top in allowed or id(node) in guarded, f"{name} imports {module} unguarded"


@pytest.mark.slow
def test_saved_folder_loads_without_the_package(tmp_path, tiny_model, tiny_processor, tiny_batch):
    tiny_model.eval()
    tiny_model.save_pretrained(tmp_path / "model")
    tiny_processor.save_pretrained(tmp_path / "model")
    audio = [np.sin(np.linspace(0, 300, 7000)).astype(np.float32), np.cos(np.linspace(0, 100, 5000)).astype(np.float32)]
    text = ["i am so happy today", "the weather is fine"]
    np.save(tmp_path / "audio0.npy", audio[0])
    np.save(tmp_path / "audio1.npy", audio[1])
    with torch.no_grad():
        inputs = tiny_processor(audio=audio, text=text)
        expected_logits = tiny_model(**inputs).logits
        expected_embeds = tiny_model.mgcma(**inputs).speech_embeds
    script = f"""
    import json, numpy as np, torch
    from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification, AutoProcessor
    folder = {str(tmp_path / "model")!r}
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    classifier = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True).eval()
    bare = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    audio = [np.load({str(tmp_path / "audio0.npy")!r}), np.load({str(tmp_path / "audio1.npy")!r})]
    inputs = processor(audio=audio, text={text!r})
    with torch.no_grad():
        logits = classifier(**inputs).logits
        embeds = bare(**inputs).speech_embeds
    print(json.dumps({{"classes": [type(config).__name__, type(classifier).__name__, type(bare).__name__,
                                    type(processor).__name__, type(classifier).__module__],
                      "logits": logits.tolist(), "embeds": embeds.tolist()}}))
    """
    result = run_without_package(script, cwd=tmp_path)
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    names = payload["classes"]
    assert names[:4] == ["MGCMAConfig", "MGCMAForEmotionClassification", "MGCMAModel", "MGCMAProcessor"]
    assert names[4].startswith("transformers_modules.")  # the copied code, not the package
    assert torch.allclose(torch.tensor(payload["logits"]), expected_logits, atol=1e-6)
    assert torch.allclose(torch.tensor(payload["embeds"]), expected_embeds, atol=1e-6)


def test_auto_classes_resolve_after_import(tmp_path, tiny_model, tiny_processor):
    tiny_model.save_pretrained(tmp_path)
    tiny_processor.save_pretrained(tmp_path)
    assert isinstance(AutoModelForAudioClassification.from_pretrained(tmp_path), MGCMAForEmotionClassification)
    assert isinstance(AutoModel.from_pretrained(tmp_path), MGCMAModel)
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), MGCMAProcessor)


def test_from_encoders_loads_pretrained_weights(tmp_path, tiny_processor, tiny_batch):
    from transformers import BertModel, Wav2Vec2Model

    torch.manual_seed(0)
    speech = Wav2Vec2Model(speech_encoder_config(hidden_size=32))
    text = BertModel(text_encoder_config(len(tiny_processor.tokenizer), hidden_size=24))
    speech.save_pretrained(tmp_path / "speech")
    text.save_pretrained(tmp_path / "text")
    model = MGCMAForEmotionClassification.from_encoders(
        str(tmp_path / "speech"), str(tmp_path / "text"), hidden_size=32, num_attention_heads=4,
        num_alignment_layers=1, intermediate_size=64, id2label={0: "calm", 1: "excited"},
    )
    assert model.config.num_labels == 2 and model.config.label2id == {"calm": 0, "excited": 1}
    assert model.config.text_config.hidden_size == 24 and model.mgcma.text_projection.in_features == 24
    for name, value in speech.state_dict().items():
        assert torch.equal(model.mgcma.speech_encoder.state_dict()[name], value), name
    for name, value in text.state_dict().items():
        if not name.startswith("pooler."):
            assert torch.equal(model.mgcma.text_encoder.state_dict()[name], value), name
    assert model.mgcma.text_encoder.pooler is None
    out = model(**{**tiny_batch, "labels": torch.tensor([0, 1, 1, 0])})
    assert torch.isfinite(out.loss)
    # from_encoders freezes nothing (freezing is a training argument applied by MGCMATrainer)
    assert all(p.requires_grad for p in model.parameters())
    bare = MGCMAModel.from_encoders(speech, text, hidden_size=32, num_attention_heads=4, intermediate_size=64)
    assert isinstance(bare, MGCMAModel) and bare.speech_encoder is speech


def test_from_encoders_rejects_missing_folder(tmp_path):
    with pytest.raises((OSError, ValueError)):
        MGCMAForEmotionClassification.from_encoders(str(tmp_path / "nope"), str(tmp_path / "nope2"))


def test_config_round_trip_keeps_every_setting(tmp_path):
    config = MGCMAConfig(
        speech_config={"model_type": "hubert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4},
        text_config={"model_type": "roberta", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4},
        module_order=["tam", "iam", "dam"], temperature=0.1, pooling="max", id2label={0: "a", 1: "b", 2: "c"},
    )
    config.save_pretrained(tmp_path)
    loaded = MGCMAConfig.from_pretrained(tmp_path)
    assert type(loaded.speech_config).__name__ == "HubertConfig" and type(loaded.text_config).__name__ == "RobertaConfig"
    assert loaded.module_order == ["tam", "iam", "dam"] and loaded.temperature == 0.1 and loaded.pooling == "max"
    assert loaded.id2label == {0: "a", 1: "b", 2: "c"} and loaded.num_labels == 3
    # any transformers speech/text encoder works: HuBERT + RoBERTa
    model = MGCMAForEmotionClassification(loaded)
    out = model(
        input_values=torch.randn(2, 4000),
        input_ids=torch.randint(3, 100, (2, 6)),
        labels=torch.tensor([0, 2]),
    )
    assert torch.isfinite(out.loss) and out.logits.shape == (2, 3)
