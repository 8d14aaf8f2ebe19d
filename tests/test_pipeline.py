# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The multimodal-emotion-recognition pipeline: every input form, batching, uncertainty, ASR fallback, errors, and a
saved folder that loads through `pipeline(...)` in a process where `modeling_mgcma` cannot be imported."""

import json

import numpy as np
import pytest
import soundfile
import torch
from hidden_package import run_without_package
from transformers import pipeline

from modeling_mgcma import (
    MGCMAConfig,
    MGCMAForEmotionClassification,
    MultimodalEmotionRecognitionPipeline,
    add_pipeline_to_folder,
    save_for_hub,
)
from modeling_mgcma.processing_mgcma import load_audio
from modeling_mgcma.training.from_scratch import (
    small_config,
    speech_encoder_config,
    text_encoder_config,
    word_processor,
)


WORDS = ["i", "am", "so", "happy", "sad", "angry", "today", "the", "weather", "is", "fine", "not", "really"]
TEXTS = ["i am so happy today", "sad", "the weather is fine", "i am not really angry", "so so sad", "fine"]


def make_model(processor, seed=0, **config_kwargs):
    """A tiny random classifier whose class scores are well apart (a sharpened head), so that label order is a
    meaningful comparison rather than a coin toss between near-equal scores."""
    config_kwargs.setdefault("hidden_dropout_prob", 0.1)  # dropout on: eval mode must switch it off
    torch.manual_seed(seed)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer), **config_kwargs))
    with torch.no_grad():
        for parameter in model.classifier.parameters():
            parameter.mul_(40.0)
    return model


@pytest.fixture(scope="module")
def processor():
    return word_processor(WORDS)


@pytest.fixture(scope="module")
def model(processor):
    return make_model(processor)


@pytest.fixture(scope="module")
def pipe(model, processor):
    return pipeline("multimodal-emotion-recognition", model=model, processor=processor, device="cpu")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Audio at several rates and channel counts, as arrays and as files."""
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    t16 = np.arange(12000) / 16000
    clips = {
        "mono16k": (np.sin(2 * np.pi * 180 * t16) * 0.3 + rng.standard_normal(12000) * 0.05).astype(np.float32),
        "mono8k": (rng.standard_normal(5000) * 0.2).astype(np.float32),
        "stereo22k": (rng.standard_normal((2, 15000)) * 0.2).astype(np.float32),  # channels-first
    }
    rates = {"mono16k": 16000, "mono8k": 8000, "stereo22k": 22050}
    paths = {}
    for name, array in clips.items():
        paths[name] = folder / f"{name}.wav"
        soundfile.write(paths[name], array.T, rates[name], subtype="FLOAT")
    return {"arrays": clips, "rates": rates, "paths": paths, "folder": folder}


def expected(model, processor, array, rate, text):
    """What the model itself says on the processor's output: probabilities and DAM's Gaussians."""
    with torch.no_grad():
        out = model.eval()(**processor(audio=array, text=text, sampling_rate=rate))
    return out.logits[0].softmax(-1), out


def check(result, model, probabilities, transcript):
    labels = [entry["label"] for entry in result["labels"]]
    scores = [entry["score"] for entry in result["labels"]]
    order = probabilities.argsort(descending=True).tolist()
    assert labels == [model.config.id2label[i] for i in order]
    np.testing.assert_allclose(scores, probabilities[order].numpy(), atol=1e-5)
    assert scores == sorted(scores, reverse=True)
    assert result["transcript"] == transcript


