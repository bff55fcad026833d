"""Tiny-profile SFT quality over seeds: F1_act / F1_rsn (sample-level) on the toy test split.

Runs ``drivekit.stages.sft_stage.run`` with the tiny profile's default settings at the proposal's 1/8 (notebook 02
now trains on the course's 1/32 for 48 epochs: ``sft_stage.course_settings``),
one folder per method and seed, and prints the scores, the share of unparseable answers, the
per-class F1 of "Road is clear" and the timings. Methods:

- ``SFT``: the toy 1/8 of the train part (253 clips), as in the proposal;
- ``SFT-all``: every toy-train label but the validation clips' (1,960 clips), for ``--all-epochs``
  epochs (default 2: about as many clip passes as SFT's 12 epochs of 253), the reference of what
  labels alone can give.

Writes ``benchmarks/results/sft.json`` (``record.py``) or ``--out FILE``, whose ``results`` are
``{"seeds": [...], "SFT": {"f1_act": [...], "f1_rsn": [...], ...}, "SFT-all": {...}}`` with mean
and sd (``drivekit.evaluation.stats``).

    python benchmarks/bench_sft.py [--seed 0 1 2] [--methods SFT SFT-all] [--epochs E] [--lr LR]
        [--all-epochs E] [--threads N] [--run-dir DIR] [--out FILE]
"""
import argparse
import json
import time
from pathlib import Path

import torch

from drivekit.core import config
from drivekit.algorithms import sft
from drivekit.stages import sft_stage
from drivekit.data.toy_split import TRAIN_FRACTION
from drivekit.evaluation import stats

import record

LABELS = {"SFT": "subset", "SFT-all": "all"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="SFT seeds (data order, LoRA init)")
    p.add_argument("--methods", nargs="+", choices=tuple(LABELS), default=["SFT"])
    p.add_argument("--epochs", type=float)
    p.add_argument("--all-epochs", type=float, default=2.0, help="epochs of SFT-all")
    p.add_argument("--lr", type=float)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--run-dir", type=Path, default=config.HOME / "runs" / "bench-sft",
                   help="one run folder per method and seed")
    record.add_out_option(p, "sft")
    a = p.parse_args()
    record.check("sft", a.out)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = config.load("tiny")
    results: dict = {"seeds": a.seed, "threads": torch.get_num_threads()}
    for method in a.methods:
        epochs = a.all_epochs if method == "SFT-all" else a.epochs
        changes = {k: v for k, v in (("epochs", epochs), ("lr", a.lr)) if v is not None}
        runs = []
        for seed in a.seed:
            settings = config.profile_defaults(sft.SFTSettings, cfg, seed=seed, **changes)
            t0 = time.perf_counter()
            result = sft_stage.run(cfg, settings, a.run_dir / method / f"seed{seed}", progress=False,
                                   labels=LABELS[method], fraction=TRAIN_FRACTION)
            s = json.loads(result.summary.read_text())
            s["road_clear_f1"] = s["report"]["reasons"]["f1"]["f_road_clear"]
            runs.append(s)
            print(f"{method} seed {seed}: F1_act {s['f1_act']:.4f}  F1_rsn {s['f1_rsn']:.4f}  "
                  f"pair F1 {s['report']['pair_f1']:.4f}  'Road is clear' F1 {s['road_clear_f1']:.3f}  "
                  f"unparseable {s['unparseable']}/{s['n_test']}  train clips {s['n_train']}  best step {s['best_step']}  "
                  f"train {s['train_seconds']} s  predict {s['predict_seconds']} s  total {time.perf_counter() - t0:.0f} s  "
                  f"threads {torch.get_num_threads()}", flush=True)
        entry = {key: [r[key] for r in runs] for key in ("f1_act", "f1_rsn", "road_clear_f1", "unparseable",
                                                           "train_seconds")}
        entry["pair_f1"] = [r["report"]["pair_f1"] for r in runs]
        entry.update(epochs=runs[0]["settings"]["epochs"], train_clips=runs[0]["n_train"],
                     summary={k: stats.over_seeds(entry[k]) for k in ("f1_act", "f1_rsn", "pair_f1", "road_clear_f1")})
        results[method] = entry
        for key in ("f1_act", "f1_rsn"):
            m = entry["summary"][key]
            print(f"{method} {key}: {m['mean']:.4f} ± {m['sd']:.4f} (sd over {len(a.seed)} seeds)")
    print(f"wrote {record.write('sft', results, a.out)}")


if __name__ == "__main__":
    main()
