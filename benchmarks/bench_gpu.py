# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""One-GPU readiness at paper size: step time, throughput and memory in fp32 and bf16, `torch.compile`, and whether
the input pipeline keeps up with the GPU.

    python benchmarks/bench_gpu.py --json gpu.json                        # on a CUDA machine, paper size
    python benchmarks/bench_gpu.py --size tiny --device cpu --quick       # a smoke run anywhere

Sections, each printed as soon as it is measured (a failing section prints its error and the rest still run):
- matmul: the device's large-matmul limit in fp32 and bf16 (8192^3 on a GPU), measured in the same run.
- steps: a full training step (forward, backward, fused AdamW: what `run_mgcma.py` runs) of the whole model
  ("mgcma": raw audio + token ids), of the encoders-only baseline ("encoders") and of the alignment modules on
  precomputed encoder features ("alignment"), in fp32 and in bf16 autocast (fp32 weights, as `--bf16 true`), at the
  paper's batch 4 x 6 s + 30 tokens. Median step time, achieved FLOP/s and its ratio to the matmul limit, the peak
  GPU memory of a steady-state step (weights, gradients, AdamW state, activations), and the three losses in fp32 and
  bf16 on the same weights and inputs (all must be finite).
- batches: the whole model's step at growing batch sizes (4.5 s clips, IEMOCAP's mean): utterances per second and
  peak memory, until the largest batch asked for or the first out-of-memory.
- collator: `MGCMADataCollator` on the WAV files of the synthetic IEMOCAP-like corpus (decode, resample, normalise, tokenise, pad) in
  the training process and in DataLoader workers, against the utterances per second the GPU step consumes.
- profile: one bf16 step at the paper's batch under torch.profiler: device kernel time against wall time, the
  number of kernel launches and of host waits on the device, and the costliest host-side operators.
- compile: `torch.compile` (inductor) of the whole model's training step in bf16 against eager: compile time, then
  eager and compiled steps interleaved; the compiled loss is checked against eager (dropout and SpecAugment off).
  A second clip length measures the recompilation a new batch shape costs.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import tempfile
import time
import traceback
import wave
from pathlib import Path

import torch
from _common import (
    EncodersOnlyBaseline,
    build_model,
    count_flops,
    encoder_feature_inputs,
    make_inputs,
    median,
    table,
    time_calls,
)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats, warmup):
    return time_calls(fn, repeats, warmup, sync=lambda: synchronize(device))


def peak_memory(fn, device):
    """Peak bytes allocated during one call (CUDA only), and the bytes held before it."""
    if device.type != "cuda":
        fn()
        return float("nan"), float("nan")
    synchronize(device)
    held = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device), held


def matmul_limit(device, dtype, n):
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    times = timed(lambda: a @ b, device, repeats=10 if device.type == "cuda" else 3, warmup=3)
    return 2 * n**3 / median(times)


def to_device(inputs, device):
    return {k: v.to(device) for k, v in inputs.items()}


class Step:
    """A full training step of one configuration: forward under autocast or not, backward, fused AdamW step."""

    def __init__(self, module, loss_fn, precision, device):
        self.loss_fn, self.precision, self.device = loss_fn, precision, device
        params = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=1e-6, fused=device.type == "cuda")

    def __call__(self):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            loss = self.loss_fn()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


def losses_of(output):
    return {name: float(getattr(output, name)) for name in ("loss", "loss_ce", "loss_da", "loss_ia")
            if getattr(output, name, None) is not None}  # fmt: skip


