# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Input pipeline throughput: `MGCMADataCollator` batches in the training process vs in DataLoader workers.

    python benchmarks/bench_collator_workers.py [--workers 2] [--batches 60]

Data: the synthetic demo corpus with IEMOCAP-like durations (`generate_demo_corpus(durations="iemocap")`: mean
~4.5 s, 16 kHz WAV files), loaded with `load_iemocap`; batches of 4 (the paper's batch) decoded, resampled,
normalised and padded by `MGCMADataCollator` (wav2vec2 feature extractor + BERT-style tokenizer). The DataLoader
runs with 0 workers (in-process, the CPU/demo default) and with `--workers` persistent workers prefetching 2 batches
each (the accelerator default of run_mgcma.py). Reported: utterances per second once the first batch is out (the
workers' start-up is timed separately), and the same with a consumer that holds each batch for `--step_ms`
(standing in for a GPU step): with workers the pipeline overlaps it, in-process it adds to it.

`--paper_steps N` (default 3) also times N full paper-size fp32 training steps at the same batch size in the same run
(random wav2vec2-base + BERT-base sized encoders built locally, 4.5 s clips + 30 tokens, after one warm-up step), and
reports the utterances per second such a step consumes next to what the collator supplies.
"""

import argparse
import tempfile
import time

import torch
from _common import build_model, make_inputs, median, table, time_calls
from torch.utils.data import DataLoader

from modeling_mgcma.data import demo_vocabulary, generate_demo_corpus, load_iemocap
from modeling_mgcma.training.collators import MGCMADataCollator
from modeling_mgcma.training.from_scratch import word_processor


def run(dataset, collator, workers, batches, batch_size, step_s):
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collator, num_workers=workers,
        persistent_workers=workers > 0, prefetch_factor=2 if workers else None,
    )  # fmt: skip
    start = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    count = 0
    for _ in range(batches):
        batch = next(iterator)
        count += batch["input_values"].shape[0]
        if step_s:
            time.sleep(step_s)
    elapsed = time.perf_counter() - start
    del iterator, loader
    return first, count / elapsed, elapsed / batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--step_ms", type=float, default=50.0)
    parser.add_argument("--paper_steps", type=int, default=3, help="paper-size training steps to time (0: none)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = generate_demo_corpus(f"{tmp}/corpus", utterances_per_session=60, durations="iemocap")
        dataset = load_iemocap(corpus, config="4class", cache_dir=f"{tmp}/hf", strict_counts=False)
        needed = (args.batches + 1) * args.batch_size
        if len(dataset) < needed:
            raise SystemExit(f"the corpus has {len(dataset)} utterances; {needed} needed")
        collator = MGCMADataCollator(word_processor(demo_vocabulary(), max_duration=15.0))
        rows = []
        for step_s in (0.0, args.step_ms / 1000):
            for workers in (0, args.workers):
                first, rate, per_batch = run(dataset, collator, workers, args.batches, args.batch_size, step_s)
                rows.append([f"{step_s * 1000:.0f} ms", workers, f"{first:.2f} s", f"{rate:.0f}", f"{per_batch * 1000:.1f}"])
    print(f"{args.batches} batches of {args.batch_size}, IEMOCAP-like durations; {torch.get_num_threads()} torch thread")
    print(table(rows, ["consumer step", "workers", "first batch", "utterances/s", "ms per batch"]))
    if args.paper_steps:
        supplied = max(float(row[3]) for row in rows if row[0] == "0 ms")
        step_s = paper_step_seconds(args.batch_size, args.paper_steps)
        consumed = args.batch_size / step_s
        print(f"\npaper-size fp32 training step, batch {args.batch_size} x 4.5 s + 30 tokens, "
              f"{torch.get_num_threads()} torch thread: {step_s:.2f} s (median of {args.paper_steps}) -> consumes "
              f"{consumed:.2f} utterances/s; the collator supplies {supplied:.0f} utterances/s "
              f"({supplied / consumed:.0f}x the step's need). The collator keeps up with any step longer than "
              f"{1000 * args.batch_size / supplied:.0f} ms per batch of {args.batch_size}.")


def paper_step_seconds(batch_size: int, steps: int) -> float:
    """Median seconds of a full paper-size training step (forward, backward, fused AdamW)."""
    model = build_model("paper")
    model.train()
    inputs = make_inputs(model, batch_size, 4.5, 30)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, fused=True)

    def step():
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return median(time_calls(step, repeats=steps, warmup=1))


if __name__ == "__main__":
    main()
