"""The experiment's results: per method and seed from the finished runs, their spread, tables and curves.

:func:`summarize` reads every final run (a missing, truncated or unscored one is named, with why);
:func:`load_results` reads a results file (``rl_vs_sft.json``, or the benchmark's file with its
provenance); :func:`table`, :func:`tuning_table`, :func:`f1_tables` and :func:`curves` show them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from drivekit.core.files import read_json_object
from drivekit.evaluation import metrics, stats
from drivekit.evaluation.reports import read_predictions, score
from drivekit.experiment.diagnostics import form_counts, form_curves
from drivekit.experiment.folders import FRESH_PREDICTIONS, PREDICTIONS, read_summary, run_dir, unfinished
from drivekit.experiment.settings import BASELINE, KEYS, LABELS_USED, METHODS, VAL_KEYS, ExperimentSettings
from drivekit.stages import a2c_stage, sft_stage

FORM_COUNTS = ("no_action", "no_reason", "unparseable", "n")
SPLIT_FILES = {"val": sft_stage.VAL_PREDICTIONS, "test": PREDICTIONS, "fresh_test": FRESH_PREDICTIONS}
POOLING = ("No test pools seeds: every seed answers the same test clips (the toy test split, and the fresh test "
           "split), and each seed's validation clips are a draw from the same train part, so the seeds' paired "
           "counts are not independent. Each sign test is per seed; fixed / broken summed over seeds are "
           "descriptive only; Holm's correction, which holds under any dependence, is applied over every seed's "
           "tests of a split together.")


def splits_note(exp: ExperimentSettings) -> dict[str, str]:
    """Which clips each split key of the results holds."""
    notes = {"val": f"each seed's own {exp.val_size} validation clips (settings of label-grounded methods were "
                    f"chosen on the tuning seed's; label-free ones on its first {exp.selection_size})",
             "test": "the toy test split (shared by every seed; the top-level numbers of each method, kept for the "
                     "proposal's figures; earlier rounds looked at it)"}
    if exp.fresh_test:
        notes["fresh_test"] = (f"{exp.fresh_test} fresh clips (shared by every seed), drawn from another generator "
                               "seed with the toy test's action shares, answered once by each final run; seen by no "
                               "model and no choice (results[method]['fresh_test'])")
    return notes


def _runs(out: Path, method: str, seeds: Sequence[int], fresh: bool) -> list[dict]:
    """Each seed's summary (``summary``) and answers per split (``val``, ``test``, with ``fresh`` ``fresh_test``)
    of ``method``; ``FileNotFoundError`` naming every run that is not finished and why (a missing file, a
    truncated summary, no test reward, no fresh test answers)."""
    folders = [run_dir(out, method, seed) for seed in seeds]
    missing = [why for why in map(unfinished, folders) if why is not None]
    if fresh:
        missing += [f"{f / FRESH_PREDICTIONS}: unfinished (missing)" for f in folders
                    if unfinished(f) is None and not (f / FRESH_PREDICTIONS).is_file()]
    if missing:
        raise FileNotFoundError(f"runs not finished: {'; '.join(missing)}")
    splits = [k for k in SPLIT_FILES if fresh or k != "fresh_test"]
    return [{"summary": read_summary(f), **{k: read_predictions(f / SPLIT_FILES[k]) for k in splits}} for f in folders]


def tested(reference: Sequence[Mapping], rows: Sequence[Mapping]) -> dict:
    """``stats.paired`` of ``rows`` against ``reference`` with its exact sign test ``p``."""
    c = stats.paired(reference, rows)
    return {**c, "p": stats.sign_test(c["fixed"], c["broken"])}


def _values(run: Mapping, split: str) -> dict:
    """F1_act, F1_rsn, pair F1 and R of a run on ``split`` ("test": the summary's top level)."""
    s = run["summary"] if split == "test" else run["summary"][split]
    return {k: s[k] for k in KEYS}


def _split_entry(method: str, runs: Mapping[str, list[dict]], split: str) -> dict:
    """A method's numbers on one test split: per seed and over seeds, per-class F1s, and the clip-by-clip
    comparisons with the same seed's SFT (and, label-free, self-training)."""
    per_seed = runs[method]
    entry = {k: [_values(r, split)[k] for r in per_seed] for k in KEYS}
    entry["summary"] = {k: stats.over_seeds(entry[k]) for k in KEYS}
    reports = [score(r[split]) for r in per_seed]
    entry["per_class_f1"] = {kind: {key: [rep[kind]["f1"][key] for rep in reports] for key in reports[0][kind]["f1"]}
                             for kind in ("actions", "reasons")}
    if method != "SFT":
        paired = [tested(ref[split], r[split]) for ref, r in zip(runs["SFT"], per_seed)]
        entry.update(paired=paired, p_max=max(c["p"] for c in paired), fixed=sum(c["fixed"] for c in paired),
                     broken=sum(c["broken"] for c in paired))
        entry["beats_sft_every_seed"] = all(
            _values(r, split)["f1_act"] > _values(ref, split)["f1_act"]
            and _values(r, split)["f1_rsn"] > _values(ref, split)["f1_rsn"] for ref, r in zip(runs["SFT"], per_seed))
        if "SFT-all" in runs:
            mean = {m: {k: float(np.mean([_values(r, split)[k] for r in runs[m]])) for k in KEYS}
                    for m in ("SFT", "SFT-all", method)}
            entry["gap_closed"] = {k: _closed(mean["SFT"][k], mean["SFT-all"][k], mean[method][k])
                                   for k in ("f1_act", "f1_rsn")}
    if method in METHODS and LABELS_USED[METHODS[method][1]] == "none" and method != BASELINE and BASELINE in runs:
        # label-free RL has to beat SFT continued on its own answers
        entry["vs_self_training"] = [tested(ref[split], r[split]) for ref, r in zip(runs[BASELINE], per_seed)]
    return entry


def _holm(methods: Mapping[str, dict], split: str) -> dict:
    """Holm's correction over every per-seed sign test on ``split`` (each method against SFT, each label-free
    method against self-training, every seed): ``p_holm`` beside each ``p``, ``p_holm_max`` per method."""
    entries = {m: (e if split == "test" else e.get(split)) for m, e in methods.items()}
    tests = [c for e in entries.values() if e for key in ("paired", "vs_self_training") for c in e.get(key, [])]
    for c, adjusted in zip(tests, stats.holm([c["p"] for c in tests])):
        c["p_holm"] = adjusted
    for e in entries.values():
        if e and "paired" in e:
            e["p_holm_max"] = max(c["p_holm"] for c in e["paired"])
    return {"family": len(tests), "tests": "every seed: each method against SFT, each label-free method against "
                                           "self-training (exact sign tests on exactly-right clips)"}


def summarize(out: str | Path, exp: ExperimentSettings) -> dict:
    """``rl_vs_sft.json``'s content from the finished runs under ``out``.

    Per method, on the toy test split (the top-level keys, as before issue 34) and on the fresh test split
    (``fresh_test``, when the experiment has one; ``splits`` says which clips each holds): per-seed F1_act,
    F1_rsn, pair F1 and R, their spread (``summary``), the per-class F1s per seed (``per_class_f1``, Fig. 5),
    and for every method but SFT the clip-by-clip comparison with the same seed's SFT (``paired``, each seed
    with its sign test ``p`` and Holm-adjusted ``p_holm``; ``p_max``, ``p_holm_max`` the largest), the share of
    the SFT → SFT-all gap closed on the means (``gap_closed``, when SFT-all ran), whether it beat SFT's F1_act
    and F1_rsn on every seed, and for label-free methods the same comparison with self-training. On each seed's
    validation clips: the F1s (``val``) and the paired counts (``paired_val``). ``form``: per split and seed,
    answers without an action / a reason / a clean parse; ``form_curve``: per step, the share among the answers
    RL sampled; ``majority``: the vote's accuracy per seed (``diagnostics.majority_accuracy``). ``fixed`` /
    ``broken`` sum the seeds, descriptively (``pooling`` says why no test pools them)."""
    out = Path(out)  # "recipe": the experiment's settings, under the key the committed results files use
    fresh = exp.fresh_test > 0
    results = {"seeds": list(exp.seeds), "labeled_fraction": exp.fraction, "recipe": asdict(exp),
               "n_val": exp.val_size, "splits": splits_note(exp), "pooling": POOLING, "methods": {}}
    runs = {m: _runs(out, m, exp.seeds, fresh) for m in (*exp.references, *exp.methods)}
    splits = ("test", "fresh_test") if fresh else ("test",)
    for method, per_seed in runs.items():
        entry = _split_entry(method, runs, "test")
        if fresh:
            entry["fresh_test"] = _split_entry(method, runs, "fresh_test")
        entry["val"] = {k: [r["summary"]["val"][k] for r in per_seed] for k in VAL_KEYS}
        entry["val_summary"] = {k: stats.over_seeds(v) for k, v in entry["val"].items()}
        if method != "SFT":
            entry["paired_val"] = [stats.paired(ref["val"], r["val"]) for ref, r in zip(runs["SFT"], per_seed)]
        entry["form"] = {split: {k: [form_counts(r[split])[k] for r in per_seed] for k in FORM_COUNTS}
                         for split in ("val", *splits)}
        entry["n_train"] = per_seed[0]["summary"].get("n_train")
        entry["commits"] = sorted({str(r["summary"].get("commit")) for r in per_seed})
        if method in METHODS:
            first = per_seed[0]["summary"]
            entry.update(labels_used=first["labels_used"], steps=first["steps"], samples_per_step=first["samples_per_step"],
                         seconds_per_step=[r["summary"]["seconds_per_step"] for r in per_seed],
                         settings=first.get("settings"))
            if "majority" in first:
                entry["majority"] = [r["summary"]["majority"] for r in per_seed]
            logs = [pd.read_csv(run_dir(out, method, seed) / "log.csv") for seed in exp.seeds]
            if all("reward" in log for log in logs):
                entry["reward_curve"] = [a2c_stage.curves(log, ("reward",))["reward"].round(4).tolist() for log in logs]
            forms = [form_curves(log) for log in logs]
            if all(forms):
                entry["form_curve"] = {k: [f[k] for f in forms] for k in forms[0]}
        results["methods"][method] = entry
    results["holm"] = {split: _holm(results["methods"], split) for split in splits}
    return results


def load_results(path: str | Path) -> dict:
    """A results file's content with the ``command`` (and ``commit``) that made it:
    ``benchmarks/results/rl_vs_sft.json`` holds it under ``results`` beside its provenance
    (``record.py``); an older file is the content itself."""
    data = read_json_object(path)
    if "methods" in data.get("results", {}):
        return {**data["results"], "command": data.get("command"), "commit": data.get("commit")}
    return data


def _closed(sft_mean: float, all_mean: float, value: float) -> float | None:
    gap = all_mean - sft_mean
    return None if gap <= 0 else float((value - sft_mean) / gap)


def default_split(results: Mapping) -> str:
    """The split a table shows unless told: the fresh test split where the results have one, else the toy test."""
    return "fresh_test" if any("fresh_test" in e for e in results["methods"].values()) else "test"


def table(results: Mapping, split: str | None = None) -> pd.DataFrame:
    """One row per method on ``split`` (``"test"``, the toy test split, or ``"fresh_test"``; default
    :func:`default_split`; the index's name says which): mean ± sd over seeds (one seed: its value) of F1_act,
    F1_rsn, pair F1 and R and of the validation score, fixed / broken clips against SFT summed over the seeds,
    the largest per-seed sign-test p and Holm-adjusted p, the share of the SFT → SFT-all gap closed, the same
    comparison with self-training, the answers without an action / a reason (summed over seeds), the labels RL
    read and seconds per step. A results file from before issue 34 has the toy test split only."""
    split = split or default_split(results)
    rows = {}
    for method, full in results["methods"].items():
        e = full if split == "test" else full.get(split)
        if e is None:
            continue
        row = {k: _mean_sd(e["summary"][k]) for k in KEYS}
        if "val" in full:
            row["val (act+rsn)/2"] = _mean_sd(stats.over_seeds([(a + r) / 2 for a, r in
                                                                zip(full["val"]["f1_act"], full["val"]["f1_rsn"])]))
        row["fixed/broken"] = f"{e['fixed']}/{e['broken']}" if "fixed" in e else ""
        if "p_max" in e:
            row["p vs SFT (each seed ≤)"] = f"{e['p_max']:.2g}"
        elif "p_vs_sft" in e:  # a results file from before the per-seed tests: its pooled p
            row["p vs SFT (pooled)"] = f"{e['p_vs_sft']:.2g}"
        if "p_holm_max" in e:
            row["Holm p (each seed ≤)"] = f"{e['p_holm_max']:.2g}"
        gap = e.get("gap_closed") or {}
        row["gap closed (act, rsn)"] = (", ".join("—" if gap[k] is None else f"{gap[k]:.2f}" for k in ("f1_act", "f1_rsn"))
                                        if gap else "")
        vs = e.get("vs_self_training")
        row["vs ST: fixed/broken (p ≤)"] = (f"{sum(c['fixed'] for c in vs)}/{sum(c['broken'] for c in vs)} "
                                           f"({max(c['p'] for c in vs):.2g})" if vs else "")
        form = full.get("form", {}).get(split)
        if form:
            row["no action / no reason"] = f"{sum(form['no_action'])} / {sum(form['no_reason'])} of {sum(form['n'])}"
        row["labels RL read"] = full.get("labels_used", "")
        row["s/step"] = f"{np.mean(full['seconds_per_step']):.2f}" if "seconds_per_step" in full else ""
        rows[method] = row
    frame = pd.DataFrame.from_dict(rows, orient="index").fillna("")
    frame.index.name = f"split: {split}"
    return frame


def tuning_table(tuning: Mapping) -> pd.DataFrame:
    """One row per tuning run: algorithm (or guarded label-free method), run name, F1_act / F1_rsn on the clips
    it was chosen on (the validation clips, or the label-free selection set), the score settings are chosen by,
    seconds per step, and which run was chosen. Takes :func:`~drivekit.experiment.tuning.tune`'s or
    :func:`~drivekit.experiment.tuning.tune_label_free`'s result."""
    rows = []
    for name, e in {**tuning.get("algorithms", {}), **tuning.get("methods", {})}.items():
        for run, r in e["runs"].items():
            rows.append({"algorithm": name, "run": run, "val F1_act": round(r["val"]["f1_act"], 4),
                         "val F1_rsn": round(r["val"]["f1_rsn"], 4), "score": round(r["score"], 4),
                         "s/step": r["seconds_per_step"], "chosen": "✓" if run == e["chosen"] else ""})
    return pd.DataFrame(rows)


def f1_tables(results: Mapping, split: str = "test") -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Fig. 5 over seeds: ``(per_class, mean, sd)`` on ``split`` (the toy test split, the proposal's figures,
    unless told ``"fresh_test"``). ``per_class`` maps "actions"/"reasons" to the per-class F1 (percent) of each
    method, the mean over seeds, in ``metrics.per_class_frame``'s layout; ``mean`` and ``sd`` are the
    sample-level F1_act, F1_rsn and pair F1 in percent."""
    methods = {m: (e if split == "test" else e[split]) for m, e in results["methods"].items()
               if split == "test" or split in e}
    means = {m: {kind: {"f1": {k: float(np.mean(v)) for k, v in e["per_class_f1"][kind].items()}}
                 for kind in ("actions", "reasons")} for m, e in methods.items()}
    per_class = {kind: metrics.per_class_frame(means, kind) for kind in ("actions", "reasons")}
    columns = {"f1_act": "F1_act (sample)", "f1_rsn": "F1_rsn (sample)", "pair_f1": "F1_pair (sample)"}
    frame = {stat: pd.DataFrame({name: {m: 100 * e["summary"][k][stat] for m, e in methods.items()}
                                 for k, name in columns.items()}) for stat in ("mean", "sd")}
    return per_class, frame["mean"], frame["sd"]


def _mean_sd(summary: Mapping) -> str:
    """"mean ± sd" over seeds; the mean alone for one seed, which has no spread."""
    return f"{summary['mean']:.3f}" + (f" ± {summary['sd']:.3f}" if summary["n"] > 1 else "")


def curves(results: Mapping, window: int = 10, key: str = "reward") -> pd.DataFrame:
    """Long frame (``method``, ``seed``, ``step``, ``reward``, ``smoothed``) of the RL methods' mean sampled
    reward per step (``reward_curve`` of :func:`summarize`), smoothed by a trailing mean over ``window`` steps;
    ``key="no_action"`` / ``"no_reason"``: the share of sampled answers without an action / a reason
    (``form_curve``), in the column ``reward``."""
    frames = []
    for method, entry in results["methods"].items():
        series = entry.get("reward_curve", []) if key == "reward" else entry.get("form_curve", {}).get(key, [])
        for seed, rewards in zip(results["seeds"], series):
            frame = pd.DataFrame({"step": range(1, len(rewards) + 1), "reward": rewards})
            frame["smoothed"] = frame["reward"].rolling(window, min_periods=1).mean()
            frames.append(frame.assign(method=method, seed=seed))
    columns = ["method", "seed", "step", "reward", "smoothed"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
