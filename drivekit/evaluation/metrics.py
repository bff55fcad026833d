"""The proposal's metrics (§3.1, Figs. 4-5) and BDD-OIA's test.py, computed with sklearn.metrics.

Inputs are 0/1 label matrices, one row per sample: actions (n, 4), reasons (n, 21).

- ``accuracy``: element-wise over the matrix, (TP + TN) / all, as the proposal defines it.
- ``exact_match``: share of samples whose whole row is right (sklearn's multilabel accuracy).
- ``per_class_f1``: F1 of the positive label per class; ``mean_f1`` (mF1) is their mean.
- ``sample_f1`` (F1_all): per-sample F1 averaged over samples (``average="samples"``, as in
  BDD-OIA's test.py); on actions and reasons it is the proposal's "F1_act / F1_rsn (sample)".
- ``pair_f1``: F1_all over (action, reason) pairs. A sample's pairs are every positive action
  with every positive reason (84 possible pairs): the text ``Action: ...; Reason: ...`` does not
  tie a reason to one action, and for the toy split's one-action, one-reason samples it is the
  single pair the proposal compares. Pairs are not restricted to ``ACTION_OF_REASON``: reasons
  15-20 explain why a turn is *not* taken, so they come with other actions.

``zero_division`` is the score of an F1 with a zero denominator: a sample whose truth and
prediction are both empty (``sample_f1``, ``pair_f1``; a sample with actions but no reasons has
no pairs) or a class with no true and no predicted positive (``per_class_f1``, ``mean_f1``).
The default 0.0 is what the installed sklearn (1.9) does by default (``"warn"`` scores 0.0 and
warns), hence what BDD-OIA's test.py reports; 1.0 scores "rightly predicted nothing" as perfect;
``np.nan`` leaves such samples or classes out of the means.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from drivekit.core.taxonomy import (
    ACTION_KEYS,
    ACTION_OF_REASON,
    GROUPS,
    N_ACTIONS,
    N_REASONS,
    REASON_KEYS,
)

PAIR_KEYS = tuple(f"{a}+{r}" for a in ACTION_KEYS for r in REASON_KEYS)
_GROUP_NAMES = tuple(GROUPS)  # Forward, Stop, Left, Right: one per action, in action order
_KINDS = {"actions": (ACTION_KEYS, range(N_ACTIONS)), "reasons": (REASON_KEYS, ACTION_OF_REASON)}
# Column order of the figures: reasons grouped Forward/Stop/Left/Right (Left = 9-11 then 15-17, ...)
_ORDER = {"actions": tuple(range(N_ACTIONS)), "reasons": tuple(i for group in GROUPS.values() for i in group)}


def _matrix(y, width: int | None = None) -> np.ndarray:
    m = np.asarray(y)
    if m.ndim != 2 or (width is not None and m.shape[1] != width):
        raise ValueError(f"expected a label matrix (n, {width or 'classes'}), got shape {m.shape}")
    if not np.isin(m, (0, 1)).all():
        raise ValueError("label matrices must hold only 0 and 1")
    return m.astype(int)


def _pair(y_true, y_pred, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    t, p = _matrix(y_true, width), _matrix(y_pred, width)
    if t.shape != p.shape:
        raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
    return t, p


def accuracy(y_true, y_pred) -> float:
    """(TP + TN) / all over every entry of the label matrices."""
    t, p = _pair(y_true, y_pred)
    return float(accuracy_score(t.ravel(), p.ravel()))


def exact_match(y_true, y_pred) -> float:
    """Share of samples whose predicted row equals the true row."""
    return float(accuracy_score(*_pair(y_true, y_pred)))


def per_class_f1(y_true, y_pred, zero_division=0.0) -> np.ndarray:
    """F1 of the positive label of each class (column)."""
    return f1_score(*_pair(y_true, y_pred), average=None, zero_division=zero_division)


def mean_f1(y_true, y_pred, zero_division=0.0) -> float:
    """mF1: the mean of ``per_class_f1``."""
    return float(f1_score(*_pair(y_true, y_pred), average="macro", zero_division=zero_division))


def sample_f1(y_true, y_pred, zero_division=0.0) -> float:
    """F1_all: the F1 of each sample's label set, averaged over samples."""
    return float(f1_score(*_pair(y_true, y_pred), average="samples", zero_division=zero_division))


def pair_matrix(actions, reasons) -> np.ndarray:
    """(n, 84) indicator of the (action, reason) pairs of each sample, columns ``PAIR_KEYS``."""
    a, r = _matrix(actions, N_ACTIONS), _matrix(reasons, N_REASONS)
    if len(a) != len(r):
        raise ValueError(f"{len(a)} action rows but {len(r)} reason rows")
    return (a[:, :, None] * r[:, None, :]).reshape(len(a), N_ACTIONS * N_REASONS)


