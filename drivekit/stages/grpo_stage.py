"""The GRPO stage: policy, trainer, training run and run directory for both profiles.

GRPO (:mod:`drivekit.algorithms.grpo`, trl's ``GRPOTrainer``) starts from a saved adapter (the SFT adapter by
default) and trains it further on dataset items with the same reward object A2C takes
(:class:`drivekit.rewards.weighted_reward.WeightedReward`). The run directory (:class:`GRPOArtifacts`,
``<runs>/grpo``) holds ``policy/`` (the adapter), ``log.csv``, ``predictions.jsonl`` (toy test split),
``summary.json`` (written last, atomically, with the settings) and ``run/`` (trl's working folder, with its
checkpoints: a run cut off, e.g. by a Colab disconnect, continues from the latest one,
:func:`drivekit.algorithms.grpo.train`).

Symmetric with :mod:`drivekit.stages.a2c_stage`: the same functions with the same arguments and
results: ``load_policy`` (a :class:`drivekit.stages.runs.Policy`), ``build_trainer``, ``train`` (the
experiment harness's interface, a :class:`drivekit.stages.runs.Trained`), ``artifacts``, ``run`` and
``ensure``; the algorithm's settings are always the argument ``settings``.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

import pandas as pd

from drivekit.algorithms.grpo import (GRPOSettings, build_trainer as grpo_trainer, log_frame, release_checkpoints,
                                     resumable, train as grpo_train)
from drivekit.algorithms.sft import SFTSettings, predict
from drivekit.core.config import Config, load, profile_defaults
from drivekit.core.tracking import Report
from drivekit.data.toy_split import items_of, toy_data
from drivekit.evaluation.reports import compare, read_predictions, write_predictions
from drivekit.models.vlm import load_vlm
from drivekit.rewards.clip_reward import ClipReward
from drivekit.rewards.weighted_reward import RewardSettings, make_reward
from drivekit.stages import runs
from drivekit.stages.sft_stage import ensure as ensure_sft


def load_policy(cfg: Config, start: str | Path = "sft", device=None, sft: SFTSettings | None = None) -> runs.Policy:
    """``Policy(model, processor, None)``: the VLM with the adapter ``start`` trainable (``"sft"``: the SFT
    adapter of notebook 02, trained when missing; otherwise a saved adapter folder). trl copies it as the
    frozen reference π_ref of the KL term itself, so no reference adapter is named. Gradient
    checkpointing follows the profile's SFT settings (``sft``)."""
    sft = sft or profile_defaults(SFTSettings, cfg)
    adapter = ensure_sft(cfg).best if str(start) == "sft" else Path(start)
    model, processor = load_vlm(cfg, adapter=adapter, trainable=True,
                                gradient_checkpointing=sft.gradient_checkpointing, device=device)
    return runs.Policy(model, processor, None)


def build_trainer(cfg: Config, items: Sequence[Mapping], reward, settings: GRPOSettings | None = None, *,
                  policy=None, start: str | Path = "sft", run_dir: str | Path | None = None,
                  instruction: str | None = None, progress: bool = True, report: Report | None = None):
    """A ``trl.GRPOTrainer`` on images-only prompts for ``items`` with ``reward``; ``policy`` is a
    :func:`load_policy` result to reuse (else one is loaded from ``start``), ``settings`` default to the
    profile's ``GRPOSettings``, trl writes under ``run_dir`` (default ``<runs>/grpo/run``). ``progress=False``
    drops transformers' progress bar; ``report``: where trl reports (default ``$DRIVEKIT_REPORT_TO``)."""
    model, processor, _ = policy or load_policy(cfg, start)
    settings = settings or profile_defaults(GRPOSettings, cfg)
    trainer = grpo_trainer(model, processor, items, reward, settings,
                           run_dir or Path(cfg.runs_dir) / GRPOArtifacts.NAME / "run", instruction, report)
    if not progress:  # transformers' bar: ProgressCallback in a terminal, NotebookProgressCallback in Jupyter
        for callback in [c for c in trainer.callback_handler.callbacks
                         if type(c).__name__ in ("ProgressCallback", "NotebookProgressCallback")]:
            trainer.remove_callback(callback)
    return trainer


