"""Self-checks of notebooks 05 (JSON outputs: R3's consistency, the label-F1 R2 on JSON) and 06 (F1, the sign test)."""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import numpy as np

from drivekit.core.taxonomy import ACTION_OF_REASON, ACTION_PHRASES, N_ACTIONS, N_REASONS, REASON_PHRASES
from drivekit.course.exercises.checking import _cases, _one_hot_rows, _rng
from drivekit.evaluation import metrics, stats
from drivekit.rewards.action_reward import LabelF1Reward
from drivekit.rewards.weighted_reward import OnJson
from drivekit.text import json_output


# ---------------------------------------------------------------------------------------------
# 05 · Stage 3: JSON outputs, R3 and R2 on JSON
# ---------------------------------------------------------------------------------------------
class Raised:
    """What a learner's function did instead of answering: it raised ``error`` (any exception but
    ``NotImplementedError``, which still means "not attempted")."""

    def __init__(self, error: BaseException):
        self.error = error

    def __repr__(self) -> str:
        return f"raised {type(self.error).__name__}: {self.error}"


def _guarded(fn: Callable) -> Callable:
    """``fn``, returning :class:`Raised` instead of raising (the stub's ``NotImplementedError`` passes through), so
    that a function that raises on a case gets a hint about why, not a bare traceback."""
    def call(*args):
        try:
            return fn(*args)
        except NotImplementedError:
            raise
        except Exception as err:  # noqa: BLE001 (every other exception is the learner's answer to the case)
            return Raised(err)
    return call


def _raising(kind: type[BaseException]) -> Callable:
    """The mistake "raises ``kind``" (or a subclass): its answer to any case is such an exception."""
    return lambda *args: Raised(kind.__new__(kind))


def _same_value(got, want) -> bool:
    """The answer is ``want`` (a float), or both raised exceptions of one kind (``want`` names the kind)."""
    if isinstance(want, Raised):
        return isinstance(got, Raised) and isinstance(got.error, type(want.error))
    return not isinstance(got, Raised) and got is not None and math.isclose(float(got), want, abs_tol=1e-9)


def consistency_level(actions: Sequence[str], reasons: Sequence[str]) -> float:
    """R3's consistency level (:func:`drivekit.text.json_output.structure_score`) of an answer listing these
    action and reason phrases (the other fields filled in)."""
    answer = json.dumps({"scene": "", "actions": list(actions), "reasons": list(reasons), "justification": ""})
    return json_output.structure_score(answer).consistency


