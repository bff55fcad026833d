"""Running the experiment's runs: one SFT or RL run in its folder, and many at once.

:func:`run_sft` and :func:`run_rl` train one run and write its ``summary.json`` (atomically, through
:func:`drivekit.core.files.write_json`); :func:`run_all` runs a list of run tasks, in this process or
in ``jobs`` worker processes; :func:`references` runs every seed's SFT (and SFT-all, SFT+val), finished runs
reused (:func:`drivekit.experiment.folders.pending`). :func:`selection_clips` is a seed's label-free
selection set.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

from drivekit.algorithms.sft import SFTSettings, predict
from drivekit.core.config import Config, profile_defaults
from drivekit.core.files import read_json_object, write_json
from drivekit.core.provenance import git_state
from drivekit.core.tracking import Report
from drivekit.data.toy_split import items_of, toy_data
from drivekit.evaluation.reports import prediction_rewards, read_predictions, score, write_predictions
from drivekit.experiment.diagnostics import form_counts, majority_accuracy
from drivekit.experiment.folders import PREDICTIONS, SUMMARY, pending, run_dir, start_adapter
from drivekit.experiment.label_free import label_free_clip, rl_reward, unlabelled, yardstick
from drivekit.experiment.settings import (CLIP_FAMILIES, LABELS_USED, METHODS, REFERENCES, SFT_LABELS, VOTING,
                                          ExperimentSettings, budget, rl_settings, run_name, sft_epochs, sft_settings,
                                          val_score)
from drivekit.rewards.clip_reward import ClipReward
from drivekit.stages import a2c_stage, grpo_stage, self_training, sft_stage

STAGES = {"a2c": a2c_stage, "grpo": grpo_stage}  # algorithm -> its stage (one train() interface)


def scores(rows: list[dict]) -> dict:
    """F1_act, F1_rsn and pair F1 of prediction rows, and how many there are (``n``), did not parse cleanly
    (``unparseable``), name no action (``no_action``) or no reason (``no_reason``)."""
    s = score(rows)
    return dict(f1_act=s["actions"]["f1_all"], f1_rsn=s["reasons"]["f1_all"], pair_f1=s["pair_f1"], **form_counts(rows))


def finish(folder: Path, val_rows: list[dict], test_rows: list[dict] | None, clip_reward: ClipReward | None,
           **info) -> dict:
    """Write ``summary.json`` of a run (atomically: a run killed while writing it leaves none): its
    validation scores (``val``), its test F1s, pair F1 and R when it answered the test split, the code's
    commit and whether the tree was clean, and ``info``."""
    summary = dict(val=scores(val_rows))
    if test_rows is not None:
        t = scores(test_rows)
        rewards = prediction_rewards(test_rows, yardstick(clip_reward))
        summary.update(f1_act=t["f1_act"], f1_rsn=t["f1_rsn"], pair_f1=t["pair_f1"], R=rewards["R"], rewards=rewards,
                       unparseable=t["unparseable"], no_action=t["no_action"], no_reason=t["no_reason"], n_test=t["n"])
    git = git_state()
    summary.update(commit=git["commit"], clean=git["clean"], **info)
    write_json(folder / SUMMARY, summary, indent=1, default=str)
    return summary


def run_sft(cfg: Config, exp: ExperimentSettings, method: str, seed: int, folder: Path, clip_reward: ClipReward,
            progress: bool = False, report: Report | None = None) -> dict:
    """``SFT``, ``SFT-all`` or ``SFT+val`` of ``seed`` on the seed's own data draw (``sft_stage.run``, resumed
    when cut off), scored on the validation clips and the test split; ``report`` gets the run's name and tags."""
    settings = sft_settings(cfg, exp, method, seed)
    labels = SFT_LABELS[method]
    report = (report or Report()).tagged(run_name(method, seed), method=method, seed=seed, labels=labels,
                                         fraction=exp.fraction)
    result = sft_stage.run(cfg, settings, folder, progress=progress, resume=True, labels=labels,
                           fraction=exp.fraction, report=report, draw=seed, score_val=True)
    done = read_json_object(result.summary, ("n_train", "n_val", "train_seconds"))
    return finish(folder, read_predictions(folder / sft_stage.VAL_PREDICTIONS), read_predictions(result.predictions),
                  clip_reward, method=method, seed=seed, draw=seed, labels=labels, fraction=exp.fraction,
                  epochs=settings.epochs, n_train=done["n_train"], n_val=done["n_val"],
                  train_seconds=done["train_seconds"])


