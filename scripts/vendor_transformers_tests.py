# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Vendor transformers' common model and config tests into tests/transformers_common/ for one transformers version.

    python scripts/vendor_transformers_tests.py                  # the installed transformers' version
    python scripts/vendor_transformers_tests.py --version 5.25.0 --dest /tmp/common

The files come from that version's source distribution on the package registry (`pip download --no-binary`):
tests/test_modeling_common.py and tests/test_configuration_common.py, with the few edits listed in PATCHES (the
sdist does not ship the helper modules those two import). tests/transformers_common/__init__.py records the version,
and tests/test_transformers_common.py refuses to run against any other installed transformers.

An edit whose anchor text is missing from a new release stops the script, naming the file and the anchor: update
PATCHES for that release rather than vendoring a file that cannot import.
"""

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


DEFAULT_DEST = Path(__file__).resolve().parent.parent / "tests" / "transformers_common"

HEADER_ANCHOR = "# limitations under the License.\n"
HEADER = (
    "#\n"
    "# Vendored unchanged from transformers {version}'s source distribution (tests/{source}), except where\n"
    '# marked "MGCMA vendoring". Used by tests/test_transformers_common.py.\n'
)

# (vendored name, file in the sdist's tests/, [(text in the release, replacement)])
PATCHES = [
    (
        "modeling_common.py",
        "test_modeling_common.py",
        [
            (
                "from .exporters.test_export import ExportTesterMixin\n"
                "from .generation.test_utils import GenerationTesterMixin\n",
                "# MGCMA vendoring: the two mixins below live in tests/exporters/ and tests/generation/, which "
                "transformers' source\n"
                "# distribution does not ship. ModelTesterMixin only inherits from the first and tests `issubclass` "
                "against the second;\n"
                "# MGCMA does not generate, and its export is tested in tests/test_compile_export.py.\n"
                "class ExportTesterMixin:\n"
                "    pass\n"
                "\n"
                "\n"
                "class GenerationTesterMixin:\n"
                "    pass\n",
            ),
        ],
    ),
    (
        "configuration_common.py",
        "test_configuration_common.py",
        [
            ("from pathlib import Path\n", ""),
            (
                "from transformers.utils import direct_transformers_import, logging\n",
                "from transformers.utils import logging\n",
            ),
            ("from .utils.test_configuration_utils import config_common_kwargs\n", ""),
            (
                "\ntransformers_module = direct_transformers_import(Path(__file__).parent)\n",
                "# MGCMA vendoring: `config_common_kwargs` comes from tests/utils/, which the source distribution "
                "does not ship; its only\n"
                "# reader, `check_config_arguments_init`, returns before reading it for configs with sub-configs "
                "(MGCMAConfig has two).\n"
                "# The unused `transformers_module = direct_transformers_import(...)` line is dropped with it.\n"
                "config_common_kwargs = {}\n",
            ),
        ],
    ),
]

INIT = '''# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""transformers' common model and config tests, vendored by scripts/vendor_transformers_tests.py."""

# The transformers release these files come from; tests/test_transformers_common.py runs only against it.
TRANSFORMERS_VERSION = "{version}"
'''


def patch_source(text: str, name: str, source: str, edits, version: str) -> str:
    for old, new in edits:
        if text.count(old) != 1:
            raise SystemExit(
                f"transformers {version}'s tests/{source}: the text to edit for {name} is found "
                f"{text.count(old)} times, not once:\n{old}\nUpdate PATCHES in {Path(__file__).name} for this release."
            )
        text = text.replace(old, new)
    if text.count(HEADER_ANCHOR) < 1:
        raise SystemExit(f"transformers {version}'s tests/{source}: no licence header ending in {HEADER_ANCHOR!r}")
    return text.replace(HEADER_ANCHOR, HEADER_ANCHOR + HEADER.format(version=version, source=source), 1)


def download_sdist(version: str, folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
           f"transformers=={version}", "-d", str(folder)]  # fmt: skip
    subprocess.run(cmd, check=True)
    found = sorted(folder.glob("transformers-*.tar.gz"))
    if len(found) != 1:
        raise SystemExit(f"pip download of transformers=={version} gave {[p.name for p in found]}, not one sdist")
    return found[0]


def vendor(version: str, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sdist = download_sdist(version, Path(tmp))
        with tarfile.open(sdist) as tar:
            members = {Path(m.name).relative_to(Path(m.name).parts[0]).as_posix(): m for m in tar.getmembers()}
            texts = {}
            for name, source, edits in PATCHES:
                member = members.get(f"tests/{source}")
                if member is None:
                    raise SystemExit(f"{sdist.name} has no tests/{source}")
                text = tar.extractfile(member).read().decode("utf-8")
                texts[name] = patch_source(text, name, source, edits, version)
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (dest / name).write_text(text, encoding="utf-8")
    (dest / "__init__.py").write_text(INIT.format(version=version), encoding="utf-8")
    print(f"vendored transformers {version}'s common tests into {dest}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", help="transformers release (default: the installed one)")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"folder to write (default: {DEFAULT_DEST})")
    args = parser.parse_args(argv)
    version = args.version
    if version is None:
        from importlib.metadata import version as installed_version

        version = installed_version("transformers")
    vendor(version, args.dest)


if __name__ == "__main__":
    main()
