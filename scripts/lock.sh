#!/usr/bin/env bash
# Regenerate requirements/lock.txt: every direct and transitive dependency of this package and its `test` and `onnx`
# extras at one version, for CPython 3.11 on x86_64 Linux, with torch's CPU build. scripts/setup.sh installs it.
#
#   bash scripts/lock.sh             keep the locked versions that still satisfy pyproject.toml, add what is new
#   bash scripts/lock.sh --upgrade   move every package to the newest version pyproject.toml allows
#
# After moving transformers, vendor its common tests to match: python scripts/vendor_transformers_tests.py
# (scripts/check_newest.sh does both in a separate environment first and runs the suite there).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${LOCK_OUT:-requirements/lock.txt}
UV=${UV:-.venv/bin/uv}
if [ ! -x "$UV" ]; then
    UV=$(command -v uv || true)
fi
if [ -z "$UV" ]; then
    echo "uv not found: run bash scripts/setup.sh first (it installs uv into .venv), or set UV" >&2
    exit 2
fi
source scripts/torch_source.sh  # TORCH_SOURCE: where torch's CPU wheel comes from
"$UV" pip compile pyproject.toml --extra test --extra onnx \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --override requirements/torch-cpu.txt "${TORCH_SOURCE[@]}" \
    --no-header --quiet "$@" -o "$OUT"
# The header says how the file was made; uv's own names the temporary paths it was given.
{
    echo "# Locked by scripts/lock.sh (uv pip compile $("$UV" --version | cut -d' ' -f2)) from pyproject.toml [test, onnx]"
    echo "# for CPython 3.11 on x86_64 Linux, torch's CPU build. Regenerate: bash scripts/lock.sh [--upgrade]"
    cat "$OUT"
} > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
echo "wrote $OUT ($(grep -c '==' "$OUT") packages)"
