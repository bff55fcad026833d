"""JSON-stage A2C benchmark: RL-JSON against SFT-JSON on the toy test split.

    python benchmarks/bench_json_rl.py [--seed S] [--steps N] [--lr LR] [--critic-warmup K] [--value-lr LR]
                                       [--kl C] [--batch B] [--temperature T] [--top-p P] [--normalize]
                                       [--run-dir runs/json-rl-bench] [--out FILE]

Starts from the SFT-JSON adapter of ``drivekit.stages.json_stage`` (``runs/json/sft``; trained from the
plain SFT adapter when missing), scores its greedy JSON answers on the toy test split, trains A2C
with R = w1·R1 + w2·R2 + w3·R3 (the profile's ``JsonSettings`` defaults, any A2C setting
overridable), then scores RL-JSON's greedy answers the same way: JSON validity, sample-level
F1_act / F1_rsn and the mean test reward R with its terms. Writes ``<run-dir>/predictions.jsonl``,
and the numbers to ``benchmarks/results/json_rl.json`` (``record.py``), which it also prints as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import torch

from drivekit.stages import a2c_stage, json_stage, sft_stage
from drivekit.core import config
from drivekit.evaluation import reports
from drivekit.data import toy_split
from drivekit.rewards.clip_reward import ClipReward

import record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--critic-warmup", type=int, help="first steps train the value head alone")
    p.add_argument("--value-lr", type=float)
    p.add_argument("--kl", type=float)
    p.add_argument("--batch", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, help="whiten advantages over the batch")
    p.add_argument("--run-dir", default=str(config.load().runs_dir / "json-rl-bench"),
                   help="the A2C run and its test predictions")
    record.add_out_option(p, "json_rl")
    a = p.parse_args()
    record.check("json_rl", a.out)

    cfg = config.load()
    stage = config.profile_defaults(json_stage.JsonSettings, cfg)
    result = json_stage.artifacts(cfg)
    if not result.sft.complete():
        sft_stage.run(cfg, stage.sft_settings(cfg), result.sft.dir, progress=False, start=sft_stage.ensure(cfg).best)
    changes = {k: v for k, v in dict(seed=a.seed, steps=a.steps, lr=a.lr, critic_warmup=a.critic_warmup,
                                      value_lr=a.value_lr, kl_coef=a.kl, batch_size=a.batch,
                                      temperature=a.temperature, top_p=a.top_p,
                                      normalize_advantages=a.normalize).items() if v is not None}
    a2c = stage.a2c_settings(cfg).replace(**changes)
    reward = stage.make_reward(ClipReward.from_config(cfg))
    data = toy_split.toy_data(cfg)
    train, test = toy_split.dataset_items(data.train), toy_split.dataset_items(data.test)
    out = Path(a.run_dir)
    trainer = a2c_stage.build_trainer(cfg, train, reward, a2c, start=result.sft.best, run_dir=out / "run")

    def answers():
        return a2c_stage.predictions(trainer, test, batch_size=stage.sft_settings(cfg).eval_batch_size,
                                     max_new_tokens=stage.max_new_tokens, target="json")

    sft_rows = answers()
    t0 = time.perf_counter()
    log = trainer.train(progress=False)
    train_s = time.perf_counter() - t0
    rl_rows = answers()
    reports.write_predictions(rl_rows, out / "predictions.jsonl")
    table = reports.compare({"SFT-JSON": sft_rows, "RL-JSON": rl_rows}, reward, json_names=["SFT-JSON", "RL-JSON"])
    print(table.round(4).to_string())
    policy = log[log["warmup"].eq(False)] if "warmup" in log else log  # the steps after the critic's warm-up
    bench = dict(date=str(date.today()), config=asdict(a2c), stage=asdict(stage), n_train=len(train),
                 n_test=len(test), table=table.round(4).to_dict(orient="index"), train_seconds=round(train_s, 1),
                 skipped=int(log["skipped"].sum()), threads=torch.get_num_threads(), load=os.getloadavg(),
                 train_reward_first_last=[float(policy["reward"].head(8).mean()), float(policy["reward"].tail(8).mean())])
    print(json.dumps(bench, default=str))
    print(f"wrote {record.write('json_rl', bench, a.out)}")


if __name__ == "__main__":
    main()