def pair_f1(y_true_actions, y_pred_actions, y_true_reasons, y_pred_reasons, zero_division=0.0) -> float:
    """F1_all over each sample's set of (action, reason) pairs."""
    truth = pair_matrix(y_true_actions, y_true_reasons)
    return sample_f1(truth, pair_matrix(y_pred_actions, y_pred_reasons), zero_division)


def _scores(y_true, y_pred, keys, zero_division) -> dict:
    t, p = _pair(y_true, y_pred, len(keys))
    return {
        "accuracy": accuracy(t, p),
        "exact_match": exact_match(t, p),
        "f1": dict(zip(keys, per_class_f1(t, p, zero_division).tolist())),
        "mf1": mean_f1(t, p, zero_division),
        "f1_all": sample_f1(t, p, zero_division),
    }


def report(y_true_actions, y_pred_actions, y_true_reasons, y_pred_reasons, zero_division=0.0) -> dict:
    """All metrics: ``{"n_samples", "zero_division", "actions": {...}, "reasons": {...}, "pair_f1"}``.

    ``actions`` and ``reasons`` hold ``accuracy``, ``exact_match``, ``f1`` (per class, keyed by
    taxonomy key), ``mf1`` and ``f1_all``. Scores are fractions in [0, 1].
    """
    return {
        "n_samples": len(_matrix(y_true_actions)),
        "zero_division": zero_division,
        "actions": _scores(y_true_actions, y_pred_actions, ACTION_KEYS, zero_division),
        "reasons": _scores(y_true_reasons, y_pred_reasons, REASON_KEYS, zero_division),
        "pair_f1": pair_f1(y_true_actions, y_pred_actions, y_true_reasons, y_pred_reasons, zero_division),
    }


def report_frame(reports: Mapping[str, dict]) -> pd.DataFrame:
    """One row per model (e.g. ``{"SFT": report(...), "A2C": report(...)}``), scores in percent."""
    rows = {
        name: {
            "F1_act (sample)": r["actions"]["f1_all"],
            "F1_rsn (sample)": r["reasons"]["f1_all"],
            "F1_pair (sample)": r["pair_f1"],
            "mF1_act": r["actions"]["mf1"],
            "mF1_rsn": r["reasons"]["mf1"],
            "Acc_act": r["actions"]["accuracy"],
            "Acc_rsn": r["reasons"]["accuracy"],
            "Exact_act": r["actions"]["exact_match"],
            "Exact_rsn": r["reasons"]["exact_match"],
        }
        for name, r in reports.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index") * 100


def _columns(kind: str) -> pd.MultiIndex:
    keys, groups = _KINDS[kind]
    order = _ORDER[kind]
    names = [_GROUP_NAMES[groups[i]] for i in order]
    return pd.MultiIndex.from_arrays([names, [keys[i] for i in order]], names=["group", kind[:-1]])


def per_class_frame(reports: Mapping[str, dict], kind: str = "reasons") -> pd.DataFrame:
    """Fig. 5's per-class F1 in percent: one row per model, columns in Forward/Stop/Left/Right group order.

    ``kind`` is ``"actions"`` or ``"reasons"``.
    """
    keys, _ = _KINDS[kind]
    data = [[r[kind]["f1"][keys[i]] * 100 for i in _ORDER[kind]] for r in reports.values()]
    return pd.DataFrame(data, index=list(reports), columns=_columns(kind))


def absent_as_nan(frame: pd.DataFrame, y_true) -> pd.DataFrame:
    """A :func:`per_class_frame` with NaN for the classes no sample of ``y_true`` (the truth's action
    or reason matrix) has: their F1 is 0 (or ``zero_division``) whatever a model does, so it says
    nothing about the model; figures show them as n/a."""
    present = distribution(y_true).reindex(frame.columns) > 0
    return frame.where(np.broadcast_to(present.to_numpy(), frame.shape))


def distribution(matrix) -> pd.Series:
    """Positives per class of an action (n, 4) or reason (n, 21) matrix (Fig. 4), in group order."""
    m = _matrix(matrix)
    kinds = {len(keys): kind for kind, (keys, _) in _KINDS.items()}
    if m.shape[1] not in kinds:
        raise ValueError(f"expected {N_ACTIONS} action or {N_REASONS} reason columns, got {m.shape[1]}")
    kind = kinds[m.shape[1]]
    return pd.Series(m.sum(axis=0)[list(_ORDER[kind])], index=_columns(kind), name="count")
