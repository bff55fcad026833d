"""The experiment end to end: references, tuning on validation, every final run, the summary.

:func:`run` makes what is missing under its output folder (finished runs reused), then writes
``rl_vs_sft.json`` (atomically) with :func:`~drivekit.experiment.results.summarize`'s content.
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
from drivekit.data.toy_split import toy_data
from drivekit.evaluation.reports import read_predictions, write_predictions
from drivekit.experiment.folders import PREDICTIONS, finished, pending, read_summary, run_dir, tuning_dir
from drivekit.experiment.label_free import judge_accuracy, label_free_clip, unseen_clip
from drivekit.experiment.results import summarize
from drivekit.experiment.runner import finish, references, run_all, task
from drivekit.experiment.settings import METHODS, TUNED_METHOD, ExperimentSettings, rl_settings
from drivekit.experiment.tuning import tune, tuned
from drivekit.models.vlm import load_vlm
from drivekit.rewards.clip_reward import ClipReward
from drivekit.stages import sft_stage


def run(exp: ExperimentSettings = ExperimentSettings(), out: str | Path | None = None, cfg: Config | None = None,
        progress: bool = False, echo=print, report_to: str | None = None, tune_seed: int | None = None,
        jobs: int = 1) -> dict:
    """Every method of ``exp`` over its seeds (finished runs reused), then :func:`summarize`.

    ``tune_seed``: first choose A2C's and GRPO's settings on that seed's validation clips (:func:`tune`)
    and run every method with them; a final run whose tuning run exists (same seed, same settings) is
    that run, answering the test split once. ``report_to`` (default ``$DRIVEKIT_REPORT_TO``): each run
    reports to that backend, in the project named after ``out``, as :func:`run_name`."""
    cfg = cfg or load()
    out = Path(out) if out else cfg.runs_dir / "rl-vs-sft"
    Report(to=report_to, project=out.resolve().name)  # checked before any training
    references(cfg, exp, out, jobs, progress, report_to, echo)
    tuning = None
    if tune_seed is not None:
        algorithms = sorted({METHODS[m][0] for m in exp.methods} & set(TUNED_METHOD))
        tuning = tune(cfg, exp, tune_seed, out, algorithms, jobs, progress, report_to, echo)
        exp = tuned(exp, tuning)
    if any(METHODS[m][1] == "clip" for m in exp.methods):
        unseen_clip(cfg, progress)  # built once, before any worker needs it
    tasks = []
    for seed in exp.seeds:
        for method in exp.methods:
            folder = run_dir(out, method, seed)
            if not finished(folder) and tuning is not None:
                _from_tuning(cfg, exp, method, seed, out, tuning, folder)
            tasks.append(task(cfg, exp, method, seed, folder, out, progress=progress, report_to=report_to))
    run_all(pending(tasks, echo), jobs, echo)
    results = summarize(out, exp)
    for method, entry in results["methods"].items():
        if METHODS.get(method, ("", ""))[1] == "clip":  # why R1 teaches what it does: its judgement of SFT's errors
            judge = label_free_clip(cfg)
            entry["judge"] = [judge_accuracy(read_predictions(run_dir(out, "SFT", s) / PREDICTIONS), judge)
                              for s in exp.seeds]
    if tuning is not None:
        results["tuning"] = tuning
    write_json(out / "rl_vs_sft.json", results, indent=1)
    return results


def _from_tuning(cfg: Config, exp: ExperimentSettings, method: str, seed: int, out: Path, tuning: Mapping,
                 folder: Path) -> None:
    """Make ``folder`` the final run of ``method`` at ``seed`` from its tuning run, when one was made with
    the same settings: its policy answers the test split (once, here), and its files are copied."""
    algorithm = METHODS[method][0]
    entry = tuning["algorithms"].get(algorithm)
    if entry is None or entry["method"] != method or tuning["seed"] != seed:
        return
    source = tuning_dir(out, method, seed, entry["chosen"])
    done = read_summary(source, ("settings",))
    if done["settings"] != json.loads(json.dumps(asdict(rl_settings(cfg, exp, method, seed)))):
        return
    model, processor = load_vlm(cfg, adapter=source / "policy")
    data = toy_data(cfg, exp.val_size, fraction=exp.fraction, draw=seed)
    rows = predict(model, processor, data.test, profile_defaults(SFTSettings, cfg), progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("log.csv", sft_stage.VAL_PREDICTIONS):
        shutil.copy2(source / name, folder / name)
    write_predictions(rows, folder / PREDICTIONS)
    val_rows = read_predictions(folder / sft_stage.VAL_PREDICTIONS)
    info = {k: v for k, v in done.items() if k not in ("val", "commit", "clean")}
    finish(folder, val_rows, rows, ClipReward.from_config(cfg), **info, tuning_run=str(source))