def input_forms(clips):
    """(name, pipeline input audio fields, reference array, reference rate) for every accepted audio form."""
    a, p = clips["arrays"], clips["paths"]
    file16, rate16 = load_audio(p["mono16k"])
    stereo_file, stereo_rate = load_audio(p["stereo22k"])
    return [
        ("path str", {"audio": str(p["mono16k"])}, file16, rate16),
        ("path Path", {"audio": p["mono16k"]}, file16, rate16),
        ("bytes", {"audio": p["stereo22k"].read_bytes()}, stereo_file, stereo_rate),
        ("numpy + sampling_rate", {"audio": a["mono8k"], "sampling_rate": 8000}, a["mono8k"], 8000),
        ("stereo numpy", {"audio": a["stereo22k"], "sampling_rate": 22050}, a["stereo22k"], 22050),
        ("stereo channels-last", {"audio": a["stereo22k"].T.copy(), "sampling_rate": 22050}, a["stereo22k"], 22050),
        ("tensor + sampling_rate", {"audio": torch.from_numpy(a["mono16k"]), "sampling_rate": 16000}, a["mono16k"], 16000),
        ("datasets dict", {"audio": {"array": a["mono8k"], "sampling_rate": 8000}}, a["mono8k"], 8000),
        ("datasets path dict", {"audio": {"path": str(p["mono16k"]), "bytes": None}}, file16, rate16),
        ("datasets bytes dict", {"audio": {"path": None, "bytes": p["mono16k"].read_bytes()}}, file16, rate16),
    ]


def test_every_input_form_single_and_batched_matches_the_model(pipe, model, processor, clips):
    forms = input_forms(clips)
    inputs, references = [], []
    for index, (name, fields, array, rate) in enumerate(forms):
        text = TEXTS[index % len(TEXTS)]
        inputs.append({**fields, "text": text})
        references.append(expected(model, processor, array, rate, text)[0])
        check(pipe(inputs[-1]), model, references[-1], text)
    for batch_size in (1, 4):  # 4: padded batches of unequal lengths, and a last partial batch
        results = pipe(inputs, batch_size=batch_size)
        assert len(results) == len(inputs)
        for result, reference, item in zip(results, references, inputs):
            check(result, model, reference, item["text"])


def test_keyword_call_top_k_and_empty_list(pipe, model, processor, clips):
    array = clips["arrays"]["mono16k"]
    reference, _ = expected(model, processor, array, 16000, "i am so happy today")
    check(pipe(audio=array, sampling_rate=16000, text="i am so happy today"), model, reference, "i am so happy today")
    top2 = pipe({"audio": array, "sampling_rate": 16000, "text": "sad"}, top_k=2)["labels"]
    assert len(top2) == 2 and top2[0]["score"] >= top2[1]["score"]
    assert len(pipe({"audio": array, "sampling_rate": 16000, "text": "sad"}, top_k=99)["labels"]) == 4
    assert pipe([]) == []
    with pytest.raises(ValueError, match="top_k"):
        pipe({"audio": array, "sampling_rate": 16000, "text": "sad"}, top_k=0)


def test_datasets_rows_and_a_dataset_go_through_the_pipeline(pipe, model, processor, clips):
    datasets = pytest.importorskip("datasets")
    paths = [str(clips["paths"][name]) for name in ("mono16k", "stereo22k", "mono8k")]
    dataset = datasets.Dataset.from_dict({"audio": paths, "text": TEXTS[:3], "label": [0, 1, 2]})
    dataset = dataset.cast_column("audio", datasets.Audio(sampling_rate=16000))
    references = []
    for index, text in enumerate(TEXTS[:3]):
        decoded = dataset[index]["audio"]  # a torchcodec AudioDecoder in datasets >= 4 (a dict before)
        if hasattr(decoded, "get_all_samples"):
            samples = decoded.get_all_samples()
            array, rate = samples.data.numpy(), samples.sample_rate
        else:
            array, rate = decoded["array"], decoded["sampling_rate"]
        assert rate == 16000  # datasets resampled with its own resampler
        references.append(expected(model, processor, array, rate, text)[0])
    check(pipe(dataset[1]), model, references[1], TEXTS[1])  # a row: extra columns (label) are ignored
    results = list(pipe(dataset, batch_size=2))
    assert len(results) == 3
    for result, reference, text in zip(results, references, TEXTS):
        check(result, model, reference, text)