def train(cfg: Config, items: Sequence[Mapping], reward, settings: GRPOSettings, start: str | Path = "sft",
          out: str | Path | None = None, progress: bool = False, report: Report | None = None) -> runs.Trained:
    """GRPO from the adapter ``start`` on ``items`` with ``reward`` (the experiment harness's interface,
    shared with :func:`drivekit.stages.a2c_stage.train`). With ``out``, trl works in ``<out>/trl`` and the
    trained adapter goes to ``<out>/policy``; ``report``: where it reports (default ``$DRIVEKIT_REPORT_TO``).
    Trains afresh, as :func:`drivekit.stages.a2c_stage.train` (checkpoints of an older run in ``<out>/trl`` are
    released)."""
    policy = load_policy(cfg, start)
    run_dir = Path(out) / "trl" if out is not None else None
    trainer = build_trainer(cfg, items, reward, settings, policy=policy, run_dir=run_dir, progress=progress,
                            report=report)
    t0 = time.perf_counter()
    grpo_train(trainer, resume=False)
    seconds = time.perf_counter() - t0
    if out is not None:
        trainer.model.save_pretrained(Path(out) / "policy")
    return runs.Trained(trainer.model, policy.processor, log_frame(trainer), seconds,
                        settings.clips_per_step * settings.num_generations)


# ---------------------------------------------------------------------------------------------
# The run directory of the default GRPO run (the A2C stage's layout)
# ---------------------------------------------------------------------------------------------
class GRPOArtifacts(runs.RunDir):
    """Where a GRPO run keeps its outputs: ``policy/`` (adapter), ``log.csv``, ``predictions.jsonl`` (toy
    test split) and ``summary.json``."""

    NAME = "grpo"
    FILES = {"policy": "policy", "log": "log.csv", "predictions": "predictions.jsonl", "summary": "summary.json"}


def artifacts(cfg: Config) -> GRPOArtifacts:
    return GRPOArtifacts.of(cfg)


def write_artifacts(out: GRPOArtifacts, trainer, settings: GRPOSettings, rows: Sequence[Mapping],
                    table: pd.DataFrame | None = None, **info) -> dict:
    """Save the policy, the log, the predictions and, last and atomically, a summary (``settings``, steps,
    F1s, the comparison ``table``, ``info``), as :func:`drivekit.stages.a2c_stage.write_artifacts` does."""
    trainer.model.save_pretrained(out.policy)
    log = log_frame(trainer)
    log.to_csv(out.log, index=False)
    write_predictions(list(rows), out.predictions)
    return runs.write_rl_summary(out.summary, settings, len(log), rows, table, **info)


def run(cfg: Config | None = None, settings: GRPOSettings | None = None, out: str | Path | None = None,
        progress: bool = True, reward: RewardSettings | None = None) -> GRPOArtifacts:
    """The GRPO counterpart of :func:`drivekit.stages.a2c_stage.run`: GRPO (``settings``, default the
    profile's ``GRPOSettings``) from the SFT adapter on the toy train subset with R = w1·R1 + w2·R2
    (``reward``, default the profile's ``RewardSettings``), then greedy predictions on the toy test split
    (at the profile's SFT settings), compared with SFT's. Training continues from the latest checkpoint in
    ``run/`` when there is one (one written with other settings is refused, its file named:
    :func:`drivekit.algorithms.grpo.train`; :func:`ensure` releases those first)."""
    cfg = cfg or load()
    settings = settings or profile_defaults(GRPOSettings, cfg)
    result = GRPOArtifacts(Path(out)) if out else artifacts(cfg)
    data = toy_data(cfg)
    reward = reward or profile_defaults(RewardSettings, cfg)
    weighted = make_reward(reward, ClipReward.from_config(cfg))
    sft_rows = read_predictions(ensure_sft(cfg).predictions)
    policy = load_policy(cfg, "sft")
    trainer = build_trainer(cfg, items_of(cfg, data.train), weighted, settings, policy=policy,
                            run_dir=result.dir / "run", progress=progress)
    t0 = time.perf_counter()
    grpo_train(trainer, resume=True)
    seconds = time.perf_counter() - t0
    rows = predict(trainer.model, policy.processor, data.test, profile_defaults(SFTSettings, cfg), progress)
    table = compare({"SFT": sft_rows, "GRPO": rows}, weighted)
    write_artifacts(result, trainer, settings, rows, table, train_seconds=round(seconds, 1), reward=asdict(reward))
    return result


def ensure(cfg: Config | None = None, settings: GRPOSettings | None = None) -> GRPOArtifacts:
    """The GRPO artifacts of ``cfg`` with ``settings`` (default: the profile's), made by :func:`run` unless
    they are a finished run of those settings (:func:`drivekit.stages.runs.ensure`, which says why it runs);
    a run that was cut off continues from its latest checkpoint, a run of other settings is trained afresh
    (as :func:`drivekit.stages.sft_stage.ensure`)."""
    cfg = cfg or load()
    settings = settings or profile_defaults(GRPOSettings, cfg)
    result = artifacts(cfg)
    if result.unfinished(settings) is not None and not resumable(result.dir / "run", settings):
        release_checkpoints(result.dir / "run")  # checkpoints of other settings (or none): trained afresh
    return runs.ensure(GRPOArtifacts, partial(run, settings=settings), cfg, settings)
