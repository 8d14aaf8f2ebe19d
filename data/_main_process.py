# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Run a block on the main process first under multi-process training, a no-op otherwise."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch.distributed as dist
from accelerate import PartialState


def launched_distributed() -> bool:
    """True when a multi-process launcher (accelerate, torchrun) started this process: ``WORLD_SIZE`` > 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Let the main process prepare data while the other ranks wait, then let them read the cache.

    Uses ``accelerate.PartialState().main_process_first()`` when the job was started by a
    distributed launcher or a ``torch.distributed`` process group already exists. In a single
    process it does nothing (no process group is created).
    """
    if launched_distributed() or (dist.is_available() and dist.is_initialized()):
        with PartialState().main_process_first():
            yield
        return
    yield