def check_consistency(fn: Callable) -> bool:
    """Exercise 05.1: ``fn(actions, reasons) -> float``, the consistency level of R3 for lists of phrases."""
    rng = _rng(50)
    cases = [(["Stop/Slow down"], ["Obstacle: car"]), (["Move forward"], ["Traffic light"]),
             (["Move forward", "Turn left"], ["Road is clear", "No lane on the left"]),
             (["Stop/Slow down"], ["Obstacle: person", "Solid line on the right"]),
             (["Turn right"], ["Solid line on the right", "On the right-turn lane"]),
             (["Stop/Slow down"], []), ([], ["Obstacle: car"]), (["Fly"], ["Obstacle: car"]),
             (["Stop/Slow down"], ["Obstacle: car", "Obstacle: car", "Traffic light is green"]),
             (["Stop/Slow down", "Unicorn"], ["Obstacle: car", "Banana"]), (["Move forward"], ["Banana"])]
    for _ in range(6):
        acts = [ACTION_PHRASES[i] for i in np.flatnonzero(rng.random(N_ACTIONS) < 0.4)]
        cases.append((acts, [REASON_PHRASES[i] for i in np.flatnonzero(rng.random(N_REASONS) < 0.15)]))
    def level(actions, reasons, why_not=True, once=True, skip_unknown=True, always=False):
        chosen = {ACTION_PHRASES.index(a) for a in actions if a in ACTION_PHRASES}
        known = [REASON_PHRASES.index(r) if r in REASON_PHRASES else None for r in reasons]
        known = [r for r in known if r is not None or not skip_unknown]
        known = list(dict.fromkeys(known)) if once else known
        if not chosen:
            return 0.0
        if not known:
            return 1.0
        fits = [r is not None and (always or (ACTION_OF_REASON[r] in chosen) == (r < 15 or not why_not)) for r in known]
        return sum(fits) / len(fits)

    def empty_is_zero(actions, reasons):
        chosen = [a for a in actions if a in ACTION_PHRASES]
        known = [r for r in reasons if r in REASON_PHRASES]
        return 0.0 if chosen and not known else level(actions, reasons)

    mistakes = [
        (_raising(ValueError), "your function raised ValueError, which list.index raises for a phrase it does not "
         "hold: leave out the phrases that are not in ACTION_PHRASES / REASON_PHRASES before taking an index"),
        (_raising(ZeroDivisionError), "your function divided by 0 reasons: when actions are known but no known reason "
         "is listed, nothing contradicts them and the level is 1 (0 when no known action is listed)"),
        (empty_is_zero, "with a known action and no known reason nothing contradicts the actions: the level is 1, "
         "not 0 (it is 0 only when no known action is listed)"),
        (lambda a, r: level(a, r, why_not=False), "reasons 15-20 (r >= 15) say why a turn is NOT possible: such a "
         "reason fits when its action is NOT chosen (reasons 0-14 fit when theirs is)"),
        (lambda a, r: level(a, r, always=True), "you counted every known reason as fitting: a reason r fits only "
         "when it agrees with the chosen actions (its action ACTION_OF_REASON[r] chosen for r < 15, not chosen for "
         "r >= 15)"),
        (lambda a, r: level(a, r, once=False), "count each reason once: a repeated reason is one reason"),
        (lambda a, r: level(a, r, skip_unknown=False), "leave out the phrases that are not in the taxonomy (they "
         "neither fit nor fail)"),
    ]
    return _cases("Exercise 05.1 (R3's consistency level)", _guarded(fn), cases, consistency_level, _same_value,
                  "ignore phrases not in the taxonomy and count each reason once; 0 when no known action is listed, "
                  "1 when actions are known but no reason is; otherwise the share of reasons that fit: reason r "
                  "(its index in REASON_PHRASES) belongs to action ACTION_OF_REASON[r]; r < 15 fits when that "
                  "action is chosen, r >= 15 (a reason why NOT to turn) when it is not", mistakes)


def label_f1_r2(answer: str, actions, reasons) -> float:
    """The course's R2 on a JSON answer (``label_f1`` read through :class:`drivekit.rewards.weighted_reward.OnJson`,
    as notebook 05 trains with it) against the true 0/1 vectors ``actions`` and ``reasons``."""
    reward = OnJson(LabelF1Reward(), "labels")
    return float(reward([answer], actions=[np.asarray(actions)], reasons=[np.asarray(reasons)])[0])


def _label_vectors(actions: Sequence[int], reasons: Sequence[int]) -> tuple[list[int], list[int]]:
    return ([int(i in actions) for i in range(N_ACTIONS)], [int(i in reasons) for i in range(N_REASONS)])


def _label_f1_cases() -> list[tuple[str, list[int], list[int]]]:
    """Answers to two truths (stop for a car at a red light; move forward, no reason given), garbage included."""
    stop, go = _label_vectors([1], [3, 7]), _label_vectors([0], [])
    answer = {"scene": "A car ahead.", "actions": ["Stop/Slow down"], "reasons": ["Obstacle: car", "Traffic light"],
              "justification": "Stop/Slow down because of the car."}
    answers = [json.dumps(answer),
               json.dumps({**answer, "reasons": ["Obstacle: car"]}),
               json.dumps({**answer, "actions": ["Stop/Slow down", "Turn left"], "reasons": ["Road is clear"]}),
               json.dumps({**answer, "actions": ["Move forward"], "reasons": ["Road is clear"]}),
               json.dumps({"actions": "Stop/Slow down", "reasons": ["Obstacle: car"]}),  # actions not a list
               json.dumps({"actions": ["Stop/Slow down", "Stop/Slow down"], "reasons": ["Obstacle: car", 7, "Car"],
                           "mood": "calm"}),  # a repeat, a number, an unknown phrase and an extra key
               json.dumps({"actions": ["stop/slow down"], "reasons": []}),  # not the exact phrase
               json.dumps({"scene": "empty road", "actions": [], "reasons": []}),
               "Action: Stop/Slow down; Reason: Obstacle: car | Traffic light",  # Stage-2 text, not JSON
               json.dumps(answer)[:40],  # truncated
               json.dumps(["Stop/Slow down"]), "", "}{", "null"]
    cases = [(a, *stop) for a in answers]
    cases += [(json.dumps({**answer, "actions": ["Move forward"], "reasons": []}), *go),  # no reason on either side
              (json.dumps({**answer, "actions": ["Move forward"], "reasons": ["Road is clear"]}), *go)]
    return cases


