# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""A timed transcript is reported as it was used: `transcript` holds the segments the windows read, not every
segment given; a segment that starts well after the audio's end (milliseconds given as seconds) is refused. The
pipeline, the ONNX runtime and the shared helpers in inference_mgcma.py agree."""

import numpy as np
import pytest

from modeling_mgcma.inference_mgcma import (
    SEGMENT_START_TOLERANCE_SECONDS,
    check_segments_in_audio,
    recording_result,  # fmt: skip
)


RATE = 16000
ID2LABEL = {0: "a", 1: "b"}


def segments(*spans):
    return [{"start": start, "end": end, "text": text} for start, end, text in spans]


@pytest.mark.parametrize("windows", [[(0, 2 * RATE)], [(0, RATE), (RATE, 2 * RATE)]])
def test_the_transcript_holds_only_the_segments_inside_the_audio(windows):
    timed = segments((0.0, 1.0, "first"), (1.0, 2.0, "second"), (2.2, 2.4, "after the end"))
    probabilities = np.full((len(windows), 2), 0.5)
    result = recording_result(probabilities, [None] * len(windows), windows, RATE, ID2LABEL, segments=timed)
    assert result["transcript"] == "first second"


@pytest.mark.parametrize("start", [1500.0, 2.0 + SEGMENT_START_TOLERANCE_SECONDS + 0.01, 60.0])
def test_a_segment_far_beyond_the_audio_end_is_refused(start):
    with pytest.raises(ValueError, match="segment #1") as error:
        check_segments_in_audio(segments((0.0, 1.0, "a"), (start, start + 1, "b")), 2.0)
    assert "seconds" in str(error.value)


def test_segments_up_to_the_tolerance_are_accepted():
    check_segments_in_audio(segments((0.0, 1.0, "a"), (2.0 + SEGMENT_START_TOLERANCE_SECONDS, 3.0, "b")), 2.0)
    check_segments_in_audio(None, 2.0)


def test_pipeline_reports_the_used_segments_and_refuses_milliseconds(tiny_model, tiny_processor):
    from modeling_mgcma.pipeline_mgcma import MultimodalEmotionRecognitionPipeline

    pipe = MultimodalEmotionRecognitionPipeline(model=tiny_model.eval(), processor=tiny_processor)
    audio = np.random.default_rng(0).normal(0, 0.1, 2 * RATE).astype(np.float32)
    words = list(tiny_processor.tokenizer.get_vocab())[-3:]
    timed = segments((0.0, 1.0, words[0]), (1.0, 2.0, words[1]), (2.3, 2.4, words[2]))
    result = pipe({"audio": audio, "sampling_rate": RATE, "text": timed})
    assert result["transcript"] == f"{words[0]} {words[1]}"
    with pytest.raises(ValueError, match="after the audio's end"):
        pipe({"audio": audio, "sampling_rate": RATE, "text": segments((0, 1000, words[0]), (1000, 2000, words[1]))})
