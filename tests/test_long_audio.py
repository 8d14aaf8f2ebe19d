# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Long recordings: cut into windows at pauses, one result per window (`segments`) and an overall label, in the
pipeline, the ONNX runtime and the command line."""

import json
import logging

import numpy as np
import pytest
import soundfile
import torch

from modeling_mgcma import MGCMAForEmotionClassification, MultimodalEmotionRecognitionPipeline, save_for_hub
from modeling_mgcma.cli import main
from modeling_mgcma.data import demo_vocabulary, generate_demo_corpus
from modeling_mgcma.inference_mgcma import aggregate_windows, plan_windows
from modeling_mgcma.training.from_scratch import small_config, word_processor


pytestmark = pytest.mark.usefixtures("one_torch_thread")

RATE = 16_000
GAP_SECONDS = 1.5


def test_plan_windows_cuts_in_pauses_and_covers_everything():
    rng = np.random.default_rng(0)
    # 1 s bursts of tone separated by 0.6 s pauses with a 40 ms gap inside each burst (a pause between two words)
    burst = np.sin(np.linspace(0, 2000, RATE)).astype(np.float32)
    burst[RATE // 2 : RATE // 2 + 640] = 0
    pause = np.zeros(int(0.6 * RATE), dtype=np.float32)
    audio = np.concatenate([burst, pause] * 6) + rng.normal(0, 0.003, 6 * (RATE + len(pause))).astype(np.float32)
    windows = plan_windows(audio, RATE, window_seconds=2.5, overlap_seconds=0.0, search_seconds=1.0)
    assert windows[0][0] == 0 and windows[-1][1] == len(audio)
    assert all(b[0] == a[1] for a, b in zip(windows, windows[1:]))  # no overlap asked: contiguous
    assert all(end - start <= 2.5 * RATE for start, end in windows)
    period = RATE + len(pause)
    for _, end in windows[:-1]:  # every cut lies in a 0.6 s pause, not in the 40 ms gap inside a burst
        assert (end % period) >= RATE, (end, end % period)
    overlapping = plan_windows(audio, RATE, window_seconds=2.5, overlap_seconds=0.5)
    assert all(a[1] - b[0] == int(0.5 * RATE) for a, b in zip(overlapping, overlapping[1:]))
    # a tail of a few samples after the last cut never becomes a window too short for the speech encoder
    clip = audio[: int(2.5 * RATE) + 10]
    assert plan_windows(clip, RATE, 2.5, overlap_seconds=0.0, search_seconds=0.0)[-1] == (int(2.5 * RATE), len(clip))
    tail = plan_windows(clip, RATE, 2.5, overlap_seconds=0.0, search_seconds=0.0, min_samples=400)
    assert tail == [(0, int(2.5 * RATE)), (len(clip) - 400, len(clip))]
    assert plan_windows(audio[:RATE], RATE, 2.5) == [(0, RATE)]
    for bad in ({"window_seconds": 0}, {"window_seconds": 2, "overlap_seconds": 2}, {"window_seconds": 2,
                                                                                      "search_seconds": -1}):
        with pytest.raises(ValueError):
            plan_windows(audio, RATE, **bad)
    weighted = aggregate_windows([[1.0, 0.0], [0.0, 1.0]], [(0, 3 * RATE), (3 * RATE, 4 * RATE)], RATE)
    assert np.allclose(weighted, [0.75, 0.25])


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Four different demo utterances of similar length (1.2-1.7 s, so that one window length fits each with its
    pause), joined with 1.5 s pauses carrying the corpus's background noise (0.2 s before the first, 0.4 s after
    the last)."""
    root = tmp_path_factory.mktemp("long")
    corpus = generate_demo_corpus(root / "corpus", utterances_per_session=8)
    chosen, seen = [], set()
    for session in sorted(corpus.glob("Session*")):
        for wav in sorted(w for w in session.rglob("*.wav") if not w.name.startswith("._")):  # skip AppleDouble
            array, rate = soundfile.read(wav, dtype="float32")
            duration = len(array) / rate
            if 1.2 <= duration <= 1.7 and wav.stem not in seen:
                chosen.append((wav, array))
                seen.add(wav.stem)
            if len(chosen) == 4:
                break
        if len(chosen) == 4:
            break
    assert len(chosen) == 4
    transcripts = _transcripts(corpus)
    rng = np.random.default_rng(0)
    gap = int(GAP_SECONDS * RATE)
    pieces, spans, texts, clock = [], [], [], 0
    for index, (wav, array) in enumerate(chosen):
        pause = gap if index else int(0.2 * RATE)
        pieces.append(rng.normal(0, 0.003, pause).astype(np.float32))
        clock += pause
        pieces.append(array)
        spans.append((clock / RATE, (clock + len(array)) / RATE))
        texts.append(transcripts[wav.stem])
        clock += len(array)
    pieces.append(rng.normal(0, 0.003, int(0.4 * RATE)).astype(np.float32))  # short tail: the 4th window reaches it
    audio = np.concatenate(pieces)
    soundfile.write(root / "long.wav", audio, RATE)
    longest = max(end - start for start, end in spans)
    # windows of the longest utterance + 1.9 s: each nominal boundary falls inside the next utterance (at least the
    # first does), and the search for a pause (1 s back) reaches the 1.5 s pause before it
    processor = word_processor(demo_vocabulary(), max_duration=round(longest + 1.9, 2))
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer))).eval()
    save_for_hub(model, processor, root / "model")
    return {"root": root, "audio": audio, "spans": spans, "texts": texts, "model": model, "processor": processor}


