"""The fresh test split, answered once by every final run (:func:`score_fresh`).

After every final run has finished (its policy saved: SFT's ``best``, an RL run's or self-training's ``policy``),
each policy answers the fresh test split (:func:`drivekit.data.fresh_split.fresh_test`: clips no model and no
choice has seen) greedily, once: ``fresh_predictions.jsonl`` beside the run's other answers, and its scores under
``fresh_test`` in the run's ``summary.json`` (rewritten atomically), with the split they are on. A run whose
summary already holds them for this split is not asked again; one scored on another fresh split (another size
or generator seed) is scored again.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from drivekit.algorithms.sft import SFTSettings, predict
from drivekit.core.config import Config, profile_defaults
from drivekit.core.files import write_json
from drivekit.data.fresh_split import SEED_OFFSET, fresh_root, fresh_test
from drivekit.evaluation.reports import prediction_rewards, write_predictions
from drivekit.experiment.folders import FRESH_PREDICTIONS, SUMMARY, read_summary, run_dir
from drivekit.experiment.label_free import yardstick
from drivekit.experiment.runner import run_all, scores
from drivekit.experiment.settings import REFERENCES, ExperimentSettings
from drivekit.models.vlm import load_vlm
from drivekit.rewards.clip_reward import ClipReward


def split_id(cfg: Config, exp: ExperimentSettings) -> dict:
    """What names the fresh test split a run was scored on: its size and generator seed."""
    return dict(name="fresh_test", n=exp.fresh_test, generator_seed=cfg.seed + SEED_OFFSET)


def policy_of(folder: Path, method: str) -> Path:
    """The adapter a final run answers with: SFT's ``best`` (the references), else the trained ``policy``."""
    return folder / ("best" if method in REFERENCES else "policy")


def scored(folder: Path, cfg: Config, exp: ExperimentSettings) -> bool:
    """Whether the run in ``folder`` has answered this experiment's fresh test split."""
    if not (folder / FRESH_PREDICTIONS).is_file():
        return False
    return read_summary(folder).get("fresh_test", {}).get("split") == split_id(cfg, exp)


def score_run(cfg: Config, exp: ExperimentSettings, method: str, seed: int, folder: Path) -> dict:
    """One final run answers the fresh test split; its summary gets ``fresh_test`` (F1s, pair F1, the answers'
    form, R under the yardstick with the shipped CLIP on the fresh clips, the split); returns that entry."""
    model, processor = load_vlm(cfg, adapter=policy_of(folder, method))
    rows = predict(model, processor, fresh_test(cfg, exp.fresh_test), profile_defaults(SFTSettings, cfg), progress=False)
    write_predictions(rows, folder / FRESH_PREDICTIONS)
    clip = ClipReward.from_config(cfg.replace(data_root=fresh_root(cfg)))  # the fresh clips' frames
    entry = {**scores(rows), "R": prediction_rewards(rows, yardstick(clip))["R"], "split": split_id(cfg, exp)}
    summary = read_summary(folder)
    write_json(folder / SUMMARY, {**summary, "fresh_test": entry}, indent=1, default=str)
    return entry


def _say(echo, t: Mapping, e: Mapping) -> None:
    echo(f"{t['method']} seed {t['seed']}: fresh test F1_act {e['f1_act']:.4f}  F1_rsn {e['f1_rsn']:.4f}  "
         f"no action {e['no_action']}, no reason {e['no_reason']} of {e['n']}")


def score_fresh(cfg: Config, exp: ExperimentSettings, out: Path, jobs: int = 1, echo=print) -> None:
    """Every final run of ``exp`` under ``out`` (references and methods, every seed) that has not answered the
    fresh test split answers it (:func:`score_run`), in ``jobs`` processes."""
    fresh_test(cfg, exp.fresh_test)  # drawn once, here, before any worker reads it
    tasks = [dict(cfg=cfg, exp=exp, method=m, seed=s, folder=run_dir(out, m, s))
             for s in exp.seeds for m in (*exp.references, *exp.methods)]
    todo = [t for t in tasks if not scored(t["folder"], cfg, exp)]
    run_all(todo, jobs, echo, fn=score_run, say=_say)
