"""Run a block on the main process first under multi-process training, a no-op otherwise."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def _launched_distributed() -> bool:
    # accelerate/torchrun set WORLD_SIZE; a plain `python script.py` does not.
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Let the main process prepare data while the other ranks wait, then let them read the cache.

    Uses ``accelerate.PartialState().main_process_first()`` when the job was started by a
    distributed launcher, or a ``torch.distributed`` barrier when a process group already
    exists. In a single process it does nothing (no process group is created).
    """
    try:
        import torch.distributed as dist

        group_ready = dist.is_available() and dist.is_initialized()
    except ImportError:  # pragma: no cover - torch is a hard dependency of the project
        group_ready = False

    if _launched_distributed() or group_ready:
        try:
            from accelerate import PartialState
        except ImportError:  # pragma: no cover - accelerate is a declared dependency
            PartialState = None
        if PartialState is not None:
            with PartialState().main_process_first():
                yield
            return
        if group_ready:  # pragma: no cover - fallback without accelerate
            is_main = dist.get_rank() == 0
            if not is_main:
                dist.barrier()
            yield
            if is_main:
                dist.barrier()
            return
    yield
