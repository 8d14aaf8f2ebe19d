# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The IEMOCAP builder on small trees written in the release's real format."""

import logging
import shutil
import warnings

import pytest
from fixtures_data import Dialog, Utt, five_session_release, quirky_session1, write_tree, write_wav

from modeling_mgcma.configuration_mgcma import DEFAULT_EMOTION_LABELS
from modeling_mgcma.data import EXPECTED_4CLASS_COUNTS, IemocapBuilder, load_iemocap, scan_iemocap
from modeling_mgcma.data.iemocap import check_counts, count_mismatch_report


@pytest.fixture
def release(tmp_path):
    return write_tree(tmp_path / "IEMOCAP_full_release", quirky_session1())


def load(release, tmp_path, **kwargs):
    """Most trees here hold Session1 only: not strict (a missing session is an error under the strict default)."""
    kwargs.setdefault("strict_counts", False)
    return load_iemocap(release, cache_dir=tmp_path / "cache", **kwargs)


def test_rows_columns_and_quirks(release, tmp_path):
    dataset, summary = load(release, tmp_path, return_summary=True)
    rows = {row["id"]: row for row in dataset.remove_columns("audio")}
    assert set(rows) == {
        "Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_F001",
        "Ses01F_script01_1_M012", "Ses01F_script01_1_F003",
    }  # fmt: skip
    assert dataset.features["label"].names == list(DEFAULT_EMOTION_LABELS)
    angry = rows["Ses01F_impro01_M000"]
    # colons and markers kept as written; speaker letter from the utterance, not the dialog
    assert angry["text"] == "Listen: I said no [LAUGHTER] okay?"
    assert angry["speaker"] == "Ses01_M" and angry["gender"] == "M" and angry["session"] == 1
    assert angry["dialog"] == "Ses01F_impro01" and angry["improvised"] is True
    assert angry["label"] == DEFAULT_EMOTION_LABELS.index("angry") and angry["emotion"] == "ang"
    assert (angry["valence"], angry["activation"], angry["dominance"]) == (1.5, 4.0, 4.5)
    assert (angry["start"], angry["end"]) == (1.0, 2.0)
    script = rows["Ses01F_script01_1_M012"]
    assert script["dialog"] == "Ses01F_script01_1" and script["improvised"] is False
    assert script["text"] == "Time: 10:30, be there." and script["speaker"] == "Ses01_M"
    # exc merged into happy
    assert rows["Ses01F_impro01_F001"]["label"] == DEFAULT_EMOTION_LABELS.index("happy")
    assert rows["Ses01F_impro01_F001"]["emotion"] == "exc"
    assert summary.excluded == {
        "label_outside_config": 2,
        "unlabelled_segment": 3,
        "hidden_file": 4,
        "annotator_subfolder": 3,
    }
    assert summary.excluded_labels == {"fru": 1, "xxx": 1}
    assert summary.counts == {1: {"angry": 1, "happy": 2, "sad": 1, "neutral": 1}}


def test_audio_decodes_at_16k(release, tmp_path):
    samples = load(release, tmp_path)[0]["audio"].get_all_samples()
    assert samples.sample_rate == 16000 and samples.data.shape == (1, 16000)  # the 1 s label span


def test_full_config_keeps_every_label_unmerged(release, tmp_path):
    dataset = load(release, tmp_path, config="full")
    names = dataset.features["label"].names
    by_id = {row["id"]: names[row["label"]] for row in dataset.remove_columns("audio")}
    assert len(by_id) == 7
    assert by_id["Ses01F_impro01_F001"] == "excited" and by_id["Ses01F_script01_1_M012"] == "happy"
    assert by_id["Ses01F_impro01_M001"] == "frustrated" and by_id["Ses01F_impro01_F002"] == "no_majority"
    assert names[:4] == list(DEFAULT_EMOTION_LABELS)


def test_one_summary_log_line(release, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="modeling_mgcma.data.iemocap"):
        load(release, tmp_path)
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1
    assert "label_outside_config=2 (fru=1, xxx=1)" in lines[0] and "unlabelled_segment=3" in lines[0]
    assert "hidden_file=4" in lines[0] and "annotator_subfolder=3" in lines[0]


def test_unknown_config_lists_valid_ones(release, tmp_path):
    with pytest.raises(ValueError, match=r"'4class', 'full'"):
        load(release, tmp_path, config="6class")


