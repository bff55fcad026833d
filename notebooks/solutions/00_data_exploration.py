"""Solutions to notebook 00's exercises (tests/test_exercises.py runs them through the notebook's checkers)."""
import numpy as np

from drivekit.core.taxonomy import ACTION_PHRASES, REASON_PHRASES


def decode(actions, reasons):
    """Exercise 00.1: the phrases of a clip's 0/1 action (4) and reason (21) vectors, in index order."""
    return ([ACTION_PHRASES[i] for i, v in enumerate(actions) if v == 1],
            [REASON_PHRASES[i] for i, v in enumerate(reasons) if v == 1])


def cooccurrence(actions, reasons):
    """Exercise 00.2: entry [a, r] = the number of clips labelled with action a and reason r."""
    actions, reasons = np.asarray(actions), np.asarray(reasons)
    counts = np.zeros((actions.shape[1], reasons.shape[1]), dtype=int)
    for a_row, r_row in zip(actions, reasons):
        counts += np.outer(a_row, r_row)
    return counts
