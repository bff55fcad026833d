"""The paper profile at its real size: peak memory and seconds of one SFT step, one A2C
step, one GRPO step and one prediction batch of SmolVLM-256M-Instruct or SmolVLM-Instruct.

    python benchmarks/bench_paper_scale.py --model 256m|instruct [--device cpu|cuda] [--batch N]
        [--phases sft,a2c,grpo,predict] [--image-edge PX] [--no-image-splitting] [--lora profile|text|all]
        [--no-checkpointing] [--frames N] [--work DIR] [--out FILE.json]

No weights can be downloaded here, so the model is a stand-in (``drivekit.models.smolvlm.stand_in``): the
published architecture (``config.json`` values: 256.5 M / 2.25 B parameters, the real vocabulary
size) at random init, with the published image processor (longest edge 2048 / 1536 px, 512 / 384 px
tiles: a 1280x720 frame is 13 tiles, 832 / 1,053 image tokens), saved once under ``--work`` and
loaded like a downloaded model. The frames are synthetic 1280x720 scenes, one per clip.

Everything else is the paper profile's (``config.load("paper", vlm=<stand-in>)``): 4-bit NF4 QLoRA,
the compute dtype of the device (``vlm.compute_dtype``: float32 on a CPU, bf16 on Ampere or
newer, fp16 on a T4), ``SFTSettings.paper`` (LoRA, gradient checkpointing, eval batch size) and
``A2CSettings.paper`` (64 new tokens, top-p 0.9, KL to the SFT adapter). ``--lora``,
``--no-checkpointing``, ``--image-edge`` and ``--no-image-splitting`` change one setting for a
comparison. Batch sizes default to the paper's: SFT 4 clips (per micro-batch; gradient
accumulation adds no activations), A2C 4 completions, GRPO 4 completions (one clip's group of 4,
``grpo.GRPOSettings.paper``; at ``--batch 1`` a group of 2, the least GRPO can compare), prediction
8 clips; ``--batch`` sets all.

- **sft**: one QLoRA step (collate, forward, backward, clip, AdamW) on a fresh adapter, which is
  then saved as the SFT adapter the other phases start from.
- **a2c**: ``a2c_stage.load_policy`` from that adapter (a frozen copy as π_ref), one
  ``A2CTrainer.step``: KV-cached rollout, teacher-forced rescoring with gradients, the KL
  reference forward, the update. The reward is R2 (BLEU, label texts): R1's CLIP is a separate
  model (ViT-B-32: 0.15 B parameters), not counted here.
- **grpo**: the SFT adapter loaded trainable with the profile's gradient checkpointing, one
  ``trl.GRPOTrainer`` step (``drivekit.algorithms.grpo``): sampling, the frozen copy's log-probabilities for
  the KL, the update. Same reward as A2C.
- **predict**: the SFT adapter answers one batch greedily (``sft.predict``, 48 new tokens).

A random model never writes its end token, so every completion runs to its length limit: the
worst case for memory. Each phase runs in its own process and reports the peak over the phase
(the model already loaded): on a CPU the peak resident set size (``VmHWM``, reset through
``/proc/self/clear_refs`` when the phase starts), on a GPU ``torch.cuda.max_memory_allocated``;
``loaded_gb`` is what the loaded model holds before it. Prints a table and writes the rows to
``benchmarks/results/paper_scale.json`` (``record.py``; ``results.rows``) or ``--out FILE``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

import record

PHASES = ("sft", "a2c", "grpo", "predict")
PAPER_BATCH = {"sft": "batch_size", "predict": "eval_batch_size"}  # SFTSettings fields; A2C: A2CSettings.batch_size


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------
def _status_gb(field: str) -> float:
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 2**20


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    except OSError:
        pass  # then the peak is the process's, load included (ru_maxrss)


def memory(device: torch.device) -> dict:
    """The current and peak memory of ``device`` (GiB): GPU allocations, or this process's RSS."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return dict(now_gb=torch.cuda.memory_allocated(device) / 2**30,
                    peak_gb=torch.cuda.max_memory_allocated(device) / 2**30,
                    reserved_gb=torch.cuda.max_memory_reserved(device) / 2**30)
    try:
        return dict(now_gb=_status_gb("VmRSS"), peak_gb=_status_gb("VmHWM"))
    except (OSError, AttributeError):
        return dict(now_gb=float("nan"), peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


# ---------------------------------------------------------------------------------------------
# The stand-in and the frames (made once in --work)
# ---------------------------------------------------------------------------------------------
def prepare(a) -> tuple[Path, Path]:
    import numpy as np

    from drivekit.data import render, scene
    from drivekit.models import smolvlm

    model_dir, frames = a.work / f"smolvlm-{a.model}", a.work / "frames"
    if not (model_dir / "config.json").is_file():
        t0 = time.perf_counter()
        texts = [scene.describe(scene.sample_scene(np.random.default_rng(i))) for i in range(64)]
        smolvlm.stand_in(a.model, model_dir, texts, device=a.device, dtype=torch.bfloat16)
        print(f"stand-in of {smolvlm.MODEL_IDS[a.model]} written to {model_dir} in {time.perf_counter() - t0:.0f} s")
    frames.mkdir(parents=True, exist_ok=True)
    for i in range(a.frames):
        file = frames / f"clip{i:03d}.jpg"
        if not file.is_file():
            s = scene.sample_scene(np.random.default_rng(1000 + i))
            render.render_clip(s, 1, (1280, 720), seed=i)[0].save(file, quality=92)
    return model_dir, frames


def items(frames: Path, n: int) -> list[dict]:
    """``n`` clips (one 1280x720 frame each) with labels, as dataset items."""
    import numpy as np

    from drivekit.data import scene
    from drivekit.data.bddoia import load_image

    files = sorted(frames.glob("clip*.jpg"))
    out = []
    for k in range(n):
        actions, reasons = scene.derive_labels(scene.sample_scene(np.random.default_rng(1000 + k % len(files))))
        out.append(dict(name=files[k % len(files)].name, images=[load_image(files[k % len(files)])],
                        actions=torch.tensor(actions), reasons=torch.tensor(reasons)))
    return out


# ---------------------------------------------------------------------------------------------
# One phase (in its own process)
# ---------------------------------------------------------------------------------------------
def settings_of(a, cfg):
    from drivekit.core import config
    from drivekit.algorithms import sft

    settings = config.profile_defaults(sft.SFTSettings, cfg)
    if a.lora != "profile":
        settings = replace(settings, lora=replace(settings.lora, vision=a.lora == "all"))
    if a.no_checkpointing:
        settings = replace(settings, gradient_checkpointing=False)
    return settings


def run_phase(a) -> dict:
    from drivekit.algorithms import a2c, sft
    from drivekit.stages import a2c_stage
    from drivekit.core import config
    from drivekit.models import vlm
    from drivekit.rewards.weighted_reward import RewardSettings, make_reward

    device = torch.device(a.device)
    cfg = config.load("paper", vlm=str(a.work / f"smolvlm-{a.model}"), image_edge=a.image_edge,
                      image_splitting=False if a.no_image_splitting else None)
    settings = settings_of(a, cfg)
    adapter = a.work / f"sft-adapter-{a.lora}"
    batch = a.batch or (config.profile_defaults(a2c.A2CSettings, cfg).batch_size if a.phase in ("a2c", "grpo") else
                        getattr(settings, PAPER_BATCH[a.phase]))
    clips = items(a.work / "frames", batch)
    t0 = time.perf_counter()
    info: dict = {}
    if a.phase == "sft":
        model, processor = vlm.load_vlm(cfg, lora=settings.lora, gradient_checkpointing=settings.gradient_checkpointing,
                                           device=device)
        vlm.keep_4bit_trainable(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=settings.lr)
        loaded, t1, c1 = memory(device), time.perf_counter(), time.process_time()
        reset_peak(device)
        inputs = sft.Collator(processor)(clips).to(device)
        model.train()
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        info.update(loss=round(loss.item(), 3), trainable_m=round(sum(p.numel() for p in params) / 1e6, 2))
    elif a.phase == "a2c":
        if not adapter.is_dir():
            raise SystemExit(f"no SFT adapter at {adapter}: run the sft phase first")
        policy = a2c_stage.load_policy(cfg, start=adapter, device=device, sft=settings)
        trainer = a2c_stage.build_trainer(cfg, clips, make_reward(RewardSettings(r2="bleu")),
                                          config.profile_defaults(a2c.A2CSettings, cfg, batch_size=batch, steps=1),
                                          policy=policy)
        loaded, t1, c1 = memory(device), time.perf_counter(), time.process_time()
        reset_peak(device)
        row = trainer.step()
        if row.get("skipped"):
            raise SystemExit(f"the A2C step failed: {row.get('traceback', row.get('error'))}")
        info.update(length=row["length"], rollout_s=round(row["rollout_s"], 1), kl=round(row["kl"], 4))
    elif a.phase == "grpo":
        from drivekit.algorithms import grpo

        if not adapter.is_dir():
            raise SystemExit(f"no SFT adapter at {adapter}: run the sft phase first")
        model, processor = vlm.load_vlm(cfg, adapter=adapter, trainable=True, device=device,
                                           gradient_checkpointing=settings.gradient_checkpointing)
        group = max(2, min(config.profile_defaults(grpo.GRPOSettings, cfg).num_generations, batch))  # 2 answers a clip at least
        n_clips = max(1, batch // group)
        settings = config.profile_defaults(grpo.GRPOSettings, cfg, steps=1, clips_per_step=n_clips, num_generations=group)
        trainer = grpo.build_trainer(model, processor, clips[:n_clips], make_reward(RewardSettings(r2="bleu")), settings,
                                     a.work / "grpo")
        loaded, t1, c1 = memory(device), time.perf_counter(), time.process_time()
        reset_peak(device)
        trainer.train()
        log = grpo.log_frame(trainer).iloc[-1]
        info.update(group=group, completions=n_clips * group, kl=round(float(log["kl"]), 4), length=round(float(log["completions/mean_length"]), 1),
                    checkpointing_on=trainer.model.get_base_model().is_gradient_checkpointing)
    else:
        model, processor = vlm.load_vlm(cfg, adapter=adapter, device=device)
        loaded, t1, c1 = memory(device), time.perf_counter(), time.process_time()
        reset_peak(device)
        rows = sft.predict(model, processor, clips, replace(settings, eval_batch_size=batch), progress=False)
        info.update(answers=len(rows), chars=round(sum(len(r["text"]) for r in rows) / len(rows)))
    seconds, cpu_seconds = time.perf_counter() - t1, time.process_time() - c1
    peak = memory(device)
    if a.phase == "sft":
        model.save_pretrained(adapter)
    with_vision_lora = settings.lora.vision
    return dict(model=a.model, device=device.type, phase=a.phase, batch=batch, peak_gb=round(peak["peak_gb"], 2),
                loaded_gb=round(loaded["now_gb"], 2), seconds=round(seconds, 1), cpu_seconds=round(cpu_seconds, 1),
                load_seconds=round(t1 - t0, 1), lora="vision+text" if with_vision_lora else "text",
                checkpointing=settings.gradient_checkpointing, dtype=str(vlm.compute_dtype(device)),
                image_edge=a.image_edge, image_splitting=not a.no_image_splitting,
                **({"reserved_gb": round(peak["reserved_gb"], 2)} if "reserved_gb" in peak else {}), **info)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
def table(rows: list[dict]) -> str:
    cols = ("model", "device", "phase", "batch", "lora", "checkpointing", "peak_gb", "loaded_gb", "seconds")
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    lines += [" | ".join(str(r.get(c, "")) for c in cols) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("256m", "instruct"), default="256m")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, help="clips or completions per phase (default: the paper's: SFT 4, "
                                             "A2C 4, GRPO 4, predict 8)")
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--image-edge", type=int, help="longest edge before tiling (default: the processor's)")
    p.add_argument("--no-image-splitting", action="store_true")
    p.add_argument("--lora", choices=("profile", "text", "all"), default="profile",
                   help="LoRA on the text decoder only, on the vision encoder too, or as the profile says")
    p.add_argument("--no-checkpointing", action="store_true")
    p.add_argument("--frames", type=int, default=8, help="distinct synthetic frames (clips repeat them)")
    p.add_argument("--work", type=Path, default=Path("/tmp/drivekit-paper-scale"))
    record.add_out_option(p, "paper_scale")
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # internal: run one phase, print its row
    a = p.parse_args(argv)
    if a.phase:
        print("RESULT " + json.dumps(run_phase(a)), flush=True)
        return
    record.check("paper_scale", a.out)
    prepare(a)
    rows = []
    for phase in a.phases.split(","):
        cmd = [sys.executable, __file__, "--phase", phase, *(argv if argv is not None else sys.argv[1:])]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        result = [line[7:] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not result:
            print(done.stdout[-3000:], done.stderr[-6000:], sep="\n", file=sys.stderr)
            raise SystemExit(f"phase {phase} failed (exit {done.returncode})")
        rows.append(json.loads(result[0]))
        print(f"{phase}: {rows[-1]}  ({time.perf_counter() - t0:.0f} s with loading)", flush=True)
    out = record.write("paper_scale", dict(rows=rows), a.out)
    print(table(rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
