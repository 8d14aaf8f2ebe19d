# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Time the data layer: demo corpus (default size) and a release-sized synthetic corpus.

    python benchmarks/bench_data_build.py [--workdir /tmp/mgcma_bench] [--skip-full]

The release-sized corpus has exactly the per-session 4-class counts of IEMOCAP
(EXPECTED_4CLASS_COUNTS, 5,531 utterances) with IEMOCAP-like durations (log-normal, mean
~4.5 s, tail to 30 s), so `load_iemocap` runs with the strict count check passing. The big
corpus and the caches are deleted afterwards.
"""

import argparse
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import soundfile

from modeling_mgcma.data import EXPECTED_4CLASS_COUNTS, generate_demo_corpus, load_iemocap


def timed(label, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"{label}: {time.perf_counter() - start:.2f} s", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mgcma_bench_"))
    try:
        demo = timed("demo corpus: generate (400 utterances)", generate_demo_corpus, workdir / "demo")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the demo's counts are not the release's
            dataset = timed("demo corpus: load_iemocap (build)", load_iemocap, demo, cache_dir=workdir / "cache", strict_counts=False)
            timed("demo corpus: load_iemocap (cached)", load_iemocap, demo, cache_dir=workdir / "cache", strict_counts=False)
        print(f"  rows: {len(dataset)}")
        if args.skip_full:
            return
        full = timed(
            "release-sized corpus: generate (5,531 utterances)",
            generate_demo_corpus,
            workdir / "full",
            counts=EXPECTED_4CLASS_COUNTS,
            durations="iemocap",
        )
        dataset = timed("release-sized corpus: load_iemocap strict (build)", load_iemocap, full, cache_dir=workdir / "cache")
        timed("release-sized corpus: load_iemocap strict (cached)", load_iemocap, full, cache_dir=workdir / "cache")
        seconds = [soundfile.info(path).duration for path in dataset.remove_columns("audio").map(
            lambda row: {"path": str(full / f"Session{row['session']}/sentences/wav/{row['dialog']}/{row['id']}.wav")}
        )["path"]]
        size = sum(p.stat().st_size for p in full.rglob("*.wav")) / 2**20
        print(f"  rows: {len(dataset)}; mean duration {sum(seconds) / len(seconds):.2f} s, max {max(seconds):.1f} s; wavs {size:.0f} MiB")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
