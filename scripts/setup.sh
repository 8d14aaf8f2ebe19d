#!/usr/bin/env bash
# Set up a fresh machine for MGCMA: system audio libraries (for datasets' Audio feature via torchcodec), espeak-ng
# (speech synthesis for the spoken demo corpus), a virtual environment in .venv, the CPU build of torch, and this
# package with its test extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

# torchcodec 0.13 (datasets' audio decoder) links against FFmpeg 5.1's libraries (Debian 12 package names).
if ! ldconfig -p 2>/dev/null | grep -q "libavcodec.so.59"; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4 >/dev/null
    else
        echo "warning: FFmpeg 5.1 libraries (libavcodec59 ...) not found and apt-get unavailable;" \
             "decoding datasets' Audio columns will fail" >&2
    fi
fi

# espeak-ng (Debian package) speaks the transcripts of the spoken demo corpus (data/demo_corpus.py, voice="espeak").
if ! command -v espeak-ng >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null
    else
        echo "warning: espeak-ng not found and apt-get unavailable; the spoken demo corpus cannot be generated" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# Install torch first and pinned: a bare `torch` requirement on a clean venv pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
# Editable: `data/` is installed as `modeling_mgcma.data` by a package-dir mapping, which only an editable install
# also serves to code run from this checkout (a plain install is shadowed by the checkout's `modeling_mgcma/`).
.venv/bin/python -m pip install -q -e ".[test]"
echo "MGCMA environment ready in .venv"
