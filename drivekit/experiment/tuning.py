"""Choosing the settings of the final runs: the label-grounded methods' on validation, the guarded label-free
candidates' on the 63-clip selection set, never on a test split.

:func:`tune` runs the :data:`~drivekit.experiment.settings.GRID`, then the
:data:`~drivekit.experiment.settings.VARIANTS` at the grid's best, with each algorithm's label-F1 method on one
seed's validation clips (A2C and GRPO with the same budget). :func:`tune_label_free` runs the
:data:`~drivekit.experiment.settings.LABEL_FREE_GRID` for each guarded label-free candidate and scores it on
the seed's selection set only (``runner.selection_clips``: 63 validation clips, no pool label, never the rest
of the validation clips). :func:`tuned` puts the chosen settings into an experiment's, and records in its
``chosen`` how each was chosen.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from drivekit.core.config import Config
from drivekit.core.files import write_json
from drivekit.experiment.folders import pending, read_summary, tuning_dir
from drivekit.experiment.runner import references, run_all, task
from drivekit.experiment.settings import (GRID, LABEL_FREE_GRID, ON_SELECTION, ON_VALIDATION, TUNED_METHOD, VARIANTS,
                                          ExperimentSettings, val_score)


def grid_changes() -> dict[str, dict]:
    """The :data:`GRID`'s settings by name (``lr1e-04-kl0``...)."""
    return {f"lr{lr:.0e}-kl{kl:g}": dict(lr=lr, kl_coef=kl) for lr in GRID["lr"] for kl in GRID["kl_coef"]}


def _tuning_runs(folder: Path, names: Sequence[str]) -> dict[str, dict]:
    return {n: read_summary(folder / n, ("val",)) for n in names}


def tune(cfg: Config, exp: ExperimentSettings, seed: int, out: Path, algorithms: Sequence[str] = ("a2c", "grpo"),
         jobs: int = 1, progress: bool = False, report_to: str | None = None, echo=print) -> dict:
    """Choose each algorithm's settings on ``seed``'s validation clips, with its label-grounded method
    (:data:`TUNED_METHOD`): the :data:`GRID`, then :data:`VARIANTS` at the grid's best, all by
    :func:`val_score`; no run answers the test split. Runs in ``<out>/tune/<method>/seed<s>/<name>``;
    returns (and writes to ``<out>/tuning.json``) every run's validation scores and seconds per step,
    and per algorithm the chosen run and its settings (``changes``, on top of the experiment's)."""
    references(cfg, exp.replace(seeds=(seed,)), out, jobs, progress, report_to, echo)

    def tasks(named: Mapping[str, dict]) -> list[dict]:
        return [task(cfg, exp, TUNED_METHOD[a], seed, tuning_dir(out, TUNED_METHOD[a], seed, n), out, test=False,
                     changes=c, progress=progress, report_to=report_to)
                for a in algorithms for n, c in named[a].items()]

    grid = {a: grid_changes() for a in algorithms}
    run_all(pending(tasks(grid), echo), jobs, echo)
    result = {"seed": seed, "selected_by": "mean of F1_act and F1_rsn on the validation clips",
              "n_val": exp.val_size, "algorithms": {}}
    best_grid = {}
    for a in algorithms:
        runs = _tuning_runs(tuning_dir(out, TUNED_METHOD[a], seed), list(grid[a]))
        best_grid[a] = max(runs, key=lambda n: val_score(runs[n]))  # the first of equals: grid order
    variants = {a: {f"{best_grid[a]}+{v}": {**grid[a][best_grid[a]], **c} for v, c in VARIANTS[a].items()}
                for a in algorithms}
    run_all(pending(tasks(variants), echo), jobs, echo)
    for a in algorithms:
        names = [*grid[a], *variants[a]]
        runs = _tuning_runs(tuning_dir(out, TUNED_METHOD[a], seed), names)
        chosen = max(names, key=lambda n: val_score(runs[n]))
        result["algorithms"][a] = dict(
            method=TUNED_METHOD[a], grid_best=best_grid[a], chosen=chosen, changes={**grid[a], **variants[a]}[chosen],
            runs={n: dict(changes=r["changes"], val=r["val"], score=val_score(r), seconds_per_step=r["seconds_per_step"])
                  for n, r in runs.items()})
    write_json(out / "tuning.json", result, indent=1)
    return result