def _transcripts(corpus) -> dict:
    texts = {}
    for path in corpus.rglob("*.txt"):
        if "transcriptions" in path.parts and not path.name.startswith("._"):
            for line in path.read_text().splitlines():
                if line.strip() and "]:" in line:
                    name = line.split(" ", 1)[0]
                    texts[name] = line.split("]:", 1)[1].strip()
    return texts


def check_windows(result, spans, texts=None):
    """Four windows, the k-th holding utterance k whole, every cut in the pause after it."""
    segments = result["segments"]
    assert len(segments) == 4
    bounds = [0.0] + [end for _, end in spans]
    for k, (segment, (start, end)) in enumerate(zip(segments, spans)):
        assert bounds[k] <= segment["start"] <= start, (k, segment, spans)
        assert end <= segment["end"], (k, segment, spans)
        if k < 3:
            assert segment["end"] <= spans[k + 1][0], (k, segment, spans)
        if texts is not None:
            assert segment["transcript"] == texts[k]
    scores = np.array([[dict((e["label"], e["score"]) for e in s["labels"])[label] for label in sorted(
        e["label"] for e in result["labels"])] for s in segments])
    weights = np.array([s["end"] - s["start"] for s in segments])
    overall = dict((e["label"], e["score"]) for e in result["labels"])
    expected = (scores * weights[:, None]).sum(0) / weights.sum()
    assert np.allclose([overall[label] for label in sorted(overall)], expected, atol=1e-3)


def test_pipeline_splits_four_utterances_into_four_windows(recording, caplog):
    pipe = MultimodalEmotionRecognitionPipeline(model=recording["model"], processor=recording["processor"])
    timed = [{"start": start, "end": end, "text": text} for (start, end), text in zip(recording["spans"],
                                                                                        recording["texts"])]
    with caplog.at_level(logging.WARNING):
        result = pipe({"audio": recording["audio"], "sampling_rate": RATE, "text": timed}, overlap_seconds=0.0)
    assert not [r for r in caplog.records if "cut" in r.getMessage()]  # nothing is cut to max_duration any more
    check_windows(result, recording["spans"], recording["texts"])
    assert result["segment_transcripts"] == "per-window"
    assert result["transcript"] == " ".join(recording["texts"])
    # a window's labels are those of its audio and text classified on their own
    first = result["segments"][0]
    alone = pipe({"audio": recording["audio"][int(first["start"] * RATE) : int(round(first["end"] * RATE))],
                  "sampling_rate": RATE, "text": recording["texts"][0]})
    assert np.allclose([e["score"] for e in alone["labels"]], [e["score"] for e in first["labels"]], atol=1e-3)
    # without timed text every window gets the whole transcript, and the output says so
    whole = pipe({"audio": recording["audio"], "sampling_rate": RATE, "text": "one transcript"}, overlap_seconds=0.0)
    assert whole["segment_transcripts"] == "whole-recording"
    assert all(s["transcript"] == "one transcript" for s in whole["segments"])
    # an asr that returns timestamps gives per-window text too
    asr = lambda x: {"text": " ".join(recording["texts"]), "chunks": [  # noqa: E731
        {"timestamp": (s["start"], s["end"]), "text": s["text"]} for s in timed]}
    pipe_asr = MultimodalEmotionRecognitionPipeline(model=recording["model"], processor=recording["processor"],
                                                    asr=asr)
    transcribed = pipe_asr({"audio": recording["audio"], "sampling_rate": RATE}, overlap_seconds=0.0)
    assert transcribed["segment_transcripts"] == "per-window"
    assert [s["transcript"] for s in transcribed["segments"]] == recording["texts"]
    # a short clip keeps the plain output
    assert "segments" not in pipe({"audio": recording["audio"][: 2 * RATE], "sampling_rate": RATE, "text": "x"})


