"""Sampling-theory checks shared by the framework tests.

For n independent draws with std sigma and excess kurtosis k, the sample
mean has std sigma/sqrt(n) and the sample std has std ~ sigma * sqrt((k + 2) / (4 n))
(as in tests/test_schemes.py); checks allow 5 of those standard errors (a
false alarm has probability < 1e-6). Kolmogorov-Smirnov tests use fixed
seeds or keys and require p > 1e-4.
"""

import math

import numpy as np

KS_P_MIN = 1e-4
STANDARD_ERRORS = 5.0


def assert_std_close(values, std: float, kurtosis: float = 0.0, mean: float = 0.0) -> None:
    """The sample std and mean of ``values`` are within 5 standard errors of ``std`` and ``mean``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    std_error = std * math.sqrt((kurtosis + 2.0) / (4.0 * n))
    assert abs(values.std() - std) <= STANDARD_ERRORS * std_error, (values.std(), std, std_error)
    assert abs(values.mean() - mean) <= STANDARD_ERRORS * std / math.sqrt(n), (values.mean(), mean)
