"""Solutions to notebook 05's exercises (tests/test_exercises.py runs them through the notebook's checkers)."""
import json

from drivekit.core.taxonomy import ACTION_OF_REASON, ACTION_PHRASES, REASON_PHRASES

WHY_NOT = 15  # reasons 15-20 say why a turn is NOT possible


def my_consistency(actions, reasons):
    """Exercise 05.1: the share of the distinct known reasons that fit the known chosen actions."""
    chosen = {ACTION_PHRASES.index(a) for a in actions if a in ACTION_PHRASES}
    known = {REASON_PHRASES.index(r) for r in reasons if r in REASON_PHRASES}
    if not chosen:
        return 0.0
    if not known:
        return 1.0
    fits = [(ACTION_OF_REASON[r] in chosen) == (r < WHY_NOT) for r in known]
    return sum(fits) / len(fits)


def _f1(true, pred):
    """2|T ∩ P| / (|T| + |P|), 1 when both sets are empty."""
    if not true and not pred:
        return 1.0
    return 2 * len(true & pred) / (len(true) + len(pred))


def _phrases(obj, field, vocabulary):
    items = obj.get(field)
    return {item for item in items if item in vocabulary} if isinstance(items, list) else set()


def my_label_f1_r2(answer, actions, reasons):
    """Exercise 05.2: (F1 of the actions + F1 of the reasons) / 2 of a JSON answer; 0 if nothing can be read."""
    try:
        obj = json.loads(answer)
    except (json.JSONDecodeError, TypeError):
        return 0.0
    if not isinstance(obj, dict):
        return 0.0
    pred_actions = _phrases(obj, "actions", ACTION_PHRASES)
    pred_reasons = _phrases(obj, "reasons", REASON_PHRASES)
    if not pred_actions and not pred_reasons:
        return 0.0
    true_actions = {p for p, v in zip(ACTION_PHRASES, actions) if v}
    true_reasons = {p for p, v in zip(REASON_PHRASES, reasons) if v}
    return (_f1(true_actions, pred_actions) + _f1(true_reasons, pred_reasons)) / 2
