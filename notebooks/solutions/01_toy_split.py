"""Solutions to notebook 01's exercises (tests/test_exercises.py runs them through the notebook's checkers)."""
import numpy as np


def predict_sizes(counts_per_action, train_fraction, test_share=0.2):
    """Exercise 01.1: the sizes of the toy split's parts from the pool's clips per action and the labelled share."""
    counts = np.asarray(counts_per_action)
    test = round(test_share * counts.sum())
    train_full_per_action = counts - np.round(test_share * counts)  # about 80 % of each action
    train = int(np.maximum(np.round(train_fraction * train_full_per_action), 1).sum())
    return {"test": test, "train_full": int(counts.sum() - test), "train": train}


def stratified_split(labels, test_share, seed):
    """Exercise 01.2: indices of a test part holding test_share of each label's clips."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        test.extend(rng.permutation(where)[:round(test_share * len(where))].tolist())
    return sorted(test)
