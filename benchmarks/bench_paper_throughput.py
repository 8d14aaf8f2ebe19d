# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Steady-state training throughput of `run_mgcma.py --preset paper` through the real path, against the bare step on
the same model and batches, and the hours the paper's grid takes at that rate.

    python benchmarks/bench_paper_throughput.py                      # paper size: a GPU job (~5 min on one H100)
    python benchmarks/bench_paper_throughput.py --size tiny --max_steps 30   # a CPU smoke run
    python benchmarks/bench_paper_throughput.py --run_args "--bf16 true --torch_compile true"

What runs: random encoders of the paper's sizes (`make_random_paper_encoders.py`; `--size tiny`: the same
architectures at hidden size 32 with 2 layers), a synthetic corpus with IEMOCAP's durations (`generate_demo_corpus(..., durations="iemocap")`), and
`run_mgcma.main([... "--preset", "paper", "--max_steps", N, "--eval_strategy", "no", "--save_strategy", "no"])`:
the Trainer, the DataLoader workers, the fast step's buckets, test group 5. Evaluation and checkpoints are off
during the timed steps, which is what "excluding evaluation and saves" means here; the test-group prediction after
training is not timed. A callback records every step's end; the rate is utterances / time over the steps after
`--warmup` (the first steps compile, allocate, and meet each bucket shape for the first time).

At the end of training the same callback times the bare step (forward, backward, clip, fused AdamW; the run's
autocast) on the model just trained, over batches the run's own training DataLoader yields, already on the device
(the shapes are the run's; the epoch's first batch, its longest, is left out), after one untimed pass over them. Prints both rates, their ratio, and the grid
(10 settings x 5 folds x 100 epochs x the training utterances per fold of IEMOCAP's 4-class set, 4,425 on average)
in hours at the run's rate.
"""

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
GRID_UTTERANCE_STEPS = 10 * 5 * 100 * 4425


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(TrainerCallback):
    def __init__(self, bare_batches: int):
        self.ends, self.bare_batches, self.bare = [], bare_batches, []

    def on_step_end(self, args, state, control, **kwargs):
        synchronize(args.device)
        self.ends.append(time.perf_counter())

    def on_train_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        if not self.bare_batches or model is None or train_dataloader is None:
            return
        device = args.device
        batches = []
        for index, batch in enumerate(train_dataloader):
            if index == 0:  # the epoch's longest batch comes first (an out-of-memory error shows at once): not typical
                continue
            batches.append({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
            if len(batches) == self.bare_batches:
                break
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate,
                                      weight_decay=0.0, fused=device.type in ("cuda", "cpu"))  # fmt: skip
        dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
        model.train()

        def step(batch):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm or float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        for batch in batches:  # untimed: every shape once
            step(batch)
        for batch in batches:
            synchronize(device)
            start = time.perf_counter()
            step(batch)
            synchronize(device)
            self.bare.append((time.perf_counter() - start, len(batch["labels"])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["paper", "tiny"], default="paper")
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--bare_batches", type=int, default=40)
    parser.add_argument("--utterances_per_session", type=int, default=240)
    parser.add_argument("--run_args", default="", help="more run_mgcma.py arguments, one string")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    import run_mgcma
    from modeling_mgcma.data import generate_demo_corpus

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        generate_demo_corpus(str(work / "corpus"), utterances_per_session=args.utterances_per_session, durations="iemocap")
        argv = ["--data_dir", str(work / "corpus"), "--strict_counts", "false", "--preset", "paper", "--test_group", "5",
                "--max_steps", str(args.max_steps), "--eval_strategy", "no", "--save_strategy", "no",
                "--load_best_model_at_end", "false", "--logging_steps", "50", "--output_dir", str(work / "run"),
                "--report_to", "none"]  # fmt: skip
        import subprocess

        subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_random_paper_encoders.py"), str(work / "encoders"),
                        *(["--tiny"] if args.size == "tiny" else [])], check=True)  # fmt: skip
        argv += ["--speech_model", str(work / "encoders" / "wav2vec2-base-random"),
                 "--text_model", str(work / "encoders" / "bert-base-random")]  # fmt: skip
        argv += shlex.split(args.run_args)
        clock = StepClock(args.bare_batches)
        run_mgcma.main(argv, callbacks=[clock])
    batch = 4
    intervals = [b - a for a, b in zip(clock.ends[args.warmup :], clock.ends[args.warmup + 1 :])]
    if not intervals:
        raise SystemExit(f"only {len(clock.ends)} steps ran: raise --max_steps above --warmup ({args.warmup}).")
    run_rate = batch * len(intervals) / sum(intervals)
    bare_rate = sum(n for _, n in clock.bare) / sum(t for t, _ in clock.bare) if clock.bare else float("nan")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    figures = {
        "device": device, "size": args.size, "run_args": args.run_args, "steps_timed": len(intervals),
        "run_utterances_per_s": run_rate, "run_median_step_ms": 1000 * statistics.median(intervals),
        "bare_utterances_per_s": bare_rate, "run_over_bare": run_rate / bare_rate,
        "grid_hours_at_run_rate": GRID_UTTERANCE_STEPS / run_rate / 3600,
    }  # fmt: skip
    print(f"{device}, {args.size} size, {args.run_args or 'preset paper as is'}: run_mgcma.py {run_rate:.1f} "
          f"utterances/s (median step {figures['run_median_step_ms']:.1f} ms over {len(intervals)} steps), bare step "
          f"{bare_rate:.1f} utterances/s, run / bare x{figures['run_over_bare']:.2f}; the paper's grid "
          f"({GRID_UTTERANCE_STEPS / 1e6:.1f} M utterance-steps) at the run's rate: "
          f"{figures['grid_hours_at_run_rate']:.0f} h")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
