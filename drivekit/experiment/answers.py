"""The committed experiment read clip by clip (notebook 06): every method's and seed's answers from the exported
file (:func:`drivekit.experiment.export.export_predictions`, ``rl_vs_sft_predictions.jsonl.gz``), their scores,
their form and their paired tests against a reference, all recomputed from the answers.

The file keeps each answer's labels as the parser read them, not the generated text: :func:`answers` writes them
back as ``Action: ...; Reason: ...`` (``text``), so an answer whose reason did not parse shows an empty reason.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from drivekit.evaluation import metrics, stats
from drivekit.experiment.diagnostics import form_counts
from drivekit.experiment.export import read_exported
from drivekit.text.formats import target_text

Runs = dict[str, dict[int, list[dict]]]  # method -> seed -> prediction rows


def answers(path: str | Path, split: str = "test") -> Runs:
    """``{method: {seed: rows}}`` of one split (``"test"``, ``"val"``, ``"fresh_test"``), methods in the file's
    order, seeds ascending; each row has ``file_name``, the four label vectors and ``text``, the labels written
    back as an answer."""
    runs: Runs = {}
    for (method, seed, sp), rows in read_exported(path).items():
        if sp == split:
            runs.setdefault(method, {})[seed] = [{**r, "text": target_text(r["actions_pred"], r["reasons_pred"])}
                                                 for r in rows]
    if not runs:
        raise ValueError(f"{path}: no answers on the split {split!r}")
    return {m: dict(sorted(by_seed.items())) for m, by_seed in runs.items()}


def scores(runs: Runs) -> pd.DataFrame:
    """One row per method and seed: F1_act, F1_rsn and pair F1 (sample-level, fractions) and the clips scored."""
    rows = []
    for method, by_seed in runs.items():
        for seed, rows_ in by_seed.items():
            report = _report(rows_)
            rows.append(dict(method=method, seed=seed, f1_act=report["actions"]["f1_all"],
                             f1_rsn=report["reasons"]["f1_all"], pair_f1=report["pair_f1"], n=len(rows_)))
    return pd.DataFrame(rows)


def _report(rows: Sequence[Mapping]) -> dict:
    """``metrics.report`` of prediction rows."""
    return metrics.report(*(np.array([r[k] for r in rows]) for k in
                            ("actions_true", "actions_pred", "reasons_true", "reasons_pred")))


def per_class(runs: Runs) -> dict[str, pd.DataFrame]:
    """``{"actions", "reasons"}``: each method's per-class F1 (percent), the mean over its seeds, in
    ``metrics.per_class_frame``'s layout (one row per method)."""
    means = {}
    for method, by_seed in runs.items():
        reports = [_report(rows) for rows in by_seed.values()]
        means[method] = {kind: {"f1": {k: float(np.mean([r[kind]["f1"][k] for r in reports]))
                                       for k in reports[0][kind]["f1"]}} for kind in ("actions", "reasons")}
    return {kind: metrics.per_class_frame(means, kind) for kind in ("actions", "reasons")}


def spread(frame: pd.DataFrame, columns: Sequence[str] = ("f1_act", "f1_rsn", "pair_f1")) -> pd.DataFrame:
    """Per method (in order of appearance) of a :func:`scores` frame: each column's mean, sd, min and max over
    the seeds, and how many seeds."""
    groups = frame.groupby("method", sort=False)
    out = pd.concat({c: groups[c].agg(["mean", "std", "min", "max"]).rename(columns={"std": "sd"}) for c in columns},
                    axis=1)
    out["seeds"] = groups["seed"].nunique()
    return out


def form(runs: Runs, reference: str = "SFT") -> pd.DataFrame:
    """Per method and seed, the answers' form: how many name no action / no reason (of ``n``); among the answers
    that name a reason, how many have exactly the true reasons; and of the clips broken against the same seed's
    ``reference`` (right there, wrong here), how many answers name no reason."""
    rows = []
    for method, by_seed in runs.items():
        for seed, rows_ in by_seed.items():
            counts = form_counts(rows_)
            given = [r for r in rows_ if any(r["reasons_pred"])]
            entry = dict(method=method, seed=seed, n=counts["n"], no_action=counts["no_action"],
                         no_reason=counts["no_reason"], with_reason=len(given),
                         reason_right=sum(r["reasons_pred"] == r["reasons_true"] for r in given))
            if method != reference and reference in runs:
                ref = stats.exactly_right(runs[reference][seed])
                new = stats.exactly_right(rows_)
                broken = [r for r in rows_ if ref[r["file_name"]] and not new[r["file_name"]]]
                entry.update(broken=len(broken), broken_without_reason=sum(not any(r["reasons_pred"]) for r in broken))
            rows.append(entry)
    return pd.DataFrame(rows)


def paired_tests(runs: Runs, reference: str = "SFT",
                 against: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Per seed, each method against the same seed's ``reference`` (and each method in ``against[ref]`` against
    that ``ref`` too): fixed and broken clips (exactly right / wrong where the other was the opposite), the exact
    sign test ``p``, and Holm's adjustment ``p_holm`` over every test of the frame (every seed, every pair)."""
    pairs = [(m, reference) for m in runs if m != reference]
    pairs += [(m, ref) for ref, methods in (against or {}).items() for m in methods]
    rows = []
    for method, ref in pairs:
        for seed in runs[method]:
            c = stats.paired(runs[ref][seed], runs[method][seed])
            rows.append(dict(method=method, against=ref, seed=seed, fixed=c["fixed"], broken=c["broken"],
                             p=stats.sign_test(c["fixed"], c["broken"])))
    frame = pd.DataFrame(rows)
    frame["p_holm"] = stats.holm(frame["p"].tolist())
    return frame


def over_seeds(by_seed: Mapping[int, Sequence[Mapping]]) -> list[dict]:
    """One method's rows of every seed in one list, each clip named ``<file_name>#<seed>`` (confusion matrices and
    distributions summed over the seeds)."""
    return [{**r, "file_name": f"{r['file_name']}#{seed}"} for seed, rows in by_seed.items() for r in rows]
