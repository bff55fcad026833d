"""Tiny-profile SFT quality: F1_act / F1_rsn (sample-level) on the toy test split (issue 3).

Runs ``drivekit.sft_stage.run`` with the tiny profile's default settings (the ones notebook 02 uses) into
its own folder and prints the scores, the share of unparseable answers and the timings.

    python benchmarks/bench_sft.py [--seed 0 1 2] [--epochs E] [--lr LR] [--threads N]
"""
import argparse
import json
import time
from pathlib import Path

import torch

from drivekit import config, sft, sft_stage


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="SFT seeds (data order, LoRA init)")
    p.add_argument("--epochs", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=config.HOME / "runs" / "bench-sft")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = config.load("tiny")
    changes = {k: v for k, v in (("epochs", a.epochs), ("lr", a.lr)) if v is not None}
    for seed in a.seed:
        settings = sft.settings_for(cfg, seed=seed, **changes)
        t0 = time.perf_counter()
        result = sft_stage.run(cfg, settings, a.out / f"seed{seed}", progress=False)
        s = json.loads(result.summary.read_text())
        print(f"seed {seed}: F1_act {s['f1_act']:.4f}  F1_rsn {s['f1_rsn']:.4f}  pair F1 {s['report']['pair_f1']:.4f}  "
              f"unparseable {s['unparseable']}/{s['n_test']}  best step {s['best_step']}  "
              f"train {s['train_seconds']} s  predict {s['predict_seconds']} s  total {time.perf_counter() - t0:.0f} s  "
              f"threads {torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
