# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""modeling_mgcma/training/collators.py: rows of audio and text become model inputs (resampled, mono), and the audio
decoding it relies on."""

import numpy as np
import pytest

from modeling_mgcma.processing_mgcma import decode_audio
from modeling_mgcma.training.collators import MGCMADataCollator


def test_collator_turns_rows_into_model_inputs_and_resamples(tiny_processor):
    rng = np.random.default_rng(0)
    rows = {"id": ["utt0", "utt1", "utt2"], "text": ["i am happy", "so sad", "the weather is fine"], "label": [0, 1, 2],
            "audio": [{"array": (0.1 * rng.standard_normal(4000)).astype(np.float32), "sampling_rate": 16_000},
                      {"array": np.zeros((2, 4000), dtype=np.float32) + 0.1, "sampling_rate": 8000},  # stereo, 8 kHz
                      {"array": (0.1 * rng.standard_normal(5600)).astype(np.float32), "sampling_rate": 16_000}]}
    items = [{key: rows[key][i] for key in rows} for i in range(3)]
    batch = MGCMADataCollator(tiny_processor)(items)
    assert set(batch) == {"input_values", "speech_attention_mask", "input_ids", "text_attention_mask",
                          "token_type_ids", "labels"}  # fmt: skip
    assert batch["labels"].tolist() == [0, 1, 2]
    # 0.5 s at 8 kHz -> 8000 samples at 16 kHz
    assert int(batch["speech_attention_mask"][1].sum()) == 8000
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\]"):
        MGCMADataCollator(tiny_processor)([{"audio": rows["audio"][0], "label": 0}])


def test_decode_audio_reads_paths_and_rejects_unknown_types(tmp_path):
    import soundfile

    path = tmp_path / "a.wav"
    soundfile.write(path, np.full(1600, 0.25, dtype=np.float32), 16_000)
    array, rate = decode_audio({"path": str(path), "bytes": None})
    assert rate == 16_000 and array.shape == (1600,) and abs(array.mean() - 0.25) < 1e-3
    with pytest.raises(TypeError, match="unsupported audio type int"):
        decode_audio(3)
