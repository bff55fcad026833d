import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, f1_score

from drivekit.evaluation import metrics
from drivekit.core import taxonomy

TOL = 1e-9


# Independent numpy references: F1 = 2|T∩P| / (|T| + |P|), and `zd` where that is 0/0.
def ref_f1(t, p, axis, zd):
    both = (t * p).sum(axis=axis)
    size = t.sum(axis=axis) + p.sum(axis=axis)
    return np.where(size == 0, zd, 2 * both / np.maximum(size, 1))


def ref_pairs(a, r):
    return np.array([[ai * rj for ai in row_a for rj in row_r] for row_a, row_r in zip(a, r)])


def random_labels(rng, n, width):
    """Multi-label matrices with rows empty in truth, prediction, or both, and a class empty in both."""
    t = (rng.random((n, width)) < rng.uniform(0.05, 0.5)).astype(int)
    p = np.where(rng.random((n, width)) < 0.8, t, 1 - t)
    t[:10] = 0
    p[5:15] = 0  # rows 5-9 empty in both, 0-4 only in truth, 10-14 only in prediction
    t[:, -1] = p[:, -1] = 0  # the last class is never true nor predicted
    return t, p


BOTH_EMPTY = range(5, 10)  # the samples of `random_labels` whose truth and prediction are both empty


@pytest.fixture(params=range(5), ids=lambda s: f"seed{s}")
def data(request):
    rng = np.random.default_rng(request.param)
    ta, pa = random_labels(rng, 120, taxonomy.N_ACTIONS)
    tr, pr = random_labels(rng, 120, taxonomy.N_REASONS)
    return ta, pa, tr, pr


@pytest.mark.parametrize("zd", [0.0, 1.0])
def test_metrics_equal_sklearn_and_reference(data, zd):
    for t, p in (data[:2], data[2:]):
        assert metrics.accuracy(t, p) == pytest.approx(accuracy_score(t.ravel(), p.ravel()), abs=TOL)
        assert metrics.accuracy(t, p) == pytest.approx((t == p).mean(), abs=TOL)
        assert metrics.exact_match(t, p) == pytest.approx(accuracy_score(t, p), abs=TOL)
        assert metrics.exact_match(t, p) == pytest.approx((t == p).all(axis=1).mean(), abs=TOL)

        per_class = metrics.per_class_f1(t, p, zd)
        np.testing.assert_allclose(per_class, f1_score(t, p, average=None, zero_division=zd), atol=TOL)
        np.testing.assert_allclose(per_class, ref_f1(t, p, 0, zd), atol=TOL)
        assert metrics.mean_f1(t, p, zd) == pytest.approx(per_class.mean(), abs=TOL)
        macro = f1_score(t, p, average="macro", zero_division=zd)
        assert metrics.mean_f1(t, p, zd) == pytest.approx(macro, abs=TOL)

        f1_all = metrics.sample_f1(t, p, zd)
        assert f1_all == pytest.approx(f1_score(t, p, average="samples", zero_division=zd), abs=TOL)
        assert f1_all == pytest.approx(ref_f1(t, p, 1, zd).mean(), abs=TOL)


@pytest.mark.parametrize("zd", [0.0, 1.0])
def test_pair_f1_equals_sklearn_and_reference(data, zd):
    ta, pa, tr, pr = data
    truth, pred = ref_pairs(ta, tr), ref_pairs(pa, pr)
    np.testing.assert_array_equal(metrics.pair_matrix(ta, tr), truth)
    got = metrics.pair_f1(ta, pa, tr, pr, zd)
    assert got == pytest.approx(f1_score(truth, pred, average="samples", zero_division=zd), abs=TOL)
    assert got == pytest.approx(ref_f1(truth, pred, 1, zd).mean(), abs=TOL)


