"""The GRPO stage: policy, trainer and training run for both profiles, symmetric with :mod:`drivekit.stages.a2c_stage`.

GRPO (:mod:`drivekit.algorithms.grpo`, trl's ``GRPOTrainer``) starts from a saved adapter (the SFT adapter by
default) and trains it further on dataset items with the same reward object A2C takes
(:class:`drivekit.rewards.weighted_reward.WeightedReward`). :func:`train` is the interface the experiment
harness shares with :func:`drivekit.stages.a2c_stage.train`: the same arguments, the same
:class:`drivekit.stages.runs.Trained` result.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from drivekit.stages import runs
from drivekit.core.config import Config, profile_defaults
from drivekit.algorithms.grpo import GRPOSettings, build_trainer as grpo_trainer, log_frame
from drivekit.models.vlm import load_vlm
from drivekit.algorithms.sft import SFTSettings
from drivekit.stages.sft_stage import ensure as ensure_sft
from drivekit.core.tracking import Report


def load_policy(cfg: Config, start: str | Path = "sft", device=None, sft: SFTSettings | None = None):
    """``(model, processor)``: the VLM with the adapter ``start`` trainable (``"sft"``: the SFT adapter of
    notebook 02, trained when missing; otherwise a saved adapter folder). trl copies it as the frozen
    reference π_ref of the KL term. Gradient checkpointing follows the profile's SFT settings."""
    sft = sft or profile_defaults(SFTSettings, cfg)
    adapter = ensure_sft(cfg).best if str(start) == "sft" else Path(start)
    return load_vlm(cfg, adapter=adapter, trainable=True, gradient_checkpointing=sft.gradient_checkpointing,
                    device=device)


def build_trainer(cfg: Config, items: Sequence[Mapping], reward, settings: GRPOSettings | None = None, *,
                  policy=None, start: str | Path = "sft", run_dir: str | Path | None = None,
                  instruction: str | None = None, progress: bool = True, report: Report | None = None):
    """A ``trl.GRPOTrainer`` on images-only prompts for ``items`` with ``reward``; ``policy`` is a
    :func:`load_policy` result to reuse (else one is loaded from ``start``), ``settings`` default to the
    profile's ``GRPOSettings``, trl writes under ``run_dir`` (default ``<runs>/grpo``). ``progress=False``
    drops transformers' progress bar; ``report``: where trl reports (default ``$DRIVEKIT_REPORT_TO``)."""
    model, processor = policy or load_policy(cfg, start)
    settings = settings or profile_defaults(GRPOSettings, cfg)
    trainer = grpo_trainer(model, processor, items, reward, settings, run_dir or Path(cfg.runs_dir) / "grpo",
                           instruction, report)
    if not progress:
        from transformers.trainer_callback import ProgressCallback

        trainer.remove_callback(ProgressCallback)
    return trainer


def train(cfg: Config, items: Sequence[Mapping], reward, settings: GRPOSettings, start: str | Path = "sft",
          out: str | Path | None = None, progress: bool = False, report: Report | None = None) -> runs.Trained:
    """GRPO from the adapter ``start`` on ``items`` with ``reward`` (the experiment harness's interface,
    shared with :func:`drivekit.stages.a2c_stage.train`). With ``out``, trl works in ``<out>/trl`` and the
    trained adapter goes to ``<out>/policy``; ``report``: where it reports (default ``$DRIVEKIT_REPORT_TO``)."""
    policy = load_policy(cfg, start)
    run_dir = Path(out) / "trl" if out is not None else None
    trainer = build_trainer(cfg, items, reward, settings, policy=policy, run_dir=run_dir, progress=progress,
                            report=report)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    if out is not None:
        trainer.model.save_pretrained(Path(out) / "policy")
    return runs.Trained(trainer.model, policy[1], log_frame(trainer), seconds,
                        settings.clips_per_step * settings.num_generations)
