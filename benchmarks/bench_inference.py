# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""CPU inference at paper size: eager fp32 vs the torch fast paths vs the exported ONNX graphs, in one run.

    python benchmarks/bench_inference.py                       # everything: latency, batch-8, agreement on 200 inputs
    python benchmarks/bench_inference.py --agreement 0         # latency and throughput only
    python benchmarks/bench_inference.py --no-onnx             # the torch paths only
    python benchmarks/bench_inference.py --methods int8,int8+conv --int8_keep_float ""   # + int8 with quantised
        # convolutions, + an ONNX int8 graph with every MatMul quantised (the exported one keeps the text stream float)

Model: paper size (`MGCMAConfig()` defaults: wav2vec2-base + BERT-base sized random encoders, D = 768, 12 heads,
6 blocks), built locally. `--threads` intra-op threads for torch and ONNX Runtime alike (default 2).

Latency: one `--seconds` clip + `--words` words, batch 1, the median of `--repeats` calls per path, paths called in
turn (a, b, c, a, b, c, ...) so that load from other jobs hits every path alike, after one warm-up call each.
ONNX paths time `session.run` on the same inputs the eager model gets (the torch-free runtime's model call;
"end to end" adds its audio preparation and tokenisation). Batch 8: eight clips of 3-7 s with 8-16 words, padded,
utterances per second (median of `--repeats` interleaved calls).

