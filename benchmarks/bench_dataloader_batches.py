# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Padding and rank balance on the batches the training DataLoader yields, 1 and 2 processes (gloo on CPU).

    python benchmarks/bench_dataloader_batches.py [--utterances 3861] [--batch 4]

Corpus: IEMOCAP-like durations (log-normal, mean 4.5 s, sigma 0.6 of log duration, floored at 0.6 s, capped at the
training cap of 15 s), as wav2vec2 frames (20 ms). For each of 1 and 2 processes (the latter started with
`accelerate launch --multi_gpu --num_processes 2`), one epoch of `MGCMATrainer.get_train_dataloader()` with
`train_sampling_strategy="group_by_length"` is iterated and the indices of every yielded batch are recorded:

* "flat sampler": the previous path, a flat `ReshuffledLengthGroupedSampler` handed to the stock Trainer DataLoader, which
  re-chunks the flat order and (under 2 processes) deals whole batches to the ranks in turn;
* "batch sampler": `LengthGroupedBatchSampler` (what `MGCMATrainer` uses now): the DataLoader yields the sampler's
  batches, and each global step is one sorted group of processes x batch utterances.

Padding = padded frames / computed frames over every rank's batches. Useful share = real frames / (processes x
the largest padded batch of each step), i.e. padding and waiting for the slowest rank both count as waste.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import table, wav2vec2_frames

from modeling_mgcma.processing_mgcma import DEFAULT_MAX_DURATION
from modeling_mgcma.training.sampling import padding_fraction, useful_frame_share


def frames(n: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    sigma = 0.6
    seconds = np.minimum(np.maximum(rng.lognormal(np.log(4.5) - sigma**2 / 2, sigma, n), 0.6), DEFAULT_MAX_DURATION)
    return wav2vec2_frames(np.round(seconds * 16_000).astype(np.int64)).tolist()


def record_batches(lengths, batch, out_file):
    """One epoch of both DataLoaders on this process; writes {"flat": [...], "batch": [...]} batches of indices."""
    import datasets
    from transformers import Trainer, TrainingArguments

    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.from_scratch import small_config
    from modeling_mgcma.training.sampling import build_length_grouped_sampler
    from modeling_mgcma.training.trainer import MGCMATrainer

    rows = datasets.Dataset.from_dict({"length": lengths, "index": list(range(len(lengths)))})
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, train_sampling_strategy="group_by_length",
        report_to="none", use_cpu=True, seed=0,
    )  # fmt: skip
    trainer = MGCMATrainer(
        model=MGCMAForEmotionClassification(small_config(20)), args=args, train_dataset=rows,
        data_collator=lambda b: {"index": [r["index"] for r in b]},
    )  # fmt: skip
    result = {"rank": trainer.accelerator.process_index}
    loader = trainer.get_train_dataloader()
    loader.set_epoch(0)
    result["batch"] = [b["index"] for b in loader]
    trainer._get_train_sampler = lambda dataset=None: build_length_grouped_sampler(lengths, batch, seed=0)
    loader = Trainer.get_train_dataloader(trainer)  # the stock DataLoader over the flat sampler
    loader.set_epoch(0)
    result["flat"] = [b["index"] for b in loader]
    Path(out_file).write_text(json.dumps(result))


def measure(per_rank, lengths):
    rows = {}
    for kind in ("flat", "batch"):
        steps = list(zip(*[r[kind] for r in per_rank]))
        flat = [b for step in steps for b in step]
        rows[kind] = (padding_fraction(flat, lengths), useful_frame_share(steps, lengths), len(steps))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=3861)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    lengths = frames(args.utterances)
    if args.worker:  # under the launcher
        rank = int(os.environ.get("RANK", 0))
        record_batches(lengths, args.batch, f"{args.worker}/rank{rank}.json")
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        record_batches(lengths, args.batch, f"{tmp}/one.json")
        results[1] = measure([json.loads(Path(f"{tmp}/one.json").read_text())], lengths)
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        subprocess.run(
            [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
             "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
             "29613", __file__, "--utterances", str(args.utterances), "--batch", str(args.batch), "--worker", tmp],
            check=True, env=env, cwd=Path(__file__).parent, capture_output=True,
        )  # fmt: skip
        results[2] = measure([json.loads(Path(f"{tmp}/rank{r}.json").read_text()) for r in (0, 1)], lengths)
    print(f"{args.utterances} utterances, batch {args.batch} per process, one epoch of the training DataLoader")
    rows = []
    for world, by_kind in results.items():
        for kind, label in (("flat", "flat sampler (before)"), ("batch", "batch sampler (now)")):
            padding, share, steps = by_kind[kind]
            rows.append([world, label, steps, f"{padding:.1%}", f"{share:.3f}"])
    print(table(rows, ["processes", "DataLoader over", "steps", "padding", "useful share of computed frames"]))


if __name__ == "__main__":
    main()