def test_nan_zero_division_leaves_undefined_out(data):
    t, p = data[2:]
    assert metrics.sample_f1(t, p, np.nan) == pytest.approx(np.nanmean(ref_f1(t, p, 1, np.nan)), abs=TOL)
    assert metrics.mean_f1(t, p, np.nan) == pytest.approx(np.nanmean(ref_f1(t, p, 0, np.nan)), abs=TOL)


def test_both_empty_samples():
    t = np.array([[0, 0, 0, 0], [1, 0, 0, 0]])
    p = np.array([[0, 0, 0, 0], [1, 0, 0, 0]])
    assert metrics.sample_f1(t, p) == 0.5  # the empty sample scores 0 by default
    assert metrics.sample_f1(t, p, zero_division=1.0) == 1.0
    assert metrics.sample_f1(t, p, zero_division=np.nan) == 1.0  # left out of the mean
    # The default is what sklearn does when not told (it warns as well).
    with pytest.warns(UndefinedMetricWarning):
        assert metrics.sample_f1(t, p) == f1_score(t, p, average="samples")
    # Classes never true nor predicted: 0 by default, like sklearn.
    np.testing.assert_array_equal(metrics.per_class_f1(t, p), [1, 0, 0, 0])
    assert metrics.mean_f1(t, p) == 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.report(t, p, np.zeros((2, 21), int), np.zeros((2, 21), int))  # no warnings


def test_pair_f1_hand_computed():
    F, S, L = 0, 1, 2
    follow, car, light, l_lane = 0, 3, 7, 10
    rows = [  # (true actions, true reasons, predicted actions, predicted reasons) -> sample F1
        ([F], [follow], [F], [follow]),  # same single pair: 1
        ([S], [car, light], [S], [car]),  # 1 of 2 true pairs, precision 1: 2/3
        ([F, L], [follow, l_lane], [F], [follow, l_lane]),  # 2 of 4 true pairs: 2/3
        ([S], [light], [F], [light]),  # right reason, wrong action: 0
        ([F], [], [F], []),  # no pairs on either side: zero_division
    ]

    def matrix(width, col):
        m = np.zeros((len(rows), width), int)
        for i, row in enumerate(rows):
            m[i, row[col]] = 1
        return m

    ta, tr, pa, pr = matrix(4, 0), matrix(21, 1), matrix(4, 2), matrix(21, 3)
    assert metrics.pair_f1(ta, pa, tr, pr) == pytest.approx((1 + 2 / 3 + 2 / 3 + 0 + 0) / 5, abs=TOL)
    with_one = metrics.pair_f1(ta, pa, tr, pr, zero_division=1.0)
    assert with_one == pytest.approx((1 + 2 / 3 + 2 / 3 + 0 + 1) / 5, abs=TOL)
    assert metrics.sample_f1(tr, pr) == pytest.approx((1 + 2 / 3 + 1 + 1 + 0) / 5, abs=TOL)


def test_pair_keys_order():
    a, r = np.zeros((1, 4), int), np.zeros((1, 21), int)
    a[0, 2], r[0, 16] = 1, 1
    (col,) = np.flatnonzero(metrics.pair_matrix(a, r)[0])
    assert metrics.PAIR_KEYS[col] == "left+no_l_lane"
    assert len(metrics.PAIR_KEYS) == 84