def section_steps(args, device, results):
    model = build_model(args.size).to(device)
    model.train()
    inputs = to_device(make_inputs(model, args.batch, args.seconds, args.tokens), device)
    features = encoder_feature_inputs(model, inputs)
    baseline = EncodersOnlyBaseline(model).to(device)
    calls = {
        "mgcma": (model, lambda: model(**inputs).loss),
        "encoders": (baseline, lambda: baseline(**inputs)),
        "alignment": (model, lambda: model(**features).loss),
    }
    # the three losses on the same weights and inputs, fp32 and bf16, in eval mode: with dropout, LayerDrop and
    # SpecAugment on, fp32 and bf16 kernels draw different random numbers and the comparison would measure those
    agreement = {}
    model.eval()
    for name, inputs_of in (("mgcma", inputs), ("alignment", features)):
        for precision in ("fp32", "bf16"):
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                agreement[f"{name}/{precision}"] = losses_of(model(**inputs_of))
    model.train()
    rows = []
    for name, (module, loss_fn) in calls.items():
        for precision in ("fp32", "bf16"):
            step = Step(module, loss_fn, precision, device)
            flops = count_flops(step)  # also the first warm-up step: allocates the AdamW state
            times = timed(step, device, repeats=args.repeats, warmup=args.warmup)
            peak, held = peak_memory(step, device)
            seconds = median(times)
            limit = results["matmul"][precision]
            results["steps"][f"{name}/{precision}"] = {
                "seconds": seconds, "all_seconds": times, "flops": flops, "flops_per_second": flops / seconds,
                "ratio_to_matmul": flops / seconds / limit, "peak_bytes": peak, "held_bytes_before_step": held,
                "utterances_per_second": args.batch / seconds,
            }  # fmt: skip
            rows.append([name, precision, f"{seconds * 1000:.1f}", f"{args.batch / seconds:.1f}",
                         f"{flops / 1e12:.3f}", f"{flops / seconds / 1e12:.1f}", f"{flops / seconds / limit:.2f}",
                         f"{peak / 2**30:.2f}"])  # fmt: skip
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(f"\n## steps: batch {args.batch} x {args.seconds} s audio + {args.tokens} tokens, {args.warmup} warm-up + "
          f"{args.repeats} timed steps each, median")
    print(table(rows, ["config", "precision", "ms/step", "utterances/s", "TFLOP/step", "TFLOP/s", "ratio to matmul",
                       "peak GiB"]))  # fmt: skip
    loss_rows = []
    for key, values in agreement.items():
        finite = all(math.isfinite(v) for v in values.values())
        loss_rows.append([key, *(f"{values.get(n, float('nan')):.4f}" for n in ("loss", "loss_ce", "loss_da", "loss_ia")),
                          "yes" if finite else "NO"])  # fmt: skip
    print("losses in eval mode (no dropout / LayerDrop / SpecAugment), same weights and inputs:")
    print(table(loss_rows, ["config/precision", "loss", "L_CE", "L_DA", "L_IA", "finite"]))
    results["losses"] = agreement
    for name in calls:
        ratio = results["steps"][f"{name}/fp32"]["seconds"] / results["steps"][f"{name}/bf16"]["seconds"]
        print(f"{name}: bf16 speed-up over fp32 {ratio:.2f}x")
    model = baseline = inputs = features = calls = None  # free the GPU memory before the next section
    if device.type == "cuda":
        torch.cuda.empty_cache()


