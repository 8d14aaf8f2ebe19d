# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The tools for bare GPU machines: the WAV-only torchcodec stand-in."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np


REPO_ROOT = Path(__file__).resolve().parents[2]


def test_wav_torchcodec_stand_in_lets_datasets_decode_wav_files(tmp_path):
    """benchmarks/wav_torchcodec (used by gpu_checks.sh where torchcodec cannot decode): a `datasets` Audio column of
    WAV files decodes, resampled to the column's rate, to what the project's own reader gives. Run in a subprocess,
    so that the stand-in does not shadow the real torchcodec here."""
    import wave

    rng = np.random.default_rng(0)
    for name, rate in (("a.wav", 16_000), ("b.wav", 8_000)):
        samples = (0.3 * rng.standard_normal(rate // 2) * 32767).astype(np.int16)
        with wave.open(str(tmp_path / name), "wb") as handle:
            handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(rate)
            handle.writeframes(samples.tobytes())
    script = f"""
import datasets, numpy as np, torchcodec
from modeling_mgcma.processing_mgcma import load_audio, resample
assert getattr(torchcodec, "STAND_IN", False), torchcodec.__file__
# transformers reads torchcodec's version from its metadata (importlib.metadata), which the stand-in carries
import importlib.metadata
assert importlib.metadata.version("torchcodec").endswith("+wavonly"), importlib.metadata.version("torchcodec")
files = [{str(tmp_path / "a.wav")!r}, {str(tmp_path / "b.wav")!r}]
column = datasets.Dataset.from_dict({{"audio": files}}).cast_column("audio", datasets.Audio(sampling_rate=16_000))
for path, row in zip(files, column):
    decoded = row["audio"]
    array, rate = load_audio(path)
    assert decoded["sampling_rate"] == 16_000, decoded["sampling_rate"]
    np.testing.assert_allclose(decoded["array"], resample(array, rate, 16_000), atol=1e-6)
print("ok", len(files))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "benchmarks" / "wav_torchcodec"), str(REPO_ROOT)]),
           "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    completed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0 and "ok 2" in completed.stdout, completed.stdout[-2000:] + completed.stderr[-3000:]
