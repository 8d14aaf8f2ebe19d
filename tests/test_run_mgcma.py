# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""run_mgcma.py end to end on a tiny demo corpus: artefacts, losses, fold hygiene, model card, Hub upload, arguments;
reruns (a finished fold reused only with the same settings) and data refused before any model is built.

The main run (module fixture) trains a hidden-32, 2-layer model for a few steps in this process, with spies on the
data collator (which ids were read, and when) and on the Hub client (what would be uploaded).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fixtures_data import csv_manifest, five_session_release
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.utils import filter_repo_objects
from safetensors.torch import load_file


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402
from modeling_mgcma import MGCMAForEmotionClassification
from modeling_mgcma.experiments.run_arguments import load_preset  # noqa: E402
from modeling_mgcma.training.collators import MGCMADataCollator
from modeling_mgcma.training.trainer import MGCMATrainer


REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_SESSION = 5
HUB_ID = "test-org/mgcma-demo-test"


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads():
    """The demo preset runs on one CPU thread (run_mgcma.main); give later tests torch's setting back."""
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def tiny_run_args(tmp, corpus, *extra):
    """A demo run on 8 utterances per session (fold 5: 28 train, 4 validation, 8 test)."""
    return [
        "--output_dir", str(tmp / "out"), "--demo_corpus_dir", str(corpus),
        "--demo_utterances_per_session", "8", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
        "--learning_rate", "3e-3", "--warmup_steps", "0", "--lr_scheduler_type", "constant", "--logging_steps", "1",
        "--max_steps", "12", "--eval_strategy", "steps", "--eval_steps", "6", "--save_strategy", "steps",
        "--save_steps", "6", "--test_group", str(TEST_SESSION), "--seed", "0", "--disable_tqdm", "true",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, corpus):
    tmp = tmp_path_factory.mktemp("run")
    events, uploads, repos = [], [], []
    original_call, original_predict = MGCMADataCollator.__call__, MGCMATrainer.predict

    def spy_call(self, rows):
        events.append(("batch", [row["id"] for row in rows], [int(row["session"]) for row in rows]))
        return original_call(self, rows)

    def spy_predict(self, test_dataset, *args, **kwargs):
        events.append(("predict", list(test_dataset["id"]), None))
        return original_predict(self, test_dataset, *args, **kwargs)

    def fake_create_repo(self, repo_id, **kwargs):
        repos.append(repo_id)

    def fake_upload_folder(self, *, repo_id, folder_path, ignore_patterns=None, allow_patterns=None, **kwargs):
        folder = Path(folder_path)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        kept = list(filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        uploads.append({"repo_id": repo_id, "files": kept, "config": json.loads((folder / "config.json").read_text())})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MGCMADataCollator, "__call__", spy_call)
        patch.setattr(MGCMATrainer, "predict", spy_predict)
        patch.setattr(HfApi, "create_repo", fake_create_repo)
        patch.setattr(HfApi, "upload_folder", fake_upload_folder)
        summary = run_mgcma.main(tiny_run_args(tmp, corpus, "--push_to_hub", "true", "--hub_model_id", HUB_ID))
    return {"out": tmp / "out", "summary": summary, "events": events, "uploads": uploads, "repos": repos,
            "corpus": corpus}  # fmt: skip