def test_report_and_frames(data):
    ta, pa, tr, pr = data
    rep = metrics.report(ta, pa, tr, pr)
    assert rep["n_samples"] == 120 and rep["zero_division"] == 0.0
    assert list(rep["actions"]["f1"]) == list(taxonomy.ACTION_KEYS)
    assert list(rep["reasons"]["f1"]) == list(taxonomy.REASON_KEYS)
    assert rep["reasons"]["f1_all"] == pytest.approx(metrics.sample_f1(tr, pr), abs=TOL)
    assert rep["pair_f1"] == pytest.approx(metrics.pair_f1(ta, pa, tr, pr), abs=TOL)
    np.testing.assert_allclose(list(rep["reasons"]["f1"].values()), metrics.per_class_f1(tr, pr), atol=TOL)

    other = metrics.report(ta, ta, tr, tr)
    frame = metrics.report_frame({"SFT": rep, "A2C": other})
    assert list(frame.index) == ["SFT", "A2C"]
    assert frame.loc["SFT", "F1_act (sample)"] == pytest.approx(100 * rep["actions"]["f1_all"], abs=TOL)
    assert frame.loc["SFT", "F1_pair (sample)"] == pytest.approx(100 * rep["pair_f1"], abs=TOL)
    assert frame.loc["A2C", "Acc_rsn"] == 100

    per_class = metrics.per_class_frame({"SFT": rep, "A2C": other}, "reasons")
    assert per_class.shape == (2, 21)
    assert list(per_class.columns.get_level_values("group").unique()) == ["Forward", "Stop", "Left", "Right"]
    assert list(per_class["Forward"].columns) == ["f_follow_traffic", "f_road_clear", "f_traffic_light"]
    assert list(per_class["Left"].columns) == [taxonomy.REASON_KEYS[i] for i in taxonomy.GROUPS["Left"]]
    car = per_class.loc["SFT", ("Stop", "s_ob_car")]
    assert car == pytest.approx(100 * rep["reasons"]["f1"]["s_ob_car"], abs=TOL)
    actions = metrics.per_class_frame({"SFT": rep}, "actions")
    assert list(actions.columns) == list(zip(["Forward", "Stop", "Left", "Right"], taxonomy.ACTION_KEYS))


def test_distribution(data):
    ta, _, tr, _ = data
    counts = metrics.distribution(tr)
    assert isinstance(counts, pd.Series) and len(counts) == 21
    order = [i for group in taxonomy.GROUPS.values() for i in group]
    np.testing.assert_array_equal(counts.to_numpy(), tr.sum(axis=0)[order])
    assert list(counts.index.get_level_values(1)) == [taxonomy.REASON_KEYS[i] for i in order]
    assert counts[("Stop", "s_traffic_light")] == tr[:, 7].sum()
    assert counts[("Left", "no_l_car")] == tr[:, 15].sum()
    np.testing.assert_array_equal(metrics.distribution(ta).to_numpy(), ta.sum(axis=0))
    with pytest.raises(ValueError):
        metrics.distribution(np.zeros((3, 5), int))


@pytest.mark.parametrize(
    "t, p",
    [
        (np.zeros((3, 4)), np.zeros((2, 4))),
        (np.zeros(4), np.zeros(4)),
        (np.full((2, 4), 2), np.zeros((2, 4))),
    ],
)
def test_bad_inputs_raise(t, p):
    with pytest.raises(ValueError):
        metrics.sample_f1(t, p)


def test_report_checks_widths():
    with pytest.raises(ValueError):
        metrics.report(np.zeros((2, 21)), np.zeros((2, 21)), np.zeros((2, 4)), np.zeros((2, 4)))


def test_random_data_has_empty_samples_and_classes(data):
    """The sklearn comparisons above run on data that exercises every zero_division case."""
    for t, p in (data[:2], data[2:], (metrics.pair_matrix(*data[0::2]), metrics.pair_matrix(*data[1::2]))):
        empty = (t.sum(axis=1) == 0) & (p.sum(axis=1) == 0)
        assert empty[list(BOTH_EMPTY)].all()
        assert ((t.sum(axis=1) == 0) & (p.sum(axis=1) > 0)).any() and ((t.sum(axis=1) > 0) & (p.sum(axis=1) == 0)).any()
        assert ((t.sum(axis=0) == 0) & (p.sum(axis=0) == 0)).any()  # a class never true nor predicted


