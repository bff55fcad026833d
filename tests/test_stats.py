import numpy as np
import pytest
from scipy import stats as scipy_stats

from drivekit.evaluation import stats


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


def test_paired_size_gives_the_power_asked_for():
    """At the returned size, the exact power of the two-sided sign test at level 0.05 is about 0.8."""
    d, delta = 0.06, 0.03
    n = stats.paired_size(d, delta)
    assert n == 521 and stats.paired_size(d, 0.02) > n > stats.paired_size(d, 0.04)
    p_fixed = (d + delta) / (2 * d)  # a discordant clip is a fix with this chance
    power = 0.0
    for m in range(1, 121):  # m discordant clips (P(m > 120) is negligible at n·d ≈ 31)
        j = np.arange(m + 1)
        p_value = np.minimum(1, 2 * np.minimum(scipy_stats.binom.cdf(j, m, 0.5), scipy_stats.binom.sf(j - 1, m, 0.5)))
        power += scipy_stats.binom.pmf(m, n, d) * scipy_stats.binom.pmf(j, m, p_fixed)[p_value < 0.05].sum()
    assert 0.75 < power < 0.85
    with pytest.raises(ValueError):
        stats.paired_size(0.02, 0.03)
