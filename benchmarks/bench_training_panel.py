"""Benchmark: how long notebook 04's training panel must train before its answers move, and what a click costs.

    python benchmarks/bench_training_panel.py [--steps 20 40 80] [--r1-steps 80] [--seeds 0 1 2] [--runs DIR]
                                              [--out FILE]

The panel as notebook 04 builds it. For each seed, notebook 04's short run (``experiment.run``: one seed,
A2C-R2 with the settings the experiment chose on validation, 100 steps, 64 validation clips, no SFT-all;
here with the seed's own data draw) trains the 1/32 SFT the panel starts from and times A2C's seconds per
step. Then ``experiment.short_runs`` builds the panel's backend: short A2C runs from that SFT on the seed's
pool, each answering 256 of the seed's validation clips (the probe) greedily after training, with the
panel's default reward (R1 weight 0, R2 weight 1: the experiment's label-F1 R2). One click per length in
``--steps`` (each a separate run: the chosen lr decays linearly to 0 over the run's own steps), then one
of ``--r1-steps`` with R1 alone (weight 1, R2 weight 0: the domain CLIP's reward, the panel's other
extreme).

Per seed and length: the estimate the panel printed before the click, the click's seconds, F1_act / F1_rsn
and their change from the start, how many probe answers changed, and on how many clips the clip's F1 rose
or fell (``widgets.run_scores``, the numbers the panel shows). ``widgets.PANEL_STEPS`` is the shortest
length at which the click fixed more probe answers than it broke, in every seed. Writes ``benchmarks/results/training_panel.json``
(``record.py``).
"""
import argparse
import dataclasses
import os
import statistics
import time
from pathlib import Path

from drivekit.core import config
from drivekit import experiment
from drivekit.course import widgets
from drivekit.rewards.clip_reward import ClipReward
from drivekit.rewards.weighted_reward import RewardSettings, make_reward

import record

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, nargs="+", default=[20, 40, 80], help="click lengths to measure")
p.add_argument("--r1-steps", type=int, default=80, help="also a click of this length with R1 alone (0: none)")
p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds, each with its own data draw")
p.add_argument("--runs", type=Path, help="where the short runs go (default: <runs>/bench-training-panel)")
record.add_out_option(p, "training_panel")
a = p.parse_args()
record.check("training_panel", a.out)

cfg = config.load()
results = experiment.load_results(config.HOME / "benchmarks" / "results" / "rl_vs_sft.json")
exp = experiment.tuned(experiment.ExperimentSettings(), results["tuning"]).replace(
    methods=("A2C-R2",), steps=100, sft_all=False, val_size=64, fresh_test=0)  # notebook 04's `short`
reward = make_reward(config.profile_defaults(RewardSettings, cfg), ClipReward.from_config(cfg))
weights = {"r1": 0.0, "r2": 1.0}  # the panel's default: the experiment's reward
R1_ONLY = {"r1": 1.0, "r2": 0.0}
runs_dir = a.runs or cfg.runs_dir / "bench-training-panel"
print(f"load average {os.getloadavg()}; experiment {exp}")

rows, starts = [], []
for seed in a.seeds:
    seed_exp = exp.replace(seeds=(seed,))
    t0 = time.perf_counter()
    short = experiment.run(seed_exp, out=runs_dir, cfg=cfg)
    per_step = short["methods"]["A2C-R2"]["seconds_per_step"][0]
    t1 = time.perf_counter()
    runs = experiment.short_runs(cfg, seed_exp, seed, runs_dir, reward, progress=False, seconds_per_step=per_step)
    load_seconds = time.perf_counter() - t1
    start = widgets.probe_f1(runs.start_answers())
    starts.append(dict(seed=seed, short_run_seconds=round(t1 - t0, 1), seconds_per_step=per_step,
                       load_seconds=round(load_seconds, 2), start_answers_seconds=round(runs.start_seconds, 2),
                       probe_clips=len(runs.probe), wrong_at_start=sum(widgets.clip_f1(r) < 1 for r in runs.before),
                       **start))
    print(starts[-1], flush=True)
    clicks = [(steps, weights) for steps in a.steps] + [(a.r1_steps, R1_ONLY)] * bool(a.r1_steps)
    for steps, click in clicks:
        estimate = runs.estimate(steps)
        t0 = time.perf_counter()
        run = runs(weights=click, steps=steps)
        seconds = time.perf_counter() - t0
        scores = widgets.run_scores(run.before, run.after, steps, seconds)
        rows.append(dict(seed=seed, weights=click, estimate=round(estimate.seconds, 1), estimate_basis=estimate.basis,
                         train_seconds=round(run.train_seconds, 2), probe_seconds=round(run.probe_seconds, 2),
                         **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}))
        print(rows[-1], flush=True)


def summary(length: int, click: dict) -> dict:
    """One click over the seeds: median seconds, changed / better / worse answers per seed, mean F1 change."""
    of = [r for r in rows if r["steps"] == length and r["weights"] == click]
    return dict(steps=length, weights=click, seeds=len(of), seconds_median=statistics.median(r["seconds"] for r in of),
                estimate_median=statistics.median(r["estimate"] for r in of),
                changed=[r["changed"] for r in of], better=[r["better"] for r in of], worse=[r["worse"] for r in of],
                dF1_act_mean=round(statistics.mean(r["ΔF1_act"] for r in of), 4),
                dF1_rsn_mean=round(statistics.mean(r["ΔF1_rsn"] for r in of), 4))


lengths = [summary(n, weights) for n in a.steps]
r1_only = summary(a.r1_steps, R1_ONLY) if a.r1_steps else None
for s in lengths + [r1_only] * bool(r1_only):
    print(s)
gaining = [s["steps"] for s in lengths if all(b > w for b, w in zip(s["better"], s["worse"]))]
print(f"shortest length that fixed more answers than it broke in every seed: {gaining[0] if gaining else None}")
out = dict(recipe=dataclasses.asdict(exp), weights=weights, starts=starts, runs=rows, lengths=lengths, r1_only=r1_only,
           shortest_gaining=gaining[0] if gaining else None)
print(f"wrote {record.write('training_panel', out, a.out)}")