def _empty_reasons_score_0(answer: str, actions, reasons) -> float:
    """:func:`label_f1_r2` with the F1 of two empty reason sets taken as 0 (a mistake the checker names)."""
    value = label_f1_r2(answer, actions, reasons)
    try:
        said = json.loads(answer).get("reasons")
    except (json.JSONDecodeError, AttributeError, TypeError):
        return value
    empty = not any(r in REASON_PHRASES for r in said) if isinstance(said, list) else True
    return value - 0.5 if value > 0 and not any(reasons) and empty else value


def _read_sets(answer: str, actions, reasons, lower: bool = False):
    """The true and listed sets of a JSON answer (exact phrases, or compared in lower case), or None when the text
    is no JSON object or lists no taxonomy phrase."""
    try:
        obj = json.loads(answer)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(obj, dict):
        return None
    def listed(field, vocabulary):
        items = obj.get(field)
        known = {v.lower() if lower else v: v for v in vocabulary}
        return {known[(i.lower() if lower else i)] for i in items if isinstance(i, str) and (i.lower() if lower else i)
                in known} if isinstance(items, list) else set()
    pa, pr = listed("actions", ACTION_PHRASES), listed("reasons", REASON_PHRASES)
    if not pa and not pr:
        return None
    ta = {p for p, v in zip(ACTION_PHRASES, actions) if v}
    tr = {p for p, v in zip(REASON_PHRASES, reasons) if v}
    return ta, pa, tr, pr


def _f1(true: set, pred: set) -> float:
    return 1.0 if not true and not pred else 2 * len(true & pred) / (len(true) + len(pred))


def _pooled_f1(answer: str, actions, reasons) -> float:
    """R2 with one F1 over actions and reasons together (a mistake the checker names)."""
    sets = _read_sets(answer, actions, reasons)
    return 0.0 if sets is None else _f1(sets[0] | sets[2], sets[1] | sets[3])


def _any_case(answer: str, actions, reasons) -> float:
    """R2 with phrases matched whatever their case (a mistake the checker names)."""
    sets = _read_sets(answer, actions, reasons, lower=True)
    return 0.0 if sets is None else (_f1(sets[0], sets[1]) + _f1(sets[2], sets[3])) / 2


def check_label_f1_r2(fn: Callable) -> bool:
    """Exercise 05.2: ``fn(answer, actions, reasons) -> float``, the label-F1 R2 of a JSON answer
    (:func:`label_f1_r2`), on answers of every kind, garbage included."""
    mistakes = [
        (_raising(json.JSONDecodeError), "your function raised json.JSONDecodeError: text that is not JSON (truncated, "
         "Stage-2 text, empty) must score 0, so catch the error of json.loads and return 0"),
        (_raising(AttributeError), "your function raised AttributeError: json.loads can return a list, a number or "
         "None (the text '[...]' or 'null'): only a dict is a JSON object, anything else scores 0"),
        (_raising(TypeError), "your function raised TypeError: a field can hold the wrong type (a string where a list "
         "belongs, a number among the phrases); read only lists, and only their items that are taxonomy phrases"),
        (_raising(ZeroDivisionError), "your function divided by 0: the F1 of two empty sets (nothing true, nothing "
         "listed) is 1, so test for that case before dividing"),
        (_pooled_f1, "you took one F1 over the actions and the reasons together: R2 is the mean of two F1s, "
         "(F1 of the actions + F1 of the reasons) / 2"),
        (_any_case, "phrases match exactly, case included: 'stop/slow down' is not the taxonomy's 'Stop/Slow down'"),
        (lambda answer, a, r: float(LabelF1Reward()([answer], actions=[np.asarray(a)], reasons=[np.asarray(r)])[0]),
         "you scored the labels of any text (the Stage-2 parser): only one JSON object counts, and text that is not "
         "one (Stage-2 text included) scores 0"),
        (_empty_reasons_score_0, "when the truth has no reason and the answer lists none, the reasons' F1 is 1 "
                                 "(nothing to find and nothing claimed), not 0"),
    ]
    return _cases("Exercise 05.2 (label-F1 R2 on JSON)", _guarded(fn), _label_f1_cases(), label_f1_r2, _same_value,
                  "0 unless the text is one JSON object whose 'actions' / 'reasons' lists hold at least one exact "
                  "taxonomy phrase (other items are skipped, a repeat counts once); then (F1 of the actions + F1 "
                  "of the reasons) / 2, F1 = 2·|T ∩ P| / (|T| + |P|), and 1 when T and P are both empty", mistakes)


