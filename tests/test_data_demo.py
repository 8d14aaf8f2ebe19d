# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The demo corpus: IEMOCAP layout, reproducibility, and the one-cue-per-utterance design."""

import re
import shutil
import wave

import numpy as np
import pytest
import soundfile

from modeling_mgcma.configuration_mgcma import DEFAULT_EMOTION_LABELS
from modeling_mgcma.data import EMOTION_KEYWORDS, demo_vocabulary, generate_demo_corpus, load_iemocap, scan_iemocap


KEYWORD_CLASS = {word: label for label, words in EMOTION_KEYWORDS.items() for word in words}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", seed=0)


@pytest.fixture(scope="module")
def utterances(corpus):
    return scan_iemocap(corpus)[0]


def words_of(text):
    return re.findall(r"(?<!\[)\b[a-z]+\b(?!\])", text.lower())


def test_round_trip_through_the_builder(corpus, tmp_path):
    with pytest.warns(UserWarning, match="expected 229"):  # the demo is not the release: opt out
        dataset, summary = load_iemocap(corpus, cache_dir=tmp_path / "cache", strict_counts=False, return_summary=True)
    assert len(dataset) == 400
    assert summary.counts == {s: {label: 20 for label in DEFAULT_EMOTION_LABELS} for s in range(1, 6)}
    assert summary.excluded["unlabelled_segment"] == 20  # one MXX0 line per dialog
    assert summary.excluded["annotator_subfolder"] == 15 and summary.excluded["hidden_file"] == 10
    assert set(summary.excluded_labels) == {"fru", "xxx", "sur"}
    table = dataset.remove_columns("audio")
    assert len(set(table["speaker"])) == 10
    assert set(table["emotion"]) == {"ang", "hap", "exc", "sad", "neu"}
    assert any(d.endswith("_1") and "_script" in d for d in table["dialog"]) and any(table["improvised"])
    assert not all(table["improvised"])
    letters_differ = [row for row in table if row["dialog"][5] != row["gender"]]
    assert letters_differ and all(row["speaker"].endswith(row["gender"]) for row in letters_differ)
    assert any(":" in text for text in table["text"]) and any("[LAUGHTER]" in t or "[BREATHING]" in t for t in table["text"])
    samples = dataset[0]["audio"].get_all_samples()
    assert samples.sample_rate == 16000 and samples.data.shape[0] == 1


def test_wavs_are_16k_mono_16bit_and_short(utterances):
    durations = []
    for utterance in utterances:
        with wave.open(utterance["audio"]) as handle:
            assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (16000, 1, 2)
            durations.append(handle.getnframes() / 16000)
    assert 0.4 < min(durations) and max(durations) < 3.2 and 1.0 < np.mean(durations) < 2.2


def test_reproducible_by_seed_and_idempotent(corpus, tmp_path, file_hashes):
    again = generate_demo_corpus(tmp_path / "again", seed=0)
    assert file_hashes(again) == file_hashes(corpus)
    other = generate_demo_corpus(tmp_path / "other", seed=1)
    assert file_hashes(other) != file_hashes(corpus)
    marker = other / "mgcma_demo_corpus.json"
    stamp = marker.stat().st_mtime_ns
    generate_demo_corpus(tmp_path / "other", seed=1)  # same parameters: nothing rewritten
    assert marker.stat().st_mtime_ns == stamp
    generate_demo_corpus(tmp_path / "other", seed=0)  # other parameters: regenerated
    assert file_hashes(tmp_path / "other") == file_hashes(corpus)


def test_never_overwrites_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not overwriting"):
        generate_demo_corpus(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


def test_one_cue_per_utterance(utterances):
    cues = {label: {"text": 0, "none": 0} for label in DEFAULT_EMOTION_LABELS}
    for utterance in utterances:
        keywords = [KEYWORD_CLASS[w] for w in words_of(utterance["text"]) if w in KEYWORD_CLASS]
        assert len(keywords) <= 1
        if keywords:
            assert keywords[0] == utterance["label"]  # a keyword always names the true class
        cues[utterance["label"]]["text" if keywords else "none"] += 1
    assert cues["neutral"]["text"] == 0
    for label in ("angry", "happy", "sad"):  # half text-cued, half prosody-cued
        assert cues[label]["text"] == cues[label]["none"] == 50


def test_vocabulary_covers_every_transcript(utterances):
    from transformers import BertTokenizer

    vocabulary = demo_vocabulary()
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(set(vocabulary)) == len(vocabulary)
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocabulary)})
    for utterance in utterances:
        assert "[UNK]" not in tokenizer.tokenize(utterance["text"]), utterance["text"]


