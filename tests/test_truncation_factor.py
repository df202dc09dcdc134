"""The truncated normal's std factor c(b) is exact for every bound, however small."""

import math

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.schemes import truncated_normal
from initlab.schemes.basic import KERAS_TRUNCATION_CORRECTION, truncated_std_factor


def _series(bound):
    """c(b) from the Taylor series of E[X^2 | |X| <= b] = (int x^2 phi) / (int phi) to order b^4."""
    b2 = bound * bound
    numerator = 1.0 - 3.0 * b2 / 10.0 + 3.0 * b2 * b2 / 56.0
    denominator = 1.0 - b2 / 6.0 + b2 * b2 / 40.0
    return bound / math.sqrt(3.0) * math.sqrt(numerator / denominator)


def _direct(bound):
    """c(b)^2 = 1 - 2 b phi(b) / (2 Phi(b) - 1): exact where nothing cancels (b of order 1 and above)."""
    density = math.exp(-0.5 * bound * bound) / math.sqrt(2.0 * math.pi)
    return math.sqrt(1.0 - 2.0 * bound * density / math.erf(bound / math.sqrt(2.0)))


@pytest.mark.parametrize("bound", [1e-300, 1e-12, 1e-7, 1e-6, 5e-5, 1e-4, 2e-4, 1e-3])
def test_small_bounds_match_the_series(bound):
    # the series' error is O(b^6) relative: below 1e-18 for b <= 1e-3
    assert truncated_std_factor(bound) == pytest.approx(_series(bound), rel=4e-15)


@pytest.mark.parametrize("bound", [0.5, 1.0, 2.0, 3.0, 6.0, 40.0])
def test_bounds_of_order_one_match_the_direct_formula(bound):
    assert truncated_std_factor(bound) == pytest.approx(_direct(bound), rel=1e-14)


def test_keras_constant():
    assert truncated_std_factor(2.0) == pytest.approx(KERAS_TRUNCATION_CORRECTION, rel=1e-15)


@pytest.mark.parametrize("bound", [1e-6, 1e-7])
def test_corrected_small_bound_samples_and_records_std_one(bound):
    scheme = truncated_normal(std=1.0, bound=bound, corrected=True)
    assert scheme.target_std() == pytest.approx(1.0, rel=1e-12)
    values = scheme.sample((400, 250), seed=0).astype(np.float64)
    # nearly uniform on [-sqrt(3), sqrt(3)]: Var(X^2) = 9/5 - 1, so std(sample std) ~ sqrt(0.8 / n) / 2 = 0.0014
    assert values.std() == pytest.approx(1.0, abs=5 * math.sqrt(0.8 / values.size) / 2)
    assert np.abs(values).max() <= math.sqrt(3.0) * (1 + 1e-6)


def test_a_bound_too_small_to_correct_is_a_named_error():
    with pytest.raises(InitlabError, match=r"truncated_normal: bound=1e-320 with corrected=True"):
        truncated_normal(std=1.0, bound=1e-320, corrected=True)