def test_run_writes_every_artefact(demo_run):
    out = demo_run["out"]
    for name in ("model.safetensors", "config.json", "configuration_mgcma.py", "modeling_mgcma.py",
                 "processing_mgcma.py", "pipeline_mgcma.py", "processor_config.json", "results.json",
                 "confusion_matrix.png", "tsne.png", "loss_curves.png", "README.md"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")) or [p.name for p in out.glob("*.bin")] == ["training_args.bin"]
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForAudioClassification"] == "modeling_mgcma.MGCMAForEmotionClassification"
    assert config["custom_pipelines"]["multimodal-emotion-recognition"]["impl"] == (
        "pipeline_mgcma.MultimodalEmotionRecognitionPipeline"
    )
    for png in ("confusion_matrix.png", "tsne.png", "loss_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the saved folder loads back and predicts
    model = MGCMAForEmotionClassification.from_pretrained(out).eval()
    assert model.config.id2label == {0: "angry", 1: "happy", 2: "sad", 3: "neutral"}


def test_all_three_losses_go_down(demo_run):
    history = json.loads((demo_run["out"] / "trainer_state.json").read_text())["log_history"]
    train_logs = [entry for entry in history if "loss" in entry]
    assert len(train_logs) == 12
    for name in ("loss_ce", "loss_da", "loss_ia", "loss"):
        first = np.mean([entry[name] for entry in train_logs[:3]])
        last = np.mean([entry[name] for entry in train_logs[-3:]])
        assert last < first, f"{name}: {first:.4f} -> {last:.4f}"


def test_results_json_matches_the_test_predictions(demo_run):
    results = json.loads((demo_run["out"] / "results.json").read_text())
    (fold,) = results["folds"]
    assert fold["test_group"] == TEST_SESSION
    assert fold["num_test"] == 8 and fold["num_train"] + fold["num_validation"] == 32
    test_metrics = json.loads((demo_run["out"] / "test_results.json").read_text())
    assert fold["wa"] == pytest.approx(test_metrics["test_wa"]) and fold["ua"] == pytest.approx(test_metrics["test_ua"])
    assert results["mean"]["ua"] == pytest.approx(fold["ua"]) and results["std"]["ua"] == 0.0


def test_test_group_is_never_used_for_training_or_selection(demo_run):
    events = demo_run["events"]
    predict_index = [i for i, event in enumerate(events) if event[0] == "predict"]
    assert len(predict_index) == 1, "the test split must be evaluated exactly once"
    before, after = events[: predict_index[0]], events[predict_index[0] + 1 :]
    sessions_before = {s for _, _, sessions in before for s in sessions}
    assert sessions_before and TEST_SESSION not in sessions_before  # training + validation read only sessions 1-4
    assert {s for _, _, sessions in after for s in sessions} == {TEST_SESSION}
    test_ids = events[predict_index[0]][1]
    assert sorted(i for _, ids, _ in after for i in ids) == sorted(test_ids)
    # the selected checkpoint is the one with the best *validation* UA
    state = json.loads((demo_run["out"] / "trainer_state.json").read_text())
    validation_uas = [entry["eval_ua"] for entry in state["log_history"] if "eval_ua" in entry]
    assert validation_uas and state["best_metric"] == max(validation_uas)
    results = json.loads((demo_run["out"] / "results.json").read_text())
    assert results["folds"][0]["best_validation_metric"] == {"ua": max(validation_uas)}


def test_model_card_renders_metrics_and_says_demo(demo_run):
    card = ModelCard.load(demo_run["out"] / "README.md")
    results = json.loads((demo_run["out"] / "results.json").read_text())
    values = {r.metric_config: r.metric_value for r in card.data.eval_results}
    assert values["wa"] == round(100 * results["folds"][0]["wa"], 2) and values["ua"] == round(100 * results["folds"][0]["ua"], 2)
    assert card.data.eval_results[0].dataset_name == "MGCMA synthetic demo corpus"
    text = card.text
    assert "trained on the synthetic demo corpus" in text
    assert "| method | WA % | UA % |" in text and f"{100 * results['folds'][0]['ua']:.2f}" in text
    assert "trust_remote_code=True" in text and "revision=revision" in text and HUB_ID in text
    assert "USC SAIL" in text and "acted English" in text and "ICASSP 2025" in text
    assert "![confusion matrix](confusion_matrix.png)" in text


def test_push_uploads_the_full_model_folder_from_the_client(demo_run):
    assert demo_run["repos"] == [HUB_ID]
    (upload,) = demo_run["uploads"]
    assert upload["repo_id"] == HUB_ID
    files = set(upload["files"])
    for name in ("model.safetensors", "config.json", "configuration_mgcma.py", "modeling_mgcma.py",
                 "processing_mgcma.py", "pipeline_mgcma.py", "processor_config.json", "tokenizer_config.json",
                 "README.md", "results.json", "confusion_matrix.png", "tsne.png", "loss_curves.png"):  # fmt: skip
        assert name in files, name
    assert not any(name.startswith("checkpoint-") for name in files), "checkpoints must not be uploaded"
    assert upload["config"]["auto_map"]["AutoModelForAudioClassification"] == "modeling_mgcma.MGCMAForEmotionClassification"
    processor_config = json.loads((demo_run["out"] / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_mgcma.MGCMAProcessor"


# ---------------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def nothing_may_be_built(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("data was loaded or a model built before the arguments were checked")

    monkeypatch.setattr(run_mgcma, "load_data", forbidden)
    monkeypatch.setattr(run_mgcma, "build_model_and_processor", forbidden)
    monkeypatch.setattr(MGCMAForEmotionClassification, "__init__", forbidden)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--preset", "fast"], r"--preset must be one of \['demo', 'paper'\], got 'fast'"),
        (["--ablation", "S10"], r"--ablation must be one of \['S0', 'S1'"),
        (["--data_dir", "/nonexistent/IEMOCAP_full_release"], r"--data_dir '/nonexistent/IEMOCAP_full_release' is not a folder"),
        (["--data_dir", "{tmp}", "--manifest", "{tmp}/m.csv"], r"pass one of --data_dir \(IEMOCAP\), --manifest or --dataset_name"),
        (["--test_group", "6"], r"--test_group must be an IEMOCAP session 1-5, got 6"),
        (["--test_group", "2", "--cross_validate"], r"not both"),
        (["--push_to_hub", "true"], r"--push_to_hub needs --hub_model_id"),
        (["--speech_model", "facebook/wav2vec2-base"], r"both --speech_model and --text_model"),
        (["--cache_features"], r"--cache_features needs --freeze_encoders"),
        (["--config_overrides", "temprature=0.1"], r"MGCMAConfig has no setting 'temprature'"),
    ],
)
def test_bad_arguments_fail_fast(argv, message, tmp_path, nothing_may_be_built):
    (tmp_path / "m.csv").write_text("audio,text,label\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(ValueError, match=message):
        run_mgcma.main(["--output_dir", str(tmp_path / "out"), *argv])


def test_paper_preset_and_ablation_from_a_yaml_file(tmp_path):
    config_file = tmp_path / "paper.yaml"
    config_file.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "preset": "paper", "ablation": "S7",
                                           "output_dir": str(tmp_path / "out"), "num_train_epochs": 50}))  # fmt: skip
    model_args, data_args, training_args, preset = run_mgcma.parse_arguments([str(config_file)])
    assert preset == "paper" and data_args.source == "iemocap"
    assert training_args.per_device_train_batch_size == 4 and training_args.learning_rate == 1e-5
    assert training_args.optim == "adamw_torch_fused" and training_args.weight_decay == 0.0
    assert training_args.num_train_epochs == 50  # the file overrides the preset
    assert training_args.metric_for_best_model == "ua" and training_args.load_best_model_at_end
    assert training_args.save_strategy == "best" and training_args.save_total_limit == 1  # not ~3 GB every epoch
    kwargs = run_mgcma.config_kwargs(model_args, preset, ["angry", "happy", "sad", "neutral"])
    assert kwargs["module_order"] == ["iam", "tam", "dam"]
    assert (kwargs["num_attention_heads"], kwargs["num_alignment_layers"], kwargs["temperature"]) == (12, 6, 0.07)
    # the same from the command line
    cli = run_mgcma.parse_arguments(["--data_dir", str(tmp_path), "--preset", "paper", "--ablation", "S7"])
    assert cli[2].learning_rate == 1e-5 and cli[2].num_train_epochs == 100 and cli[3] == "paper"