def syllable_count(signal):
    frames = signal[: len(signal) // 160 * 160].reshape(-1, 160)
    voiced = np.sqrt((frames**2).mean(1)) > 0.25 * np.sqrt((frames**2).mean(1)).max()
    return int(np.sum(np.diff(voiced.astype(int)) == 1) + voiced[0])


def test_one_syllable_per_word(utterances):
    unmarked = [u for u in utterances if "[" not in u["text"]][:60]
    for utterance in unmarked:
        signal, _ = soundfile.read(utterance["audio"], dtype="float32")
        assert syllable_count(signal) == len(words_of(utterance["text"])), utterance["id"]


def hand_features(path):
    """log energy, median pitch (autocorrelation), voiced-onset rate: coarse prosody."""
    signal, rate = soundfile.read(path, dtype="float32")
    frames = signal[: len(signal) // 400 * 400].reshape(-1, 400)
    rms = np.sqrt((frames**2).mean(1))
    voiced = rms > 0.02 * rms.max()
    pitches = []
    for index in np.flatnonzero(voiced):
        segment = signal[index * 400 : index * 400 + 1024]
        if len(segment) < 1024:
            continue
        segment = segment - segment.mean()
        correlation = np.correlate(segment, segment, "full")[1023:]
        lag = 32 + np.argmax(correlation[32:266])  # 500 Hz .. 60 Hz
        pitches.append(np.log(rate / lag))
    onsets = np.sum(np.diff(voiced.astype(int)) == 1)
    return [np.log(rms[voiced].mean()), np.median(pitches), onsets / (len(signal) / rate)]


def test_each_modality_alone_caps_fused_is_near_perfect(utterances):
    """Leave-one-session-out logistic regression: speech-only and text-only well below fused."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import recall_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    speech = np.array([hand_features(u["audio"]) for u in utterances])
    texts = [u["text"] for u in utterances]
    words = CountVectorizer(token_pattern=r"[a-z]+").fit_transform(texts).toarray()
    labels = np.array([u["label"] for u in utterances])
    sessions = np.array([u["session"] for u in utterances])
    scores = {}
    for name, features in {"speech": speech, "text": words, "fused": np.hstack([speech, words])}.items():
        uas = []
        for test in range(1, 6):
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=10))
            model.fit(features[sessions != test], labels[sessions != test])
            uas.append(recall_score(labels[sessions == test], model.predict(features[sessions == test]), average="macro"))
        scores[name] = float(np.mean(uas))
    print("LOSO UA", scores)
    assert scores["speech"] < 0.7 and scores["text"] < 0.7
    assert scores["fused"] > 0.95


def test_release_counts_and_iemocap_durations(tmp_path):
    counts = {s: {"angry": 1, "happy": 2, "sad": 1, "neutral": 2} for s in range(1, 6)}
    root = generate_demo_corpus(tmp_path / "c", seed=3, counts=counts, durations="iemocap", excluded_per_session=0)
    utterances, summary = scan_iemocap(root)
    assert summary.counts == counts and "label_outside_config" not in summary.excluded
    durations = [soundfile.info(u["audio"]).duration for u in utterances]
    assert np.mean(durations) > 2.5


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="durations must be one of"):
        generate_demo_corpus(tmp_path / "x", durations="long")
    with pytest.raises(ValueError, match="sessions 1-5"):
        generate_demo_corpus(tmp_path / "x", counts={1: {"angry": 1}})
    with pytest.raises(ValueError, match="unknown classes"):
        generate_demo_corpus(tmp_path / "x", counts={s: {"bored": 1} for s in range(1, 6)})


needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (scripts/setup.sh installs the Debian package): the spoken corpus needs it",
)


# ---------------------------------------------------------------------------------------------------------------------
# Spoken demo corpus
# ---------------------------------------------------------------------------------------------------------------------


@needs_espeak
def test_spoken_corpus_is_deterministic_and_says_the_transcript(tmp_path, file_hashes):
    from modeling_mgcma.data import generate_demo_corpus, load_iemocap, scan_iemocap

    first = generate_demo_corpus(tmp_path / "a", seed=3, utterances_per_session=12, voice="espeak")
    second = generate_demo_corpus(tmp_path / "b", seed=3, utterances_per_session=12, voice="espeak")
    assert file_hashes(first) == file_hashes(second)
    tones = generate_demo_corpus(tmp_path / "t", seed=3, utterances_per_session=12)
    assert file_hashes(first) != file_hashes(tones)

    utterances = scan_iemocap(first)[0]
    assert len(utterances) == 60
    dataset = load_iemocap(first, strict_counts=False)
    # the speech says the words: its duration follows the letters of the transcript's words
    letters = np.array([sum(map(len, re.findall(r"(?<!\[)\b[a-z]+\b(?!\])", row["text"].lower()))) for row in dataset])
    seconds = np.array([len(row["audio"]["array"]) / row["audio"]["sampling_rate"] for row in dataset])
    assert np.corrcoef(letters, seconds)[0, 1] > 0.4


def test_spoken_corpus_without_espeak_says_how_to_install_it(tmp_path, monkeypatch):
    from modeling_mgcma.data import generate_demo_corpus

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        generate_demo_corpus(tmp_path / "x", voice="espeak")
    with pytest.raises(ValueError, match="voice"):
        generate_demo_corpus(tmp_path / "x", voice="opera")


# ---------------------------------------------------------------------------------------------------------------------
# Corpus styles: the learning benchmark's families
# ---------------------------------------------------------------------------------------------------------------------


def style_cues(utterances, style):
    """Per class, how many utterances carry one of the style's keywords (of their own class) in the text."""
    fillers, keywords = style.words
    owner = {word: label for label, words in keywords.items() for word in words}
    counts = {label: 0 for label in DEFAULT_EMOTION_LABELS}
    for utterance in utterances:
        found = [owner[w] for w in words_of(utterance["text"]) if w in owner]
        assert len(found) <= 1 and all(label == utterance["label"] for label in found), utterance["text"]
        assert all(w in fillers or w in owner or w in ("laughter", "breathing") for w in words_of(utterance["text"]))
        counts[utterance["label"]] += bool(found)
    return counts


def test_the_default_style_is_the_project_corpus(corpus, tmp_path, file_hashes):
    from modeling_mgcma.data.demo_corpus import CorpusStyle

    same = generate_demo_corpus(tmp_path / "styled", seed=0, style=CorpusStyle())
    assert file_hashes(same) == file_hashes(corpus)  # same bytes, same marker: nothing recorded for the default


def test_a_style_sets_cue_shares_vocabulary_and_neutral_cues(tmp_path):
    from modeling_mgcma.data.demo_corpus import OTHER_FILLER_WORDS, CorpusStyle

    style = CorpusStyle(cue_mix={"text": 1, "prosody": 2, "both": 1}, neutral_cues=True, vocabulary="other", voices=5,
                        prosody_strength=0.7, jitter=1.5, noise=0.01)  # fmt: skip
    root = generate_demo_corpus(tmp_path / "styled", seed=0, utterances_per_session=16, style=style)
    utterances = scan_iemocap(root)[0]
    # 4 per class and session: 1 text, 2 prosody, 1 both -> 2 of 4 carry the keyword, for neutral too
    assert style_cues(utterances, style) == dict.fromkeys(DEFAULT_EMOTION_LABELS, 10)
    assert not set(OTHER_FILLER_WORDS) & set(demo_vocabulary()) and set(OTHER_FILLER_WORDS) <= set(demo_vocabulary(style))
    marker = (root / "mgcma_demo_corpus.json").read_text()
    assert '"neutral_cues": true' in marker and '"voices": 5' in marker
    again = generate_demo_corpus(tmp_path / "styled", seed=0, utterances_per_session=16, style=style)
    assert again == root
    with pytest.raises(ValueError, match="cue_mix"):
        CorpusStyle(cue_mix={"text": 1, "gesture": 1})
    with pytest.raises(ValueError, match="prosody_strength"):
        CorpusStyle(prosody_strength=1.5)
    with pytest.raises(ValueError, match="vocabulary"):
        CorpusStyle(vocabulary="klingon")


def test_prosody_strength_moves_the_class_prosody_towards_the_unmarked_one():
    from modeling_mgcma.data.demo_corpus import PLAIN_PROSODY, PROSODY, CorpusStyle

    keys = ("f0", "amplitude", "rate")
    full, none = CorpusStyle(), CorpusStyle(prosody_strength=0.0)
    assert full.prosody("angry", PROSODY, PLAIN_PROSODY, keys) == PROSODY["angry"]
    assert none.prosody("angry", PROSODY, PLAIN_PROSODY, keys) == pytest.approx(PROSODY["neutral"])
    half = CorpusStyle(prosody_strength=0.5).prosody("angry", PROSODY, PLAIN_PROSODY, keys)
    assert PROSODY["neutral"]["f0"] < half["f0"] < PROSODY["angry"]["f0"]
    cued = CorpusStyle(neutral_cues=True)  # the unmarked prosody is then the plain one, neutral has its own
    assert cued.prosody(None, PROSODY, PLAIN_PROSODY, keys) == PLAIN_PROSODY
    assert cued.prosody("neutral", PROSODY, PLAIN_PROSODY, keys) == PROSODY["neutral"]
