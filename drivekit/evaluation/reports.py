"""Scoring a model's answers on a test split: prediction rows, their files, F1 reports, comparison tables.

A *prediction row* (one line of ``predictions.jsonl``) holds a clip's generated text, the labels
parsed from it (plain ``Action: ...; Reason: ...`` text, or the Stage-3 JSON object) and the
truth: ``file_name, text, actions_pred, reasons_pred, actions_true, reasons_true, ok, problems``.
Every stage writes its predictions in this one format, and notebook 06 reads them all.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from drivekit.evaluation import metrics
from drivekit.text.formats import parse_text
from drivekit.text.json_output import parse_json


def prediction_row(name: str, text: str, actions, reasons, target: str = "plain") -> dict:
    """One predictions.jsonl row: the generated text, its parsed labels and the truth. ``ok`` is
    False when the text did not parse cleanly (for JSON: not strict, schema-valid JSON)."""
    parsed = parse_json(text) if target == "json" else parse_text(text)
    return dict(file_name=name, text=text, actions_pred=parsed.actions.tolist(), reasons_pred=parsed.reasons.tolist(),
                actions_true=[int(v) for v in actions], reasons_true=[int(v) for v in reasons],
                ok=parsed.ok, problems=parsed.problems)


def write_predictions(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return path


def read_predictions(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


def score(rows: list[dict]) -> dict:
    """``metrics.report`` of the predictions, plus how many answers did not parse cleanly."""
    matrix = {key: np.array([row[key] for row in rows]) for key in
              ("actions_true", "actions_pred", "reasons_true", "reasons_pred")}
    report = metrics.report(matrix["actions_true"], matrix["actions_pred"], matrix["reasons_true"],
                            matrix["reasons_pred"])
    report["unparseable"] = sum(not row["ok"] for row in rows)
    return report


def validity(rows: Sequence[Mapping]) -> float:
    """Share of answers that are strict JSON objects valid against the schema (``ok`` of JSON rows)."""
    return float(np.mean([bool(r["ok"]) for r in rows])) if rows else 0.0


def prediction_rewards(rows: Sequence[Mapping], reward) -> dict:
    """Mean R and mean of each component over prediction rows (scored against their clips and labels)."""
    result = reward.evaluate([row["text"] for row in rows], file_name=[row["file_name"] for row in rows],
                             actions=[row["actions_true"] for row in rows],
                             reasons=[row["reasons_true"] for row in rows])
    return {"R": float(np.mean(result.total)), **{k: float(np.mean(v)) for k, v in result.components.items()}}


def compare(named_rows: Mapping[str, Sequence[Mapping]], reward=None, json_names: Sequence[str] = ()) -> pd.DataFrame:
    """One row per model: F1_act, F1_rsn, pair F1 (sample-level, fractions), unparseable answers;
    with ``reward`` the mean test reward R and its components; with ``json_names`` a first column
    ``json_valid``, the JSON validity rate of those models (NaN for the others)."""
    table = {}
    for name, rows in named_rows.items():
        s = score(list(rows))
        entry = {"F1_act": s["actions"]["f1_all"], "F1_rsn": s["reasons"]["f1_all"], "F1_pair": s["pair_f1"],
                 "unparseable": s["unparseable"]}
        if reward is not None:
            entry.update(prediction_rewards(rows, reward))
        table[name] = entry
    table = pd.DataFrame.from_dict(table, orient="index")
    if json_names:
        table.insert(0, "json_valid", [validity(named_rows[n]) if n in json_names else np.nan for n in table.index])
    return table
