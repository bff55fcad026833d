import numpy as np
import pytest
from scipy import stats as scipy_stats

from drivekit import stats


def row(name, right):
    truth = [0, 1, 0, 0]
    return dict(file_name=name, actions_true=truth, actions_pred=truth if right else [1, 0, 0, 0],
                reasons_true=[0] * 20 + [1], reasons_pred=[0] * 20 + [1])


def test_over_seeds_is_the_t_interval_of_the_mean():
    s = stats.over_seeds([0.80, 0.83, 0.86])
    assert s["mean"] == pytest.approx(0.83) and s["sd"] == pytest.approx(0.03)
    low, high = scipy_stats.t.interval(0.95, 2, loc=0.83, scale=0.03 / np.sqrt(3))
    assert (s["low"], s["high"]) == (pytest.approx(low), pytest.approx(high))
    one = stats.over_seeds([0.5])
    assert one["low"] == one["high"] == 0.5 and np.isnan(one["sd"])
    with pytest.raises(ValueError):
        stats.over_seeds([])


def test_paired_counts_fixed_and_broken_clips():
    ref = [row("a", True), row("b", False), row("c", False), row("d", True)]
    new = [row("d", False), row("c", True), row("b", True), row("a", True)]  # order does not matter
    assert stats.paired(ref, new) == dict(fixed=2, broken=1, both_right=1, both_wrong=0, n=4)
    with pytest.raises(ValueError, match="different clips"):
        stats.paired(ref, new[:3])


def test_sign_test_is_the_exact_binomial_and_pools_over_seeds():
    assert stats.sign_test(0, 0) == 1.0
    assert stats.sign_test(10, 0) == pytest.approx(2 * 0.5**10)
    assert stats.sign_test(5, 5) == pytest.approx(1.0)
    pooled = stats.pooled([dict(fixed=6, broken=1), dict(fixed=5, broken=0), dict(fixed=4, broken=2)])
    assert pooled == dict(fixed=15, broken=3, p=pytest.approx(scipy_stats.binomtest(15, 18).pvalue), seeds=3)