def selection_clips(cfg: Config, exp: ExperimentSettings, seed: int):
    """The label-free selection set of ``seed``: the first ``exp.selection_size`` clips of the seed's validation
    draw (``toy_data`` with that many validation clips draws them first, and leaves the labelled subset as it is).
    Validation clips, not the labelled subset: SFT fits those to a train loss of about 0.03, so neither its
    errors nor RL's breakage would show on them. A subset of the seed's validation clips, never a pool clip."""
    selection = toy_data(cfg, exp.selection_size, fraction=exp.fraction, draw=seed).val
    val = {s.name for s in toy_data(cfg, exp.val_size, fraction=exp.fraction, draw=seed).val.samples}
    if not {s.name for s in selection.samples} <= val:
        raise AssertionError(f"seed {seed}: the selection set is not among the validation clips")
    return selection


def run_rl(cfg: Config, exp: ExperimentSettings, method: str, seed: int, folder: Path, out: Path, *,
           test: bool = True, changes: Mapping | None = None, progress: bool = False,
           report: Report | None = None, selection: bool = False) -> dict:
    """One RL method (or self-training) of ``exp`` at ``seed`` from that seed's SFT adapter
    (``<out>/SFT/seed<s>/best``) on the seed's pool, in ``folder``.

    Writes ``log.csv`` (one row per step), ``policy/`` (the trained adapter), ``val_predictions.jsonl``
    (with ``selection`` the selection set's answers only: a label-free tuning run), with ``test``
    ``predictions.jsonl``, and ``summary.json`` (with seconds per step, and for a vote how often the majority
    was the pool clip's truth, read after training). Self-training keeps the checkpoint of lowest loss on the
    selection set (``checkpoint_clips``). ``changes``: settings of a tuning run on top of the experiment's.
    """
    algorithm, family = METHODS[method]
    start = start_adapter(out, seed)
    if not (start / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{method} seed {seed} starts from {start}, which holds no adapter: run SFT first")
    data = toy_data(cfg, exp.val_size, fraction=exp.fraction, draw=seed)
    val = selection_clips(cfg, exp, seed) if (selection or algorithm == "self") else data.val
    pool = items_of(cfg, data.pool)
    items = pool if family == "label" else unlabelled(pool)
    settings = rl_settings(cfg, exp, method, seed, **(changes or {}))
    report = (report or Report()).tagged(run_name(method, seed), method=method, seed=seed, algorithm=algorithm,
                                         reward=family, labels_used=LABELS_USED[family], fraction=exp.fraction)
    folder.mkdir(parents=True, exist_ok=True)
    info = {}
    if algorithm == "self":
        trained = self_training.train(cfg, items, val, settings, budget(exp), start, folder / "sft",
                                      progress=progress, report=report)
        info.update(trained.log.attrs, checkpoint_clips=len(val))
        shutil.rmtree(folder / "policy", ignore_errors=True)
        shutil.copytree(folder / "sft" / "best", folder / "policy")
        val = val if selection else data.val
    else:
        clip = label_free_clip(cfg) if family in CLIP_FAMILIES else None
        reward = rl_reward(family, clip)
        trained = STAGES[algorithm].train(cfg, items, reward, settings, start=start, out=folder, progress=progress,
                                          report=report)
        if family in VOTING:
            info["majority"] = majority_accuracy(reward, {s.name: (s.actions, s.reasons) for s in data.pool.samples})
    trained.log.to_csv(folder / "log.csv", index=False)
    sft = profile_defaults(SFTSettings, cfg)
    val_rows = predict(trained.model, trained.processor, val, sft, progress=progress)
    write_predictions(val_rows, folder / sft_stage.VAL_PREDICTIONS)
    test_rows = None
    if test:
        test_rows = predict(trained.model, trained.processor, data.test, sft, progress=progress)
        write_predictions(test_rows, folder / PREDICTIONS)
    steps = len(trained.log)
    return finish(folder, val_rows, test_rows, ClipReward.from_config(cfg) if test else None, method=method,
                  seed=seed, draw=seed, algorithm=algorithm, labels_used=LABELS_USED[family], start=str(start),
                  sft_epochs=sft_epochs(cfg, exp), steps=steps, samples_per_step=trained.samples_per_step,
                  train_seconds=round(trained.seconds, 1), seconds_per_step=round(trained.seconds / max(steps, 1), 3),
                  settings=asdict(settings), changes=dict(changes or {}), **info)


def short_runs(cfg: Config, exp: ExperimentSettings, seed: int, out: str | Path, reward, probe_size: int = 256,
               **options) -> a2c_stage.ShortRuns:
    """The training panel's backend on one seed of an experiment run in ``out`` (notebook 04): short A2C runs
    with ``reward`` and the experiment's A2C settings, from the seed's SFT adapter (``<out>/SFT/seed<s>/best``),
    on the seed's pool, each scored on ``probe_size`` of the seed's validation clips (drawn as
    ``toy_data(val_size=probe_size)`` draws them; the labelled subset SFT learnt from is the same for any size),
    where that SFT is partly wrong. ``options`` go to :class:`drivekit.stages.a2c_stage.ShortRuns` (e.g.
    ``seconds_per_step``)."""
    start = start_adapter(out, seed)
    data = toy_data(cfg, probe_size, fraction=exp.fraction, draw=seed)
    return a2c_stage.ShortRuns(cfg, a2c_stage.load_policy(cfg, start), items_of(cfg, data.pool), reward,
                               items_of(cfg, data.val), settings=rl_settings(cfg, exp, "A2C-R2", seed), start=start,
                               **options)


# ---------------------------------------------------------------------------------------------
# Running many runs: one task per run, in this process or in ``jobs`` worker processes
# ---------------------------------------------------------------------------------------------
def task(cfg: Config, exp: ExperimentSettings, method: str, seed: int, folder: Path, out: Path, **options) -> dict:
    """The keywords of one run for :func:`run_all` (and the reuse check, ``folders.pending``): ``options``
    are ``test``, ``changes``, ``progress``, ``report_to`` and ``selection`` of :func:`_task`."""
    return dict(cfg=cfg, exp=exp, method=method, seed=seed, folder=folder, out=out, **options)


def _task(cfg: Config, exp: ExperimentSettings, method: str, seed: int, folder: Path, out: Path,
          test: bool = True, changes: Mapping | None = None, progress: bool = False,
          report_to: str | None = None, selection: bool = False) -> dict:
    report = Report(to=report_to, project=Path(out).resolve().name)
    if method in REFERENCES:
        return run_sft(cfg, exp, method, seed, folder, ClipReward.from_config(cfg), progress, report)
    return run_rl(cfg, exp, method, seed, folder, out, test=test, changes=changes, progress=progress,
                  report=report, selection=selection)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _say(echo, t: Mapping, s: Mapping) -> None:
    where = "val" if "f1_act" not in s else "test"
    f1 = s["val"] if where == "val" else s
    echo(f"{t['method']} seed {t['seed']} {t['folder'].name}: {where} F1_act {f1['f1_act']:.4f}  "
         f"F1_rsn {f1['f1_rsn']:.4f}  (val {val_score(s):.4f}, {s['val'].get('n')} clips)  train {s.get('train_seconds')} s")


def run_all(tasks: Sequence[dict], jobs: int = 1, echo=print, fn=None, say=None) -> list[dict]:
    """Run ``fn`` (default: one run, :func:`_task`) on each keyword set of ``tasks``; with ``jobs > 1`` in that
    many worker processes (spawned, the CPU's threads shared among them). ``say(echo, task, result)`` reports
    each. Returns their results in order."""
    fn, say = fn or _task, say or _say
    if jobs <= 1:
        done = []
        for t in tasks:
            done.append(fn(**t))
            say(echo, t, done[-1])
        return done
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(fn, **t) for t in tasks]
        done = []
        for t, f in zip(tasks, futures):
            done.append(f.result())
            say(echo, t, done[-1])
        return done


def references(cfg: Config, exp: ExperimentSettings, out: Path, jobs: int = 1, progress: bool = False,
               report_to: str | None = None, echo=print) -> None:
    """SFT (and SFT-all, SFT+val) of every seed of ``exp`` under ``out``, finished runs reused."""
    tasks = [task(cfg, exp, m, s, run_dir(out, m, s), out, progress=progress, report_to=report_to)
             for s in exp.seeds for m in exp.references]
    run_all(pending(tasks, echo), jobs, echo)
