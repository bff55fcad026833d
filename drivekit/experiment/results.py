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
from drivekit.experiment.folders import PREDICTIONS, read_summary, run_dir, unfinished
from drivekit.experiment.settings import BASELINE, KEYS, LABELS_USED, METHODS, VAL_KEYS, ExperimentSettings
from drivekit.stages import a2c_stage, sft_stage


def _runs(out: Path, method: str, seeds: Sequence[int]) -> list[tuple[dict, list[dict], list[dict]]]:
    """Each seed's summary, test answers and validation answers of ``method``; ``FileNotFoundError``
    naming every run that is not finished and why (a missing file, a truncated summary, no test reward)."""
    folders = [run_dir(out, method, seed) for seed in seeds]
    missing = [why for why in map(unfinished, folders) if why is not None]
    if missing:
        raise FileNotFoundError(f"runs not finished: {'; '.join(missing)}")
    return [(read_summary(f), read_predictions(f / PREDICTIONS), read_predictions(f / sft_stage.VAL_PREDICTIONS))
            for f in folders]


def tested(reference: Sequence[Mapping], rows: Sequence[Mapping]) -> dict:
    """``stats.paired`` of ``rows`` against ``reference`` with its exact sign test ``p``."""
    c = stats.paired(reference, rows)
    return {**c, "p": stats.sign_test(c["fixed"], c["broken"])}


def summarize(out: str | Path, exp: ExperimentSettings) -> dict:
    """``rl_vs_sft.json``'s content from the finished runs under ``out``: per method the per-seed
    F1_act, F1_rsn, pair F1 and R on the test split, their spread (``summary``), the same F1s on each
    seed's validation clips (``val``), the per-class F1s per seed (``per_class_f1``, Fig. 5), and for
    every method but SFT the clip-by-clip comparison with the same seed's SFT on the test split
    (``paired``, each seed with its sign test ``p``; ``p_max`` the largest) and on validation
    (``paired_val``), the share of the SFT → SFT-all gap closed on the means (``gap_closed``, when
    SFT-all ran) and whether it beat SFT's F1_act and F1_rsn on every seed. ``fixed`` / ``broken``
    sum the seeds, descriptively: the seeds share the test clips, so no pooled test is made."""
    out = Path(out)  # "recipe": the experiment's settings, under the key the committed results files use
    results = {"seeds": list(exp.seeds), "labeled_fraction": exp.fraction, "recipe": asdict(exp),
               "n_val": exp.val_size, "methods": {}}
    runs = {m: _runs(out, m, exp.seeds) for m in (*exp.references, *exp.methods)}
    means = {m: {k: float(np.mean([s[k] for s, _, _ in r])) for k in KEYS} for m, r in runs.items()}
    for method, per_seed in runs.items():
        entry = {k: [s[k] for s, _, _ in per_seed] for k in KEYS}
        entry["summary"] = {k: stats.over_seeds(entry[k]) for k in KEYS}
        entry["val"] = {k: [s["val"][k] for s, _, _ in per_seed] for k in VAL_KEYS}
        entry["val_summary"] = {k: stats.over_seeds(v) for k, v in entry["val"].items()}
        reports = [score(rows) for _, rows, _ in per_seed]
        entry["per_class_f1"] = {kind: {key: [r[kind]["f1"][key] for r in reports] for key in reports[0][kind]["f1"]}
                                 for kind in ("actions", "reasons")}
        entry["n_train"] = per_seed[0][0].get("n_train")
        entry["commits"] = sorted({str(s.get("commit")) for s, _, _ in per_seed})
        if method != "SFT":
            paired = [tested(ref, rows) for (_, ref, _), (_, rows, _) in zip(runs["SFT"], per_seed)]
            entry.update(paired=paired, p_max=max(c["p"] for c in paired), fixed=sum(c["fixed"] for c in paired),
                         broken=sum(c["broken"] for c in paired),
                         paired_val=[stats.paired(ref, rows) for (_, _, ref), (_, _, rows) in zip(runs["SFT"], per_seed)])
            entry["beats_sft_every_seed"] = all(
                s["f1_act"] > ref["f1_act"] and s["f1_rsn"] > ref["f1_rsn"]
                for (ref, _, _), (s, _, _) in zip(runs["SFT"], per_seed))
            if "SFT-all" in means:
                entry["gap_closed"] = {k: _closed(means["SFT"][k], means["SFT-all"][k], means[method][k])
                                       for k in ("f1_act", "f1_rsn")}
        if method in METHODS and LABELS_USED[METHODS[method][1]] == "none" and method != BASELINE and BASELINE in runs:
            # label-free RL has to beat SFT continued on its own answers
            entry["vs_self_training"] = [tested(ref, rows) for (_, ref, _), (_, rows, _) in zip(runs[BASELINE], per_seed)]
        if method in METHODS:
            first = per_seed[0][0]
            entry.update(labels_used=first["labels_used"], steps=first["steps"], samples_per_step=first["samples_per_step"],
                         seconds_per_step=[s["seconds_per_step"] for s, _, _ in per_seed],
                         settings=first.get("settings"))
            if "majority" in first:
                entry["majority"] = [s["majority"] for s, _, _ in per_seed]
            logs = [pd.read_csv(run_dir(out, method, seed) / "log.csv") for seed in exp.seeds]
            if all("reward" in log for log in logs):
                entry["reward_curve"] = [a2c_stage.curves(log, ("reward",))["reward"].round(4).tolist() for log in logs]
        results["methods"][method] = entry
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


