"""The always-valid bound: looking at a growing sample again and again keeps its error rate."""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import pytest

from registry.rollouts.sequential import boundary, lower_bound, tuned_time


def test_a_random_walk_rarely_ever_crosses_the_boundary_however_often_we_look() -> None:
    rng = random.Random(5)
    alpha, looks, paths = 0.05, 300, 1_000
    fixed = NormalDist().inv_cdf(1 - alpha)
    bounds = [boundary(tuned_time(n, 20, alpha), alpha) for n in range(1, looks + 1)]
    ever_sequential = ever_fixed = 0
    for _ in range(paths):
        total, crossed_sequential, crossed_fixed = 0.0, False, False
        for n in range(1, looks + 1):
            total += rng.gauss(0, 1)
            z = total / math.sqrt(n)
            crossed_sequential |= z > bounds[n - 1]
            crossed_fixed |= z > fixed
        ever_sequential += crossed_sequential
        ever_fixed += crossed_fixed
    assert ever_sequential / paths <= alpha
    assert ever_fixed / paths > 4 * alpha  # the naive test, peeked at: why this exists


def test_the_boundary_is_tightest_near_the_tuned_count_and_grows_slowly_after() -> None:
    alpha = 0.01 / 3
    at = {n: boundary(tuned_time(n, 200, alpha), alpha) for n in (20, 200, 6_000, 600_000)}
    assert at[200] == pytest.approx(3.69, abs=0.01)
    assert at[20] > at[200] < at[6_000] < at[600_000] < 5
    assert at[200] > NormalDist().inv_cdf(1 - alpha)  # wider than a fixed-sample bound


def test_a_smaller_alpha_gives_a_wider_bound() -> None:
    r = tuned_time(1_000, 200, 0.01)
    assert boundary(r, 0.001) > boundary(r, 0.01) > boundary(r, 0.1)


def test_no_spread_leaves_the_estimate_and_no_data_bounds_nothing() -> None:
    assert lower_bound(1.5, 0.0, 10.0, 0.01) == 1.5
    assert lower_bound(1.5, 0.1, 0.0, 0.01) == -math.inf


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.2])
def test_alpha_outside_zero_to_half_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        boundary(1.0, alpha)
