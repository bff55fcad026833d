"""Benchmark: how long the reward explorers (notebook 04's on plain answers, notebook 05's on JSON) take to
answer a slider move.

    python benchmarks/bench_reward_explorer.py [--targets plain json] [--clips 8 64] [--answers 4] [--moves 50]
                                               [--out FILE]

Target: under 1 s per move on 2 cores (issue 26). A move re-weights the cached reward terms of every
sampled answer (``widgets.rescore``), re-ranks each clip's answers, and redraws the table
(``RewardExplorer.redraw``: the same work as a slider's callback, its display going nowhere). The
answers are synthetic label texts scored by the real R2 variants once (``widgets.score_answers``);
R1's column is random numbers, as R1 is computed once and never at a move. For the ``json`` target the
answers are JSON objects (some cut short, so that R3 varies), scored as the JSON stage scores them (R2 on
the parsed labels, R3), and the moves also change the R3 weight. Writes
``benchmarks/results/reward_explorer.json`` (``record.py``): per target and size, the scoring seconds
(once) and the median and slowest move.
"""
import argparse
import contextlib
import io
import json
import statistics
import time

import numpy as np
import pandas as pd

from drivekit.course import widgets
from drivekit.text.formats import target_text
from drivekit.core.taxonomy import ACTION_PHRASES, N_ACTIONS, N_REASONS, REASON_PHRASES

import record

p = argparse.ArgumentParser()
p.add_argument("--clips", type=int, nargs="+", default=[8, 64])
p.add_argument("--answers", type=int, default=4, help="sampled answers per clip")
p.add_argument("--moves", type=int, default=50)
p.add_argument("--targets", nargs="+", choices=["plain", "json"], default=["plain", "json"],
               help="plain answers (notebook 04's explorer), JSON answers (notebook 05's)")
record.add_out_option(p, "reward_explorer")
a = p.parse_args()
record.check("reward_explorer", a.out)
WEIGHTS = {"plain": {"r1": 1.0, "r2": 1.0}, "json": {"r1": 1.0, "r2": 1.0, "r3": 1.0}}


def one_hot(i, n):
    return [int(j == i) for j in range(n)]


def answer_text(target, actions, reasons) -> str:
    """An answer as the target asks for it; a JSON answer is cut short one time in four."""
    if target == "plain":
        return target_text(actions, reasons)
    action, reason = ACTION_PHRASES[actions.index(1)], REASON_PHRASES[reasons.index(1)]
    text = json.dumps({"scene": "We drive in a through lane. The car ahead is stopped close to us.",
                       "actions": [action], "reasons": [reason], "justification": f"{action} because: {reason}."})
    return text[: len(text) // 2] if rng.random() < 0.25 else text


rng = np.random.default_rng(0)
results = {}
for target in a.targets:
    weights = WEIGHTS[target]
    for clips in a.clips:
        rows = []
        for c in range(clips):
            truth = one_hot(rng.integers(N_ACTIONS), N_ACTIONS), one_hot(rng.integers(N_REASONS), N_REASONS)
            for _ in range(a.answers):
                said = one_hot(rng.integers(N_ACTIONS), N_ACTIONS), one_hot(rng.integers(N_REASONS), N_REASONS)
                rows.append(dict(file_name=f"clip{c}.jpg", text=answer_text(target, *said), actions=truth[0],
                                 reasons=truth[1]))
        start = time.perf_counter()
        scored = widgets.score_answers(pd.DataFrame(rows), target=target)
        scoring = time.perf_counter() - start
        scored.insert(4, "r1", rng.uniform(0.2, 0.4, len(scored)))
        explorer = widgets.reward_explorer(scored, weights=weights)
        times = []
        for move in range(a.moves):
            with contextlib.redirect_stdout(io.StringIO()):  # outside a notebook the table is printed: drop it
                start = time.perf_counter()
                explorer.shares[list(weights)[move % len(weights)]].value = float(rng.integers(0, 21)) / 20  # redraw()
                if move % 10 == 9:
                    explorer.variant.value = widgets.EXPLORER_VARIANTS[(move // 10) % len(widgets.EXPLORER_VARIANTS)]
                times.append(time.perf_counter() - start)
        results.setdefault(target, {})[f"{clips}x{a.answers}"] = dict(
            answers=len(scored), scoring_seconds=round(scoring, 3), move_median_seconds=round(statistics.median(times), 4),
            move_max_seconds=round(max(times), 4), moves=a.moves)
        print(f"{target}: {clips} clips × {a.answers}: scoring {scoring:.2f} s once; a move: median "
              f"{statistics.median(times) * 1000:.1f} ms, slowest {max(times) * 1000:.1f} ms")
print(f"wrote {record.write('reward_explorer', results, a.out)}")