def test_uncertainty_is_read_off_dam_gaussians(pipe, model, processor, clips):
    array, text = clips["arrays"]["mono8k"], "i am not really angry"
    _, out = expected(model, processor, array, 8000, text)
    uncertainty = pipe({"audio": array, "sampling_rate": 8000, "text": text})["uncertainty"]
    assert set(uncertainty) == {"speech_sigma", "text_sigma", "modality_gap"}
    assert uncertainty["speech_sigma"] == pytest.approx(float(out.speech_sigma.mean()), rel=1e-5)
    assert uncertainty["text_sigma"] == pytest.approx(float(out.text_sigma.mean()), rel=1e-5)
    w2 = ((out.speech_mu - out.text_mu) ** 2 + (out.speech_sigma - out.text_sigma) ** 2).sum()
    assert uncertainty["modality_gap"] == pytest.approx(float((w2 / out.speech_mu.shape[-1]).sqrt()), rel=1e-5)
    assert all(value > 0 for value in uncertainty.values())


def test_without_dam_uncertainty_is_none(processor, clips):
    model = make_model(processor, use_distribution_alignment=False)
    pipe = MultimodalEmotionRecognitionPipeline(model=model, processor=processor, device="cpu")
    result = pipe({"audio": clips["arrays"]["mono8k"], "sampling_rate": 8000, "text": "sad"})
    assert result["uncertainty"] is None
    assert len(result["labels"]) == 4


def test_pipeline_puts_the_model_in_eval_mode(processor, clips):
    model = make_model(processor, seed=1).train()
    pipe = pipeline("multimodal-emotion-recognition", model=model, processor=processor, device="cpu")
    assert not model.training
    item = {"audio": clips["arrays"]["mono16k"], "sampling_rate": 16000, "text": "i am so happy today"}
    assert pipe(item) == pipe(item)  # dropout off: deterministic


def test_group_norm_speech_encoder_batches_like_single_items(clips):
    """wav2vec2-base-style group-normalised conv features see padding; the pipeline runs such batches item by item."""
    processor = word_processor(WORDS)
    torch.manual_seed(0)
    config = MGCMAConfig(
        speech_config=speech_encoder_config(feat_extract_norm="group", do_stable_layer_norm=False),
        text_config=text_encoder_config(len(processor.tokenizer)),
        hidden_size=32, num_attention_heads=4, num_alignment_layers=2, intermediate_size=64,
    )
    model = MGCMAForEmotionClassification(config)
    with torch.no_grad():
        for parameter in model.classifier.parameters():
            parameter.mul_(40.0)
    pipe = MultimodalEmotionRecognitionPipeline(model=model, processor=processor, device="cpu")
    items = [
        {"audio": clips["arrays"]["mono16k"], "sampling_rate": 16000, "text": "i am so happy today"},
        {"audio": clips["arrays"]["mono8k"], "sampling_rate": 8000, "text": "sad"},
    ]
    singles = [pipe(item) for item in items]
    batched = pipe(items, batch_size=2)
    for single, batch in zip(singles, batched):
        assert [e["label"] for e in single["labels"]] == [e["label"] for e in batch["labels"]]
        np.testing.assert_allclose([e["score"] for e in single["labels"]], [e["score"] for e in batch["labels"]], atol=1e-5)
    # and the precaution is needed: one padded forward pass changes the shorter clip's scores
    pipe._padding_invariant = True
    padded = pipe(items, batch_size=2)
    assert not np.allclose([e["score"] for e in singles[1]["labels"]], [e["score"] for e in padded[1]["labels"]], atol=1e-3)


# -- transcription fallback ----------------------------------------------------------------------------------------------


