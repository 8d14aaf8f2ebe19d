#!/usr/bin/env bash
# Set up a fresh machine for MGCMA: system audio libraries (for datasets' Audio feature via torchcodec), espeak-ng
# (speech synthesis for the spoken demo corpus), a virtual environment in .venv, and the locked versions of every
# Python package (requirements/lock.txt: torch's CPU build, this package's dependencies and its test and onnx extras),
# then this package itself, editable. Safe to run again.
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

# The locked set (requirements/lock.txt, made by scripts/lock.sh) is for CPython 3.11 on x86_64 Linux with torch's CPU
# build: every package at the version CI tested. Elsewhere, or with MGCMA_LOCK=0, the ranges in pyproject.toml are
# installed instead (what `pip install -e ".[test]"` resolves that day).
UV_VERSION=0.13.9
PY_TAG=$(.venv/bin/python -c 'import platform, sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}-{platform.machine()}-{sys.platform}")')
if [ "${MGCMA_LOCK:-1}" != "0" ] && [ "$PY_TAG" = "3.11-x86_64-linux" ]; then
    .venv/bin/python -m pip install -q "uv==$UV_VERSION"
    source scripts/torch_source.sh  # TORCH_SOURCE: where torch's CPU wheel comes from
    export UV_LINK_MODE=copy  # the uv cache and .venv may sit on different file systems
    .venv/bin/uv pip install -q --python .venv/bin/python "${TORCH_SOURCE[@]}" -r requirements/lock.txt
    # Editable, without dependencies (the lock has them): `data/` is installed as `modeling_mgcma.data` by a
    # package-dir mapping, which only an editable install also serves to code run from this checkout (a plain
    # install is shadowed by the checkout's `modeling_mgcma/`).
    .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
    echo "MGCMA environment ready in .venv (locked: requirements/lock.txt)"
else
    if [ "${MGCMA_LOCK:-1}" != "0" ]; then
        echo "note: requirements/lock.txt is for CPython 3.11 on x86_64 Linux (this is $PY_TAG);" \
             "installing the ranges in pyproject.toml instead" >&2
    fi
    # Install torch first and pinned: a bare `torch` requirement on a clean venv pulls a multi-GB CUDA build.
    .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
    .venv/bin/python -m pip install -q -e ".[test]"
    echo "MGCMA environment ready in .venv (from the ranges in pyproject.toml)"
fi
