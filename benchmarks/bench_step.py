# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Training-step speed at paper size: seconds, FLOPs, achieved FLOP/s and the ratio to this machine's matmul FLOP/s.

    python benchmarks/bench_step.py                 # paper size, batch 4 x 6 s audio + 30 tokens, 1 warm-up + 3 steps
    python benchmarks/bench_step.py --size tiny     # a quick smoke run
    python benchmarks/bench_step.py --precisions fp32 bf16   # bf16 too where the CPU has no native bf16 matmul

Configurations (each a full training step: forward, backward, fused AdamW step — the Trainer's default optimizer
and run_mgcma's), fp32 and CPU bf16 autocast:
- mgcma: the whole model from raw audio and token ids;
- encoders: the encoders-only baseline (wav2vec2 + BERT + mean pooling + linear head);
- alignment: MGCMA on precomputed encoder features (`speech_features`/`text_features`): the projections, DAM, TAM,
  IAM, the losses and the classifier, i.e. the modules this project adds.
All steps are timed in turn (a, b, c, a, b, c, ...) so that other load on the machine hits every side alike; the
matmul limit is measured in the same run, before and after. bf16 is skipped by default when this CPU's bf16 matmul
is slower than half its fp32 matmul (no native bf16 dot products, e.g. an AVX2-only CPU, where PyTorch emulates
bf16 and a paper-size step would take hours); `--precisions fp32 bf16` runs it anyway.
"""

import argparse
import json

import numpy as np
import torch
from _common import (
    EncodersOnlyBaseline,
    bf16_matmul_is_native,
    build_model,
    count_flops,
    encoder_feature_inputs,
    interleaved_times,
    make_inputs,
    matmul_flops_per_second,
    median,
    table,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["paper", "tiny"], default="paper")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=None,
                        help="default: fp32, and bf16 where the CPU's bf16 matmul is at least half as fast as fp32")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    precisions = args.precisions or ["fp32", "bf16"]
    if args.precisions is None and not bf16_matmul_is_native():
        precisions = ["fp32"]
        print(f"bf16 skipped: on this CPU a bf16 matmul is more than 2x slower than fp32 (PyTorch CPU capability: "
              f"{torch.backends.cpu.get_cpu_capability()}; no native bf16 dot products, so bf16 is emulated); "
              "pass --precisions fp32 bf16 to time it anyway.", flush=True)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    matmul = {p: matmul_flops_per_second(dtypes[p]) for p in precisions}
    model = build_model(args.size)
    model.train()
    inputs = make_inputs(model, args.batch, args.seconds, args.tokens)
    feature_inputs = encoder_feature_inputs(model, inputs)
    baseline = EncodersOnlyBaseline(model)
    alignment_params = [p for n, p in model.named_parameters() if p.requires_grad and "_encoder." not in n]
    optimizers = {
        "mgcma": torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, fused=True),
        "encoders": torch.optim.AdamW([p for p in baseline.parameters() if p.requires_grad], lr=1e-6, fused=True),
        "alignment": torch.optim.AdamW(alignment_params, lr=1e-6, fused=True),
    }
    losses = {
        "mgcma": lambda: model(**inputs).loss,
        "encoders": lambda: baseline(**inputs),
        "alignment": lambda: model(**feature_inputs).loss,
    }

    def step(name, precision):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = losses[name]()
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            return loss

        return run

    # loss agreement fp32 vs bf16 on the same weights, inputs and dropout / SpecAugment draws
    agreement = {}
    for name in losses:
        values = {}
        for precision in precisions:
            torch.manual_seed(123)
            np.random.seed(123)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                values[precision] = float(losses[name]())
        agreement[name] = values

    flops = {}
    for name in losses:
        for precision in precisions:
            flops[(name, precision)] = count_flops(step(name, precision))
    runs = {(name, precision): step(name, precision) for name in losses for precision in precisions}
    times = interleaved_times(runs, repeats=args.repeats, warmup=args.warmup)
    matmul_after = {p: matmul_flops_per_second(dtypes[p]) for p in precisions}
    matmul = {k: (matmul[k] + matmul_after[k]) / 2 for k in matmul}

    rows, results = [], {}
    for (name, precision), values in times.items():
        seconds = median(values)
        achieved = flops[(name, precision)] / seconds
        results[f"{name}/{precision}"] = {
            "seconds": seconds,
            "all_seconds": values,
            "flops": flops[(name, precision)],
            "flops_per_second": achieved,
            "ratio_to_matmul": achieved / matmul[precision],
        }
        rows.append([
            name, precision, f"{seconds:.3f}", f"{flops[(name, precision)] / 1e12:.3f}",
            f"{achieved / 1e9:.1f}", f"{achieved / matmul[precision]:.2f}",
        ])
    print(f"size={args.size} batch={args.batch} x {args.seconds}s audio + {args.tokens} tokens; "
          f"{args.warmup} warm-up + {args.repeats} timed steps each, interleaved; median step time")
    limits = ", ".join(f"{p} {matmul[p] / 1e9:.1f} GFLOP/s ({matmul_after[p] / 1e9:.1f} after)" for p in precisions)
    ratio = f"; bf16/fp32 = {matmul['bf16'] / matmul['fp32']:.2f}" if len(matmul) == 2 else ""
    print(f"matmul limit (mean of before and after): {limits}{ratio}")
    print(table(rows, ["config", "precision", "s/step", "TFLOP/step", "GFLOP/s", "ratio to matmul"]))
    print()
    speed = []
    for name in losses if {"fp32", "bf16"} <= set(precisions) else ():
        ratio = results[f"{name}/fp32"]["seconds"] / results[f"{name}/bf16"]["seconds"]
        a, b = agreement[name]["fp32"], agreement[name]["bf16"]
        speed.append([name, f"{ratio:.2f}x", f"{a:.5f}", f"{b:.5f}", f"{abs(a - b) / abs(a):.2e}"])
        results[f"{name}/bf16_speedup"] = ratio
        results[f"{name}/loss_fp32"], results[f"{name}/loss_bf16"] = a, b
    if speed:
        print(table(speed, ["config", "bf16 speed-up", "loss fp32", "loss bf16", "relative difference"]))
    reference = "fp32" if "fp32" in precisions else precisions[0]
    share = results[f"alignment/{reference}"]["flops"] / results[f"mgcma/{reference}"]["flops"]
    print(f"\nalignment modules' share of the step's FLOPs: {share:.2f}; step time mgcma/encoders ({reference}): "
          f"{results[f'mgcma/{reference}']['seconds'] / results[f'encoders/{reference}']['seconds']:.2f}")
    results["precisions"] = precisions
    results["matmul"] = matmul
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