def test_no_arguments_means_the_demo(monkeypatch):
    model_args, data_args, training_args, preset = run_mgcma.parse_arguments([])
    assert preset == "demo" and data_args.source == "demo"
    demo, _ = load_preset("demo")
    assert training_args.output_dir == demo["output_dir"] == "outputs/mgcma-demo"
    assert training_args.learning_rate == demo["learning_rate"] == 1e-3


@pytest.fixture(scope="module")
def local_encoders(tmp_path_factory):
    """Tiny wav2vec2 (width 24) and BERT (width 40, demo vocabulary) saved with their feature extractor / tokenizer."""
    from transformers import BertModel, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    from modeling_mgcma.data import demo_vocabulary
    from modeling_mgcma.training.from_scratch import speech_encoder_config, text_encoder_config, word_tokenizer

    root = tmp_path_factory.mktemp("encoders")
    speech_dir, text_dir = root / "speech", root / "text"
    tokenizer = word_tokenizer(demo_vocabulary())
    torch.manual_seed(0)
    Wav2Vec2Model(speech_encoder_config(hidden_size=24, num_layers=1)).save_pretrained(speech_dir)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(speech_dir)
    BertModel(text_encoder_config(len(tokenizer), hidden_size=40, num_layers=1)).save_pretrained(text_dir)
    tokenizer.save_pretrained(text_dir)
    return speech_dir, text_dir