def save_tiny_asr(folder):
    """A tiny random wav2vec2 CTC recogniser saved in `folder`. Its output is meaningless; the lm_head bias is set so
    that it says something (the letter "s" on every frame, collapsed by CTC to "s") rather than nothing."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{letter: 3 + i for i, letter in enumerate("adehimnorsty")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), pad_token="<pad>", unk_token="<unk>", word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(speech_encoder_config(vocab_size=len(vocab), pad_token_id=0))
    with torch.no_grad():
        model.lm_head.bias.zero_()
        model.lm_head.bias[vocab["s"]] = 50.0
    model.save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def asr_folder(tmp_path_factory):
    return save_tiny_asr(tmp_path_factory.mktemp("asr"))


def test_missing_text_is_transcribed_by_the_asr(model, processor, clips, asr_folder):
    asr = pipeline("automatic-speech-recognition", model=str(asr_folder), device="cpu")
    array = clips["arrays"]["stereo22k"]
    from modeling_mgcma.processing_mgcma import resample, to_mono

    transcript = asr({"raw": resample(to_mono(array), 22050, 16000), "sampling_rate": 16000})["text"]
    assert transcript == "s"  # the ASR's (garbage but non-empty) output
    reference, _ = expected(model, processor, array, 22050, transcript)
    for asr_argument in (asr, str(asr_folder)):  # a pipeline object, or a model path the pipeline loads itself
        pipe = pipeline("multimodal-emotion-recognition", model=model, processor=processor, device="cpu", asr=asr_argument)
        check(pipe({"audio": array, "sampling_rate": 22050}), model, reference, transcript)
    # a bare file path is an utterance without text; given text wins over the ASR
    file_array, file_rate = load_audio(clips["paths"]["mono16k"])
    file_transcript = asr({"raw": file_array, "sampling_rate": 16000})["text"]
    check(pipe(str(clips["paths"]["mono16k"])), model, expected(model, processor, file_array, 16000, file_transcript)[0], file_transcript)
    assert pipe({"audio": array, "sampling_rate": 22050, "text": "sad"})["transcript"] == "sad"


# -- errors --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item, error, message",
    [
        ({"audio": np.zeros(16000, np.float32), "sampling_rate": 16000}, ValueError, "no transcript.*asr="),
        ({"audio": "/nonexistent/clip.wav", "text": "sad"}, ValueError, "not found: /nonexistent/clip.wav"),
        ({"audio": np.zeros(0, np.float32), "sampling_rate": 16000, "text": "sad"}, ValueError, "empty"),
        ({"audio": b"", "text": "sad"}, ValueError, "empty"),
        ({"audio": np.zeros(16000, np.float32), "text": "sad"}, ValueError, "sampling rate"),
        ({"audio": np.zeros(16000, np.float32), "sampling_rate": -5, "text": "sad"}, ValueError, "sampling_rate"),
        ({"audio": np.zeros(20, np.float32), "sampling_rate": 16000, "text": "sad"}, ValueError, "too short"),
        ({"audio": np.full(800, np.nan, np.float32), "sampling_rate": 16000, "text": "sad"}, ValueError, "NaN"),
        ({"audio": np.zeros((2, 3, 4), np.float32), "sampling_rate": 16000, "text": "sad"}, ValueError, "1-D"),
        ({"audio": np.array(["a", "b"]), "sampling_rate": 16000, "text": "sad"}, TypeError, "numeric"),
        ({"audio": np.zeros(1600, np.float32), "sampling_rate": 16000, "text": 3}, TypeError, "'text' must be a string"),
        ({"audio": 12345, "text": "sad"}, TypeError, "unsupported audio type int"),
        ({"audio": {"sampling_rate": 16000}, "text": "sad"}, ValueError, "'array' and 'sampling_rate'"),
        ({"text": "sad"}, ValueError, "no 'audio' key"),
        (42, TypeError, "got a int"),
    ],
)
def test_bad_inputs_raise_clear_errors(pipe, item, error, message):
    with pytest.raises(error, match=message):
        pipe(item)


def test_unreadable_file_and_bad_batch_item(pipe, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not really a wav file")
    with pytest.raises(ValueError, match="could not read audio from .*broken.wav"):
        pipe({"audio": str(broken), "text": "sad"})
    good = {"audio": np.zeros(1600, np.float32), "sampling_rate": 16000, "text": "sad"}
    with pytest.raises(ValueError, match="broken.wav"):
        pipe([good, {"audio": str(broken), "text": "sad"}, good], batch_size=2)


def test_unknown_arguments_are_refused(pipe, model, processor):
    with pytest.raises(TypeError, match="unexpected argument"):
        pipe({"audio": np.zeros(1600, np.float32), "sampling_rate": 16000, "text": "x"}, temperature=2)
    with pytest.raises(TypeError, match="`asr` must be"):
        MultimodalEmotionRecognitionPipeline(model=model, processor=processor, device="cpu", asr=3)


# -- saving and loading without the package ------------------------------------------------------------------------------


def test_add_pipeline_to_a_trainer_style_folder(tmp_path, model, processor):
    model.save_pretrained(tmp_path)  # what Trainer writes (+ the processor)
    processor.save_pretrained(tmp_path)
    assert "custom_pipelines" not in json.loads((tmp_path / "config.json").read_text())
    add_pipeline_to_folder(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["custom_pipelines"] == {
        "multimodal-emotion-recognition": {
            "impl": "pipeline_mgcma.MultimodalEmotionRecognitionPipeline",
            "pt": ["AutoModelForAudioClassification"],
            "type": "multimodal",
        }
    }
    assert (tmp_path / "pipeline_mgcma.py").is_file() and (tmp_path / "processing_mgcma.py").is_file()
    assert "custom_pipelines" not in model.config.to_dict()  # the in-memory model is left alone
    with pytest.raises(ValueError, match="no config.json"):
        add_pipeline_to_folder(tmp_path / "elsewhere")


@pytest.mark.slow
def test_saved_folder_predicts_through_pipeline_without_the_package(tmp_path, model, processor, clips):
    save_for_hub(model, processor, tmp_path / "model")
    array, rate = clips["arrays"]["stereo22k"], 22050
    np.save(tmp_path / "clip.npy", array)
    wav = clips["paths"]["mono16k"]
    references = [
        expected(model, processor, array, rate, "i am so happy today")[0],
        expected(model, processor, *load_audio(wav), "sad")[0],
    ]
    script = f"""
    import json, numpy as np, torch
    from transformers import AutoModel, AutoModelForAudioClassification, AutoProcessor, pipeline

    folder = {str(tmp_path / "model")!r}
    array = np.load({str(tmp_path / "clip.npy")!r})
    items = [{{"audio": array, "sampling_rate": {rate}, "text": "i am so happy today"}}, {{"audio": {str(wav)!r}, "text": "sad"}}]
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    classifier = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True).eval()
    bare = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        inputs = processor(audio=array, text="i am so happy today", sampling_rate={rate})
        auto_probabilities = classifier(**inputs).logits[0].softmax(-1).tolist()
        bare_embeds = bare(**inputs).speech_embeds.shape[-1]
    by_model = pipeline(model=folder, trust_remote_code=True, device="cpu")
    by_task = pipeline("multimodal-emotion-recognition", model=folder, trust_remote_code=True, device="cpu")
    print(json.dumps({{
        "class": type(by_model).__module__ + "." + type(by_model).__name__,
        "training": by_model.model.training,
        "auto": auto_probabilities,
        "bare": bare_embeds,
        "by_model": by_model(items, batch_size=2),
        "by_task": [by_task(item) for item in items],
    }}))
    """
    result = json.loads(run_without_package(script, cwd=tmp_path).stdout.strip().splitlines()[-1])
    assert result["class"].startswith("transformers_modules.") and result["class"].endswith(
        "pipeline_mgcma.MultimodalEmotionRecognitionPipeline"
    )
    assert result["training"] is False
    assert result["bare"] == model.config.hidden_size
    np.testing.assert_allclose(result["auto"], references[0].numpy(), atol=1e-5)
    texts = ["i am so happy today", "sad"]
    for outputs in (result["by_model"], result["by_task"]):
        for output, reference, text in zip(outputs, references, texts):
            check(output, model, reference, text)
            assert set(output["uncertainty"]) == {"speech_sigma", "text_sigma", "modality_gap"}
