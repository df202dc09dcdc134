"""numpy: ``scheme.sample`` is the article's one-line recipe, with the 1-D vector rule."""

import math

import numpy as np
import pytest
from framework_stats import KS_P_MIN, assert_std_close
from scipy import stats

import initlab
from initlab import InitlabError

N = 200_000


def test_he_normal_vector_is_the_numpy_recipe():
    """``initlab.he_normal().sample((n,))`` ~ ``rng.standard_normal(n) * sqrt(2 / n)``."""
    ours = initlab.he_normal().sample((N,), seed=0, name="w")
    recipe = np.random.default_rng(0).standard_normal(N) * np.sqrt(2.0 / N)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32 and ours.shape == (N,)
    assert stats.ks_2samp(ours, recipe).pvalue > KS_P_MIN
    assert stats.kstest(ours, stats.norm(0.0, math.sqrt(2.0 / N)).cdf).pvalue > KS_P_MIN
    assert_std_close(ours, math.sqrt(2.0 / N))


def test_a_vector_has_fan_in_and_fan_out_n():
    """(n,) reads as fan_in = fan_out = n: he_normal equals the (1, n) row; glorot scales by sqrt((n + 1) / (2 n))."""
    n = 1000
    vector = initlab.he_normal().sample((n,), seed=4, name="v")
    row = initlab.he_normal().sample((1, n), seed=4, name="v")[0]
    assert np.array_equal(vector, row)  # same stream, same std sqrt(2 / n)
    glorot_vector = initlab.glorot_normal().sample((n,), seed=4, name="v").astype(np.float64)
    glorot_row = initlab.glorot_normal().sample((1, n), seed=4, name="v")[0].astype(np.float64)
    # vector: sigma^2 = 2 / (n + n); row (1, n): sigma^2 = 2 / (n + 1)
    np.testing.assert_allclose(glorot_vector, glorot_row * math.sqrt((n + 1) / (2 * n)), rtol=1e-6)
    bound = math.sqrt(3.0 / N)
    uniform = initlab.lecun_uniform().sample((N,), seed=1, name="u")
    assert uniform.max() <= bound and uniform.min() >= -bound
    assert uniform.max() >= 0.99 * bound and uniform.min() <= -0.99 * bound


def test_a_vector_keeps_the_errors_of_schemes_that_need_a_matrix():
    with pytest.raises(InitlabError) as caught:
        initlab.orthogonal().sample((8,), name="v")
    assert str(caught.value) == (
        "orthogonal cannot initialise 'v' (shape (8,)): it needs a tensor with 2 or more non-empty dimensions. "
        "Use zeros() or constant(value) for biases."
    )
    with pytest.raises(InitlabError, match=r"shape=\(\) has 0 dimension\(s\)"):
        initlab.he_normal().sample(())
