"""The SFT stage (notebook 02): QLoRA SFT on the toy train subset, predictions on the toy test split.

The course's labelled share (:func:`course_fraction`): on synthetic clips the experiment's 1/32, trained for
as many clip passes as the profile's epochs make over the proposal's 1/8 (:func:`course_settings`: the tiny
profile's 12 epochs at 1/8 become 48 at 1/32). At the proposal's 1/8 SFT reaches a pair F1 of about 0.98
on the synthetic toy-test clips (``benchmarks/results/sft.json``), which leaves RL little to learn. On real
BDD-OIA the course keeps the proposal's 1/8, where SFT is far from that (the proposal's Fig. 5).

Run directory, under ``cfg.runs_dir / "sft"`` (:class:`SFTArtifacts`): ``best/`` (adapter),
``checkpoint-<step>/`` (adapters; the newest also holds the trainer state a run resumes from),
``loss_log.csv`` (step, epoch, lr, train_loss, val_loss), ``predictions.jsonl``
(:mod:`drivekit.evaluation.reports`'s rows) and ``summary.json`` (settings, best step, scores, timings).
:func:`ensure` trains them when missing, resuming an interrupted run.

Command line: ``python -m drivekit sft [--profile paper] [--out DIR] [--resume] [--report-to trackio]``
(``--report-to``: :mod:`drivekit.core.tracking`). In several processes (each trains on its share of the
batches; one adapter comes out):

    torchrun --nproc_per_node 2 -m drivekit.stages.sft_stage ...            # GPUs, or CPUs (gloo)
    accelerate launch --multi_gpu --num_processes 2 -m drivekit.stages.sft_stage ...

(accelerate 1.15's ``--cpu --num_processes 2`` starts a single process unless MPI is set up;
``--multi_gpu`` launches through torchrun, and on a machine without CUDA drivekit asks accelerate
for CPU processes, which then join a gloo group.)
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from accelerate import PartialState

from drivekit.stages import runs
from drivekit.core.config import Config, add_model_arguments, load, model_overrides, profile_defaults
from drivekit.core.files import write_json
from drivekit.evaluation.reports import score, write_predictions
from drivekit.text.json_output import scene_texts
from drivekit.models.vlm import default_device, load_vlm, set_lora_dropout
from drivekit.algorithms.sft import SFTSettings, best_step, predict, train
from drivekit.data.toy_split import TRAIN_FRACTION, ToyData, toy_data
from drivekit.core.tracking import BACKENDS, Report


VAL_PREDICTIONS = "val_predictions.jsonl"  # answers on the validation clips (run(score_val=True))


COURSE_FRACTION = 1 / 32  # the course's labelled share of the toy train part on synthetic clips (the experiment's)


def course_fraction(cfg: Config) -> float:
    """The labelled share notebook 02's SFT trains on: :data:`COURSE_FRACTION` on synthetic clips (the
    tiny profile), the proposal's 1/8 (``toy_split.TRAIN_FRACTION``) on real BDD-OIA."""
    return COURSE_FRACTION if cfg.synthetic else TRAIN_FRACTION


def course_settings(cfg: Config, **changes) -> SFTSettings:
    """Notebook 02's ``SFTSettings``: the profile's, with as many clip passes over the course's share as the
    profile's epochs make over the proposal's 1/8 (tiny: 12 epochs -> 48 at 1/32), then ``changes``."""
    epochs = profile_defaults(SFTSettings, cfg).epochs * TRAIN_FRACTION / course_fraction(cfg)
    return profile_defaults(SFTSettings, cfg, **{"epochs": epochs, **changes})


def course_data(cfg: Config, val_size: int | None = None) -> ToyData:
    """The toy split as notebook 02 trains on it (``toy_split.toy_data`` at :func:`course_fraction`, with
    the course settings' validation clips): ``train`` (SFT's labelled clips), ``val``, ``test`` and ``pool``
    (the train part's other clips, where the RL notebooks sample)."""
    val_size = course_settings(cfg).val_size if val_size is None else val_size
    return toy_data(cfg, val_size, fraction=course_fraction(cfg))


class SFTArtifacts(runs.RunDir):
    """Where one SFT run keeps its outputs."""

    NAME = "sft"
    FILES = {"best": "best", "predictions": "predictions.jsonl", "loss_log": "loss_log.csv", "summary": "summary.json"}


def artifacts(cfg: Config) -> SFTArtifacts:
    return SFTArtifacts.of(cfg)


def write_summary(result: SFTArtifacts, cfg: Config, settings: SFTSettings, log: pd.DataFrame, rows: list[dict],
                  **extra) -> dict:
    """``summary.json`` (written last and atomically, :func:`drivekit.core.files.write_json`: it marks the run
    finished, :meth:`drivekit.stages.runs.RunDir.unfinished`): profile, model, settings, best step, scores
    (plus ``extra``, e.g. timings)."""
    scores = score(rows)
    summary = dict(profile=cfg.profile, vlm=cfg.vlm, settings=asdict(settings), best_step=best_step(log),
                   n_test=len(rows), f1_act=scores["actions"]["f1_all"], f1_rsn=scores["reasons"]["f1_all"],
                   unparseable=scores["unparseable"], **extra, report=scores)
    write_json(result.summary, summary, indent=1)
    return summary


