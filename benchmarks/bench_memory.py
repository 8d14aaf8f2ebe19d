# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Peak CPU memory of one training step, each configuration in its own fresh process (ru_maxrss of that process).

    python benchmarks/bench_memory.py               # paper size, batch 4 x 6 s audio + 30 tokens, fp32
    python benchmarks/bench_memory.py --size tiny

Configurations: mgcma (whole model), encoders (encoders-only baseline), mgcma + gradient checkpointing
(`model.gradient_checkpointing_enable()`: the encoders' layers and the TAM blocks recompute their activations in the
backward pass). A step is forward + backward + AdamW step; one warm-up step allocates the AdamW state, then one measured step.
Reported: the process's peak resident memory over both (weights, gradients, AdamW state, activations, allocator
slack: what a user must have; the steady-state step is the larger), and the measured step's increment over the
resident memory just before it (weights and AdamW state already there): activations + gradients.
"""

import argparse
import json
import os
import resource
import subprocess
import sys

from _common import table


def child(config: str, size: str, batch: int, seconds: float, tokens: int) -> None:
    import psutil
    import torch
    from _common import EncodersOnlyBaseline, build_model, make_inputs

    torch.manual_seed(0)
    model = build_model(size)
    model.train()
    inputs = make_inputs(model, batch, seconds, tokens)
    if config == "mgcma_checkpointing":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    module = EncodersOnlyBaseline(model) if config == "encoders" else model
    if config == "encoders":
        # only the baseline's parameters exist for it: drop the alignment modules so they cost no memory
        model.mgcma.distribution_alignment = model.mgcma.token_alignment = None
        model.classifier = None
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6, fused=True)
    def step():
        output = module(**inputs)
        loss = output if torch.is_tensor(output) else output.loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocates the AdamW state, so the measured step is a steady-state one
    before = psutil.Process().memory_info().rss  # weights + AdamW state (+ allocator slack)
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"config": config, "before_step": before, "peak": peak, "params": sum(p.numel() for p in params)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["paper", "tiny"], default="paper")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.size, args.batch, args.seconds, args.tokens)
        return

    results = {}
    for config in ("encoders", "mgcma", "mgcma_checkpointing"):
        command = [sys.executable, os.path.abspath(__file__), "--child", config, "--size", args.size,
                   "--batch", str(args.batch), "--seconds", str(args.seconds), "--tokens", str(args.tokens)]
        completed = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
        if completed.returncode != 0:
            raise RuntimeError(f"{config} failed:\n{completed.stderr[-3000:]}")
        results[config] = json.loads(completed.stdout.strip().splitlines()[-1])
    gib = 2**30
    base, ours = results["encoders"], results["mgcma"]
    rows = []
    for config, r in results.items():
        increment = r["peak"] - r["before_step"]
        rows.append([
            config, f"{r['params'] / 1e6:.1f}M", f"{r['peak'] / gib:.2f}", f"{increment / gib:.2f}",
            f"{r['peak'] / base['peak']:.2f}", f"{r['peak'] / ours['peak']:.2f}",
            f"{increment / (ours['peak'] - ours['before_step']):.2f}",
        ])
    print(f"size={args.size} batch={args.batch} x {args.seconds}s audio + {args.tokens} tokens, fp32, one process each")
    print(table(rows, ["config", "trainable", "peak GiB", "step increment GiB", "peak / encoders",
                       "peak / mgcma", "increment / mgcma"]))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
