# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""MGCMAProcessor: resampling, channels, duration cap, masks, save/load; audio reading without librosa/soundfile."""

import io
import wave

import numpy as np
import pytest
import torch

from modeling_mgcma import MGCMAProcessor, processing_mgcma
from modeling_mgcma.processing_mgcma import load_audio, resample, to_mono


def tone(rate, seconds=0.5, freq=220.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(array, rate, channels=1):
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.clip(array, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def test_outputs_masks_and_lengths(tiny_processor):
    batch = tiny_processor(audio=[tone(16000, 0.5), tone(16000, 0.25)], text=["i am happy", "sad"])
    assert set(batch) >= {"input_values", "speech_attention_mask", "input_ids", "text_attention_mask"}
    assert batch["input_values"].shape == (2, 8000)
    assert batch["speech_attention_mask"].sum(-1).tolist() == [8000, 4000]
    assert batch["text_attention_mask"].sum(-1).tolist() == [5, 3]  # [CLS] words [SEP]
    tokens = tiny_processor.tokenizer.convert_ids_to_tokens(batch["input_ids"][0][:5])
    assert tokens == ["[CLS]", "i", "am", "happy", "[SEP]"]


def test_other_rates_are_resampled_to_16k(tiny_processor):
    batch = tiny_processor(audio=tone(8000, 0.5), text="i am happy", sampling_rate=8000)
    assert batch["input_values"].shape == (1, 8000)
    direct = tiny_processor(audio=tone(16000, 0.5), text="i am happy")
    # same tone at 16 kHz after normalisation: nearly identical waveforms
    assert torch.corrcoef(torch.stack([batch["input_values"][0], direct["input_values"][0]]))[0, 1] > 0.99


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_stereo_is_mixed_down(tiny_processor, layout):
    left, right = tone(16000), tone(16000, freq=330.0)
    stereo = np.stack([left, right]) if layout == "channels_first" else np.stack([left, right], axis=1)
    batch = tiny_processor(audio=stereo, text="sad")
    mono = tiny_processor(audio=(left + right) / 2, text="sad")
    assert torch.allclose(batch["input_values"], mono["input_values"], atol=1e-5)


def test_max_duration_cuts_long_clips():
    from modeling_mgcma.training.from_scratch import word_processor

    processor = word_processor(["a"], max_duration=0.25)
    batch = processor(audio=[tone(16000, 1.0), tone(16000, 0.1)], text=["a", "a"])
    assert batch["speech_attention_mask"].sum(-1).tolist() == [4000, 1600]


def test_save_and_load_keep_options(tmp_path):
    from modeling_mgcma.training.from_scratch import word_processor

    processor = word_processor(["hello", "world"], max_duration=7.5)
    processor.save_pretrained(tmp_path)
    loaded = MGCMAProcessor.from_pretrained(tmp_path)
    assert loaded.max_duration == 7.5 and loaded.max_text_length == processor.max_text_length
    assert loaded.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    a = processor(audio=tone(16000), text="hello world")
    b = loaded(audio=tone(16000), text="hello world")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_processor_errors(tiny_processor):
    with pytest.raises(ValueError, match="audio"):
        tiny_processor()
    with pytest.raises(ValueError, match="empty"):
        tiny_processor(audio=np.zeros(0, dtype=np.float32), text="a")
    with pytest.raises(ValueError, match="NaN"):
        tiny_processor(audio=np.array([0.1, np.nan] * 100, dtype=np.float32), text="a")
    with pytest.raises(ValueError, match="text #1 must be a string"):
        tiny_processor(text=["a", 3])
    with pytest.raises(ValueError, match="2 audio clips but 1 transcripts"):
        tiny_processor(audio=[tone(16000), tone(16000)], text=["a"])
    with pytest.raises(ValueError, match="1-D"):
        tiny_processor(audio=np.zeros((2, 2, 100), dtype=np.float32), text="a")


def test_load_audio_with_and_without_soundfile(tmp_path, monkeypatch):
    stereo = np.stack([tone(22050), tone(22050, freq=440.0)], axis=1).reshape(-1)
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(stereo, 22050, channels=2))
    with_soundfile, rate = load_audio(str(path))
    monkeypatch.setattr(processing_mgcma, "is_soundfile_available", lambda: False)
    stdlib, stdlib_rate = load_audio(str(path))
    from_bytes, _ = load_audio(path.read_bytes())
    assert rate == stdlib_rate == 22050
    assert with_soundfile.shape == stdlib.shape == (2, 11025)
    assert np.allclose(with_soundfile, stdlib, atol=1e-4) and np.allclose(stdlib, from_bytes)


def test_load_audio_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_audio(str(tmp_path / "missing.wav"))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match="bad.wav"):
        load_audio(str(bad))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(wav_bytes(np.zeros(0, dtype=np.float32), 16000))
    with pytest.raises(ValueError, match="no samples"):
        load_audio(str(empty))
    with pytest.raises(ValueError, match="file path or bytes"):
        load_audio(12)


def test_numpy_resampler_without_librosa(monkeypatch):
    monkeypatch.setattr(processing_mgcma, "is_librosa_available", lambda: False)
    signal = tone(44100, 0.5, freq=440.0)
    out = resample(signal, 44100, 16000)
    assert len(out) == 8000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - 440.0) < 3.0
    assert to_mono(np.ones((3, 2), dtype=np.float32)).shape == (3,)


def test_from_encoders_pairs_the_speech_feature_extractor_with_the_text_tokenizer(tmp_path, tiny_processor):
    """`MGCMAProcessor.from_encoders` mirrors the model's: the processor of two encoder folders (or Hub ids)."""
    tiny_processor.feature_extractor.return_attention_mask = False  # from_encoders asks for the masks MGCMA needs
    tiny_processor.feature_extractor.save_pretrained(tmp_path / "speech")
    tiny_processor.tokenizer.save_pretrained(tmp_path / "text")
    processor = MGCMAProcessor.from_encoders(str(tmp_path / "speech"), str(tmp_path / "text"), max_duration=2.0)
    assert isinstance(processor, MGCMAProcessor) and processor.max_duration == 2.0
    assert processor.feature_extractor.return_attention_mask is True
    assert processor.tokenizer.get_vocab() == tiny_processor.tokenizer.get_vocab()
    batch = processor(audio=[tone(16000, 3.0)], text=["i am happy"])
    assert batch["input_values"].shape == (1, 32000) and batch["speech_attention_mask"].sum() == 32000


def test_processor_names_a_lone_surrogate_in_a_transcript(saved_model):
    from modeling_mgcma.processing_mgcma import MGCMAProcessor

    processor = MGCMAProcessor.from_pretrained(saved_model / "model")
    with pytest.raises(ValueError, match=r"text #1 holds a lone surrogate U\+D800 at position 3: not valid Unicode"):
        processor(text=["fine", "bad\ud800"])
