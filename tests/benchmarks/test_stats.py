"""The arithmetic of the reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.stats import distribution, gaps, median, percentile, ratio, spread


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 100])
@pytest.mark.parametrize("values", [[3.0], [2.0, 1.0], [5, 1, 4, 2, 3], list(range(17, 0, -2))])
def test_percentile_matches_numpy_linear(values, q):
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges():
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_median_and_spread():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    empty = spread([])
    assert empty["n"] == 0 and math.isnan(empty["median"])


def test_distribution():
    d = distribution([0.1 * i for i in range(1, 101)])
    assert d["n"] == 100
    assert d["mean"] == pytest.approx(5.05)
    assert d["median"] == pytest.approx(5.05)
    assert d["p95"] == pytest.approx(9.505)
    assert d["p99"] == pytest.approx(9.901)
    assert d["max"] == pytest.approx(10.0)
    assert math.isnan(distribution([])["p99"])


def test_ratio_and_gaps():
    assert ratio(6, 3) == 2
    assert math.isnan(ratio(1, 0))
    assert math.isnan(ratio(math.nan, 2))
    assert gaps([1.0, 1.5, 3.0]) == [0.5, 1.5]
    assert gaps([1.0]) == []