def test_pretrained_encoders_from_local_folders(tmp_path, demo_run, local_encoders):
    """--speech_model/--text_model: from_encoders + the encoders' own feature extractor and tokenizer (no network)."""
    speech_dir, text_dir = local_encoders
    out = tmp_path / "run"
    run_mgcma.main([
        "--output_dir", str(out), "--demo_corpus_dir", str(demo_run["corpus"]), "--demo_utterances_per_session", "8",
        "--speech_model", str(speech_dir), "--text_model", str(text_dir), "--config_overrides",
        "hidden_size=32,num_attention_heads=4,num_alignment_layers=1,intermediate_size=64",
        "--max_steps", "2", "--per_device_train_batch_size", "8", "--eval_strategy", "steps", "--eval_steps", "2",
        "--save_strategy", "steps", "--save_steps", "2", "--disable_tqdm", "true",
    ])  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["speech_config"]["hidden_size"] == 24 and config["text_config"]["hidden_size"] == 40
    assert config["num_alignment_layers"] == 1
    weights = load_file(out / "model.safetensors")
    assert "mgcma.speech_projection.weight" in weights and "mgcma.text_projection.weight" in weights
    assert (out / "results.json").is_file() and (out / "tokenizer_config.json").is_file()


def test_cross_validation_runs_every_fold_and_skips_finished_ones(tmp_path, demo_run):
    out = tmp_path / "cv"
    argv = [
        "--output_dir", str(out), "--demo_corpus_dir", str(demo_run["corpus"]), "--demo_utterances_per_session", "8",
        "--cross_validate", "--max_steps", "1", "--per_device_train_batch_size", "8", "--eval_strategy", "steps",
        "--eval_steps", "1", "--save_strategy", "steps", "--save_steps", "1", "--disable_tqdm", "true",
    ]  # fmt: skip
    summary = run_mgcma.main(argv)
    assert [fold["test_group"] for fold in summary["folds"]] == [1, 2, 3, 4, 5]
    for k in range(1, 6):
        assert (out / f"fold_{k}" / "results.json").is_file() and (out / f"fold_{k}" / "model.safetensors").is_file()
    uas = [fold["ua"] for fold in summary["folds"]]
    assert summary["mean"]["ua"] == pytest.approx(np.mean(uas)) and summary["std"]["ua"] == pytest.approx(np.std(uas, ddof=1))
    table = (out / "results.md").read_text()
    assert "| method | WA % | UA % |" in table and table.count("test group") == 5 and "mean of 5 folds" in table
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(summary))
    card = ModelCard.load(out / "README.md")
    assert len(card.data.eval_results) == 12  # WA and UA for 5 folds and their mean

    # rerun after losing fold 4: folds 1-3 and 5 are skipped, fold 4 is trained again
    import shutil

    shutil.rmtree(out / "fold_4")
    trained = []
    original = run_mgcma.run_fold
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_mgcma, "run_fold", lambda fold, *a, **k: trained.append(fold) or original(fold, *a, **k))
        again = run_mgcma.main(argv)
    assert trained == [4]
    assert [f["ua"] for f in again["folds"]][:3] == uas[:3] and again["folds"][4]["ua"] == uas[4]


def test_cached_feature_mode_trains_on_frozen_encoder_outputs(tmp_path, demo_run):
    from transformers import set_seed

    out = tmp_path / "cached"
    argv = [
        "--output_dir", str(out), "--demo_corpus_dir", str(demo_run["corpus"]), "--demo_utterances_per_session", "8",
        "--freeze_encoders", "--cache_features", "--max_steps", "3", "--per_device_train_batch_size", "8",
        "--eval_strategy", "steps", "--eval_steps", "3", "--save_strategy", "steps", "--save_steps", "3",
        "--logging_steps", "1", "--disable_tqdm", "true",
    ]  # fmt: skip
    run_mgcma.main(argv)
    assert list((out / "feature_cache").glob("*/features.arrow")), "no feature cache written"
    config = json.loads((out / "config.json").read_text())
    assert "freeze_speech_encoder" not in config  # a training argument, not saved with the model
    # the encoders did not move; the alignment modules did (the run builds its model right after set_seed(seed))
    trained = load_file(out / "model.safetensors")
    model_args, data_args, training_args, preset = run_mgcma.parse_arguments(argv)
    set_seed(training_args.seed)
    initial, _, _ = run_mgcma.build_model_and_processor(model_args, data_args, preset, ["angry", "happy", "sad", "neutral"])
    initial = initial.state_dict()
    encoder_names = [n for n in trained if n.startswith(("mgcma.speech_encoder.", "mgcma.text_encoder."))]
    assert encoder_names and all(torch.equal(trained[n], initial[n]) for n in encoder_names)
    assert not torch.equal(trained["classifier.out_proj.weight"], initial["classifier.out_proj.weight"])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert all(name in history[0] for name in ("loss_ce", "loss_da", "loss_ia"))
    assert (out / "results.json").is_file() and (out / "tsne.png").is_file()

    # the cache holds the whole corpus, so another fold (and another run) reads it instead of encoding again
    (cache_file,) = (out / "feature_cache").glob("*/features.arrow")
    import datasets

    assert datasets.Dataset.from_file(str(cache_file)).num_rows == 5 * 8
    written = cache_file.stat().st_mtime_ns
    other_fold = [*argv, "--test_group", "4", "--feature_cache_dir", str(out / "feature_cache")]
    other_fold[other_fold.index("--output_dir") + 1] = str(tmp_path / "cached_fold4")
    run_mgcma.main(other_fold)
    assert list((out / "feature_cache").glob("*/features.arrow")) == [cache_file]
    assert cache_file.stat().st_mtime_ns == written


