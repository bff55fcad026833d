"""Statistics for claims about learning: spread over seeds, and clip-by-clip comparisons.

A method is compared with SFT over several seeds (CleanRL reports every result so), and within a
seed clip by clip on the same test clips rather than through two averages:

- :func:`over_seeds`: mean, sample standard deviation and a 95 % t-interval of one number per seed;
- :func:`paired`: the clips a method gets exactly right (every action and reason) where the
  reference was wrong ("fixed") and the other way round ("broken");
- :func:`sign_test`: the exact two-sided sign test (McNemar's exact test) on fixed vs broken
  counts: under "no difference" each discordant clip is a fair coin. Per seed; :func:`pooled` sums
  seeds, which is a valid test only where the seeds' clips are independent draws;
- :func:`paired_size`: how many clips a paired comparison needs to see a given difference;
- :func:`holm`: Holm's step-down adjustment of a family of p-values (valid under any dependence between
  the tests, as between seeds scored on the same clips);
- :func:`wilson`: the Wilson interval of a share; :func:`trend_test`: the Cochran-Armitage test of a
  trend in a 0/1 outcome over an ordered score (e.g. whether a vote is right, over training steps).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats


def over_seeds(values: Sequence[float], confidence: float = 0.95) -> dict:
    """``{"mean", "sd", "low", "high", "n"}`` of per-seed values; the interval is Student's t on the
    mean (``low == high == mean`` for one seed, where no spread can be known: ``sd`` is NaN)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("no values")
    mean = float(x.mean())
    if n == 1:
        return dict(mean=mean, sd=float("nan"), low=mean, high=mean, n=1)
    sd = float(x.std(ddof=1))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n))
    return dict(mean=mean, sd=sd, low=mean - half, high=mean + half, n=n)


def exactly_right(rows: Sequence[Mapping]) -> dict[str, bool]:
    """Per clip (``file_name``): are the predicted actions and reasons exactly the true ones?"""
    return {r["file_name"]: list(r["actions_pred"]) == list(r["actions_true"])
            and list(r["reasons_pred"]) == list(r["reasons_true"]) for r in rows}


def paired(reference: Sequence[Mapping], rows: Sequence[Mapping]) -> dict:
    """``{"fixed", "broken", "both_right", "both_wrong", "n"}`` of ``rows`` against ``reference`` on
    the same clips (prediction rows of :mod:`drivekit.evaluation.reports`)."""
    ref, new = exactly_right(reference), exactly_right(rows)
    if set(ref) != set(new):
        raise ValueError(f"the two sets of predictions cover different clips ({len(ref)} vs {len(new)}, "
                         f"{len(set(ref) ^ set(new))} differ)")
    fixed = sum(new[c] and not ref[c] for c in ref)
    broken = sum(ref[c] and not new[c] for c in ref)
    both = sum(ref[c] and new[c] for c in ref)
    return dict(fixed=fixed, broken=broken, both_right=both, both_wrong=len(ref) - fixed - broken - both, n=len(ref))


def sign_test(fixed: int, broken: int) -> float:
    """Two-sided exact sign test p-value of ``fixed`` vs ``broken`` discordant clips (1 with none)."""
    if fixed + broken == 0:
        return 1.0
    return float(scipy_stats.binomtest(fixed, fixed + broken).pvalue)


def pooled(comparisons: Sequence[Mapping]) -> dict:
    """Fixed and broken clips summed over seeds (each seed's :func:`paired`), and their sign test."""
    fixed = sum(c["fixed"] for c in comparisons)
    broken = sum(c["broken"] for c in comparisons)
    return dict(fixed=fixed, broken=broken, p=sign_test(fixed, broken), seeds=len(comparisons))


def paired_size(discordant: float, difference: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Clips needed for McNemar's test at level ``alpha`` to detect, with probability ``power``, a
    ``difference`` in the share of clips two models get exactly right, when they disagree (one right,
    the other wrong) on a share ``discordant`` of the clips (Connor, 1987):

        n = (z_{1-α/2}·√d + z_{1-power}·√(d − δ²))² / δ²,   d = discordant, δ = difference.
    """
    if not 0 < difference <= discordant <= 1:
        raise ValueError(f"need 0 < difference ({difference}) <= discordant ({discordant}) <= 1")
    za, zb = scipy_stats.norm.ppf(1 - alpha / 2), scipy_stats.norm.ppf(power)
    return int(np.ceil((za * np.sqrt(discordant) + zb * np.sqrt(discordant - difference ** 2)) ** 2 / difference ** 2))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values, in the order given: the i-th smallest p becomes
    max over j <= i of min(1, (m - j + 1) · p_(j)). Rejecting where the adjusted p < α controls the
    family-wise error rate at α under any dependence between the tests."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order])) if m else p
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the share ``k / n`` (NaN, NaN for ``n == 0``)."""
    if n == 0:
        return float("nan"), float("nan")
    ci = scipy_stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def trend_test(scores: Sequence[float], outcomes: Sequence[int]) -> dict:
    """The Cochran-Armitage test of a linear trend in the 0/1 ``outcomes`` over ``scores`` (one pair per
    observation): ``z`` (positive: the share rises with the score) and its two-sided ``p``. It is the score
    test of the slope of a logistic regression of the outcome on the score:
    z = Σ (t_i − t̄)(x_i − p̄) / √(p̄(1 − p̄) Σ (t_i − t̄)²). ``z`` and ``p`` are NaN where either does not vary."""
    t, x = np.asarray(scores, dtype=float), np.asarray(outcomes, dtype=float)
    if len(t) != len(x):
        raise ValueError(f"{len(t)} scores for {len(x)} outcomes")
    share = x.mean() if len(x) else float("nan")
    spread = float(((t - t.mean()) ** 2).sum()) if len(t) else 0.0
    if not len(x) or share in (0.0, 1.0) or spread == 0:
        return dict(z=float("nan"), p=float("nan"), n=len(x))
    z = float(((t - t.mean()) * (x - share)).sum() / np.sqrt(share * (1 - share) * spread))
    return dict(z=z, p=float(2 * scipy_stats.norm.sf(abs(z))), n=len(x))
