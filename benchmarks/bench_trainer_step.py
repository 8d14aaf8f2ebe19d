# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""What the Trainer adds to a training step: `MGCMATrainer` steps against a bare step on the same model and batch.

    python benchmarks/bench_trainer_step.py               # 40 measured steps per side, one CPU thread
    python benchmarks/bench_trainer_step.py --steps 100 --threads 2

The model is dispatch-bound on purpose: the paper's depth (wav2vec2 and BERT with 12 layers each, 6 TAM blocks,
12 heads) at a tiny width (48), so that a step's time is the host's work per op, as a paper-size step at batch 4 is
on a GPU (thousands of small kernels; benchmarks/README.md). wav2vec2-base's SpecAugment (mask_time_prob 0.05) and
LayerDrop (0.1) are on.

* bare: `loss = model(**batch).loss; loss.backward(); clip_grad_norm_(1.0); fused AdamW step; zero_grad()`, on a
  batch already collated (its SpecAugment masks drawn once);
* trainer: `MGCMATrainer.train()` over the same batch served by a DataLoader through the fast step's collator (the
  host-side checks and SpecAugment masks are drawn for every batch, as in a real run), with the scheduler, callbacks
  and the Trainer's bookkeeping; logging every 10 steps. With `--workers 0` the collator runs inside the step (a
  CPU run's default); with 1 it runs in a DataLoader worker beside the step, as `run_mgcma.py` arranges on an
  accelerator (`apply_dataloader_defaults`).
The two are interleaved in one run: after every Trainer step a callback times one bare step on a copy of the model
(with its own optimizer), so load on the machine hits both alike; a Trainer step's time is the interval between two
step ends less the bare step timed inside it. The same with `--fast_step false` shows what the fast step removes.
Prints the median of each and the ratio trainer / bare.
"""

import argparse
import copy
import statistics
import tempfile
import time

import datasets
import torch
from transformers import TrainerCallback, set_seed

from modeling_mgcma import MGCMAConfig, MGCMAForEmotionClassification
from modeling_mgcma.training.fast_step import FastStepCollator, install_fast_encoders
from modeling_mgcma.training.from_scratch import DEMO_SPEECH_ENCODER, speech_encoder_config, text_encoder_config
from modeling_mgcma.training.trainer import MGCMATrainer, MGCMATrainingArguments


def deep_tiny_model(seed: int = 0) -> MGCMAForEmotionClassification:
    torch.manual_seed(seed)
    width, heads, ffn = 48, 12, 96
    config = MGCMAConfig(
        speech_config=speech_encoder_config(width, 12, heads, ffn, mask_time_prob=0.05, layerdrop=0.1,
                                            feat_extract_norm="group", do_stable_layer_norm=False,
                                            **DEMO_SPEECH_ENCODER),  # 20 ms frames, as wav2vec2
        text_config=text_encoder_config(1000, width, 12, heads, ffn),
        hidden_size=width, num_attention_heads=heads, num_alignment_layers=6, intermediate_size=ffn,
    )  # fmt: skip
    model = MGCMAForEmotionClassification(config)
    model.freeze_feature_encoder()
    return model


class FixedBatch:
    """A collator that returns the same collated batch for any rows (the data work is not what is measured)."""

    def __init__(self, batch):
        self.batch = batch

    def __call__(self, rows):
        return {key: value.clone() for key, value in self.batch.items()}


def make_batch(batch_size: int, seconds: float, tokens: int, num_labels: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    samples = int(seconds * 16_000)
    mask = torch.ones(batch_size, samples, dtype=torch.long)
    mask[1:, samples // 2 :] = 0  # padded rows, as in a real batch
    text = torch.ones(batch_size, tokens, dtype=torch.long)
    text[1:, tokens // 2 :] = 0
    return {
        "input_values": torch.randn(batch_size, samples, generator=generator) * mask,
        "speech_attention_mask": mask,
        "input_ids": torch.randint(5, 1000, (batch_size, tokens), generator=generator) * text,
        "text_attention_mask": text,
        "labels": torch.arange(batch_size) % num_labels,
    }


class Interleave(TrainerCallback):
    """After each Trainer step: one bare step on `bare_model`, timed; records the step ends and the bare times."""

    def __init__(self, bare_model, batch):
        self.model, self.batch = bare_model, batch
        self.optimizer = torch.optim.AdamW(bare_model.parameters(), lr=1e-5, weight_decay=0.0, fused=True)
        self.model.train()
        self.ends, self.bare = [], []

    def bare_step(self):
        start = time.perf_counter()
        loss = self.model(**self.batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    def on_step_end(self, args, state, control, **kwargs):
        end = time.perf_counter()
        self.bare.append(self.bare_step())
        self.ends.append((end, time.perf_counter()))


def measure(fast_step: bool, steps: int, warmup: int, batch_size: int, seconds: float, tokens: int, workers: int) -> dict:
    set_seed(0)
    model = deep_tiny_model()
    raw = make_batch(batch_size, seconds, tokens, model.config.num_labels)
    collator = FastStepCollator(FixedBatch(raw), model) if fast_step else FixedBatch(raw)
    bare_model = copy.deepcopy(model)
    bare_batch = collator([None])  # the same inputs the Trainer's collator makes (with its SpecAugment masks)
    if fast_step:
        install_fast_encoders(bare_model)
        bare_model.mgcma.check_input_values = False
    probe = Interleave(bare_model, bare_batch)
    args = MGCMATrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch_size, max_steps=warmup + steps,
        learning_rate=1e-5, weight_decay=0.0, optim="adamw_torch_fused", lr_scheduler_type="constant",
        max_grad_norm=1.0, logging_steps=10, save_strategy="no", report_to="none", use_cpu=True,
        dataloader_num_workers=workers, disable_tqdm=True, fast_step=fast_step,
    )  # fmt: skip
    dataset = datasets.Dataset.from_dict({"id": list(range(batch_size * (warmup + steps)))})
    MGCMATrainer(model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=[probe]).train()
    trainer_steps = [
        (probe.ends[i][0] - probe.ends[i - 1][1]) for i in range(warmup + 1, len(probe.ends))
    ]  # from the end of the previous bare step to this step's end: one Trainer step
    bare = probe.bare[warmup + 1 :]
    return {"trainer": statistics.median(trainer_steps), "bare": statistics.median(bare), "n": len(bare)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1],
                        help="DataLoader workers of the Trainer's runs (0: the collator runs inside the step, as on a "
                             "CPU; 1+: beside it, as run_mgcma.py arranges on an accelerator)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch} x {args.seconds} s audio + {args.tokens} tokens; {args.steps} measured steps per side, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    for workers in args.workers:
        for fast in (True, False):
            result = measure(fast, args.steps, args.warmup, args.batch, args.seconds, args.tokens, workers)
            print(f"workers {workers}  fast_step={str(fast).lower():5}  trainer step {1000 * result['trainer']:7.1f} ms   bare step "
                  f"{1000 * result['bare']:7.1f} ms   trainer / bare x{result['trainer'] / result['bare']:.3f}  "
                  f"(medians of {result['n']})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