@pytest.mark.parametrize("with_groups", [True, False])
def test_manifest_data_with_and_without_a_group_column(tmp_path, demo_run, local_encoders, with_groups):
    """--manifest: leave-one-group-out when the group column exists (groups numbered in sorted order), else, with no
    fold option given, one stratified 80/10/10 train/validation/test split (a named group column that is missing is
    an error: tests/test_data_group_columns.py)."""
    import csv

    from modeling_mgcma.data import load_iemocap

    source = load_iemocap(demo_run["corpus"], strict_counts=False).select_columns(["id", "text", "label", "session"])
    names = source.features["label"].names
    manifest = tmp_path / "data.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "transcript", "emotion"] + (["speaker_group"] if with_groups else []))
        for row in source:
            (wav,) = demo_run["corpus"].glob(f"Session{row['session']}/sentences/wav/*/{row['id']}.wav")
            writer.writerow([str(wav), row["text"], names[row["label"]]] + ([f"G{row['session']}"] if with_groups else []))
    speech_dir, text_dir = local_encoders
    out = tmp_path / "out"
    summary = run_mgcma.main([
        "--output_dir", str(out), "--manifest", str(manifest), "--audio_column", "path", "--text_column", "transcript",
        "--label_column", "emotion", *(["--group_column", "speaker_group"] if with_groups else []),
        "--speech_model", str(speech_dir),
        "--text_model", str(text_dir), "--config_overrides", "hidden_size=32,num_attention_heads=4,num_alignment_layers=1",
        "--max_steps", "1", "--per_device_train_batch_size", "8", "--eval_strategy", "steps", "--eval_steps", "1",
        "--save_strategy", "steps", "--save_steps", "1", "--disable_tqdm", "true",
        *(["--test_group", "2"] if with_groups else []),
    ])  # fmt: skip
    (fold,) = summary["folds"]
    if with_groups:
        assert fold["test_group"] == "G2" and fold["num_test"] == 8
    else:
        assert fold["test_group"] is None and fold["num_test"] == 4  # no group: no test group to name
        card = (out / "README.md").read_text()
        assert "stratified test split" in card and "test group" not in card
        assert "train (80%) / validation (10%) / test (10%) split" in card
    assert fold["num_train"] + fold["num_validation"] + fold["num_test"] == 40
    assert (out / "README.md").is_file() and (out / "model.safetensors").is_file()


@pytest.mark.parametrize("metric, greater", [(None, True), ("wa", True), ("loss", False), ("eval_loss", False)])
def test_checkpoint_selection_direction_follows_the_metric(metric, greater, tmp_path):
    """Selecting on a loss keeps the lowest one; on WA/UA the highest (UA by default)."""
    argv = ["--output_dir", str(tmp_path)] + (["--metric_for_best_model", metric] if metric else [])
    _, _, training_args, _ = run_mgcma.parse_arguments(argv)
    assert training_args.metric_for_best_model == (metric or "ua")
    assert training_args.greater_is_better is greater and training_args.load_best_model_at_end


def test_card_names_the_validation_set_of_each_strategy():
    from modeling_mgcma.experiments.model_card import validation_description

    _, data_args, _, _ = run_mgcma.parse_arguments(["--validation_strategy", "speaker"])
    assert validation_description(data_args.validation_strategy, data_args.validation_fraction) == (
        "one held-out speaker of the training sessions")
    _, data_args, _, _ = run_mgcma.parse_arguments([])
    assert validation_description(data_args.validation_strategy, data_args.validation_fraction) == (
        "stratified by class, 10% of the training sessions")