def test_cache_key_follows_data_dir_and_config(release, tmp_path):
    other = write_tree(tmp_path / "copy", quirky_session1())
    key = lambda data_dir, config: IemocapBuilder(  # noqa: E731
        config_name=config, data_dir=str(data_dir), cache_dir=str(tmp_path / "cache")
    ).cache_dir
    assert key(release, "4class") == key(release, "4class")
    assert key(release, "4class") != key(other, "4class")
    assert key(release, "4class") != key(release, "full")


def test_cached_rebuild_is_reused_and_refreshed_on_edit(release, tmp_path):
    first = load(release, tmp_path)
    assert load(release, tmp_path).cache_files == first.cache_files
    label_file = release / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    label_file.write_text(label_file.read_text().replace("\tfru\t", "\tang\t"))
    assert len(load(release, tmp_path)) == len(first) + 1


def test_accepts_parent_of_release(release, tmp_path):
    assert len(load(release.parent, tmp_path)) == 5


@pytest.mark.parametrize(
    "break_tree, error, match",
    [
        (lambda root: shutil.rmtree(root), FileNotFoundError, "IEMOCAP folder not found"),
        (lambda root: shutil.rmtree(root / "Session1"), FileNotFoundError, "No IEMOCAP sessions"),
        (
            lambda root: (root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav").unlink(),
            FileNotFoundError,
            "Ses01F_impro01_M000 has no wav",
        ),
        (
            lambda root: (root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav").write_bytes(b""),
            ValueError,
            r"Empty wav \(0 bytes\) for utterance Ses01F_impro01_M000",
        ),
        (
            lambda root: (root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav").write_bytes(
                b"this is not RIFF audio at all" * 4
            ),
            ValueError,
            "Unreadable wav for utterance Ses01F_impro01_M000",
        ),
        (
            lambda root: write_wav(root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav", 0.0),
            ValueError,
            r"Empty wav \(no samples\)",
        ),
        (
            lambda root: (root / "Session1/dialog/transcriptions/Ses01F_script01_1.txt").unlink(),
            FileNotFoundError,
            "Transcript file missing for dialog Ses01F_script01_1",
        ),
    ],
    ids=["missing_folder", "no_sessions", "missing_wav", "empty_wav", "unreadable_wav", "header_only_wav", "no_transcript_file"],
)
def test_bad_input_names_the_culprit(release, tmp_path, break_tree, error, match):
    break_tree(release)
    with pytest.raises(error, match=match):
        load(release, tmp_path)


def test_missing_transcript_line(tmp_path):
    dialog = Dialog("Ses02M_impro05a", 2, [Utt("Ses02M_impro05a_F000", "sad", "fine"), Utt("Ses02M_impro05a_M000", "neu", None)])
    root = write_tree(tmp_path / "rel", [dialog])
    with pytest.raises(ValueError, match="Ses02M_impro05a_M000 has no transcript line in .*Ses02M_impro05a.txt"):
        load(root, tmp_path)


def test_malformed_label_line_names_file_and_line(release, tmp_path):
    label_file = release / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    label_file.write_text(label_file.read_text() + "[1.0 - oops]\tSes01F_impro01_F009\tneu\n")
    with pytest.raises(ValueError, match=r"Ses01F_impro01.txt:\d+: cannot parse label line"):
        load(release, tmp_path)


def test_transcript_lines_without_label_are_counted_not_dropped_silently(tmp_path):
    dialog = Dialog(
        "Ses03F_impro02", 3, [Utt("Ses03F_impro02_F000", "neu", "ok")],
        extra_transcript_lines=["Ses03F_impro02_M007 [001.0-002.0]: stray", "garbage line"],
    )  # fmt: skip
    _, summary = scan_iemocap(write_tree(tmp_path / "rel", [dialog], quirks=False))
    assert summary.excluded == {"transcript_line_without_label": 1, "unparsable_transcript_line": 1}


def _five_sessions(tmp_path, per_session):
    dialogs = []
    for session, n in per_session.items():
        name = f"Ses0{session}F_impro01"
        utts = [Utt(f"{name}_F{i:03d}", "ang", "hm") for i in range(n)]
        dialogs.append(Dialog(name, session, utts))
    return write_tree(tmp_path / "rel", dialogs, quirks=False)


def test_count_check_on_a_full_release_fails_with_a_table(tmp_path):
    root = _five_sessions(tmp_path, {1: 2, 2: 1, 3: 1, 4: 1, 5: 1})
    with pytest.raises(ValueError) as raised:
        load(root, tmp_path, strict_counts=True)
    message = str(raised.value)
    assert "session" in message and "angry" in message and "total" in message
    assert "Session1 | 2 (expected 229)" in message
    assert "6 (expected 5531)" not in message  # per-session totals, not a lone grand total
    assert "1 (expected 1241)" in message


def test_count_check_opt_out_warns_and_loads(tmp_path):
    root = _five_sessions(tmp_path, {1: 2, 2: 1, 3: 1, 4: 1, 5: 1})
    with pytest.warns(UserWarning, match=r"expected 229"):
        dataset = load(root, tmp_path, strict_counts=False)
    assert len(dataset) == 6


def test_partial_copy_is_refused_when_strict_and_named_in_a_warning_otherwise(release, tmp_path, caplog):
    with pytest.raises(ValueError, match=r"IEMOCAP copy in .* has no Session2, Session3, Session4, Session5 \(found sessions \[1\]\)"):
        load(release, tmp_path, strict_counts=True)
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")  # no count check (a partial copy cannot match the full release's counts)
        assert len(load(release, tmp_path)) == 5
    assert "has no Session2, Session3, Session4, Session5" in caplog.text


def test_count_check_passes_on_expected_counts(monkeypatch):
    from modeling_mgcma.data.iemocap import IemocapSummary

    summary = IemocapSummary("x", "4class", (1, 2, 3, 4, 5), EXPECTED_4CLASS_COUNTS, {}, {})
    check_counts(summary)  # raises on mismatch
    assert count_mismatch_report(EXPECTED_4CLASS_COUNTS) is None
    off_by_one = {s: dict(c) for s, c in EXPECTED_4CLASS_COUNTS.items()}
    off_by_one[3]["sad"] -= 1
    report = count_mismatch_report(off_by_one)
    assert "304 (expected 305)" in report and "1150 (expected 1151)" in report
    assert sum(sum(c.values()) for c in EXPECTED_4CLASS_COUNTS.values()) == 5531


def session1_release(tmp_path):
    from fixtures_data import quirky_session1, write_tree

    return write_tree(tmp_path / "IEMOCAP_full_release", quirky_session1())


@pytest.mark.parametrize("folder", ["transcriptions", "EmoEvaluation"])
def test_iemocap_text_files_with_a_byte_order_mark(tmp_path, folder):
    from modeling_mgcma.data import load_iemocap

    release = session1_release(tmp_path)
    target = release / "Session1" / "dialog" / folder / "Ses01F_script01_1.txt"
    target.write_bytes(target.read_text().encode("utf-8-sig"))
    dataset = load_iemocap(release, cache_dir=tmp_path / "cache", strict_counts=False)
    assert "Ses01F_script01_1_M012" in dataset["id"] and len(dataset) == 5



def test_truncated_iemocap_wav_is_named_at_load_time(tmp_path):
    from fixtures_data import write_wav

    from modeling_mgcma.data import load_iemocap

    release = five_session_release(tmp_path)
    wav = release / "Session2" / "sentences" / "wav" / "Ses02F_impro01" / "Ses02F_impro01_F001.wav"
    write_wav(wav, 0.03)  # its label spans 1 s
    with pytest.raises(ValueError, match=r"Truncated wav for utterance Ses02F_impro01_F001: .*Ses02F_impro01_F001.wav holds 0.030 s \(480 samples\) but its label spans 1.000 s"):
        load_iemocap(release, cache_dir=tmp_path / "cache", strict_counts=False)


def test_iemocap_exclusion_summary_is_shown_at_warning_level(tmp_path, caplog):
    from modeling_mgcma.data import load_iemocap

    with caplog.at_level("WARNING"):
        load_iemocap(session1_release(tmp_path), cache_dir=tmp_path / "cache", strict_counts=False)
    summary = [r for r in caplog.records if "kept 5 utterances" in r.getMessage()]
    assert summary and summary[0].levelname == "WARNING"
    assert "label_outside_config=2 (fru=1, xxx=1)" in summary[0].getMessage()
    assert "has no Session2, Session3, Session4, Session5" in caplog.text
