"""SFT throughput (samples/s): drivekit's loop vs transformers' ``Trainer``.

Both train the same QLoRA-wrapped tiny model (``load_vlm(cfg, lora=...)``, loaded afresh for each
run) on the same toy train clips with the same collator, batch size, optimiser (AdamW), schedule
and number of optimiser steps; the ``Trainer`` neither evaluates nor saves, drivekit's loop
validates and saves a checkpoint once, on a single validation batch, at its last step. Runs
alternate between the two loops so that a change in machine load hits both.

    python benchmarks/bench_sft_throughput.py [--steps 32] [--repeats 3] [--threads N] [--out FILE]

Writes ``benchmarks/results/sft_throughput.json`` (``record.py``): samples/s of both loops per run
and the ratios.
"""
import argparse
import tempfile
import time
from dataclasses import replace

import torch
from torch.utils.data import Subset
from transformers import Trainer, TrainingArguments

from drivekit.core import config
from drivekit.models import vlm
from drivekit.algorithms import sft
from drivekit.data import toy_split

import record


def drivekit_loop(cfg, settings, data, steps: int) -> float:
    model, processor = vlm.load_vlm(cfg, lora=settings.lora)
    train = Subset(data.train, range(steps * settings.batch_size))
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        sft.train(model, processor, train, data.val, replace(settings, epochs=1, eval_every=steps + 1), out,
                  progress=False)
        return len(train) / (time.perf_counter() - t0)


def trainer_loop(cfg, settings, data, steps: int) -> float:
    model, processor = vlm.load_vlm(cfg, lora=settings.lora)
    train = Subset(data.train, range(steps * settings.batch_size))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=settings.batch_size, num_train_epochs=1,
            gradient_accumulation_steps=settings.grad_accum, learning_rate=settings.lr,
            lr_scheduler_type=settings.schedule, warmup_steps=settings.warmup_ratio, weight_decay=settings.weight_decay,
            max_grad_norm=1.0, optim="adamw_torch", logging_steps=1, save_strategy="no", eval_strategy="no",
            report_to=[], remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True,
            seed=settings.seed, use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=sft.Collator(processor))
        t0 = time.perf_counter()
        trainer.train()
        return len(train) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=32, help="optimiser steps per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    record.add_out_option(p, "sft_throughput")
    a = p.parse_args()
    record.check("sft_throughput", a.out)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = config.load("tiny")
    settings = config.profile_defaults(sft.SFTSettings, cfg, val_size=8, eval_batch_size=8)
    data = toy_split.toy_data(cfg, settings.val_size)
    a.steps = min(a.steps, len(data.train) // settings.batch_size)
    ratios, runs = [], []
    for repeat in range(a.repeats):
        ours, theirs = drivekit_loop(cfg, settings, data, a.steps), trainer_loop(cfg, settings, data, a.steps)
        ratios.append(ours / theirs)
        runs.append(dict(drivekit_samples_per_s=ours, trainer_samples_per_s=theirs, ratio=ratios[-1]))
        print(f"run {repeat}: drivekit {ours:.2f} samples/s   Trainer {theirs:.2f} samples/s   ratio {ratios[-1]:.3f}",
              flush=True)
    ratios.sort()
    print(f"{a.steps} steps x batch {settings.batch_size}, threads {torch.get_num_threads()}: "
          f"median ratio drivekit/Trainer {ratios[len(ratios) // 2]:.3f} (min {ratios[0]:.3f}, max {ratios[-1]:.3f})")
    results = dict(steps=a.steps, batch_size=settings.batch_size, threads=torch.get_num_threads(), runs=runs,
                   median_ratio=ratios[len(ratios) // 2], min_ratio=ratios[0], max_ratio=ratios[-1])
    print(f"wrote {record.write('sft_throughput', results, a.out)}")


if __name__ == "__main__":
    main()
