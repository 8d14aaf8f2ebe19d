# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Aggregate throughput of the grid with N units at once on one machine (`run_mgcma.py --ablations ... --grid_workers
N`) against one unit after another in one process (`--grid_workers 1`), through the real script.

    python benchmarks/bench_grid_concurrency.py                          # CPU: N = 1, 2 on the demo corpus
    python benchmarks/bench_grid_concurrency.py --workers 1,2,4,8 --max_steps 200 -- --bf16 false   # one GPU

Each N trains the same units (`--ablations` x the held-out group `--test_group`, `--max_steps` steps each) from an
empty folder and is timed end to end (data loading, model builds, training, evaluation, tables), so process start-up
and per-unit set-up count against concurrency as they do in a real grid. Arguments after `--` go to every run. The
runs follow each other, N = 1 first; the ratios within one invocation are the result (the machine may be shared).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated N (default 1,2)")
    parser.add_argument("--ablations", default="S0,S1,S2,S4", help="the grid's settings (default S0,S1,S2,S4)")
    parser.add_argument("--test_group", type=int, default=5, help="the one held-out group (default 5)")
    parser.add_argument("--max_steps", type=int, default=12, help="training steps per unit (default 12)")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    counts = [int(n) for n in args.workers.split(",")]
    units = len(args.ablations.split(","))
    batch = 4
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in counts:
            out = Path(scratch) / f"grid-{n}"
            command = [sys.executable, str(ROOT / "run_mgcma.py"), "--output_dir", str(out), "--ablations",
                       args.ablations, "--test_group", str(args.test_group), "--max_steps", str(args.max_steps),
                       "--per_device_train_batch_size", str(batch), "--eval_strategy", "steps",
                       "--eval_steps", str(args.max_steps), "--save_strategy", "steps", "--save_steps",
                       str(args.max_steps), "--disable_tqdm", "true", "--grid_workers", str(n), *extra]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                  env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})  # fmt: skip
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"N={n} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            tables = json.loads((out / "tables.json").read_text())
            trained = sorted(s for s, entry in tables["settings"].items() if entry.get("per_fold"))
            if trained != sorted(args.ablations.split(",")):
                sys.exit(f"N={n}: the tables hold settings {trained}, not {args.ablations}")
            rows.append((n, seconds, units * args.max_steps * batch / seconds))
    base = rows[0]
    print(f"{units} units x {args.max_steps} steps x batch {batch}; one run per N, in this order")
    print("| units at once | wall s | utterance-steps/s | throughput vs N=1 |")
    print("|---|---|---|---|")
    for n, seconds, rate in rows:
        print(f"| {n} | {seconds:.1f} | {rate:.2f} | x{rate / base[2]:.2f} |")


if __name__ == "__main__":
    main()
