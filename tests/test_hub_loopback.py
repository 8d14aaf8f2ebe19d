# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Hub round trip over real HTTP on loopback: a model repo served by `olah` (a third-party Hugging Face Hub mirror
server, offline mode, serving local git repositories) and loaded by repo id and pinned commit through
`AutoModel*`, `pipeline(model="org/mgcma", ...)` and `mgcma predict --revision`, with `HF_ENDPOINT` pointing at it.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile
import torch
from hidden_package import PRELUDE

from modeling_mgcma import MGCMAForEmotionClassification, MultimodalEmotionRecognitionPipeline, save_for_hub
from modeling_mgcma.experiments.hub_upload import hub_upload_files
from modeling_mgcma.training.from_scratch import small_config, word_processor


pytest.importorskip("olah", reason="the loopback Hub test needs the `olah` mirror server (pip install olah)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="olah serves git repositories: needs the git executable"),
]

REPO = "org/mgcma"
WORDS = ["i", "am", "so", "happy", "sad", "angry", "today"]
STARTUP_TIMEOUT = 90


def _git(folder, *arguments):
    result = subprocess.run(
        ["git", "-c", "user.name=mgcma-test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false", *arguments],
        cwd=folder, capture_output=True, text=True, check=True, timeout=60,
    )
    return result.stdout.strip()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _model(processor, seed):
    torch.manual_seed(seed)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer)))
    with torch.no_grad():
        for parameter in model.classifier.parameters():
            parameter.mul_(40.0)
    return model.eval()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Two commits of org/mgcma (different weights) in a git repo served by olah on 127.0.0.1; yields the endpoint,
    both commit shas and the pipelines of both models; stops the server afterwards."""
    root = tmp_path_factory.mktemp("hub")
    repo = root / "mirrors" / "models" / "org" / "mgcma"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    processor = word_processor(WORDS)
    pipes, shas = [], []
    for seed in (0, 1):
        model = _model(processor, seed)
        # the repo holds what a push uploads (the allow-list), not everything save_for_hub wrote
        staging = root / f"saved-{seed}"
        save_for_hub(model, processor, staging)
        for name in hub_upload_files(staging):
            shutil.copy2(staging / name, repo / name)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"model seed {seed}")
        shas.append(_git(repo, "rev-parse", "HEAD"))
        pipes.append(MultimodalEmotionRecognitionPipeline(model=model, processor=processor, device="cpu"))

    port = _free_port()
    config = root / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'mirror-netloc = "127.0.0.1:{port}"\nmirror-lfs-netloc = "127.0.0.1:{port}"\n'
        f'repos-path = "{root / "olah-cache"}"\nmirrors-path = ["{root / "mirrors"}"]\n'
        "[accessibility]\noffline = true\n"
    )
    log = open(root / "olah.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; from olah.server import cli; sys.exit(cli())", "--config", str(config)],
        cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if server.poll() is not None:
                pytest.fail(f"olah exited with {server.returncode}:\n{(root / 'olah.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{endpoint}/api/models/{REPO}/revision/main", timeout=5) as response:
                    if json.load(response)["sha"] == shas[1]:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"olah not ready after {STARTUP_TIMEOUT}s:\n{(root / 'olah.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"endpoint": endpoint, "shas": shas, "pipes": pipes, "root": root}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()


def _client_env(hub, name):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=hub["endpoint"],
        HF_HOME=str(hub["root"] / name),  # an empty cache: every file has to come over HTTP
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def test_repo_id_and_pinned_revision_load_over_http_without_the_package(hub):
    """Every load names a commit sha. Branch names are not exercised: olah 0.5.4 answers HEAD
    /org/mgcma/resolve/main/<absent file> with 401 RepoNotFound (huggingface.co: 404 EntryNotFound), which fails
    transformers' probes for optional files such as chat_template.json; at a commit sha it answers 404 correctly."""
    root = hub["root"]
    rng = np.random.default_rng(0)
    soundfile.write(root / "clip.wav", (rng.standard_normal((14000, 2)) * 0.2).astype(np.float32), 22050)
    item = {"audio": str(root / "clip.wav"), "text": "i am so happy today"}
    expected = [pipe(item) for pipe in hub["pipes"]]
    assert [e["labels"] for e in expected][0] != [e["labels"] for e in expected][1]  # the two commits differ
    script = f"""
    import json, os, torch
    from transformers import AutoModel, AutoModelForAudioClassification, AutoProcessor, pipeline

    sha = {hub["shas"][0]!r}
    item = {item!r}
    classifier = AutoModelForAudioClassification.from_pretrained({REPO!r}, trust_remote_code=True, revision=sha)
    bare = AutoModel.from_pretrained({REPO!r}, trust_remote_code=True, revision=sha)
    processor = AutoProcessor.from_pretrained({REPO!r}, trust_remote_code=True, revision=sha)
    pinned = pipeline(model={REPO!r}, trust_remote_code=True, revision=sha, device="cpu")
    second = pipeline("multimodal-emotion-recognition", model={REPO!r}, trust_remote_code=True, revision={hub["shas"][1]!r}, device="cpu")
    snapshots = os.path.join(os.environ["HF_HOME"], "hub", "models--org--mgcma", "snapshots")
    print(json.dumps({{
        "classifier": type(classifier).__name__,
        "bare": type(bare).__name__,
        "processor": type(processor).__name__,
        "pinned": pinned(item),
        "second": second([item, item], batch_size=2)[0],
        "snapshots": sorted(os.listdir(snapshots)),
    }}))
    """
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        cwd=root, env=_client_env(hub, "hf-client"), capture_output=True, text=True, timeout=400,
    )
    assert result.returncode == 0, f"STDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr[-4000:]}"
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert (output["classifier"], output["bare"], output["processor"]) == (
        "MGCMAForEmotionClassification", "MGCMAModel", "MGCMAProcessor"
    )
    assert output["snapshots"] == sorted(hub["shas"])  # both commits, fetched from the server
    for got, want in ((output["pinned"], expected[0]), (output["second"], expected[1])):
        assert [e["label"] for e in got["labels"]] == [e["label"] for e in want["labels"]]
        np.testing.assert_allclose([e["score"] for e in got["labels"]], [e["score"] for e in want["labels"]], atol=1e-5)
        assert got["uncertainty"] == pytest.approx(want["uncertainty"], rel=1e-4)


def test_cli_predicts_from_a_hub_repo_at_a_revision(hub):
    root = hub["root"]
    soundfile.write(root / "mono.wav", (np.random.default_rng(1).standard_normal(9000) * 0.2).astype(np.float32), 16000)
    expected = hub["pipes"][0]({"audio": str(root / "mono.wav"), "text": "sad"})
    result = subprocess.run(
        [sys.executable, "-m", "modeling_mgcma.cli", "predict", "--model", REPO, "--revision", hub["shas"][0],
         str(root / "mono.wav"), "--text", "sad"],
        cwd=root, env=_client_env(hub, "hf-cli"), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = result.stdout.splitlines()
    record = json.loads(line)
    assert record["label"] == expected["labels"][0]["label"]
    assert list(record["scores"].values()) == pytest.approx([e["score"] for e in expected["labels"]], abs=1e-5)
