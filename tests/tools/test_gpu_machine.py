# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""tools/gpu_machine: the WAV-only torchcodec stand-in, and device_bundle.sh (what a bare lent machine needs)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / "tools" / "gpu_machine"


def test_wav_torchcodec_stand_in_lets_datasets_decode_wav_files(tmp_path):
    """torchcodec-stand-in (used by gpu_checks.sh where torchcodec cannot decode): a `datasets` Audio column of
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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOOLS / "torchcodec-stand-in"), str(REPO_ROOT)]),
           "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    completed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0 and "ok 2" in completed.stdout, completed.stdout[-2000:] + completed.stderr[-3000:]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng program")
def test_bundled_espeak_says_what_the_installed_one_says(tmp_path):
    bundle = tmp_path / "bundle"
    subprocess.run(["bash", str(TOOLS / "device_bundle.sh"), str(bundle), "--no-wheels"], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    wrapper = bundle / "espeak" / "bin" / "espeak-ng"
    assert any(p.name.startswith("ld-linux") for p in (bundle / "espeak" / "lib").iterdir())
    assert (bundle / "espeak" / "espeak-ng-data" / "phondata").is_file()
    arguments = ["-v", "en+f2", "-p", "60", "-s", "150", "-a", "120", "-w"]
    text = "the bundled voice says the same words"
    subprocess.run([str(wrapper), *arguments, str(tmp_path / "bundled.wav"), text], check=True, timeout=60)
    subprocess.run(["espeak-ng", *arguments, str(tmp_path / "installed.wav"), text], check=True, timeout=60)
    bundled = (tmp_path / "bundled.wav").read_bytes()
    assert len(bundled) > 10_000 and bundled == (tmp_path / "installed.wav").read_bytes()
    # the WAV-only torchcodec stand-in goes along, with the version transformers reads from its metadata
    assert (bundle / "torchcodec-stand-in" / "torchcodec" / "decoders.py").is_file()
    assert any(p.name.startswith("torchcodec-") for p in (bundle / "torchcodec-stand-in").glob("*.dist-info"))


def test_the_stand_in_is_on_no_default_path():
    """No interpreter started in the repository root (or in the tools folder) imports the stand-in: only a PYTHONPATH
    entry that names tools/gpu_machine/torchcodec-stand-in does."""
    probe = ("import importlib.util as u, importlib.metadata as m; spec = u.find_spec('torchcodec')\n"
             "print(spec.origin if spec else None, [d.version for d in m.distributions(name='torchcodec')])")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for cwd in (REPO_ROOT, TOOLS):
        found = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True,
                               timeout=60).stdout.strip()  # fmt: skip
        assert "stand-in" not in found and "wavonly" not in found, (cwd, found)
