"""Benchmark: generate the default tiny dataset, then check its toy split.

    python benchmarks/bench_data.py [--clips 6000] [--workers 2] [--out FILE]

Targets: generation <= 60 s on 2 cores; toy split >= 1,500 clips with all four actions in test.
Writes ``benchmarks/results/data.json`` (``record.py``): the clips, workers, seconds, clips/s and the
toy split's sizes and test clips per action.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

from drivekit.data import bddoia, synthetic, toy_split

import record

p = argparse.ArgumentParser()
p.add_argument("--clips", type=int, default=6000)
p.add_argument("--workers", type=int, default=2)
record.add_out_option(p, "data")
a = p.parse_args()
record.check("data", a.out)

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
per_action = {k: int(v) for k, v in counts["test"].drop("total").items()}
print("test clips per action:", per_action)
out = record.write("data", dict(clips=a.clips, workers=a.workers, seconds=round(seconds, 1),
                                clips_per_s=round(a.clips / seconds, 1), toy_pool=len(split.train_full) + len(split.test),
                                train=len(split.train), test=len(split.test), test_per_action=per_action), a.out)
print(f"wrote {out}")
