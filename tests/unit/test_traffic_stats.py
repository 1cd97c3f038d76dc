"""The traffic report's statistics: chi-square p-values against scipy, percentiles against numpy,
and the test's handling of endpoints that never answered and of weights."""

from __future__ import annotations

import math

import numpy
import pytest
from scipy import stats as sp

from netemu.traffic.stats import chi2_sf, chi_square, percentile, summary


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 30])
@pytest.mark.parametrize("x", [0.001, 0.5, 1.0, 2.5, 6.0, 11.3, 25.0, 80.0])
def test_chi2_sf_matches_scipy(x, dof):
    assert chi2_sf(x, dof) == pytest.approx(sp.chi2.sf(x, dof), rel=1e-9, abs=1e-14)


def test_chi2_sf_edges():
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(1e6, 2) == pytest.approx(0.0, abs=1e-300)
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)


def test_chi_square_uniform_matches_scipy():
    observed = {"a": 310, "b": 290, "c": 400}
    got = chi_square(observed)
    want = sp.chisquare([310, 290, 400])
    assert got["statistic"] == pytest.approx(want.statistic)
    assert got["p_value"] == pytest.approx(want.pvalue)
    assert got["dof"] == 2


def test_chi_square_weights_and_silent_endpoint():
    """A weighted endpoint that never answered counts as 0 (the loudest deviation)."""
    got = chi_square({"a": 50, "b": 50}, {"a": 1, "b": 1, "c": 1})
    want = sp.chisquare([50, 50, 0])
    assert got["p_value"] == pytest.approx(want.pvalue)
    weighted = chi_square({"a": 200, "b": 100}, {"a": 2, "b": 1})
    assert weighted["statistic"] == pytest.approx(0.0) and weighted["p_value"] == pytest.approx(1.0)
    assert chi_square({"a": 10, "b": 0}, {"a": 1, "b": 0}) is None     # one endpoint left: no test
    with pytest.raises(ValueError, match="without a weight"):
        chi_square({"a": 1, "z": 3}, {"a": 1, "b": 1})
    impossible = chi_square({"a": 5, "b": 5}, {"a": 1, "b": 0})
    assert impossible["p_value"] == 0.0 and math.isinf(impossible["statistic"])


def test_chi_square_nothing_to_test():
    assert chi_square({}) is None
    assert chi_square({"a": 10}) is None
    assert chi_square({"a": 0, "b": 0}) is None


@pytest.mark.parametrize("p", [0, 10, 50, 90, 99, 100])
def test_percentile_matches_numpy(p):
    values = sorted([0.3, 1.7, 0.2, 9.1, 4.4, 4.4, 0.05, 3.3, 2.0, 7.5, 1.1])
    assert percentile(values, p) == pytest.approx(numpy.percentile(values, p))


def test_summary():
    s = summary([0.003, 0.001, 0.002])
    assert s["count"] == 3 and s["p50"] == pytest.approx(0.002) and s["max"] == pytest.approx(0.003)
    assert summary([]) == {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
