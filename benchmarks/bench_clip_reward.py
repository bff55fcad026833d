"""Benchmark: R1 with the tiny driving-domain CLIP on the toy test split .

    python benchmarks/bench_clip_reward.py [--clip tiny] [--repeats 3] [--out FILE]

0. Preprocessing. R1's retrieval with open_clip's centre crop (`shortest`, the old
   preprocessing) and with the whole frame (`squash`, `clip.RESIZE_MODE`, now), and whether the
   image tensors differ at all (the tiny profile's frames are 96x96 squares).
1. Quality. For each toy-test clip the highest-R1 text among all 4 x 21 `Action: <a>; Reason: <r>`
   pair texts (`clip_eval.pair_candidates`) is the prediction: share with the true action
   (target >= 0.70) and the true reason (target >= 0.50); beside it a randomly initialised CLIP of
   the same architecture (chance baseline).
2. Cache. Each toy-test clip is scored with one completion (a pair text drawn at random, seeded):
   the first call computes the image embeddings, re-scoring the same clips uses the in-memory
   cache (target >= 10x faster), and a fresh reward object reads the disk cache.

Writes ``benchmarks/results/clip_reward.json`` (``record.py``): the numbers printed under 0, 1 and 2.
"""
import argparse
import os
import random
import tempfile
import time

import torch

from drivekit.models import clip, clip_eval
from drivekit.core import config
from drivekit.data import synthetic
from drivekit.data.bddoia import frame_paths, load_image
from drivekit.rewards.clip_reward import ClipReward

import record

p = argparse.ArgumentParser()
p.add_argument("--clip", default=None, help="a load_clip name (default: the profile's, tiny)")
p.add_argument("--repeats", type=int, default=3)
record.add_out_option(p, "clip_reward")
a = p.parse_args()
record.check("clip_reward", a.out)

cfg = config.load()
if cfg.synthetic:
    synthetic.ensure_dataset(cfg)
name = a.clip or cfg.clip
model, preprocess, tokenizer = clip.load_clip(name, cfg=cfg)
test = clip_eval.toy_test_samples(cfg)
names = [s.name for s in test]
candidates = clip_eval.pair_candidates()
texts = [c.text for c in candidates]
truth = clip_eval.true_candidate(test, candidates)

print(f"cores: {os.cpu_count()}  torch threads: {torch.get_num_threads()}  load average: {os.getloadavg()[0]:.1f}")
parameters_m = sum(p.numel() for p in model.parameters()) / 1e6
print(f"CLIP {name!r}: {parameters_m:.2f} M parameters; {len(test)} toy-test clips x {len(texts)} candidate texts")
results = dict(clip=name, parameters_m=round(parameters_m, 2), clips=len(test), texts=len(texts), preprocessing={},
               top1={})
print(f"\n0. preprocessing (open_clip image_resize_mode); frames {load_image(frame_paths(cfg.data_root, names[0])[0]).size}")
frames = [load_image(p) for n in names for p in frame_paths(cfg.data_root, n)]
by_mode = {}
for mode in ("shortest", "squash"):
    triple = clip.load_clip(name, cfg=cfg, resize_mode=mode)
    by_mode[mode] = (torch.stack([triple[1](f) for f in frames]), ClipReward(*triple, cfg.data_root).matrix(names, texts))
    scores = {**clip_eval.top1_accuracy(by_mode[mode][1], test, candidates),
              **clip_eval.retrieval_accuracy(by_mode[mode][1], truth)}
    print(f"  {mode:<9}" + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    results["preprocessing"][mode] = scores
(before, old), (after, new) = by_mode["shortest"], by_mode["squash"]
print(f"  {len(frames)} frames: image tensors {'identical' if torch.equal(before, after) else 'differ'} "
      f"(max |diff| {(before - after).abs().max():.2e}); R1 max |diff| {(old - new).abs().max():.2e}")
results["preprocessing"].update(frames=len(frames), image_tensors_identical=torch.equal(before, after),
                                image_max_diff=float((before - after).abs().max()),
                                r1_max_diff=float((old - new).abs().max()))

print("\n1. top-1 among the pair texts")
models = {"domain CLIP": (model, preprocess, tokenizer),
          "random-init CLIP": clip.load_clip(name, cfg=cfg, load_weights=False, seed=1)}
for label, triple in models.items():
    matrix = ClipReward(*triple, cfg.data_root).matrix(names, texts)
    scores = {**clip_eval.top1_accuracy(matrix, test, candidates), **clip_eval.retrieval_accuracy(matrix, truth)}
    print(f"  {label:<17}" + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    consistent = [i for i, c in enumerate(candidates) if c in clip_eval.pair_candidates(consistent_only=True)]
    only21 = clip_eval.top1_accuracy(matrix[:, consistent], test, [candidates[i] for i in consistent])
    print(f"  {'':<17}(among the 21 pairs whose reason belongs to the action: "
          f"action {only21['action']:.3f}  reason {only21['reason']:.3f})")
    results["top1"][label] = {**scores, "consistent_pairs_only": only21}
majority = max(set(truth.tolist()), key=truth.tolist().count)  # always answering the commonest pair
always = clip_eval.top1_accuracy(torch.eye(len(texts))[[majority] * len(test)], test, candidates)
print(f"  (uniform random pick: action 0.250  reason {1 / 21:.3f}; always {texts[majority]!r}: "
      f"action {always['action']:.3f}  reason {always['reason']:.3f})")
results["top1"]["uniform random pick"] = dict(action=0.25, reason=1 / 21)
results["top1"]["always the commonest pair"] = {"text": texts[majority], **always}

print("\n2. scoring every toy-test clip once (one completion each)")
completions = [random.Random(i).choice(texts) for i in range(len(names))]


def timed(reward) -> float:
    start = time.perf_counter()
    reward(completions, file_name=names)
    return time.perf_counter() - start


with tempfile.TemporaryDirectory() as cache:
    cold, warm, disk = [], [], []
    for _ in range(a.repeats):
        reward = ClipReward(model, preprocess, tokenizer, cfg.data_root, cache_dir=cache)
        for f in (reward.cache_dir.glob("*.pt") if reward.cache_dir.is_dir() else ()):
            f.unlink()
        cold.append(timed(reward))
        warm.append(min(timed(reward) for _ in range(a.repeats)))
        disk.append(timed(ClipReward(model, preprocess, tokenizer, cfg.data_root, cache_dir=cache)))
print(f"  computing image embeddings: {min(cold):.2f} s   memory cache: {min(warm) * 1e3:.1f} ms "
      f"(x{min(cold) / min(warm):.0f})   disk cache: {min(disk):.2f} s (x{min(cold) / min(disk):.1f})")
print(f"  load average after: {os.getloadavg()[0]:.1f}")
results["scoring_seconds"] = dict(image_embeddings=min(cold), memory_cache=min(warm), disk_cache=min(disk))
print(f"wrote {record.write('clip_reward', results, a.out)}")
