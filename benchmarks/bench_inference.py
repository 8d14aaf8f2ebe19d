"""CPU inference latency for one 5 s clip at paper size: fp32 eager vs `optimize_for_cpu_inference` paths.

    python benchmarks/bench_inference.py                       # latency (5 s clip, 20 tokens) + agreement on 200 inputs
    python benchmarks/bench_inference.py --agreement 0         # latency only

Latency: the median of `--repeats` calls per path, paths called in turn (a, b, c, a, b, c, ...), batch 1, after
one warm-up call each. Agreement: top-1 agreement with fp32 on `--agreement` random inputs (1-3 s noise clips,
8-30 random tokens) of the same paper-size random-weight model. A random model's logits are near-ties, so the
fp32 top-1 margin distribution and the paths' logit error are printed too: a disagreement can only occur where
the margin is below the error. (`tests/test_fast_inference.py` checks agreement on a trained demo model.)
"""

import argparse

import numpy as np
import torch

from _common import build_model, interleaved_times, median, table
from modeling_mgcma.fast_inference import optimize_for_cpu_inference


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["paper", "tiny"], default="paper")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--agreement", type=int, default=200)
    parser.add_argument("--methods", default="bf16,int8,bf16-autocast")
    args = parser.parse_args()

    model = build_model(args.size).eval()
    methods = args.methods.split(",")
    fast = {method: optimize_for_cpu_inference(model, method) for method in methods}
    generator = torch.Generator().manual_seed(0)
    samples = int(args.seconds * 16_000)
    clip = {
        "input_values": torch.randn(1, samples, generator=generator),
        "speech_attention_mask": torch.ones(1, samples, dtype=torch.long),
        "input_ids": torch.randint(5, model.config.text_config.vocab_size, (1, 20), generator=generator),
        "text_attention_mask": torch.ones(1, 20, dtype=torch.long),
    }

    def fp32():
        with torch.inference_mode():
            return model(**clip).logits

    calls = {"fp32": fp32, **{m: (lambda m=m: fast[m](**clip).logits) for m in methods}}
    times = interleaved_times(calls, repeats=args.repeats)
    base = median(times["fp32"])
    rows = [[name, f"{median(t) * 1000:.0f}", f"{base / median(t):.2f}x"] for name, t in times.items()]
    print(f"size={args.size}: one {args.seconds:.0f} s clip + 20 tokens, batch 1, median of {args.repeats} interleaved calls")
    print(table(rows, ["path", "latency ms", "speed-up vs fp32"]))

    if args.agreement:
        rng = np.random.default_rng(1)
        reference, outputs = [], {m: [] for m in methods}
        for _ in range(args.agreement):
            n = int(rng.uniform(1.0, 3.0) * 16_000)
            t = int(rng.integers(8, 31))
            x = {
                "input_values": torch.from_numpy(rng.standard_normal((1, n)).astype(np.float32)),
                "speech_attention_mask": torch.ones(1, n, dtype=torch.long),
                "input_ids": torch.from_numpy(rng.integers(5, model.config.text_config.vocab_size, (1, t))),
                "text_attention_mask": torch.ones(1, t, dtype=torch.long),
            }
            with torch.inference_mode():
                reference.append(model(**x).logits)
            for m in methods:
                outputs[m].append(fast[m](**x).logits)
        reference = torch.cat(reference)
        top2 = reference.topk(2, -1).values
        margin = top2[:, 0] - top2[:, 1]
        spread = (reference.max(-1).values - reference.min(-1).values).median()
        print(f"\nagreement on {args.agreement} random inputs; fp32 top-1 margin percentiles "
              f"(5/50/95): {np.percentile(margin.numpy(), [5, 50, 95]).round(5).tolist()}, "
              f"median logit spread {float(spread):.4f}")
        rows = []
        for m in methods:
            logits = torch.cat(outputs[m])
            error = (logits - reference).abs().max(-1).values
            agree = logits.argmax(-1) == reference.argmax(-1)
            resolvable = margin > 2 * error
            rows.append([
                m, f"{agree.float().mean():.1%}", f"{float(error.median()):.5f}", f"{float(error.max()):.5f}",
                f"{resolvable.float().mean():.1%}", f"{agree[resolvable].float().mean():.1%}",
            ])
        print(table(rows, ["path", "top-1 agreement", "median |logit error|", "max |logit error|",
                           "inputs with margin > 2x error", "agreement on those"]))


if __name__ == "__main__":
    main()
