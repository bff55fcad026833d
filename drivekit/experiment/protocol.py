"""The experiment end to end: references, the choices of settings, every final run, the fresh test split, the
summary with its diagnostics.

:func:`run` makes what is missing under its output folder (finished runs reused), then writes
``rl_vs_sft.json`` (atomically) with :func:`~drivekit.experiment.results.summarize`'s content, the tunings and
the R1 judge's error rates on each seed's validation clips.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from drivekit.algorithms.sft import SFTSettings, predict
from drivekit.core.config import Config, load, profile_defaults
from drivekit.core.files import write_json
from drivekit.core.tracking import Report
from drivekit.data.fresh_split import fresh_test
from drivekit.data.toy_split import toy_data
from drivekit.evaluation.reports import read_predictions, write_predictions
from drivekit.experiment.diagnostics import judge_errors
from drivekit.experiment.folders import PREDICTIONS, finished, pending, read_summary, run_dir, tuning_dir
from drivekit.experiment.fresh import score_fresh
from drivekit.experiment.label_free import label_free_clip, unseen_clip
from drivekit.experiment.results import summarize
from drivekit.experiment.runner import finish, references, run_all, task
from drivekit.experiment.settings import CLIP_FAMILIES, GUARDED, METHODS, TUNED_METHOD, ExperimentSettings, rl_settings
from drivekit.experiment.tuning import tune, tune_label_free, tuned
from drivekit.models.vlm import load_vlm
from drivekit.rewards.clip_reward import ClipReward
from drivekit.stages import sft_stage


def run(exp: ExperimentSettings = ExperimentSettings(), out: str | Path | None = None, cfg: Config | None = None,
        progress: bool = False, echo=print, report_to: str | None = None, tune_seed: int | None = None,
        jobs: int = 1) -> dict:
    """Every method of ``exp`` over its seeds (finished runs reused), then :func:`summarize`.

    In order: the references of every seed (SFT, and SFT-all, SFT+val); with ``tune_seed`` the choices on that
    seed, :func:`tune` (the label-grounded methods' settings on its validation clips, which the label-free
    methods before issue 34 use too) and :func:`tune_label_free` (each guarded label-free candidate's on its
    63-clip selection set); every final run with the chosen settings (one whose tuning run exists, same seed,
    same settings, is that run, answering the validation clips and the test split once); every final run
    answering the fresh test split once (``exp.fresh_test`` clips; 0: none); the summary. ``report_to``
    (default ``$DRIVEKIT_REPORT_TO``): each run reports to that backend, in the project named after ``out``,
    as :func:`run_name`. No test split chooses anything: the tunings read validation answers only."""
    cfg = cfg or load()
    out = Path(out) if out else cfg.runs_dir / "rl-vs-sft"
    Report(to=report_to, project=out.resolve().name)  # checked before any training
    families = {METHODS[m][1] for m in exp.methods}
    if families & set(CLIP_FAMILIES):
        unseen_clip(cfg, progress)  # built once, before any worker needs it
    if exp.fresh_test:
        fresh_test(cfg, exp.fresh_test, progress)  # drawn once, before any run (it is answered at the end)
    references(cfg, exp, out, jobs, progress, report_to, echo)
    tuning = free = None
    if tune_seed is not None:
        algorithms = sorted({METHODS[m][0] for m in exp.methods if METHODS[m][1] not in GUARDED} & set(TUNED_METHOD))
        guarded = [m for m in exp.methods if METHODS[m][1] in GUARDED]
        tuning = tune(cfg, exp, tune_seed, out, algorithms, jobs, progress, report_to, echo) if algorithms else None
        free = tune_label_free(cfg, exp, tune_seed, out, guarded, jobs, progress, report_to, echo) if guarded else None
        exp = tuned(exp, tuning, free)
    tasks = []
    for seed in exp.seeds:
        for method in exp.methods:
            folder = run_dir(out, method, seed)
            if not finished(folder) and tune_seed is not None:
                _from_tuning(cfg, exp, method, seed, out, tuning, free, folder)
            tasks.append(task(cfg, exp, method, seed, folder, out, progress=progress, report_to=report_to))
    run_all(pending(tasks, echo), jobs, echo)
    if exp.fresh_test:
        score_fresh(cfg, exp, out, jobs, echo)
    results = summarize(out, exp)
    if families & set(CLIP_FAMILIES):  # why R1 teaches what it does: its two directions of error
        judge = label_free_clip(cfg)
        results["judge_val"] = [_judge(cfg, exp, out, seed, judge) for seed in exp.seeds]
    if tuning is not None:
        results["tuning"] = tuning
    if free is not None:
        results["tuning_label_free"] = free
    write_json(out / "rl_vs_sft.json", results, indent=1)
    return results


def _judge(cfg: Config, exp: ExperimentSettings, out: Path, seed: int, judge) -> dict:
    """The R1 judge's error rates (``diagnostics.judge_errors``) on SFT's answers to ``seed``'s validation clips,
    against the well-formed answers of the seed's labelled subset."""
    data = toy_data(cfg, exp.val_size, fraction=exp.fraction, draw=seed)
    answers = sorted({(tuple(s.actions), tuple(s.reasons)) for s in data.train.samples})
    rows = read_predictions(run_dir(out, "SFT", seed) / sft_stage.VAL_PREDICTIONS)
    return {"seed": seed, "split": "val", **judge_errors(rows, answers, judge)}


def _from_tuning(cfg: Config, exp: ExperimentSettings, method: str, seed: int, out: Path, tuning: Mapping | None,
                 free: Mapping | None, folder: Path) -> None:
    """Make ``folder`` the final run of ``method`` at ``seed`` from its tuning run, when one was made with the
    same settings: its policy answers the test split (once, here) and, for a label-free tuning run, which
    answered the selection set only, the validation clips; its other files are copied."""
    algorithm, family = METHODS[method]
    if family in GUARDED:
        entry = (free or {}).get("methods", {}).get(method)
        chooser = free
    else:
        entry = (tuning or {}).get("algorithms", {}).get(algorithm)
        entry = entry if entry is not None and entry["method"] == method else None
        chooser = tuning
    if entry is None or chooser["seed"] != seed:
        return
    source = tuning_dir(out, method, seed, entry["chosen"])
    done = read_summary(source, ("settings",))
    if done["settings"] != json.loads(json.dumps(asdict(rl_settings(cfg, exp, method, seed)))):
        return
    model, processor = load_vlm(cfg, adapter=source / "policy")
    data = toy_data(cfg, exp.val_size, fraction=exp.fraction, draw=seed)
    sft = profile_defaults(SFTSettings, cfg)
    rows = predict(model, processor, data.test, sft, progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "log.csv", folder / "log.csv")
    shutil.rmtree(folder / "policy", ignore_errors=True)
    shutil.copytree(source / "policy", folder / "policy")  # the adapter the fresh test split asks
    if done["val"].get("n", exp.val_size) == exp.val_size:
        shutil.copy2(source / sft_stage.VAL_PREDICTIONS, folder / sft_stage.VAL_PREDICTIONS)
        val_rows = read_predictions(folder / sft_stage.VAL_PREDICTIONS)
    else:
        val_rows = predict(model, processor, data.val, sft, progress=False)
        write_predictions(val_rows, folder / sft_stage.VAL_PREDICTIONS)
    write_predictions(rows, folder / PREDICTIONS)
    info = {k: v for k, v in done.items() if k not in ("val", "commit", "clean")}
    finish(folder, val_rows, rows, ClipReward.from_config(cfg), **info, tuning_run=str(source))
