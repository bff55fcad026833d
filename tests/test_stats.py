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


def test_holm_adjusts_step_down_and_keeps_the_order():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06 (monotone)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and stats.holm([]) == []
    ps = np.random.default_rng(0).uniform(0, 0.1, 20)
    adjusted = np.array(stats.holm(ps))
    assert (adjusted >= ps).all() and (np.diff(adjusted[np.argsort(ps)]) >= 0).all()
    # the smallest p is Bonferroni's; the largest is at least itself
    assert adjusted.min() == pytest.approx(20 * ps.min()) and adjusted.max() >= ps.max()


def test_the_wilson_interval():
    low, high = stats.wilson(8, 10)
    z = scipy_stats.norm.ppf(0.975)
    centre, half = (0.8 + z * z / 20) / (1 + z * z / 10), z / (1 + z * z / 10) * np.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert stats.wilson(0, 10)[0] == pytest.approx(0, abs=1e-12) and all(np.isnan(stats.wilson(0, 0)))


def test_the_trend_test_is_the_score_test_of_a_logistic_slope():
    rng = np.random.default_rng(1)
    steps = np.repeat(np.arange(1, 201), 2)
    rising = (rng.random(len(steps)) < 0.2 + 0.003 * steps).astype(int)
    found = stats.trend_test(steps, rising)
    r = scipy_stats.pearsonr(steps, rising).statistic
    assert found["z"] == pytest.approx(r * np.sqrt(len(steps))) and found["z"] > 0 and found["p"] < 1e-6
    flat = (rng.random(len(steps)) < 0.5).astype(int)
    assert stats.trend_test(steps, flat)["p"] > 0.01
    assert stats.trend_test(steps, 1 - rising)["z"] == pytest.approx(-found["z"])
    assert np.isnan(stats.trend_test(steps, np.ones(len(steps)))["p"])