def label_free_changes() -> dict[str, dict]:
    """The :data:`LABEL_FREE_GRID`'s settings by name (``lr1e-04-kl0.2``...), in grid order."""
    return {f"lr{lr:.0e}-kl{kl:g}": dict(lr=lr, kl_coef=kl)
            for lr in LABEL_FREE_GRID["lr"] for kl in LABEL_FREE_GRID["kl_coef"]}


def tune_label_free(cfg: Config, exp: ExperimentSettings, seed: int, out: Path, methods: Sequence[str],
                    jobs: int = 1, progress: bool = False, report_to: str | None = None, echo=print) -> dict:
    """Choose each guarded label-free candidate's lr and KL coefficient (:data:`LABEL_FREE_GRID`) on ``seed``'s
    selection set (``exp.selection_size`` validation clips; the runs read no pool label and answer no other
    validation clip and no test clip), by :func:`val_score` there, the first of equals in grid order (the run
    that moves least). Runs in ``<out>/tune/<method>/seed<s>/<name>``; returns (and writes to
    ``<out>/tuning_label_free.json``) every run's scores on the selection set and per method the chosen run."""
    references(cfg, exp.replace(seeds=(seed,)), out, jobs, progress, report_to, echo)
    grid = label_free_changes()
    tasks = [task(cfg, exp, m, seed, tuning_dir(out, m, seed, n), out, test=False, changes=c, selection=True,
                  progress=progress, report_to=report_to) for m in methods for n, c in grid.items()]
    run_all(pending(tasks, echo), jobs, echo)
    result = {"seed": seed, "selected_by": "mean of F1_act and F1_rsn on the selection set",
              "selection": f"the first {exp.selection_size} of seed {seed}'s validation clips",
              "n_selection": exp.selection_size, "methods": {}}
    for m in methods:
        runs = _tuning_runs(tuning_dir(out, m, seed), list(grid))
        chosen = max(grid, key=lambda n: val_score(runs[n]))  # the first of equals: grid order
        result["methods"][m] = dict(chosen=chosen, changes=grid[chosen], runs={
            n: dict(changes=r["changes"], val=r["val"], score=val_score(r), seconds_per_step=r["seconds_per_step"])
            for n, r in runs.items()})
    write_json(out / "tuning_label_free.json", result, indent=1)
    return result


def tuned(exp: ExperimentSettings, tuning: Mapping | None, label_free: Mapping | None = None) -> ExperimentSettings:
    """``exp`` with each tuned algorithm's chosen settings (``tuning``, :func:`tune`'s) on top of its own and each
    guarded candidate's (``label_free``, :func:`tune_label_free`'s), and ``chosen`` saying so per setting."""
    chosen = dict(exp.chosen)
    a2c, grpo, free = dict(exp.a2c), dict(exp.grpo), dict(exp.label_free_chosen)
    for algorithm, e in (tuning or {}).get("algorithms", {}).items():
        (a2c if algorithm == "a2c" else grpo).update(e["changes"])
        how = (f"{ON_VALIDATION} (seed {tuning['seed']}, {tuning['n_val']} clips, with {e['method']}: "
               f"{e['chosen']})")
        chosen.update({f"{algorithm}.{k}": how for k in e["changes"]}, **{f"{algorithm}.variant": how})
    for method, e in (label_free or {}).get("methods", {}).items():
        free[method] = dict(e["changes"])
        how = f"{ON_SELECTION} (seed {label_free['seed']}, {label_free['n_selection']} clips: {e['chosen']})"
        chosen.update({f"label_free.{method}.{k}": how for k in e["changes"]})
    return exp.replace(a2c=a2c, grpo=grpo, label_free_chosen=free, chosen=chosen)
