"""Self-checks of notebooks 00 (data exploration) and 01 (the toy split)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from drivekit.core.taxonomy import ACTION_PHRASES, N_ACTIONS, N_REASONS, REASON_PHRASES
from drivekit.course.exercises.checking import (NOT_ATTEMPTED, _attempt, _cases, _fail, _one_hot_rows, _passed,
                                                _rng)


# ---------------------------------------------------------------------------------------------
# 00 · data exploration
# ---------------------------------------------------------------------------------------------
def _decoded(actions, reasons) -> tuple[list[str], list[str]]:
    return ([ACTION_PHRASES[i] for i, v in enumerate(actions) if v],
            [REASON_PHRASES[i] for i, v in enumerate(reasons) if v])


def check_decode(decode: Callable) -> bool:
    """Exercise 00.1: ``decode(actions, reasons) -> (action phrases, reason phrases)`` of 0/1 vectors."""
    rng = _rng(0)
    cases = [([0, 1, 0, 0], [0] * 3 + [1] + [0] * 17), ([1, 0, 0, 1], [1, 0, 0] + [0] * 15 + [1, 0, 1]),
             ([0, 0, 0, 0], [0] * N_REASONS)]
    cases += [(list(a), list(r)) for a, r in zip(_one_hot_rows(rng, 5, N_ACTIONS), _one_hot_rows(rng, 5, N_REASONS))]
    def ones(vector):
        return [i for i, v in enumerate(vector) if v]

    mistakes = [
        (lambda a, r: (ones(a), ones(r)),
         "you returned the indices; return the phrases at them: taxonomy.ACTION_PHRASES[i] and taxonomy.REASON_PHRASES[i]"),
        (lambda a, r: (_decoded(a, r)[0][:1], _decoded(a, r)[1][:1]),
         "you kept only the first action and the first reason: keep every position that is 1 (a clip can have "
         "several actions and several reasons)"),
        (lambda a, r: _decoded([1 - v for v in a], [1 - v for v in r]),
         "you decoded the positions that are 0: keep those that are 1"),
    ]
    return _cases("Exercise 00.1 (decode)", decode, cases, _decoded,
                  lambda got, want: got is not None and [list(got[0]), list(got[1])] == [list(w) for w in want],
                  "index i of the action vector is taxonomy.ACTION_PHRASES[i], of the reason vector "
                  "taxonomy.REASON_PHRASES[i]; keep the index order and return two lists", mistakes)


def check_cooccurrence(count: Callable) -> bool:
    """Exercise 00.2: ``count(actions (n, 4), reasons (n, 21)) -> (4, 21)`` clips with both labels."""
    rng = _rng(1)
    cases = [(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]]),
              np.eye(N_REASONS, dtype=int)[[0, 3, 3]])]
    cases += [(_one_hot_rows(rng, n, N_ACTIONS), _one_hot_rows(rng, n, N_REASONS)) for n in (1, 7, 40)]
    mistakes = [
        (lambda a, r: r.T @ a, "your array is (21, 4): rows are the 4 actions and columns the 21 reasons, "
                               "C = actions.T @ reasons"),
        (lambda a, r: ((a.T @ r) > 0).astype(int), "you marked whether some clip has both labels: count the clips "
                                                    "(entry [a, r] can be larger than 1)"),
        (lambda a, r: a.T @ r / len(a), "you divided by the number of clips: the entries are counts, not shares"),
    ]
    return _cases("Exercise 00.2 (co-occurrence counts)", count, cases, lambda a, r: a.T @ r,
                  lambda got, want: got is not None and np.shape(got) == want.shape and np.allclose(got, want),
                  "entry [a, r] counts the clips whose action a AND reason r are both 1; "
                  "a (4, 21) array (the matrix product actions.T @ reasons is one way)", mistakes)


# ---------------------------------------------------------------------------------------------
# 01 · the toy split
# ---------------------------------------------------------------------------------------------
def _split_sizes(counts_per_action: Sequence[int], train_fraction: float, test_share: float = 0.2) -> dict:
    """The sizes of the toy split's parts, as the exercise asks for them (train per action, rounded)."""
    counts = np.asarray(counts_per_action)
    test = round(test_share * counts.sum())
    train = int(np.maximum(np.round(train_fraction * (counts - np.round(test_share * counts))), 1).sum())
    return {"test": test, "train_full": int(counts.sum() - test), "train": train}


