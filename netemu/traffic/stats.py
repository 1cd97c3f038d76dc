"""The numbers a traffic run reports: percentiles and the chi-square test of the endpoint counts.

Pure and dependency-free on purpose: the p-value is the regularized upper incomplete gamma
function Q(k/2, x/2) computed as Numerical Recipes does (series below a+1, Lentz's continued
fraction above), so the product does not need scipy; the tests check it against scipy.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

PERCENTILES = (50, 90, 99)
_EPS = 1e-15
_TINY = 1e-300


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile of already sorted values, linear between closest ranks (numpy's
    default); None for no values."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = (len(sorted_values) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low))


def summary(values: Iterable[float]) -> dict[str, float | int | None]:
    """count, mean, p50/p90/p99 and max of ``values`` (seconds in, seconds out)."""
    ordered = sorted(values)
    out: dict[str, float | int | None] = {"count": len(ordered),
                                          "mean": sum(ordered) / len(ordered) if ordered else None}
    for p in PERCENTILES:
        out[f"p{p}"] = percentile(ordered, p)
    out["max"] = float(ordered[-1]) if ordered else None
    return out


def _gamma_series(a: float, x: float) -> float:
    """P(a, x) by its series (converges fast for x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_fraction(a: float, x: float) -> float:
    """Q(a, x) by its continued fraction, modified Lentz (for x >= a + 1)."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X chi-square distributed with ``dof`` degrees of freedom."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, not {dof}")
    if x <= 0:
        return 1.0
    a, half = dof / 2.0, x / 2.0
    if half < a + 1.0:
        return max(0.0, 1.0 - _gamma_series(a, half))
    return min(1.0, _gamma_fraction(a, half))


def chi_square(observed: Mapping[str, int], weights: Mapping[str, float] | None = None) -> dict | None:
    """Pearson's goodness-of-fit test of the endpoint counts against ``weights`` (None: every
    endpoint of ``observed`` equally likely). An endpoint with weight but no answer counts as 0:
    a backend that never answered is the loudest deviation, not a missing row.

    Returns {"statistic", "dof", "p_value", "expected"} or None when there is nothing to test
    (fewer than two endpoints, or no answers)."""
    names = sorted(set(observed) | set(weights or {}))
    if weights is not None:
        unknown = [n for n in observed if observed[n] and n not in weights]
        if unknown:
            raise ValueError(f"answers from endpoints without a weight: {', '.join(sorted(unknown))}")
        if any(w < 0 for w in weights.values()) or not sum(weights.values()) > 0:
            raise ValueError("weights must be >= 0 and not all 0")
        names = [n for n in names if weights.get(n, 0) > 0 or observed.get(n, 0)]
    total = sum(observed.get(n, 0) for n in names)
    if len(names) < 2 or total == 0:
        return None
    w = {n: (weights[n] if weights is not None else 1.0) for n in names}
    scale = total / sum(w.values())
    expected = {n: w[n] * scale for n in names}
    if any(e == 0 for e in expected.values()):   # answers from a weight-0 endpoint: impossible
        return {"statistic": math.inf, "dof": len(names) - 1, "p_value": 0.0, "expected": expected}
    stat = sum((observed.get(n, 0) - expected[n]) ** 2 / expected[n] for n in names)
    return {"statistic": stat, "dof": len(names) - 1, "p_value": chi2_sf(stat, len(names) - 1),
            "expected": expected}
