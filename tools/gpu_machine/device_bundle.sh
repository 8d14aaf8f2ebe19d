#!/usr/bin/env bash
# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
# A folder that lets a bare machine without network (a lent GPU machine whose image has torch and numpy but an older
# transformers, and no soundfile, torchcodec or espeak-ng) run the project's benchmarks, learning_farm.py included:
#   wheels/   the Python 3.12 (BUNDLE_PYTHON) wheels of this environment's transformers, datasets, soundfile and the
#             packages they import (installed there with --no-deps into a folder on PYTHONPATH);
#   espeak/   this machine's espeak-ng program with every library it loads (down to the loader) and its data, behind a
#             wrapper `espeak/bin/espeak-ng` (for the spoken corpus);
#   torchcodec-stand-in/  tools/gpu_machine/torchcodec-stand-in, the WAV-only stand-in, for machines without
#             FFmpeg (put on PYTHONPATH by env.sh only when the machine's torchcodec cannot decode);
#   env.sh    `source BUNDLE/env.sh` on that machine, from the repository root: installs the wheels, sets PATH and
#             PYTHONPATH, links data/ and model_cards/ into the package as an editable install does, and checks imports.
# Usage: bash tools/gpu_machine/device_bundle.sh BUNDLE [--no-wheels]   (BUNDLE inside the repository and
# git-ignored, e.g. .device-bundle/, so that it travels with the working tree; ~50 MB with wheels).
# BUNDLE_PYTHON=3.11 makes the wheels for another Python than 3.12.
set -euo pipefail
bundle=$(realpath -m "${1:?usage: device_bundle.sh BUNDLE [--no-wheels]}")
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python}
rm -rf "$bundle" && mkdir -p "$bundle"

if command -v espeak-ng >/dev/null; then
    mkdir -p "$bundle/espeak/lib" "$bundle/espeak/bin"
    program=$(readlink -f "$(command -v espeak-ng)")
    cp "$program" "$bundle/espeak/espeak-ng.bin"
    ldd "$program" | awk '/=>/ && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | while read -r library; do
        cp -L "$library" "$bundle/espeak/lib/"
    done
    loader=$(basename "$(ls "$bundle"/espeak/lib/ld-linux* | head -1)")
    data=$(espeak-ng --version | sed -n 's/.*Data at: *//p')
    cp -r "$data" "$bundle/espeak/espeak-ng-data"
    cat > "$bundle/espeak/bin/espeak-ng" <<EOF
#!/bin/sh
# espeak-ng with its own libraries and data, whatever the machine has
here=\$(dirname "\$(dirname "\$(readlink -f "\$0")")")
ESPEAK_DATA_PATH="\$here" exec "\$here/lib/$loader" --library-path "\$here/lib" "\$here/espeak-ng.bin" "\$@"
EOF
    chmod +x "$bundle/espeak/bin/espeak-ng"
else
    echo "no espeak-ng here: the bundle cannot make the spoken corpus" >&2
fi

cp -r "$repo/tools/gpu_machine/torchcodec-stand-in" "$bundle/torchcodec-stand-in"

if [[ ${2:-} != --no-wheels ]]; then
    mkdir -p "$bundle/wheels"
    # this environment's versions; hf_xet (11 MB, only for Hub downloads) is left out
    packages=$($python - <<'EOF'
from importlib.metadata import version
names = ["transformers", "tokenizers", "huggingface_hub", "datasets", "dill", "multiprocess", "soundfile", "cffi",
         "pycparser", "httpx2", "httpcore2", "h11", "anyio", "idna", "truststore", "click", "filelock", "fsspec",
         "tqdm", "typing_extensions", "safetensors", "xxhash"]
found = []
for name in names:
    try:
        found.append(f"{name}=={version(name)}")
    except Exception:
        pass
print(" ".join(found))
EOF
)
    for requirement in $packages; do
        $python -m pip download -q --no-deps --only-binary :all: --python-version "${BUNDLE_PYTHON:-3.12}" \
            --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
            -d "$bundle/wheels" "$requirement" || echo "no wheel for $requirement" >&2
    done
fi

cat > "$bundle/env.sh" <<'EOF'
# source from the repository root on the lent machine
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -d "$here/wheels" ]; then
    python -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/bundle-site "$here"/wheels/*.whl
fi
export PYTHONPATH="/tmp/bundle-site${PYTHONPATH:+:$PYTHONPATH}"
if ! python -c "from torchcodec.decoders import AudioDecoder" 2>/dev/null; then
    export PYTHONPATH="$here/torchcodec-stand-in:$PYTHONPATH"
fi
[ -d "$here/espeak" ] && export PATH="$here/espeak/bin:$PATH"
[ -e modeling_mgcma/data ] || ln -s ../data modeling_mgcma/data
[ -e modeling_mgcma/model_cards ] || ln -s ../model_cards modeling_mgcma/model_cards
python -c "import torch, transformers, datasets, soundfile, importlib.metadata as m; import modeling_mgcma.data
print('bundle: torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__,
      'torchcodec', m.version('torchcodec'), 'cuda', torch.cuda.is_available())"
EOF
du -sh "$bundle"
