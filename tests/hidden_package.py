# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Run a script in a fresh interpreter where `modeling_mgcma` cannot be imported (as on a Hub user's machine).

The package is installed (editable) in the test environment, so PYTHONPATH tricks do not hide it: a meta-path
finder that refuses the top-level name does. Code loaded with `trust_remote_code` lives under `transformers_modules`
and is unaffected.
"""

import subprocess
import sys
import textwrap


PRELUDE = textwrap.dedent(
    """
    import importlib.abc, sys

    class _HideMGCMA(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_mgcma" or name.startswith("modeling_mgcma."):
                raise ImportError("modeling_mgcma is hidden in this process")

    sys.meta_path.insert(0, _HideMGCMA())
    try:
        import modeling_mgcma  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("modeling_mgcma is still importable")
    """
)


def run_without_package(script: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"subprocess failed:\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr[-4000:]}"
    return result
