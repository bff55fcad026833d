"""Where the experiment's runs live, and when a run there counts as finished and reusable.

Every run has one folder: ``<out>/<method>/seed<s>/`` for a final run (:func:`run_dir`),
``<out>/tune/<method>/seed<s>/<name>/`` for a tuning run (:func:`tuning_dir`). A run is finished
when its folder holds the validation answers, the harness's ``summary.json`` (whole and well-formed,
with the validation scores) and, when it answered the test split, the test answers and the test
reward ``R`` (:func:`unfinished` says why not, naming the file). A finished run is reused only when
its summary's settings are the experiment's (:func:`check_settings`); one that is not finished (a
truncated summary: a run killed while writing it, before writes were atomic) is redone
(:func:`pending`).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, fields
from pathlib import Path

from drivekit.core.files import Unfinished, read_json_object
from drivekit.experiment.settings import METHODS, REFERENCES, SFT_LABELS, ExperimentSettings, rl_settings, sft_epochs
from drivekit.stages.sft_stage import VAL_PREDICTIONS

SUMMARY = "summary.json"  # the harness's summary of a run (SFT's own comes first and is replaced)
PREDICTIONS = "predictions.jsonl"  # the answers on the (toy) test split
FRESH_PREDICTIONS = "fresh_predictions.jsonl"  # a final run's answers on the fresh test split (experiment.fresh)


def run_dir(out: str | Path, method: str, seed: int) -> Path:
    """The folder of the final run of ``method`` at ``seed``: ``<out>/<method>/seed<s>``."""
    return Path(out) / method / f"seed{seed}"


def tuning_dir(out: str | Path, method: str, seed: int, name: str | None = None) -> Path:
    """The folder of ``method``'s tuning runs at ``seed`` (``<out>/tune/<method>/seed<s>``), or of the one
    called ``name`` in it."""
    folder = Path(out) / "tune" / method / f"seed{seed}"
    return folder / name if name is not None else folder


def start_adapter(out: str | Path, seed: int) -> Path:
    """The adapter every RL method of ``seed`` starts from: that seed's SFT's best (``<out>/SFT/seed<s>/best``)."""
    return run_dir(out, "SFT", seed) / "best"


def read_summary(folder: Path, required: tuple[str, ...] = ()) -> dict:
    """A run's ``summary.json``; :class:`~drivekit.core.files.Unfinished` naming the file when it is
    missing, truncated, not an object or lacks a key of ``required``."""
    return read_json_object(folder / SUMMARY, required)


def unfinished(folder: Path, test: bool = True) -> str | None:
    """None when ``folder`` holds a finished run (its validation answers and the harness's summary, with
    ``test`` its test answers and test reward ``R``: SFT's own ``summary.json`` comes first and lacks
    both); otherwise why not, ``<path>: unfinished (<reason>)``."""
    needed = (folder / SUMMARY, folder / VAL_PREDICTIONS, *((folder / PREDICTIONS,) if test else ()))
    for path in needed:
        if not path.is_file():
            return str(Unfinished(path, "missing"))
    try:
        read_summary(folder, ("val", "R") if test else ("val",))
    except Unfinished as e:
        return str(e)
    return None


def finished(folder: Path, test: bool = True) -> bool:
    """Whether ``folder`` holds a finished run (:func:`unfinished`)."""
    return unfinished(folder, test) is None


def check_settings(folder: Path, exp: ExperimentSettings, settings=None, **expected) -> None:
    """Refuse to reuse a finished run made with another labelled fraction, other ``expected``
    summary values (an SFT's ``epochs``, the ``sft_epochs`` an RL run started from, the data ``draw``)
    or, for an RL run, other ``settings`` (:func:`~drivekit.experiment.settings.rl_settings`), e.g. a
    short run's folder under a longer experiment: it would be reported as this experiment's. A setting
    the stored run lacks is its field's default: the run was made before the field existed, and so with
    the behaviour the default keeps; a setting stored under an older name (the settings class's
    ``RENAMED``) is read under its new one."""
    done = read_summary(folder)
    differ = []
    if "fraction" in done and done["fraction"] != exp.fraction:
        differ.append(f"fraction {done['fraction']} (this experiment: {exp.fraction})")
    differ += [f"{k} {done.get(k)!r} (this experiment: {v!r})" for k, v in expected.items() if done.get(k) != v]
    if settings is not None:
        defaults = {f.name: f.default for f in fields(settings) if f.default is not MISSING}
        renamed = getattr(type(settings), "RENAMED", {})  # fields stored under an older name: migrated here
        stored = {renamed.get(k, k): v for k, v in done.get("settings", {}).items()}
        stored = {**json.loads(json.dumps(defaults)), **stored}  # as summary.json holds them
        wanted = json.loads(json.dumps(asdict(settings)))
        differ += [f"{k} {stored.get(k)!r} (this experiment: {v!r})" for k, v in wanted.items() if stored.get(k) != v]
    if differ:
        raise ValueError(f"{folder / SUMMARY} holds a finished run with {', '.join(differ)}; "
                         f"delete {folder} or choose another --out")


def check_task(task: Mapping) -> None:
    """:func:`check_settings` of a run task (the keywords of ``runner.run_task``): an SFT's epochs, labels and
    draw, an RL run's settings (with its tuning ``changes``), the SFT epochs it started from and its draw, and
    for self-training the clips its checkpoint was chosen on (the selection set)."""
    cfg, exp, method, seed = task["cfg"], task["exp"], task["method"], task["seed"]
    if method in REFERENCES:
        check_settings(task["folder"], exp, epochs=sft_epochs(cfg, exp, method), labels=SFT_LABELS[method], draw=seed)
    else:
        settings = rl_settings(cfg, exp, method, seed, **(task.get("changes") or {}))
        chosen_on = {"checkpoint_clips": exp.selection_size} if METHODS[method][0] == "self" else {}
        check_settings(task["folder"], exp, settings, sft_epochs=sft_epochs(cfg, exp), draw=seed, **chosen_on)


def pending(tasks: Sequence[Mapping], echo=print) -> list[Mapping]:
    """The reuse check: the tasks whose folder holds no finished run. A finished run whose settings are
    not the task's is refused (:func:`check_task`); a run whose files are there but unfinished (e.g. a
    truncated ``summary.json``) is redone, and ``echo`` says which file and why."""
    todo = []
    for t in tasks:
        why = unfinished(t["folder"], t.get("test", True))
        if why is None:
            check_task(t)
        else:
            if (t["folder"] / SUMMARY).exists():  # a run was there: say why it is not reused
                echo(f"{why}: redoing {t['method']} seed {t['seed']}")
            todo.append(t)
    return todo