def check_split_sizes(predict: Callable, counts_per_action: Sequence[int], observed: dict,
                      train_fraction: float) -> bool:
    """Exercise 01.1: ``predict(counts_per_action, train_fraction) -> {"test": n, "train_full": n, "train": n}``
    must give the sizes the saved split has (``observed``, e.g. from ``ToySplit.counts()``; ``train_fraction``
    the split's labelled share, ``ToySplit.train_fraction``)."""
    name = "Exercise 01.1 (predict the split's sizes)"
    counts = list(counts_per_action)
    got = _attempt(name, predict, counts, train_fraction)
    if got is NOT_ATTEMPTED:
        return False
    if not isinstance(got, dict):
        _fail(name, "the saved split", "a dict {'test': n, 'train_full': n, 'train': n}", got, "return a dict")
    total = sum(counts)
    mistakes = {  # part -> [(the size made the mistaken way, its hint)]
        "test": [(round(0.8 * total), "test is the 20 % part and train_full the 80 % part, not the other way round")],
        "train": [(round(train_fraction * total), "train is a share of train_full (the clips left after the test "
                                                  "part is taken out), not of all clips"),
                  (_split_sizes(counts, 1 / 8)["train"] if train_fraction != 1 / 8 else None,
                   f"use train_fraction (this split's share, {train_fraction:.4g}), not the proposal's 1/8")],
    }
    for part, slack in (("test", 0), ("train_full", 0), ("train", 1)):
        if part not in got or abs(int(got[part]) - int(observed[part])) > slack:
            hint = next((why for size, why in mistakes.get(part, []) if size is not None and part in got
                         and abs(int(got[part]) - size) <= slack), None)
            _fail(name, f"the part {part!r} (clips per action {counts}, train_fraction {train_fraction:.4g})",
                  observed.get(part), got.get(part),
                  hint or "test: 20 % of each action, rounded so that the total is round(0.2 * all); train_full: "
                          "the rest; train: train_fraction of train_full per action, at least one clip per action "
                          "(train may be off by one: the rounding per action is not asked for)")
    return _passed(name, 3)


def check_stratified_split(split: Callable) -> bool:
    """Exercise 01.2: ``split(labels, test_share, seed) -> indices of the test part``, stratified by label."""
    name = "Exercise 01.2 (a stratified split)"
    rng = _rng(2)
    cases = [(np.array([0] * 10 + [1] * 5 + [2] * 5), 0.2, 0),
             (rng.choice(4, size=203, p=[0.1, 0.6, 0.15, 0.15]), 0.2, 1),
             (rng.choice(3, size=57), 0.5, 2)]
    for labels, share, seed in cases:
        got = _attempt(name, split, labels, share, seed)
        if got is NOT_ATTEMPTED:
            return False
        test = np.asarray(got, dtype=int).ravel()
        case = f"{len(labels)} labels, test_share={share}, seed={seed}"
        if len(test) == len(labels) and set(test.tolist()) <= {0, 1}:
            _fail(name, case, "the indices of the test part", "a 0/1 mask over every clip",
                  "return the positions of the test clips (e.g. np.flatnonzero(mask)), not a mask")
        if len(set(test.tolist())) != len(test) or (len(test) and (test.min() < 0 or test.max() >= len(labels))):
            _fail(name, case, "distinct indices in range(len(labels))", test[:20].tolist(),
                  "return positions into labels, each at most once")
        for label in np.unique(labels):
            n = int((labels == label).sum())
            k = int((labels[test] == label).sum())
            if abs(k - share * n) > 1:
                other_part = all(abs(int((labels[test] == x).sum()) - (1 - share) * int((labels == x).sum())) <= 1
                                 for x in np.unique(labels))
                _fail(name, case, f"about {share * n:.1f} test clips of label {label} (±1)", k,
                      "you returned the other part: keep round(test_share · count) indices of each label as the test "
                      "part" if other_part else
                      "pick test_share of the indices of EACH label separately, then join them")
        again = np.asarray(split(labels, share, seed), dtype=int).ravel()
        if sorted(again.tolist()) != sorted(test.tolist()):
            _fail(name, case, "the same test part for the same seed", "a different one",
                  "draw with np.random.default_rng(seed), so that a seed gives one split")
    return _passed(name, len(cases))
