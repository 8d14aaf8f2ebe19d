#!/usr/bin/env bash
# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
# The one-GPU checks at paper size, in one go, for a machine with one CUDA GPU and the project installed
# (`scripts/setup.sh`; without torchcodec and FFmpeg, the WAV-only stand-in in tools/gpu_machine/torchcodec-stand-in
# decodes the corpus; on a machine without network whose image lacks the project's dependencies, `source
# BUNDLE/env.sh` first, BUNDLE made by tools/gpu_machine/device_bundle.sh). bench_gpu.py takes about 3 minutes on an
# H200; the run_mgcma.py part ran on an H100 with that stand-in (figures in docs/gpus.md):
#   1. `run_mgcma.py --preset paper --bf16 true` for MAX_STEPS steps on random wav2vec2-base / BERT-base sized
#      encoders and a small IEMOCAP-like synthetic corpus (the Trainer, DataLoader workers, evaluation, the best
#      checkpoint and the test-fold prediction, end to end), with its losses logged every 5 steps;
#   2. `benchmarks/bench_gpu.py`: step time, throughput and memory in fp32 / bf16, batch sizes, the collator against
#      the GPU step, and torch.compile.
# Usage: bash tools/gpu_machine/gpu_checks.sh [OUT_DIR]   (default build/gpu-checks; MAX_STEPS=40, BENCH_ARGS="" to
# pass options to bench_gpu.py)
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$repo/build/gpu-checks}")
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python}
[[ $python == */* ]] && python=$(realpath "$python")
work=$(mktemp -d)
cd "$repo"
if ! $python -c "from torchcodec.decoders import AudioDecoder" 2>/dev/null; then  # no torchcodec, or no FFmpeg
    echo "torchcodec cannot decode here: using the WAV-only stand-in in tools/gpu_machine/torchcodec-stand-in"
    export PYTHONPATH="$repo/tools/gpu_machine/torchcodec-stand-in${PYTHONPATH:+:$PYTHONPATH}"
fi
$python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
    'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
$python benchmarks/make_random_paper_encoders.py "$work/encoders"
$python -c "from modeling_mgcma.data import generate_demo_corpus as g; g('$work/corpus', utterances_per_session=24, durations='iemocap')"
start=$(date +%s)
$python run_mgcma.py --data_dir "$work/corpus" --strict_counts false --preset paper \
    --speech_model "$work/encoders/wav2vec2-base-random" --text_model "$work/encoders/bert-base-random" \
    --test_group 5 --max_steps "${MAX_STEPS:-40}" --logging_steps 5 ${RUN_ARGS:---bf16 true} \
    --output_dir "$work/paper-run" 2>&1 | tee "$out/paper_run.log"
echo "paper preset run: exit ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s" | tee -a "$out/paper_run.log"
(cd benchmarks && $python bench_gpu.py --json "$out/bench_gpu.json" ${BENCH_ARGS:-}) 2>&1 | tee "$out/bench_gpu.log"
rm -rf "$work"