def table(results: Mapping) -> pd.DataFrame:
    """One row per method: mean ± sd over seeds (one seed: its value) of F1_act, F1_rsn, pair F1
    and R on the test split and of the validation score, fixed / broken clips against SFT summed over
    the seeds, the largest per-seed sign-test p, the share of the SFT → SFT-all gap closed, the
    labels RL read and seconds per step."""
    rows = {}
    for method, e in results["methods"].items():
        row = {k: _mean_sd(e["summary"][k]) for k in KEYS}
        if "val" in e:
            row["val (act+rsn)/2"] = _mean_sd(stats.over_seeds([(a + r) / 2 for a, r in
                                                                zip(e["val"]["f1_act"], e["val"]["f1_rsn"])]))
        row["fixed/broken"] = f"{e['fixed']}/{e['broken']}" if "fixed" in e else ""
        if "p_max" in e:
            row["p vs SFT (each seed ≤)"] = f"{e['p_max']:.2g}"
        elif "p_vs_sft" in e:  # a results file from before the per-seed tests: its pooled p
            row["p vs SFT (pooled)"] = f"{e['p_vs_sft']:.2g}"
        gap = e.get("gap_closed") or {}
        row["gap closed (act, rsn)"] = (", ".join("—" if gap[k] is None else f"{gap[k]:.2f}" for k in ("f1_act", "f1_rsn"))
                                        if gap else "")
        vs = e.get("vs_self_training")
        row["vs ST: fixed/broken (p ≤)"] = (f"{sum(c['fixed'] for c in vs)}/{sum(c['broken'] for c in vs)} "
                                           f"({max(c['p'] for c in vs):.2g})" if vs else "")
        row["labels RL read"] = e.get("labels_used", "")
        row["s/step"] = f"{np.mean(e['seconds_per_step']):.2f}" if "seconds_per_step" in e else ""
        rows[method] = row
    return pd.DataFrame.from_dict(rows, orient="index").fillna("")


def tuning_table(tuning: Mapping) -> pd.DataFrame:
    """One row per tuning run: algorithm, run name, validation F1_act / F1_rsn, the score settings are
    chosen by, seconds per step, and which run was chosen."""
    rows = []
    for algorithm, e in tuning["algorithms"].items():
        for name, r in e["runs"].items():
            rows.append({"algorithm": algorithm, "run": name, "val F1_act": round(r["val"]["f1_act"], 4),
                         "val F1_rsn": round(r["val"]["f1_rsn"], 4), "score": round(r["score"], 4),
                         "s/step": r["seconds_per_step"], "chosen": "✓" if name == e["chosen"] else ""})
    return pd.DataFrame(rows)


def f1_tables(results: Mapping) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Fig. 5 over seeds: ``(per_class, mean, sd)``. ``per_class`` maps "actions"/"reasons" to the
    per-class F1 (percent) of each method, the mean over seeds, in ``metrics.per_class_frame``'s
    layout; ``mean`` and ``sd`` are the sample-level F1_act, F1_rsn and pair F1 in percent."""
    methods = results["methods"]
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


def curves(results: Mapping, window: int = 10) -> pd.DataFrame:
    """Long frame (``method``, ``seed``, ``step``, ``reward``, ``smoothed``) of the RL methods' mean
    sampled reward per step (``reward_curve`` of :func:`summarize`), smoothed by a trailing mean over
    ``window`` steps."""
    frames = []
    for method, entry in results["methods"].items():
        for seed, rewards in zip(results["seeds"], entry.get("reward_curve", [])):
            frame = pd.DataFrame({"step": range(1, len(rewards) + 1), "reward": rewards})
            frame["smoothed"] = frame["reward"].rolling(window, min_periods=1).mean()
            frames.append(frame.assign(method=method, seed=seed))
    columns = ["method", "seed", "step", "reward", "smoothed"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