Agreement: on `--agreement` random inputs (`--agreement_seconds` noise clips, default 1-3 s, 8-30 random tokens), top-1 agreement with eager fp32
and the largest probability difference. A random model's logits are near-ties, so the fp32 top-1 margin and each
path's logit error are printed too: a disagreement can only occur where the margin is below the error.
(`tests/test_fast_inference.py` and `tests/test_export.py` check agreement on a briefly trained demo model.)
"""

import argparse
import os
import tempfile

import numpy as np
import torch
from _common import build_model, interleaved_times, median, table

from modeling_mgcma.deploy.fast_inference import optimize_for_cpu_inference
from modeling_mgcma.training.from_scratch import word_processor


WORDS = "i really can not believe you did that to me today".split() + ["again", "now"]


def random_input(rng, vocab, seconds_range, tokens_range=(8, 31)):
    n = int(rng.uniform(*seconds_range) * 16_000)
    t = int(rng.integers(*tokens_range))
    return {
        "input_values": torch.from_numpy(rng.standard_normal((1, n)).astype(np.float32)),
        "speech_attention_mask": torch.ones(1, n, dtype=torch.int32),
        "input_ids": torch.from_numpy(rng.integers(5, vocab, (1, t))),
        "text_attention_mask": torch.ones(1, t, dtype=torch.long),
        "token_type_ids": torch.zeros(1, t, dtype=torch.long),
    }


def padded_batch(rng, vocab, size):
    items = [random_input(rng, vocab, (3.0, 7.0), (10, 19)) for _ in range(size)]
    batch = {}
    for key in items[0]:
        width = max(x[key].shape[1] for x in items)
        batch[key] = torch.cat([torch.nn.functional.pad(x[key], (0, width - x[key].shape[1])) for x in items])
    return batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["paper", "tiny"], default="paper")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--words", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--agreement", type=int, default=200)
    parser.add_argument("--agreement_seconds", default="1,3", help="min,max clip length of the agreement inputs")
    parser.add_argument("--agreement_paths", default=None, help="comma-separated paths to check (default: all)")
    parser.add_argument("--batch_repeats", type=int, default=None, help="default: --repeats")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--methods", default="bf16,int8",
        help="torch fast paths (modeling_mgcma.deploy.fast_inference); int8+conv: int8 with quantize_convolutions=True",
    )
    parser.add_argument(
        "--int8_keep_float", action="append", default=[], metavar="PATHS",
        help="another ONNX int8 graph whose MatMuls inside these comma-separated module paths stay float32 "
        "(export.quantize_int8's keep_float; the exported model_int8.onnx keeps export.INT8_KEEP_FLOAT); "
        "repeatable; an empty string quantises every MatMul",
    )
    parser.add_argument("--no-end-to-end", dest="end_to_end", action="store_false", help="skip the end-to-end rows")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = build_model(args.size).eval()
    vocab = model.config.text_config.vocab_size
    methods = [m for m in args.methods.split(",") if m]
    paths = {"eager fp32": lambda x: model(**x).logits}
    for method in methods:
        base_method, _, conv = method.partition("+")
        fast = optimize_for_cpu_inference(model, base_method, quantize_convolutions=conv == "conv")
        paths[f"torch {method}"] = lambda x, fast=fast: fast(**x).logits
    runtimes = {}
    if args.onnx:
        import onnxruntime

        from modeling_mgcma.deploy.export import export_onnx, quantize_int8
        from modeling_mgcma.deploy.onnx_runtime import GRAPH_FILES, ONNXEmotionClassifier, session_options

        CPU = ["CPUExecutionProvider"]

        workspace = tempfile.TemporaryDirectory(prefix="bench-onnx-")  # removed at exit (the graphs are ~1.8 GB)
        folder = os.path.join(workspace.name, "onnx")
        processor = word_processor(WORDS)  # only for the export's sample inputs and files; inputs below are ids
        export_onnx(model, processor, folder, quantize="int8")
        graphs = {"fp32": None, "int8": None}
        for keep in args.int8_keep_float:
            keep = tuple(path for path in keep.split(",") if path)
            name = os.path.join(workspace.name, f"int8-{len(graphs)}.onnx")
            quantize_int8(os.path.join(folder, GRAPH_FILES["fp32"]), name, keep)
            kept = "+".join(path.rpartition(".")[2] for path in keep)
            graphs[f"int8 (float32 {kept})" if keep else "int8 (every MatMul)"] = name
        for kind, graph in graphs.items():
            runtime = ONNXEmotionClassifier(folder, quantized=kind != "fp32", num_threads=args.threads)
            if graph is not None:  # the same runtime on another int8 graph of the same model
                runtime.session = onnxruntime.InferenceSession(graph, session_options(args.threads), providers=CPU)
            runtimes[kind] = runtime

            def run_graph(x, runtime=runtime):
                feed = {k: x[k].numpy().astype(runtime.input_types[k], copy=False) for k in runtime.input_names}
                return torch.from_numpy(runtime.session.run(["logits"], feed)[0])

            paths[f"ONNX {kind}"] = run_graph

    generator = np.random.default_rng(0)
    samples = int(args.seconds * 16_000)
    clip = {
        "input_values": torch.from_numpy(generator.standard_normal((1, samples)).astype(np.float32)),
        "speech_attention_mask": torch.ones(1, samples, dtype=torch.int32),
        "input_ids": torch.from_numpy(generator.integers(5, vocab, (1, args.words + 2))),  # + [CLS], [SEP]
        "text_attention_mask": torch.ones(1, args.words + 2, dtype=torch.long),
        "token_type_ids": torch.zeros(1, args.words + 2, dtype=torch.long),
    }
    calls = {name: (lambda fn=fn: fn(clip)) for name, fn in paths.items()}
    raw = {"audio": clip["input_values"][0].numpy(), "sampling_rate": 16_000, "text": " ".join(WORDS[: args.words])}
    for kind, runtime in runtimes.items():
        if args.end_to_end and kind in ("fp32", "int8"):
            calls[f"ONNX {kind}, end to end"] = lambda runtime=runtime: runtime(raw)
    with torch.inference_mode():
        times = interleaved_times(calls, repeats=args.repeats)
    base = median(times["eager fp32"])
    rows = [[name, f"{median(t) * 1000:.0f}", f"{base / median(t):.2f}x"] for name, t in times.items()]
    print(f"size={args.size}, {args.threads} threads: one {args.seconds:g} s clip + {args.words} words, batch 1, "
          f"median of {args.repeats} interleaved calls; load average before: {os.getloadavg()[0]:.1f}")
    print(table(rows, ["path", "latency ms", "speed-up vs eager fp32"]))

    if args.batch > 1:
        batch = padded_batch(np.random.default_rng(2), vocab, args.batch)
        with torch.inference_mode():
            repeats = args.batch_repeats or args.repeats
            times = interleaved_times({name: (lambda fn=fn: fn(batch)) for name, fn in paths.items()}, repeats)
        base = median(times["eager fp32"])
        rows = [[name, f"{args.batch / median(t):.2f}", f"{base / median(t):.2f}x"] for name, t in times.items()]
        print(f"\nbatch of {args.batch} padded utterances (3-7 s, 10-18 tokens): throughput, median of {repeats}")
        print(table(rows, ["path", "utterances/s", "vs eager fp32"]))

    if args.agreement:
        rng = np.random.default_rng(1)
        checked = ["eager fp32", *(args.agreement_paths.split(",") if args.agreement_paths else list(paths)[1:])]
        outputs = {name: [] for name in checked}
        seconds = tuple(float(v) for v in args.agreement_seconds.split(","))
        with torch.inference_mode():
            for _ in range(args.agreement):
                x = random_input(rng, vocab, seconds)
                for name in checked:
                    outputs[name].append(paths[name](x).float())
        reference = torch.cat(outputs.pop("eager fp32"))
        top2 = reference.topk(2, -1).values
        margin = top2[:, 0] - top2[:, 1]
        spread = (reference.max(-1).values - reference.min(-1).values).median()
        print(f"\nagreement with eager fp32 on {args.agreement} random inputs ({seconds[0]:g}-{seconds[1]:g} s, 8-30 "
              f"tokens); fp32 top-1 margin percentiles "
              f"(5/50/95): {np.percentile(margin.numpy(), [5, 50, 95]).round(5).tolist()}, "
              f"median logit spread {float(spread):.4f}")
        rows = []
        for name, produced in outputs.items():
            logits = torch.cat(produced)
            error = (logits - reference).abs().max(-1).values
            probability_error = (logits.softmax(-1) - reference.softmax(-1)).abs().max()
            agree = logits.argmax(-1) == reference.argmax(-1)
            resolvable = margin > 2 * error
            rows.append([
                name, f"{agree.float().mean():.1%}", f"{float(probability_error):.2e}", f"{float(error.median()):.5f}",
                f"{float(error.max()):.5f}", f"{resolvable.float().mean():.1%}",
                f"{agree[resolvable].float().mean():.1%}",
            ])
        print(table(rows, ["path", "top-1 agreement", "max |prob. error|", "median |logit error|",
                           "max |logit error|", "inputs with margin > 2x error", "agreement on those"]))


if __name__ == "__main__":
    main()
