# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""CPU speed-up of `torch.compile` (inductor) over eager for a training step (forward + backward) and for inference.

    python benchmarks/bench_compile.py                 # both workloads below
    python benchmarks/bench_compile.py --workloads alignment

Workloads: "alignment" = the paper-size alignment modules and classifier on precomputed encoder features
(`speech_features`/`text_features`, as in cached-feature training; D = 768, 12 heads, 6 blocks; batch 4 x 6 s of
frames + 30 tokens); "full" = the whole classifier, raw audio + token ids, at the test size (hidden 32, 2 layers;
batch 4 x 2 s + 20 tokens), where per-operator overhead dominates. Before timing, each compiled workload is checked
against eager (fp32, 1e-4). Eager and compiled calls are interleaved (a, b, a, b, ...) so that load from other jobs
hits both alike; the ratio within one run is the result. Compilation time is printed too.
"""

import argparse
import copy
import time

import torch
from _common import build_model, interleaved_times, make_inputs, median, table


def feature_inputs(model, batch, seconds, tokens):
    generator = torch.Generator().manual_seed(0)
    frames = int(seconds * 50)  # wav2vec2: 20 ms per frame
    speech_width, text_width = model.config.speech_config.hidden_size, model.config.text_config.hidden_size
    return {
        "speech_features": torch.randn(batch, frames, speech_width, generator=generator),
        "speech_features_mask": torch.ones(batch, frames, dtype=torch.bool),
        "text_features": torch.randn(batch, tokens, text_width, generator=generator),
        "text_features_mask": torch.ones(batch, tokens, dtype=torch.bool),
        "labels": torch.randint(0, model.config.num_labels, (batch,), generator=generator),
    }


def no_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def run(name, model, inputs, repeats):
    model = no_dropout(model)
    compiled_model = copy.deepcopy(model)
    compiled = torch.compile(compiled_model)
    inference_inputs = {k: v for k, v in inputs.items() if k != "labels"}

    def infer(m):
        with torch.no_grad():
            return m(**inference_inputs).logits

    def step(m, params):
        for p in params:
            p.grad = None
        loss = m(**inputs).loss
        loss.backward()
        return loss.detach()

    eager_params = [p for p in model.parameters() if p.requires_grad]
    compiled_params = [p for p in compiled_model.parameters() if p.requires_grad]
    rows, checks = [], []
    for mode in ("inference", "train step"):
        train = mode == "train step"
        model.train(train), compiled_model.train(train)
        start = time.perf_counter()
        got = step(compiled, compiled_params) if train else infer(compiled)
        compile_s = time.perf_counter() - start
        want = step(model, eager_params) if train else infer(model)
        error = (got - want).abs().max().item()
        if train:
            # parameters the workload never reaches (the encoders, on cached features) have no gradient in either
            if any((a.grad is None) != (b.grad is None) for a, b in zip(compiled_params, eager_params)):
                raise AssertionError(f"{name}: compiled and eager give gradients to different parameters")
            grad_error = max((a.grad - b.grad).abs().max().item()
                             for a, b in zip(compiled_params, eager_params) if a.grad is not None)  # fmt: skip
            error = max(error, grad_error)
        checks.append(error)
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
            raise AssertionError(f"{name} {mode}: compiled differs from eager by {error:.2e}")
        calls = {
            "eager": (lambda: step(model, eager_params)) if train else (lambda: infer(model)),
            "compiled": (lambda: step(compiled, compiled_params)) if train else (lambda: infer(compiled)),
        }
        times = interleaved_times(calls, repeats=repeats)
        eager_s, compiled_s = median(times["eager"]), median(times["compiled"])
        rows.append([name, mode, f"{eager_s * 1000:.1f}", f"{compiled_s * 1000:.1f}", f"{eager_s / compiled_s:.2f}x",
                     f"{error:.1e}", f"{compile_s:.0f}"])  # fmt: skip
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="alignment,full")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats} interleaved calls")
    rows = []
    for workload in args.workloads.split(","):
        if workload == "alignment":
            model = build_model("paper")
            rows += run("alignment (paper)", model, feature_inputs(model, 4, 6.0, 30), args.repeats)
        elif workload == "full":
            model = build_model("tiny")
            rows += run("full (tiny)", model, make_inputs(model, 4, 2.0, 20), args.repeats)
        else:
            raise ValueError(f"unknown workload {workload!r}; expected 'alignment' or 'full'.")
        print(table(rows, ["workload", "mode", "eager ms", "compiled ms", "speed-up", "max |diff|", "compile s"]), flush=True)


if __name__ == "__main__":
    main()
