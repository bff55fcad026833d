"""Benchmark: how long notebook 04's reward explorer takes to answer a slider move.

    python benchmarks/bench_reward_explorer.py [--clips 8 64] [--answers 4] [--moves 50] [--out FILE]

Target: under 1 s per move on 2 cores (issue 26). A move re-weights the cached reward terms of every
sampled answer (``widgets.rescore``), re-ranks each clip's answers, and redraws the table
(``RewardExplorer.redraw``: the same work as a slider's callback, its display going nowhere). The
answers are synthetic label texts scored by the real R2 variants once (``widgets.score_answers``);
R1's column is random numbers, as R1 is computed once and never at a move. Writes
``benchmarks/results/reward_explorer.json`` (``record.py``): per size, the scoring seconds (once) and
the median and slowest move.
"""
import argparse
import contextlib
import io
import statistics
import time

import numpy as np
import pandas as pd

from drivekit import widgets
from drivekit.formats import target_text
from drivekit.taxonomy import N_ACTIONS, N_REASONS

import record

p = argparse.ArgumentParser()
p.add_argument("--clips", type=int, nargs="+", default=[8, 64])
p.add_argument("--answers", type=int, default=4, help="sampled answers per clip")
p.add_argument("--moves", type=int, default=50)
record.add_out_option(p, "reward_explorer")
a = p.parse_args()
record.check("reward_explorer", a.out)


def one_hot(i, n):
    return [int(j == i) for j in range(n)]


rng = np.random.default_rng(0)
results = {}
for clips in a.clips:
    rows = []
    for c in range(clips):
        truth = one_hot(rng.integers(N_ACTIONS), N_ACTIONS), one_hot(rng.integers(N_REASONS), N_REASONS)
        for _ in range(a.answers):
            said = one_hot(rng.integers(N_ACTIONS), N_ACTIONS), one_hot(rng.integers(N_REASONS), N_REASONS)
            rows.append(dict(file_name=f"clip{c}.jpg", text=target_text(*said), actions=truth[0], reasons=truth[1]))
    start = time.perf_counter()
    scored = widgets.score_answers(pd.DataFrame(rows))
    scoring = time.perf_counter() - start
    scored.insert(4, "r1", rng.uniform(0.2, 0.4, len(scored)))
    explorer = widgets.reward_explorer(scored, weights={"r1": 1.0, "r2": 1.0})
    times = []
    for move in range(a.moves):
        with contextlib.redirect_stdout(io.StringIO()):  # outside a notebook the table is printed: drop it
            start = time.perf_counter()
            explorer.weights["r1" if move % 2 else "r2"].value = float(rng.integers(0, 21)) / 10  # fires redraw()
            if move % 10 == 9:
                explorer.variant.value = widgets.EXPLORER_VARIANTS[(move // 10) % len(widgets.EXPLORER_VARIANTS)]
            times.append(time.perf_counter() - start)
    results[f"{clips}x{a.answers}"] = dict(answers=len(scored), scoring_seconds=round(scoring, 3),
                                           move_median_seconds=round(statistics.median(times), 4),
                                           move_max_seconds=round(max(times), 4), moves=a.moves)
    print(f"{clips} clips × {a.answers}: scoring {scoring:.2f} s once; a move: median "
          f"{statistics.median(times) * 1000:.1f} ms, slowest {max(times) * 1000:.1f} ms")
print(f"wrote {record.write('reward_explorer', results, a.out)}")
