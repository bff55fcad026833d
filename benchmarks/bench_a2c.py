"""A2C benchmarks: rollout throughput, and A2C from SFT against SFT on the toy test split.

    python benchmarks/bench_a2c.py rollout [--start sft|base] [--clips 64] [--batch 32] [--new-tokens 32] [--out FILE]
    python benchmarks/bench_a2c.py a2c [--steps N] [--r2 bleu] [--r1-weight 1] [--r2-weight 1] [--run-dir runs/a2c-bench]
                                       [--out FILE]

``rollout``: samples/s of drivekit's batched, KV-cached rollout (``drivekit.algorithms.a2c.rollout``, which
also records every token's log-prob and value) against per-sample generation on the same
policy (the 4-bit tiny model with the SFT adapter, or with ``--start base`` a fresh adapter on
the pretrained model, which writes Stage-1 scene descriptions): transformers' ``generate`` with
one clip at a time (its KV cache on), and drivekit's rollout at batch size 1. Sampling at
temperature 1; the same clips for every method. The clips' frames are preprocessed into model
inputs once, before timing (the image processor's cost is the same for every method).

``a2c``: starts from the SFT adapter, scores SFT's greedy answers on the toy test split, trains
A2C with the tiny defaults (``drivekit.algorithms.a2c.A2CSettings.tiny``, R = w1·R1 + w2·R2), then scores A2C's
greedy answers the same way: mean test reward R (and its components), sample-level F1_act and
F1_rsn. Writes ``<run-dir>/predictions.jsonl`` (SFT's JSONL format).

Both write their numbers to ``benchmarks/results/a2c.json`` (``record.py``; ``results.kind`` says
which) and print them as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

import torch

from drivekit.algorithms import a2c
from drivekit.stages import a2c_stage, sft_stage
from drivekit.core import config
from drivekit.evaluation import reports
from drivekit.models import vlm, prompts
from drivekit.data import toy_split
from drivekit.rewards.weighted_reward import RewardSettings, make_reward

import record


def _fingerprint(cfg) -> dict:
    """Which model and SFT adapter a result was measured on."""
    import hashlib

    from drivekit.models.vlm import resolve

    def md5(path):
        return hashlib.md5(Path(path).read_bytes()).hexdigest()[:12] if Path(path).is_file() else None

    best = sft_stage.artifacts(cfg).best
    return dict(vlm=md5(Path(resolve(cfg.vlm)) / "model.safetensors"),
                sft_adapter=md5(best / "adapter_model.safetensors"))


def _load(cfg, start: str = "sft"):
    t0 = time.perf_counter()
    policy = a2c_stage.load_policy(cfg, start)
    return policy, time.perf_counter() - t0


def bench_rollout(a) -> dict:
    cfg = config.load()
    (model, processor, _), _ = _load(cfg, a.start)
    vlm.keep_4bit_trainable(model)
    model.eval()
    items = toy_split.dataset_items(toy_split.toy_data(cfg).test)[: a.clips]
    eos, pad = prompts.end_of_utterance_id(processor), processor.tokenizer.pad_token_id
    head = a2c.ValueHead(a2c.hidden_size(model))
    encoded = {size: [prompts.encode(processor, [it["images"] for it in items[s:s + size]])
                      for s in range(0, len(items), size)] for size in (a.batch, 1)}

    def batched(size):
        tokens = 0
        for s, x in zip(range(0, len(items), size), encoded[size]):
            roll = a2c.rollout(model, head, x, max_new_tokens=a.new_tokens, eos_ids=[eos],
                              pad_id=pad, temperature=1.0, generator=torch.Generator().manual_seed(s))
            tokens += int(roll.mask.sum())
        return tokens

    @torch.no_grad()
    def hf_single():
        tokens = 0
        for i, x in enumerate(encoded[1]):
            torch.manual_seed(i)
            out = model.generate(**x, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=a.new_tokens,
                                 eos_token_id=eos, pad_token_id=pad)
            new = out[0, x["input_ids"].shape[1]:]
            stop = (new == eos).nonzero()
            tokens += int(stop[0, 0]) + 1 if len(stop) else len(new)
        return tokens

    results = {}
    batched(a.batch)  # warm-up
    for name, fn in ((f"rollout batch {a.batch} (KV cache)", lambda: batched(a.batch)),
                     ("generate, one clip at a time (KV cache)", hf_single),
                     ("rollout batch 1 (KV cache)", lambda: batched(1))):
        t0 = time.perf_counter()
        tokens = fn()
        seconds = time.perf_counter() - t0
        results[name] = dict(seconds=round(seconds, 2), samples_per_s=round(len(items) / seconds, 2),
                             tokens_per_s=round(tokens / seconds, 1), mean_tokens=round(tokens / len(items), 1))
        print(f"{name:45s} {results[name]}", flush=True)
    names = list(results)
    speedup = results[names[0]]["samples_per_s"] / results[names[1]]["samples_per_s"]
    print(f"speed-up of batched rollouts over per-sample generate: {speedup:.1f}x")
    return dict(kind="rollout", date=str(date.today()), models=_fingerprint(cfg), start=a.start, clips=len(items),
                batch=a.batch, new_tokens=a.new_tokens,
                threads=torch.get_num_threads(), load=os.getloadavg(), results=results, speedup=round(speedup, 2))


def bench_a2c(a) -> dict:
    cfg = config.load()
    out = Path(a.run_dir)
    (model, processor, reference), load_s = _load(cfg)
    data = toy_split.toy_data(cfg)
    train, test = toy_split.dataset_items(data.train), toy_split.dataset_items(data.test)
    from drivekit.rewards.clip_reward import ClipReward

    r1 = ClipReward.from_config(cfg)
    weights = RewardSettings(r1_weight=a.r1_weight, r2_weight=a.r2_weight, r2=a.r2)
    reward = make_reward(weights, r1)
    eval_reward = reward if a.eval_r2 == a.r2 else make_reward(weights.replace(r2=a.eval_r2), r1)
    changes = {k: v for k, v in dict(steps=a.steps, lr=a.lr, batch_size=a.batch, kl_coef=a.kl,
                                      entropy_coef=a.entropy, temperature=a.temperature, reward_mode=a.mode,
                                      discount=a.discount, top_k=a.top_k, samples_per_clip=a.samples_per_clip,
                                      seed=a.seed, normalize_advantages=a.normalize, value_lr=a.value_lr,
                                      critic_warmup=a.critic_warmup).items()
               if v is not None}
    settings = a2c.A2CSettings.tiny(**changes)
    trainer = a2c_stage.build_trainer(cfg, train, reward, settings, policy=(model, processor, reference), run_dir=out / "run")
    t0 = time.perf_counter()
    sft_rows = a2c_stage.predictions(trainer, test)
    eval_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    log = trainer.train(progress=not a.quiet)
    train_s = time.perf_counter() - t0
    a2c_rows = a2c_stage.predictions(trainer, test)
    reports.write_predictions(a2c_rows, out / "predictions.jsonl")
    table = reports.compare({"SFT": sft_rows, "A2C": a2c_rows}, eval_reward)
    print(table.round(4).to_string())
    return dict(kind="a2c", date=str(date.today()), models=_fingerprint(cfg), config=settings.__dict__, reward=weights.__dict__,
                eval_r2=a.eval_r2, n_train=len(train), n_test=len(test), table=table.round(4).to_dict(orient="index"),
                train_seconds=round(train_s, 1), seconds_per_step=round(train_s / max(1, len(log)), 2),
                eval_seconds=round(eval_s, 1), load_seconds=round(load_s, 1), skipped=int(log["skipped"].sum()),
                threads=torch.get_num_threads(), load=os.getloadavg(),
                reward_first_last=[float(log["reward"].head(10).mean()), float(log["reward"].tail(10).mean())])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("rollout")
    r.add_argument("--start", choices=["sft", "base"], default="sft", help="policy: SFT adapter or a fresh one")
    r.add_argument("--clips", type=int, default=64)
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--new-tokens", type=int, default=32)
    record.add_out_option(r, "a2c")
    b = sub.add_parser("a2c")
    b.add_argument("--steps", type=int)
    b.add_argument("--lr", type=float)
    b.add_argument("--batch", type=int)
    b.add_argument("--kl", type=float)
    b.add_argument("--entropy", type=float)
    b.add_argument("--temperature", type=float)
    b.add_argument("--discount", type=float, help="γ of the returns")
    b.add_argument("--top-k", type=int)
    b.add_argument("--samples-per-clip", type=int)
    b.add_argument("--value-lr", type=float)
    b.add_argument("--critic-warmup", type=int, help="first steps train the value head alone")
    b.add_argument("--mode", choices=["incremental", "terminal"])
    b.add_argument("--seed", type=int, help="A2C seed (batches, sampling, value head)")
    b.add_argument("--normalize", action=argparse.BooleanOptionalAction, help="whiten advantages over the batch")
    b.add_argument("--r1-weight", type=float, default=RewardSettings.tiny().r1_weight)
    b.add_argument("--r2-weight", type=float, default=RewardSettings.tiny().r2_weight)
    b.add_argument("--r2", default=RewardSettings.tiny().r2)
    b.add_argument("--eval-r2", default="bleu", help="R2 variant of the reported test reward R")
    b.add_argument("--run-dir", default=str(config.load().runs_dir / "a2c-bench"),
                   help="the A2C run and its test predictions")
    b.add_argument("--quiet", action="store_true")
    record.add_out_option(b, "a2c")
    a = p.parse_args()
    record.check("a2c", a.out)
    result = bench_rollout(a) if a.what == "rollout" else bench_a2c(a)
    print(json.dumps(result, default=str))
    print(f"wrote {record.write('a2c', result, a.out)}")


if __name__ == "__main__":
    main()
