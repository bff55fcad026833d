"""Choosing A2C's and GRPO's settings on validation, with the same budget for both.

:func:`tune` runs the :data:`~drivekit.experiment.settings.GRID`, then the
:data:`~drivekit.experiment.settings.VARIANTS` at the grid's best, on one seed's validation clips and
never on the test split; :func:`tuned` puts the chosen settings into an experiment's.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from drivekit.core.config import Config
from drivekit.core.files import write_json
from drivekit.experiment.folders import pending, read_summary, tuning_dir
from drivekit.experiment.runner import references, run_all, task
from drivekit.experiment.settings import GRID, TUNED_METHOD, VARIANTS, ExperimentSettings, val_score


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


def tuned(exp: ExperimentSettings, tuning: Mapping) -> ExperimentSettings:
    """``exp`` with each tuned algorithm's chosen settings on top of its own."""
    chosen = {a: e["changes"] for a, e in tuning["algorithms"].items()}
    return exp.replace(a2c={**exp.a2c, **chosen.get("a2c", {})}, grpo={**exp.grpo, **chosen.get("grpo", {})})