def test_onnx_runtime_and_cli_give_the_same_windows(recording, capsys):
    pytest.importorskip("onnxruntime")
    from modeling_mgcma.deploy.export import export_onnx
    from modeling_mgcma.deploy.onnx_runtime import ONNXEmotionClassifier

    root = recording["root"]
    export_onnx(recording["model"], recording["processor"], root / "onnx")
    pipe = MultimodalEmotionRecognitionPipeline(model=recording["model"], processor=recording["processor"])
    reference = pipe({"audio": str(root / "long.wav"), "text": "all of it"}, overlap_seconds=0.0)
    result = ONNXEmotionClassifier(root / "onnx", overlap_seconds=0.0)({"audio": str(root / "long.wav"),
                                                                         "text": "all of it"})
    check_windows(result, recording["spans"])
    assert [(s["start"], s["end"]) for s in result["segments"]] == [(s["start"], s["end"]) for s in
                                                                      reference["segments"]]
    for ours, theirs in zip(result["segments"] + [result], reference["segments"] + [reference]):
        assert np.allclose([e["score"] for e in ours["labels"]], [e["score"] for e in theirs["labels"]], atol=1e-4)
    for model in ("model", "onnx"):
        status = main(["predict", "--model", str(root / model), str(root / "long.wav"), "--text", "all of it",
                       "--overlap_seconds", "0"])
        record = json.loads(capsys.readouterr().out)
        assert status == 0 and record["segment_transcripts"] == "whole-recording"
        assert [(s["start"], s["end"]) for s in record["segments"]] == [(s["start"], s["end"]) for s in
                                                                          reference["segments"]]


def test_the_inference_window_is_its_own_saved_setting(recording, tmp_path, caplog):
    """`window_seconds` is saved with the processor and sets the window in the pipeline and the ONNX runtime, whatever
    the training cut `max_duration`, which stays what it is; a processor saved without it windows at `max_duration`."""
    from modeling_mgcma import MGCMAProcessor

    trained = recording["processor"]
    window = trained.max_duration
    processor = MGCMAProcessor(trained.feature_extractor, trained.tokenizer, max_duration=1.0, window_seconds=window)
    save_for_hub(recording["model"], processor, tmp_path / "model")
    loaded = MGCMAProcessor.from_pretrained(tmp_path / "model")
    assert (loaded.window_seconds, loaded.max_duration, loaded.inference_window) == (window, 1.0, window)
    assert loaded(audio=np.zeros(3 * RATE, np.float32), text="x")["input_values"].shape[-1] == RATE  # training cut
    pipe = MultimodalEmotionRecognitionPipeline(model=recording["model"], processor=loaded)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        result = pipe({"audio": recording["audio"], "sampling_rate": RATE, "text": "x"}, overlap_seconds=0.0)
    assert not [r for r in caplog.records if "cut" in r.getMessage()]  # no window is cut to the 1 s training cut
    check_windows(result, recording["spans"])
    assert loaded.max_duration == 1.0

    config_file = tmp_path / "model" / "processor_config.json"
    config = json.loads(config_file.read_text())
    config.pop("window_seconds")  # as saved before the setting existed
    config_file.write_text(json.dumps(config))
    old = MGCMAProcessor.from_pretrained(tmp_path / "model")
    assert (old.window_seconds, old.inference_window) == (None, 1.0)

    pytest.importorskip("onnxruntime")
    from modeling_mgcma.deploy.export import export_onnx
    from modeling_mgcma.deploy.onnx_runtime import ONNXEmotionClassifier

    export_onnx(recording["model"], processor, tmp_path / "onnx")
    classifier = ONNXEmotionClassifier(tmp_path / "onnx", overlap_seconds=0.0)
    assert (classifier.window_seconds, classifier.processor.max_duration) == (window, 1.0)  # nothing switched off
    onnx_result = classifier({"audio": recording["audio"], "sampling_rate": RATE, "text": "x"})
    assert [(s["start"], s["end"]) for s in onnx_result["segments"]] == [(s["start"], s["end"]) for s in
                                                                           result["segments"]]
    with pytest.raises(ValueError, match="`window_seconds` must be positive seconds"):
        MGCMAProcessor(trained.feature_extractor, trained.tokenizer, window_seconds=0)