def test_demo_config_has_20_ms_frames_and_no_dropout_unless_asked():
    from modeling_mgcma.training.from_scratch import DEMO_MODEL_SIZE, demo_config

    config = demo_config(50, **DEMO_MODEL_SIZE, num_labels=4)
    assert config.speech_config.conv_stride == (5, 4, 4, 2, 2)  # 320 samples = 20 ms per frame at 16 kHz
    assert config.speech_config.hidden_dropout == config.text_config.hidden_dropout_prob == config.classifier_dropout == 0.0
    assert (config.hidden_size, config.num_alignment_layers, config.text_config.vocab_size) == (32, 2, 50)
    with_dropout = demo_config(50, no_dropout=False)
    assert with_dropout.speech_config.hidden_dropout > 0 and with_dropout.text_config.hidden_dropout_prob > 0
    assert demo_config(50, classifier_dropout=0.3).classifier_dropout == 0.3  # explicit settings win


def test_compute_metrics_reads_the_logits_and_names_a_class_missing_from_validation(caplog):
    from transformers import EvalPrediction

    from modeling_mgcma.training.metrics.compute_metrics import load_wa_ua_metric, make_compute_metrics

    compute = make_compute_metrics(load_wa_ua_metric(), num_labels=3)
    logits = np.eye(3, dtype=np.float32)[[0, 0, 1, 1]]
    with caplog.at_level("WARNING"):
        metrics = compute(EvalPrediction(predictions=(logits, np.zeros((4, 2))), label_ids=np.array([0, 1, 1, 1])))
    # ECE: every confidence is softmax([1, 0, 0])'s top value, in one bin; accuracy 3/4 there
    confidence = np.e / (np.e + 2)
    assert metrics == {"wa": 0.75, "ua": pytest.approx((1.0 + 2 / 3) / 2), "ece": pytest.approx(0.75 - confidence)}
    assert "no utterance of class id(s) [2]" in caplog.text


# ------------------------------------------------------------------------------------------------------------------
# Reruns, finished runs and data refused before any model is built
# ------------------------------------------------------------------------------------------------------------------


