# Sourced by the install scripts: sets TORCH_SOURCE, the uv arguments that find torch's CPU wheel (a local wheel folder
# when this machine has one, TORCH_FIND_LINKS or /opt/wheels, otherwise PyTorch's CPU index).
if ls "${TORCH_FIND_LINKS:-/opt/wheels}"/torch-*+cpu-*.whl >/dev/null 2>&1; then
    TORCH_SOURCE=(--find-links "${TORCH_FIND_LINKS:-/opt/wheels}")
else
    TORCH_SOURCE=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
fi
