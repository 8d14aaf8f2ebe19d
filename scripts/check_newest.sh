#!/usr/bin/env bash
# The newest releases that pyproject.toml allows, tried on purpose in a separate environment before the lock moves:
#
#   bash scripts/check_newest.sh [pytest arguments]
#
# 1. resolves the newest allowed versions into build/newest/lock.txt (scripts/lock.sh --upgrade, elsewhere);
# 2. prints every package whose version differs from requirements/lock.txt;
# 3. copies this checkout to build/newest/tree, vendors the newest transformers' common tests there, installs the new
#    set into build/newest/.venv and runs the suite in that copy (the checkout and .venv are left untouched);
# 4. prints the suite's summary and exits with its status.
# If it passes, move the lock: bash scripts/lock.sh --upgrade && python scripts/vendor_transformers_tests.py
# (with .venv updated by bash scripts/setup.sh). If it fails, the report says which release broke what.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${NEWEST_DIR:-$ROOT/build/newest}
if [ ! -x .venv/bin/uv ]; then
    echo "run bash scripts/setup.sh first: it installs uv into .venv" >&2
    exit 2
fi
rm -rf "$WORK"
mkdir -p "$WORK/tree"
cp requirements/lock.txt "$WORK/lock.txt"  # uv keeps a listed version unless told to upgrade; --upgrade below does
LOCK_OUT="$WORK/lock.txt" UV=.venv/bin/uv bash scripts/lock.sh --upgrade

echo "== versions that differ from requirements/lock.txt (locked -> newest allowed)"
.venv/bin/python - "$ROOT/requirements/lock.txt" "$WORK/lock.txt" <<'PY'
import re
import sys


def pins(path):
    found = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            found[m.group(1).lower().replace("_", "-")] = m.group(2)
    return found


old, new = pins(sys.argv[1]), pins(sys.argv[2])
changed = [(n, old.get(n, "-"), new.get(n, "-")) for n in sorted(set(old) | set(new)) if old.get(n) != new.get(n)]
for name, a, b in changed:
    print(f"  {name}: {a} -> {b}")
print(f"  ({len(changed)} of {len(new)} packages differ)" if changed else "  none: the lock is at the newest releases")
PY

git ls-files -co --exclude-standard | tar cf - -T - | tar xf - -C "$WORK/tree"
"${PYTHON:-python3}" -m venv "$WORK/.venv"
"$WORK/.venv/bin/python" -m pip install -q "uv==$(.venv/bin/uv --version | cut -d' ' -f2)"
source scripts/torch_source.sh  # TORCH_SOURCE: where torch's CPU wheel comes from
export UV_LINK_MODE=copy
"$WORK/.venv/bin/uv" pip install -q --python "$WORK/.venv/bin/python" "${TORCH_SOURCE[@]}" -r "$WORK/lock.txt"
"$WORK/.venv/bin/uv" pip install -q --python "$WORK/.venv/bin/python" --no-deps -e "$WORK/tree"
(cd "$WORK/tree" && "$WORK/.venv/bin/python" scripts/vendor_transformers_tests.py)

echo "== the suite against the newest releases (in $WORK/tree)"
set +e
(cd "$WORK/tree" && "$WORK/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@")
status=$?
set -e
if [ "$status" = "0" ]; then
    echo "== newest releases pass: move the lock with bash scripts/lock.sh --upgrade," \
         "python scripts/vendor_transformers_tests.py, bash scripts/setup.sh"
else
    echo "== newest releases FAIL (pytest exit $status): keep the lock, and record above which release broke what"
fi
exit "$status"