@pytest.mark.parametrize("zd", [0.0, 1.0, np.nan])
def test_report_equals_sklearn(data, zd):
    """Every number of ``report``, ``report_frame`` and ``per_class_frame`` against sklearn itself."""
    ta, pa, tr, pr = data
    rep = metrics.report(ta, pa, tr, pr, zero_division=zd)
    for kind, t, p, keys in (("actions", ta, pa, taxonomy.ACTION_KEYS), ("reasons", tr, pr, taxonomy.REASON_KEYS)):
        got = rep[kind]
        assert got["accuracy"] == pytest.approx(accuracy_score(t.ravel(), p.ravel()), abs=TOL)
        assert got["exact_match"] == pytest.approx(accuracy_score(t, p), abs=TOL)
        expected = f1_score(t, p, average=None, zero_division=zd)
        np.testing.assert_allclose([got["f1"][k] for k in keys], expected, atol=TOL)  # NaN where undefined
        assert got["mf1"] == pytest.approx(f1_score(t, p, average="macro", zero_division=zd), abs=TOL)
        assert got["f1_all"] == pytest.approx(f1_score(t, p, average="samples", zero_division=zd), abs=TOL)
    pairs = f1_score(metrics.pair_matrix(ta, tr), metrics.pair_matrix(pa, pr), average="samples", zero_division=zd)
    assert rep["pair_f1"] == pytest.approx(pairs, abs=TOL)

    frame = metrics.report_frame({"model": rep}).loc["model"]
    samples = {"act": f1_score(ta, pa, average="samples", zero_division=zd),
               "rsn": f1_score(tr, pr, average="samples", zero_division=zd)}
    assert frame["F1_act (sample)"] == pytest.approx(100 * samples["act"], abs=TOL)
    assert frame["F1_rsn (sample)"] == pytest.approx(100 * samples["rsn"], abs=TOL)
    assert frame["F1_pair (sample)"] == pytest.approx(100 * pairs, abs=TOL)
    assert frame["mF1_rsn"] == pytest.approx(100 * f1_score(tr, pr, average="macro", zero_division=zd), abs=TOL)
    assert frame["Acc_act"] == pytest.approx(100 * accuracy_score(ta.ravel(), pa.ravel()), abs=TOL)
    assert frame["Exact_rsn"] == pytest.approx(100 * accuracy_score(tr, pr), abs=TOL)
    per_class = metrics.per_class_frame({"model": rep}, "reasons").loc["model"]
    order = [i for group in taxonomy.GROUPS.values() for i in group]
    np.testing.assert_allclose(per_class.to_numpy(), 100 * f1_score(tr, pr, average=None, zero_division=zd)[order],
                               atol=TOL)


def test_both_empty_samples_score_zero_division(data):
    """A sample with empty truth and empty prediction scores exactly ``zero_division``: F1_all with 1.0
    exceeds F1_all with 0.0 by (such samples) / n, and NaN leaves them out of the mean."""
    ta, pa, tr, pr = data
    n = len(ta)
    for t, p in ((ta, pa), (tr, pr), (metrics.pair_matrix(ta, tr), metrics.pair_matrix(pa, pr))):
        both = int(((t.sum(axis=1) == 0) & (p.sum(axis=1) == 0)).sum())
        assert both >= len(BOTH_EMPTY)
        zero, one = metrics.sample_f1(t, p, 0.0), metrics.sample_f1(t, p, 1.0)
        assert one - zero == pytest.approx(both / n, abs=TOL)
        assert metrics.sample_f1(t, p, np.nan) == pytest.approx(zero * n / (n - both), abs=TOL)
    # Empty on one side only is a plain miss (F1 0) whatever zero_division says.
    one_sided = np.array([[0, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 0, 0, 0], [0, 0, 0, 0]])
    for zd in (0.0, 1.0):
        assert metrics.sample_f1(*one_sided, zd) == 0.0
    assert np.isnan(metrics.sample_f1(np.zeros((2, 4)), np.zeros((2, 4)), np.nan))  # nothing to average