def section_batches(args, device, results):
    model = build_model(args.size).to(device)
    model.train()
    rows = []
    for precision in ("bf16", "fp32"):
        for batch in args.batch_sizes:
            inputs = to_device(make_inputs(model, batch, 4.5, args.tokens), device)
            step = Step(model, lambda: model(**inputs).loss, precision, device)
            try:
                times = timed(step, device, repeats=max(3, args.repeats // 2), warmup=args.warmup)
                peak, _ = peak_memory(step, device)
            except torch.OutOfMemoryError:
                rows.append([precision, batch, "out of memory", "", ""])
                results["batches"][f"{precision}/{batch}"] = "out of memory"
                step = inputs = None
                torch.cuda.empty_cache()
                break
            seconds = median(times)
            results["batches"][f"{precision}/{batch}"] = {
                "seconds": seconds, "utterances_per_second": batch / seconds, "peak_bytes": peak}
            rows.append([precision, batch, f"{seconds * 1000:.1f}", f"{batch / seconds:.1f}", f"{peak / 2**30:.2f}"])
            step = inputs = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(f"\n## batches: whole model, 4.5 s clips + {args.tokens} tokens, full training step")
    print(table(rows, ["precision", "batch", "ms/step", "utterances/s", "peak GiB"]))
    model = None
    if device.type == "cuda":
        torch.cuda.empty_cache()


def section_collator(args, device, results):
    from torch.utils.data import DataLoader

    from modeling_mgcma.data import demo_vocabulary, generate_demo_corpus
    from modeling_mgcma.training.collators import MGCMADataCollator
    from modeling_mgcma.training.from_scratch import word_processor

    cores = len(os.sched_getaffinity(0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = generate_demo_corpus(f"{tmp}/corpus", utterances_per_session=args.corpus_per_session,
                                      durations="iemocap")  # fmt: skip
        # rows as the collator gets them from `load_iemocap` (audio path, transcript, label), built from the files
        # directly: `datasets` needs torchcodec to store an Audio column, which a GPU image may lack
        words = demo_vocabulary()
        dataset = [{"audio": str(path), "text": " ".join(words[(i * 7 + k) % len(words)] for k in range(8 + i % 5)),
                    "label": i % 4} for i, path in enumerate(sorted(Path(corpus).glob("Session*/sentences/wav/*/*.wav")))]  # fmt: skip
        seconds = []
        for row in dataset:
            with wave.open(row["audio"]) as handle:
                seconds.append(handle.getnframes() / handle.getframerate())
        collator = MGCMADataCollator(word_processor(demo_vocabulary(), max_duration=15.0))
        for batch in (4, 32):
            for workers in sorted({0, min(4, cores - 1), min(8, cores - 1)}):
                loader = DataLoader(dataset, batch_size=batch, shuffle=True, collate_fn=collator, num_workers=workers,
                                    persistent_workers=workers > 0, prefetch_factor=2 if workers else None,
                                    pin_memory=device.type == "cuda", drop_last=True)  # fmt: skip
                iterator = iter(loader)
                next(iterator)  # workers' start-up
                start, count = time.perf_counter(), 0
                for batch_inputs in iterator:
                    count += batch_inputs["input_values"].shape[0]
                for batch_inputs in loader:  # a second pass: persistent workers, no start-up
                    count += batch_inputs["input_values"].shape[0]
                rate = count / (time.perf_counter() - start)
                results["collator"][f"{batch}/{workers}"] = rate
                rows.append([batch, workers, count, f"{rate:.0f}"])
                del iterator, loader
    print(f"\n## collator: {len(dataset)} IEMOCAP-like utterances (mean {sum(seconds) / len(seconds):.2f} s), {cores} CPU cores, "
          f"{torch.get_num_threads()} torch threads in the main process")
    print(table(rows, ["batch", "workers", "utterances", "utterances/s"]))
    for batch, key in ((4, "bf16/4"), (32, "bf16/32")):
        step = results["batches"].get(key)
        if isinstance(step, dict):
            need = step["utterances_per_second"]
            for workers_key, rate in results["collator"].items():
                if workers_key.startswith(f"{batch}/"):
                    print(f"batch {batch}, {workers_key.split('/')[1]} workers: supplies {rate:.0f} utterances/s, "
                          f"the bf16 step consumes {need:.0f} -> {rate / need:.2f}x the need")


def deterministic(model):
    """Every random part of a training forward off: dropout modules and the dropout probabilities that attention
    kernels and encoders read at run time, wav2vec2's LayerDrop and SpecAugment. Eager and compiled steps (and
    fp32 / bf16 steps) then compute the same function, whatever random numbers each draws."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for key, value in list(vars(module).items()):
            if isinstance(value, float) and ("dropout" in key or key == "layerdrop"):
                setattr(module, key, 0.0)
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            for key, value in config.to_dict().items():
                if isinstance(value, float) and ("dropout" in key or key in ("layerdrop", "mask_time_prob",
                                                                            "mask_feature_prob")):  # fmt: skip
                    setattr(config, key, 0.0)
    return model


def section_profile(args, device, results):
    """Where a bf16 step at the paper's batch spends its time: host-side operators, device kernels, and the calls
    that make the host wait for the device (each one stops the CPU from queueing work ahead)."""
    from torch.profiler import ProfilerActivity, profile

    model = build_model(args.size).to(device)
    model.train()
    inputs = to_device(make_inputs(model, args.batch, args.seconds, args.tokens), device)
    step = Step(model, lambda: model(**inputs).loss, "bf16", device)
    for _ in range(args.warmup + 1):
        step()
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    start = time.perf_counter()
    with profile(activities=activities) as profiler:
        step()
        synchronize(device)
    wall = time.perf_counter() - start
    events = profiler.key_averages()
    device_us = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA") if device.type == "cuda" else 0
    waits = {e.key: e.count for e in events
             if e.key in ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "cudaStreamSynchronize",
                          "cudaDeviceSynchronize", "aten::is_nonzero", "cudaMemcpyAsync")}  # fmt: skip
    kernels = sum(e.count for e in events if e.device_type.name == "CUDA")
    results["profile"] = {"wall_seconds": wall, "device_kernel_seconds": device_us / 1e6, "kernels": kernels,
                          "host_waits": waits}  # fmt: skip
    print(f"\n## profile: one bf16 training step, batch {args.batch} x {args.seconds} s + {args.tokens} tokens")
    print(f"wall {wall * 1000:.1f} ms (under the profiler); device kernels {device_us / 1000:.1f} ms in {kernels} "
          f"launches; host waits on the device: {waits}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))


def section_compile(args, device, results):
    torch.manual_seed(0)
    eager = build_model(args.size).to(device)
    deterministic(eager)
    eager.train()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model)
    inputs = to_device(make_inputs(eager, args.batch, args.seconds, args.tokens), device)
    other = to_device(make_inputs(eager, args.batch, args.seconds * 2 / 3, args.tokens), device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        reference = float(eager(**inputs).loss)
    steps = {"eager": Step(eager, lambda: eager(**inputs).loss, "bf16", device),
             "compiled": Step(compiled_model, lambda: compiled(**inputs).loss, "bf16", device)}
    start = time.perf_counter()
    first = float(steps["compiled"]().detach())  # compiles forward + backward; same weights as eager before any update
    synchronize(device)
    compile_seconds = time.perf_counter() - start
    steps["eager"]()
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            synchronize(device)
            begin = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - begin)
    recompile_seconds = float("nan")
    if args.compile_new_shape:
        start = time.perf_counter()
        Step(compiled_model, lambda: compiled(**other).loss, "bf16", device)()
        synchronize(device)
        recompile_seconds = time.perf_counter() - start
    eager_s, compiled_s = median(times["eager"]), median(times["compiled"])
    results["compile"] = {"compile_seconds": compile_seconds, "recompile_seconds_new_shape": recompile_seconds,
                          "eager_seconds": eager_s, "compiled_seconds": compiled_s, "speedup": eager_s / compiled_s,
                          "loss_eager": reference, "loss_compiled_first_step": first}  # fmt: skip
    print(f"\n## compile: whole model, training step in bf16, batch {args.batch} x {args.seconds} s + {args.tokens} "
          f"tokens, {args.repeats} interleaved steps each")
    print(table([[f"{eager_s * 1000:.1f}", f"{compiled_s * 1000:.1f}", f"{eager_s / compiled_s:.2f}x",
                  f"{compile_seconds:.0f}", f"{recompile_seconds:.0f}", f"{reference:.4f}", f"{first:.4f}"]],
                ["eager ms", "compiled ms", "speed-up", "compile s", "recompile s (new shape)", "loss eager",
                 "loss compiled"]))  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["paper", "tiny"], default="paper")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--corpus_per_session", type=int, default=60)
    parser.add_argument("--sections", nargs="+", default=["steps", "batches", "collator", "profile", "compile"],
                        choices=["steps", "batches", "collator", "profile", "compile"])  # fmt: skip
    parser.add_argument("--compile_new_shape", type=int, default=1, help="0: skip timing a recompilation")
    parser.add_argument("--quick", action="store_true", help="few repeats, small batches and corpus (smoke run)")
    parser.add_argument("--json", help="write the results here too (after every section)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.warmup, args.batch_sizes, args.corpus_per_session = 2, 1, [2, 4], 8
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    import transformers

    results = {"device": name, "torch": torch.__version__, "transformers": transformers.__version__,
               "size": args.size, "steps": {}, "batches": {}, "collator": {}}  # fmt: skip
    n = 8192 if device.type == "cuda" else 1024
    results["matmul"] = {"fp32": matmul_limit(device, torch.float32, n), "bf16": matmul_limit(device, torch.bfloat16, n)}
    print(f"device: {name}; torch {torch.__version__}, transformers {transformers.__version__}; size {args.size}")
    print(f"matmul limit ({n}^3): fp32 {results['matmul']['fp32'] / 1e12:.1f} TFLOP/s "
          f"(TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}), bf16 "
          f"{results['matmul']['bf16'] / 1e12:.1f} TFLOP/s")
    sections = {"steps": section_steps, "batches": section_batches, "collator": section_collator,
                "profile": section_profile, "compile": section_compile}  # fmt: skip
    for section in args.sections:
        start = time.perf_counter()
        try:
            sections[section](args, device, results)
        except Exception:  # one section failing must not lose the others' figures
            traceback.print_exc()
            results[f"{section}_error"] = traceback.format_exc(limit=3)
        print(f"({section}: {time.perf_counter() - start:.0f} s)", flush=True)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
