#!/usr/bin/env bash
# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
# The fast training step on one CUDA GPU, in one go (~10 min on one H100; set up as for gpu_checks.sh):
#   `benchmarks/bench_paper_throughput.py` (run_mgcma.py --preset paper at paper size, random encoders, IEMOCAP's
#   durations: steady-state utterances/s against the bare step on the same batches, and the grid's hours at that
#   rate) for: the plain step (--fast_step false), the fast step (the default; fp32 at batch 4), bf16, TF32,
#   torch.compile and CUDA graphs (2 audio buckets there, so that compiling every shape fits in the check). One JSON
#   per configuration, every log and summary.txt (each configuration's last line) go to OUT.
# Usage: bash tools/gpu_machine/fast_step_checks.sh [OUT_DIR]   (default build/fast-step-checks; STEPS=300)
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$repo/build/fast-step-checks}")
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python}
[[ $python == */* ]] && python=$(realpath "$python")
cd "$repo"
if ! $python -c "from torchcodec.decoders import AudioDecoder" 2>/dev/null; then
    echo "torchcodec cannot decode here: using the WAV-only stand-in in tools/gpu_machine/torchcodec-stand-in"
    export PYTHONPATH="$repo/tools/gpu_machine/torchcodec-stand-in${PYTHONPATH:+:$PYTHONPATH}"
fi
$python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())" \
    | tee "$out/device.txt"
steps=${STEPS:-300}
run() {  # run NAME TIMEOUT_S "RUN_ARGS"
    echo "== $1: $3" | tee -a "$out/summary.txt"
    timeout "$2" $python benchmarks/bench_paper_throughput.py --max_steps "$steps" --run_args "$3" --json "$out/$1.json" \
        > "$out/$1.log" 2>&1
    echo "exit $?: $(tail -n 1 "$out/$1.log")" | tee -a "$out/summary.txt"
}
run plain 150 "--fast_step false"
run fast 150 ""
run fast_bf16 150 "--bf16 true"
run fast_tf32 150 "--tf32 true"
run fast_compiled 240 "--audio_buckets 2 --torch_compile true"
run fast_cuda_graphs 240 "--audio_buckets 2 --cuda_graphs true"
