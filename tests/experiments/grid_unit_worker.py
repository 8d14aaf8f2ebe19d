# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""One grid unit's process for the grid tests: `run_mgcma.main` with failures the tests ask for in the environment.

    MGCMA_TEST_FAIL_ONCE="S1/fold_2=<marker file>"   that unit exits with status 3 the first time (writes the marker)
    MGCMA_TEST_KILL_AT_STEP=<n>                       SIGKILL right after checkpoint-<n> is saved (a killed unit)
"""

import os
import signal
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
from transformers import TrainerCallback  # noqa: E402

import run_mgcma  # noqa: E402


class KillAfterSave(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:  # the checkpoint is complete on disk: die as a killed job does
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    argv = sys.argv[1:]
    unit = argv[argv.index("--grid_unit") + 1] if "--grid_unit" in argv else None
    fail = os.environ.get("MGCMA_TEST_FAIL_ONCE")
    if fail and unit is not None:
        name, marker = fail.split("=", 1)
        if name == unit and not Path(marker).exists():
            Path(marker).write_text("failed once\n")
            print(f"failing {unit} on purpose", flush=True)
            sys.exit(3)
    kill = os.environ.get("MGCMA_TEST_KILL_AT_STEP")
    run_mgcma.main(argv, callbacks=[KillAfterSave(int(kill))] if kill else None)