def run(cfg: Config | None = None, settings: SFTSettings | None = None, out: str | Path | None = None,
        progress: bool = True, start: str | Path | None = None, resume: bool = False,
        labels: str = "subset", fraction: float | None = None, report: Report | None = None,
        draw: int | None = None, score_val: bool = False) -> SFTArtifacts:
    """Fine-tune on the toy train subset, evaluate on the toy test split, write every artifact.

    ``start``: a saved adapter to train further (the JSON stage starts from the plain SFT's), with
    ``settings.lora.dropout`` (its shape stays the saved one's); default a new LoRA adapter with
    ``settings.lora``. ``resume``: continue from the run directory's latest checkpoint (see
    ``sft.train``). ``labels="all"``: train on every toy-train label but the validation clips'
    (``toy_split.toy_data``), the reference of what labels give.
    ``fraction``: the labelled share of the train part ``labels="subset"`` trains on (default
    :func:`course_fraction`: 1/32 on synthetic clips, the proposal's 1/8 on real BDD-OIA).
    ``report``: where training reports (default: ``$DRIVEKIT_REPORT_TO``, run ``SFT``; ``drivekit.core.tracking``).
    ``draw``: an experiment seed's own draw of the labelled subset and validation clips (``toy_split.toy_data``).
    ``score_val``: also answer the validation clips (``val_predictions.jsonl``), where settings are chosen.
    """
    cfg = cfg or load()
    settings = settings or course_settings(cfg)
    fraction = course_fraction(cfg) if fraction is None else fraction
    result = SFTArtifacts(Path(out)) if out else artifacts(cfg)
    state = PartialState(cpu=default_device().type == "cpu")  # CPU processes under torchrun join a gloo group
    t0 = time.perf_counter()
    adapter = dict(lora=settings.lora) if start is None else dict(adapter=start, trainable=True)
    with state.main_process_first():  # the first process writes what is missing (synthetic clips, tiny VLM)
        data = toy_data(cfg, settings.val_size, labels, fraction, draw)
        model, processor = load_vlm(cfg, gradient_checkpointing=settings.gradient_checkpointing,
                                    device=state.device, seed=settings.seed, **adapter)
    if start is not None:
        set_lora_dropout(model, settings.lora.dropout)
    scenes = scene_texts(cfg) if settings.target == "json" else None
    log = train(model, processor, data.train, data.val, settings, result.dir, progress, scenes, resume=resume,
                report=report)
    t1 = time.perf_counter()
    if state.is_main_process:
        rows = predict(model, processor, data.test, settings, progress)
        write_predictions(rows, result.predictions)
        if score_val:
            write_predictions(predict(model, processor, data.val, settings, progress), result.dir / VAL_PREDICTIONS)
        write_summary(result, cfg, settings, log, rows, labels=labels, fraction=fraction, draw=draw, n_train=len(data.train),
                      n_val=len(data.val),
                      train_seconds=round(t1 - t0, 1), predict_seconds=round(time.perf_counter() - t1, 1))
    return result


def ensure(cfg: Config | None = None, settings: SFTSettings | None = None) -> SFTArtifacts:
    """The SFT artifacts of ``cfg`` with ``settings`` (default: :func:`course_settings`) at
    :func:`course_fraction`, trained through :func:`run` unless they are a finished run of those settings and
    that share (saying why it trains, as :func:`drivekit.stages.runs.ensure` does); a run that was cut off
    continues from its latest checkpoint, a run of other settings or another recorded share is trained afresh."""
    cfg = cfg or load()
    settings = settings or course_settings(cfg)
    result = artifacts(cfg)
    problem = result.unfinished(settings) or other_fraction(result, course_fraction(cfg))
    if problem is None:
        return result
    if result.dir.exists():
        print(f"{problem}; running it again")
    return run(cfg, settings=settings, resume=not isinstance(problem, runs.OtherSettings))


def other_fraction(result: SFTArtifacts, fraction: float) -> runs.OtherSettings | None:
    """The problem of a finished run whose summary records another labelled share than ``fraction``, else None
    (a summary without one, written before the share was recorded, is judged by its settings alone)."""
    then = result.read_summary().get("fraction")
    if then is None or float(then) == fraction:
        return None
    return runs.OtherSettings(result.summary, f"written with fraction={then!r}, asked for {fraction!r}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="QLoRA SFT on the toy split, then predictions on its test part.")
    p.add_argument("--profile", help="tiny or paper (default: $DRIVEKIT_PROFILE, else tiny)")
    p.add_argument("--out", type=Path, help="output directory (default: <runs>/sft)")
    p.add_argument("--epochs", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--labels", choices=("subset", "all"), default="subset",
                   help="train on the labelled share (default) or on every toy-train label but the validation clips'")
    p.add_argument("--fraction", type=float,
                   help="labelled share of the toy train part (default: the course's, 1/32 on synthetic clips, "
                        "the proposal's 1/8 on real BDD-OIA)")
    add_model_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output directory")
    p.add_argument("--report-to", choices=BACKENDS, help="watch the run in trackio or TensorBoard (default: "
                   "$DRIVEKIT_REPORT_TO, else none; README, 'Watch a run')")
    a = p.parse_args(argv)
    cfg = load(a.profile, **model_overrides(a))
    changes = {k: v for k, v in (("epochs", a.epochs), ("lr", a.lr)) if v is not None}
    result = run(cfg, course_settings(cfg, **changes), a.out, resume=a.resume, labels=a.labels,
                 fraction=a.fraction, report=Report(to=a.report_to))
    if PartialState().is_main_process and result.summary.exists():
        s = result.read_summary()
        print(f"{result.dir}: F1_act {s['f1_act']:.3f}  F1_rsn {s['f1_rsn']:.3f}  unparseable {s['unparseable']}  "
              f"best step {s['best_step']}")


if __name__ == "__main__":
    main()