# ---------------------------------------------------------------------------------------------
# 06 · F1 and the sign test
# ---------------------------------------------------------------------------------------------
WORKED_TRUE = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 1]])  # the 3-clip example of notebook 06
WORKED_PRED = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])


def check_sample_f1(my_f1: Callable) -> bool:
    """Exercise 06.1: ``my_f1(y_true, y_pred) -> float``, sample-level F1 (``metrics.sample_f1``)."""
    rng = _rng(6)
    cases = [(WORKED_TRUE, WORKED_PRED), (np.zeros((2, 4), int), np.zeros((2, 4), int))]
    cases += [(_one_hot_rows(rng, n, w), _one_hot_rows(rng, n, w)) for n, w in ((5, 4), (30, 21), (1, 21))]
    def per_clip(t, p, empty=0.0, jaccard=False):
        t, p = np.asarray(t).astype(bool), np.asarray(p).astype(bool)
        both, union, size = (t & p).sum(1), (t | p).sum(1), t.sum(1) + p.sum(1)
        score = np.where(union > 0, both / np.maximum(union, 1), empty) if jaccard else \
            np.where(size > 0, 2 * both / np.maximum(size, 1), empty)
        return float(score.mean())

    def micro(t, p):
        t, p = np.asarray(t).astype(bool), np.asarray(p).astype(bool)
        size = t.sum() + p.sum()
        return float(2 * (t & p).sum() / size) if size else 0.0

    mistakes = [
        (lambda t, p: float((np.asarray(t) == np.asarray(p)).mean()),
         "you counted matching 0/1 entries (accuracy): a clip's F1 counts only the labels that are 1, "
         "2·|true ∩ predicted| / (|true| + |predicted|)"),
        (micro, "you pooled the counts of all clips (micro F1): compute F1 per clip first, then average over clips"),
        (lambda t, p: per_clip(t, p, jaccard=True), "|true ∩ predicted| / |true ∪ predicted| is the Jaccard index: "
                                                    "F1 = 2·|true ∩ predicted| / (|true| + |predicted|)"),
        (lambda t, p: per_clip(t, p, empty=1.0), "a clip with no true and no predicted label scores 0 here "
                                                 "(sklearn's zero_division=0, as the course's metrics.sample_f1)"),
    ]
    return _cases("Exercise 06.1 (sample-level F1)", my_f1, cases, metrics.sample_f1,
                  lambda got, want: got is not None and math.isclose(float(got), want, abs_tol=1e-9),
                  "per clip: F1 = 2·|true ∩ predicted| / (|true| + |predicted|), 0 when both are empty; "
                  "then the mean over clips", mistakes)


def check_sign_test(my_p: Callable) -> bool:
    """Exercise 06.2: ``my_p(fixed, broken) -> float``, the exact two-sided sign test (``stats.sign_test``)."""
    cases = [(0, 0), (3, 0), (5, 5), (7, 2), (2, 7), (93, 2), (20, 11), (1, 0), (12, 3)]

    def tail(k, n):
        return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n

    mistakes = [
        (lambda f, b: tail(min(f, b), f + b) if f + b else 1.0,
         "that is one tail (a one-sided test): the two-sided p is twice the smaller tail"),
        (lambda f, b: 2 * tail(min(f, b), f + b) if f + b else 1.0, "cap p at 1: min(1, 2 · tail)"),
        (lambda f, b: min(1.0, 2 * tail(max(f, b), f + b)) if f + b else 1.0,
         "the tail of the smaller count: k = min(fixed, broken), P(X ≤ k)"),
    ]
    return _cases("Exercise 06.2 (sign test)", my_p, cases, stats.sign_test,
                  lambda got, want: got is not None and math.isclose(float(got), want, rel_tol=1e-6, abs_tol=1e-12),
                  "twice the smaller tail of Binomial(n, 1/2), at most 1: n = fixed + broken, k = min(fixed, broken), "
                  "p = min(1, 2 · Σ_{i≤k} C(n, i) / 2^n); p = 1 when n = 0", mistakes)