def tiny_args(out, corpus, *extra):
    """One or two optimizer steps of the demo model on 8 utterances per session."""
    return [
        "--output_dir", str(out), "--demo_corpus_dir", str(corpus), "--demo_utterances_per_session", "8",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--max_steps", "1",
        "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps", "--save_steps", "1",
        "--logging_steps", "1", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip


@pytest.fixture
def trained_folds(monkeypatch):
    """Records which folds run_mgcma trains (run_fold calls) instead of reusing."""
    trained = []
    original = run_mgcma.run_fold
    monkeypatch.setattr(run_mgcma, "run_fold", lambda fold, *a, **k: trained.append(fold) or original(fold, *a, **k))
    return trained


def test_cross_validation_reuses_a_fold_only_with_the_same_settings(tmp_path, corpus, trained_folds):
    out = tmp_path / "cv"
    first = run_mgcma.main(tiny_args(out, corpus, "--cross_validate"))
    assert trained_folds == [1, 2, 3, 4, 5]
    recorded = json.loads((out / "fold_3" / "fingerprint.json").read_text())
    assert recorded["fold"] == 3 and recorded["training"]["learning_rate"] == 1e-3

    # other settings: refused before anything is trained, every stale fold and every difference named
    trained_folds.clear()
    with pytest.raises(ValueError) as error:
        run_mgcma.main(tiny_args(out, corpus, "--cross_validate", "--ablation", "S4", "--learning_rate", "1e-4"))
    message = str(error.value)
    assert trained_folds == []
    for k in range(1, 6):
        assert str(out / f"fold_{k}") in message
    assert "--learning_rate 0.001 -> 0.0001" in message and "--ablation None -> 'S4'" in message
    assert "--overwrite_output_dir" in message
    assert json.loads((out / "results.json").read_text())["folds"] == first["folds"]  # the old summary is untouched

    # settings that do not change the result (logging, progress bars) reuse every fold
    again = run_mgcma.main(tiny_args(out, corpus, "--cross_validate", "--logging_steps", "7", "--disable_tqdm", "false"))
    assert trained_folds == [] and again["folds"] == first["folds"]

    # asked explicitly: every fold is trained again with the new settings
    redone = run_mgcma.main(tiny_args(out, corpus, "--cross_validate", "--learning_rate", "1e-4", "--overwrite_output_dir", "true"))
    assert trained_folds == [1, 2, 3, 4, 5]
    assert json.loads((out / "fold_3" / "fingerprint.json").read_text())["training"]["learning_rate"] == 1e-4
    assert json.loads((out / "fingerprint.json").read_text())["training"]["learning_rate"] == 1e-4
    assert json.loads((out / "results.json").read_text())["folds"] == redone["folds"]



def test_a_new_run_into_a_finished_run_is_refused_unless_overwriting_or_resuming(tmp_path, corpus):
    out = tmp_path / "run"
    run_mgcma.main(tiny_args(out, corpus, "--test_group", "2"))
    assert (out / "checkpoint-1").is_dir()
    before = (out / "results.json").read_text()
    with pytest.raises(ValueError, match=r"holds a finished run \(results.json\); a new run would overwrite it"):
        run_mgcma.main(tiny_args(out, corpus, "--test_group", "2"))
    with pytest.raises(ValueError, match=r"holds a finished run \(results.json\) trained with other settings: --seed 0 -> 3"):
        run_mgcma.main(tiny_args(out, corpus, "--test_group", "2", "--seed", "3"))
    assert (out / "results.json").read_text() == before and (out / "checkpoint-1").is_dir()

    # resuming what is there, with the same settings, is allowed
    run_mgcma.main(tiny_args(out, corpus, "--test_group", "2", "--resume_from_checkpoint", "last"))
    # ... with other settings it is not
    with pytest.raises(ValueError, match=r"trained with other settings: --seed 0 -> 3"):
        run_mgcma.main(tiny_args(out, corpus, "--test_group", "2", "--seed", "3", "--resume_from_checkpoint", "last"))

    # replacing it, when asked
    (out / "checkpoint-1" / "marker").write_text("old")
    run_mgcma.main(tiny_args(out, corpus, "--test_group", "2", "--seed", "3", "--overwrite_output_dir", "true"))
    assert json.loads((out / "fingerprint.json").read_text())["training"]["seed"] == 3
    assert not (out / "checkpoint-1" / "marker").exists()  # the old checkpoint is gone, not mixed with the new one


def test_help_works():
    completed = subprocess.run([sys.executable, "run_mgcma.py", "--help"], cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "--max_duration" in completed.stdout and "--overwrite_output_dir" in completed.stdout


def test_unwritable_output_dir_fails_before_loading_data(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("data were loaded before --output_dir was checked")

    monkeypatch.setattr(run_mgcma, "load_data", forbidden)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=r"--output_dir '.*a_file/out' is not a writable folder"):
        run_mgcma.main(["--output_dir", str(blocker / "out")])


@pytest.fixture
def no_model_may_be_built(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a model was built before the data and arguments were checked")

    monkeypatch.setattr(run_mgcma, "build_model_and_processor", forbidden)


def manifest_run(tmp_path, wavs, rows, *extra, header="audio,text,label,session"):
    path = csv_manifest(wavs, [header] + rows, name="train.csv")
    return ["--manifest", str(path), "--output_dir", str(tmp_path / "out"), "--speech_model", "never/loaded",
            "--text_model", "never/loaded", *extra]  # fmt: skip


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num_train_epochs", "0"], r"--num_train_epochs must be > 0 \(or give --max_steps > 0\), got 0.0"),
        (["--num_train_epochs", "-1"], r"--num_train_epochs must be > 0 \(or give --max_steps > 0\), got -1.0"),
        (["--learning_rate", "0"], r"--learning_rate must be > 0, got 0.0"),
        (["--per_device_train_batch_size", "0"], r"--per_device_train_batch_size must be >= 1, got 0"),
        (["--gradient_accumulation_steps", "0"], r"--gradient_accumulation_steps must be >= 1, got 0"),
        (["--max_eval_samples", "0"], r"--max_eval_samples must be >= 1, got 0"),
        (["--class_names", "a,b"], r"--class_names names your data's classes: use it with --manifest or --dataset_name"),
        (["--label_names", "a,b"], r"--class_names names your data's classes: use it with --manifest or --dataset_name"),
    ],
)
def test_arguments_that_would_train_nothing_fail_first(argv, message, tmp_path, monkeypatch):
    monkeypatch.setattr(run_mgcma, "load_data", lambda *a, **k: pytest.fail("data loaded before the arguments were checked"))
    with pytest.raises(ValueError, match=message):
        run_mgcma.main(["--output_dir", str(tmp_path / "out"), *argv])


def test_one_class_data_is_refused_naming_the_missing_classes(tmp_path, wavs, no_model_may_be_built):
    rows = [f"a.wav,words {i},sad,{1 + i % 3}" for i in range(12)]
    with pytest.raises(ValueError, match=r"the data have no utterance of class\(es\) \['angry', 'happy', 'neutral'\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows))
    calm = [f"a.wav,words {i},calm,{1 + i % 3}" for i in range(12)]
    with pytest.raises(ValueError, match=r"the data have a single class \['calm'\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, calm))


def test_a_test_group_without_a_class_is_refused(tmp_path, wavs, no_model_may_be_built):
    labels = ["angry", "happy", "sad", "neutral"]
    rows = [f"a.wav,w,{labels[i % 4]},{1 + i % 3}" for i in range(24)]
    rows += [f"b.wav,w,{label},4" for label in ("angry", "happy", "sad")]  # group 4 has no neutral
    with pytest.raises(ValueError, match=r"fold that tests group '4'.*the test set \(3 rows\) has no utterance of class\(es\) \['neutral'\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, "--test_group", "4"))


def test_too_few_rows_for_a_split_without_groups_is_a_clear_error(tmp_path, wavs, no_model_may_be_built):
    labels = ["angry", "happy", "sad", "neutral"]
    rows = [f"a.wav,w,{labels[i % 4]}" for i in range(12)]
    with pytest.raises(ValueError, match=r"12 rows are too few for the stratified train / validation / test split .*'session' is not in the data"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, header="audio,text,label"))


def test_label_names_fix_the_class_set_of_a_run(tmp_path, wavs, no_model_may_be_built):
    rows = [f"a.wav,w,{['calm', 'tense'][i % 2]},{1 + i % 2}" for i in range(8)] + ["b.wav,w, Tenze,2"]
    with pytest.raises(ValueError, match=r"train.csv, line 10: unknown label 'tenze'; expected one of \['calm', 'tense'\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, "--label_names", "calm,tense"))
    with pytest.raises(ValueError, match=r"train.csv, line 10: unknown label 'tenze'"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, "--class_names", "Calm, Tense"))


def test_run_mgcma_refuses_an_iemocap_copy_without_a_session(tmp_path, no_model_may_be_built):
    import shutil

    release = five_session_release(tmp_path)
    shutil.rmtree(release / "Session3")
    with pytest.raises(ValueError, match=r"has no Session3 \(found sessions \[1, 2, 4, 5\]\): leave-one-session-out would run 4 folds"):
        run_mgcma.main(["--data_dir", str(release), "--output_dir", str(tmp_path / "out"), "--cross_validate"])


def test_rows_without_a_group_are_refused_not_made_a_fold(tmp_path, wavs, no_model_may_be_built):
    labels = ["angry", "happy", "sad", "neutral"]
    rows = [f"a.wav,w,{labels[i % 4]},{1 + i % 3}" for i in range(24)] + ["b.wav,w,sad,"]
    with pytest.raises(ValueError, match=r"1 row\(s\) have no value in the group column 'session' \(row\(s\) \[24\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, "--cross_validate"))


def test_a_damaged_fold_result_is_named_not_a_traceback(tmp_path, corpus):
    out = tmp_path / "cv"
    run_mgcma.main(tiny_args(out, corpus, "--cross_validate"))
    (out / "fold_2" / "results.json").write_text('{"folds": [')
    with pytest.raises(ValueError, match=r"fold_2/results.json is not a readable fold result"):
        run_mgcma.main(tiny_args(out, corpus, "--cross_validate"))


def test_saved_test_ids_belong_to_their_predictions_under_length_grouping(tmp_path, corpus):
    """With `group_by_length`, predictions come back sorted by length: the saved ids must follow that order."""
    from modeling_mgcma.data import load_iemocap

    out = tmp_path / "out"
    run_mgcma.main(tiny_args(out, corpus, "--train_sampling_strategy", "group_by_length", "--per_device_eval_batch_size", "3"))
    saved = json.loads((out / "test_predictions.json").read_text())
    dataset = load_iemocap(corpus, strict_counts=False)
    label_of = dict(zip(dataset["id"], dataset["label"]))
    test_ids = [i for i in dataset["id"] if i.startswith("Ses05")]
    assert sorted(saved["ids"]) == sorted(test_ids)
    assert saved["ids"] != test_ids  # the length order differs from the dataset's, so the pairing is tested
    assert [label_of[i] for i in saved["ids"]] == saved["references"]
