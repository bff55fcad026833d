"""Benchmark: RL from an SFT of another length on the same labelled fraction (the harness's baseline check).

    python benchmarks/bench_rl_from_other_sft.py [--epochs 12] [--methods A2C-R2 GRPO-R2] [--run-dir DIR]
        [--compare] [--out FILE]

The harness (``drivekit.experiment``, ``ExperimentSettings()``) trains SFT on the 63 labelled clips of the 1/32
for 48 epochs, as many clip passes as the profile's SFT makes on the proposal's 1/8. It used to train
for the profile's 12 epochs: 96 optimiser steps, with the validation loss still falling at the last
one, a baseline RL could beat by finishing SFT's job. This trains SFT for ``--epochs`` instead, per
seed of the experiment, then each of its RL methods from that adapter, with the experiment's RL
settings, on the same pool. Each run folder gets the harness's files (``summary.json`` with F1s and
R, ``predictions.jsonl``); ``--compare`` prints, per method, mean ± sd over seeds and the fixed /
broken clips against the same seed's SFT of ``--epochs`` and against the harness's SFT, with the
exact sign test.

Writes ``benchmarks/results/rl_from_other_sft.json`` (``record.py``): the settings, each run's
F1_act / F1_rsn per seed, and with ``--compare`` the fixed / broken clips and p per reference.
"""
import argparse
from pathlib import Path

import numpy as np

from drivekit.core import config
from drivekit import experiment
from drivekit.experiment.folders import PREDICTIONS, read_summary, run_dir
from drivekit.evaluation import stats
from drivekit.evaluation.reports import read_predictions

import record


def train(cfg, exp, out: Path, methods) -> None:
    """The harness itself (:func:`drivekit.experiment.run`, finished runs reused), without SFT-all."""
    experiment.run(exp.replace(methods=tuple(methods), sft_all=False), out, cfg)


def f1_per_seed(out: Path, method: str, seeds) -> dict:
    """F1_act and F1_rsn of each seed's run of ``method`` under ``out`` (its ``summary.json``)."""
    summaries = [read_summary(run_dir(out, method, s)) for s in seeds]
    return {key: [s[key] for s in summaries] for key in ("f1_act", "f1_rsn")}


def compare(exp, out: Path, harness: Path, methods) -> dict:
    """Prints, per reference SFT, each run's F1s and fixed / broken clips; returns the latter with p."""
    def runs(root, method):
        return [(read_summary(run_dir(root, method, s)), read_predictions(run_dir(root, method, s) / PREDICTIONS))
                for s in exp.seeds]

    references = {f"SFT {exp.sft_epochs:g} ep.": runs(out, "SFT"), "SFT (harness)": runs(harness, "SFT")}
    every = {**references, **{m: runs(out, m) for m in methods}}
    against: dict = {}
    for ref_name, ref in references.items():
        print(f"against the same seed's {ref_name}:")
        against[ref_name] = {}
        for name, rows in every.items():
            f1 = np.array([[s["f1_act"], s["f1_rsn"]] for s, _ in rows])
            pooled = stats.pooled([stats.paired(r[1], n[1]) for r, n in zip(ref, rows)])
            print(f"  {name:14s} F1_act {f1[:, 0].mean():.3f} ± {f1[:, 0].std(ddof=1):.3f}  "
                  f"F1_rsn {f1[:, 1].mean():.3f} ± {f1[:, 1].std(ddof=1):.3f}  per seed {f1.round(3).tolist()}  "
                  f"fixed/broken {pooled['fixed']}/{pooled['broken']}  p {pooled['p']:.2g}")
            against[ref_name][name] = dict(fixed=pooled["fixed"], broken=pooled["broken"], p=pooled["p"])
    return against


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=float, default=12.0,
                   help="SFT epochs over the labelled clips (default: the profile's, the harness's before)")
    p.add_argument("--methods", nargs="*", default=["A2C-R2", "GRPO-R2"], help="none: the longer SFT only")
    p.add_argument("--run-dir", type=Path, default=config.load().runs_dir / "rl-from-other-sft",
                   help="the runs' folder")
    p.add_argument("--harness", type=Path, default=config.load().runs_dir / "rl-vs-sft",
                   help="the harness's output folder, for its SFT (python -m drivekit rl-vs-sft --out)")
    p.add_argument("--compare", action="store_true", help="print the comparison (after training)")
    record.add_out_option(p, "rl_from_other_sft")
    a = p.parse_args()
    record.check("rl_from_other_sft", a.out)
    cfg, exp = config.load(), experiment.ExperimentSettings(sft_epochs=a.epochs)
    train(cfg, exp, a.run_dir, a.methods)
    results = dict(epochs=a.epochs, methods=a.methods, seeds=list(exp.seeds), run_dir=str(a.run_dir),
                   f1={name: f1_per_seed(a.run_dir, name, exp.seeds) for name in ("SFT", *a.methods)})
    if a.compare:
        results["against"] = compare(exp, a.run_dir, a.harness, a.methods)
    print(f"wrote {record.write('rl_from_other_sft', results, a.out)}")


if __name__ == "__main__":
    main()
