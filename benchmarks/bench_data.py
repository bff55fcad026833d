"""Benchmark: generate the default tiny dataset, then check its toy split (issue 2's targets).

    python benchmarks/bench_data.py [--clips 6000] [--workers 2]

Targets: generation <= 60 s on 2 cores; toy split >= 1,500 clips with all four actions in test.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

from drivekit import bddoia, synthetic, toy_split

p = argparse.ArgumentParser()
p.add_argument("--clips", type=int, default=6000)
p.add_argument("--workers", type=int, default=2)
a = p.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    root = synthetic.generate(Path(tmp), n_clips=a.clips, workers=a.workers, progress=False)
    seconds = time.perf_counter() - start
    pool = [s for part in bddoia.read_splits(root).values() for s in part.samples]
    split = toy_split.make_toy_split(pool, seed=0)
    counts = split.counts()

print(f"cores: {os.cpu_count()}  clips: {a.clips}  workers: {a.workers}")
print(f"generation: {seconds:.1f} s  ({a.clips / seconds:.0f} clips/s)")
print(f"toy pool: {len(split.train_full) + len(split.test)}  train: {len(split.train)}  test: {len(split.test)}")
print("test clips per action:", {k: int(v) for k, v in counts["test"].drop("total").items()})
