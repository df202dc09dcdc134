"""Quadrature rules: exactness on polynomials, known Gaussian integrals, vectorisation, bad input."""

import math

import numpy as np
import pytest
from scipy import integrate, special

from initlab.errors import InitlabError
from initlab.quadrature import MAX_NODES, expect, expect_2d, expect_graded, gauss_hermite


def _double_factorial_moment(k: int) -> float:
    """E[z^k] for z ~ N(0, 1): 0 for odd k, (k - 1)!! for even k."""
    return 0.0 if k % 2 else float(special.factorial2(k - 1)) if k else 1.0


def _quad_expectation(g, q, kinks=(0.0,)):
    """E[g(X)], X ~ N(0, q), by adaptive quadrature on [-12 s, 12 s] split at the kinks."""
    s = math.sqrt(q)
    breaks = sorted({-12 * s, 12 * s, *(k for k in kinks if abs(k) < 12 * s)})
    density = lambda x: math.exp(-x * x / (2 * q)) / math.sqrt(2 * math.pi * q)  # noqa: E731
    return sum(
        integrate.quad(lambda x: g(x) * density(x), a, b, epsabs=0, epsrel=1e-13, limit=500)[0]
        for a, b in zip(breaks[:-1], breaks[1:])
    )


def test_gauss_hermite_weights_sum_to_one_and_rule_is_exact_to_degree_2n_minus_1():
    nodes, weights = gauss_hermite(10)
    assert weights.sum() == pytest.approx(1.0, rel=1e-14)
    for degree in range(20):
        # odd moments vanish; their rounding error scales like the even moment next to them
        scale = _double_factorial_moment(degree + degree % 2)
        assert weights @ nodes**degree == pytest.approx(_double_factorial_moment(degree), rel=1e-12, abs=1e-12 * scale)
    # degree 2n = 20 is the first one the 10-node rule misses
    assert abs(weights @ nodes**20 - _double_factorial_moment(20)) > 1.0


def test_gauss_hermite_is_cached_and_read_only():
    nodes, weights = gauss_hermite(7)
    assert gauss_hermite(7)[0] is nodes
    with pytest.raises(ValueError):
        weights[0] = 1.0


@pytest.mark.parametrize("n", [0, 1.5, True, 361])
def test_gauss_hermite_rejects_bad_node_counts(n):
    with pytest.raises(InitlabError) as error:
        gauss_hermite(n)
    assert str(error.value) == (
        f"gauss_hermite: n={n!r} is invalid; expected an integer number of nodes in [1, 360]."
    )


def test_expect_is_vectorised_over_q_and_matches_closed_forms():
    q = np.array([[0.0, 0.25, 1.0], [2.0, 3.0, 4.0]])
    # E[cos(sqrt(q) z)] = exp(-q / 2); E[u^4] = 3 q^2
    np.testing.assert_allclose(expect(np.cos, q), np.exp(-q / 2), rtol=1e-13)
    np.testing.assert_allclose(expect(lambda x: x**4, q), 3 * q**2, rtol=1e-13)
    assert isinstance(expect(np.cos, 1.0), float)


def test_expect_graded_is_exact_on_a_kink_where_gauss_hermite_is_not():
    q = np.array([1e-6, 1e-2, 1.0, 1e2, 1e6])
    exact = np.sqrt(2 * q / np.pi)  # E|u|
    np.testing.assert_allclose(expect_graded(np.abs, q), exact, rtol=1e-13)
    assert abs(expect(np.abs, 1.0) - math.sqrt(2 / math.pi)) > 1e-5


@pytest.mark.parametrize("q", [1e-4, 0.3, 1.0, 10.0, 1e3, 1e6])
def test_expect_graded_resolves_sharp_features_for_large_q(q):
    sech4 = lambda x: 1 / np.cosh(np.minimum(np.abs(x), 150)) ** 4  # noqa: E731
    assert expect_graded(sech4, q) == pytest.approx(_quad_expectation(sech4, q), rel=1e-10)


def test_expect_2d_reproduces_gaussian_moments_and_the_erf_kernel():
    q1, q2 = np.array([0.5, 1.0, 2.0]), np.array([1.0, 0.2, 2.0])
    q12 = np.array([0.3, -0.4, 0.9]) * np.sqrt(q1 * q2)
    np.testing.assert_allclose(expect_2d(lambda a, b: a * b, q1, q2, q12), q12, rtol=1e-13)
    np.testing.assert_allclose(
        expect_2d(lambda a, b: a**2 * b**2, q1, q2, q12), q1 * q2 + 2 * q12**2, rtol=1e-12
    )
    # Williams (1997): E[erf(u1) erf(u2)] = (2/pi) arcsin(2 q12 / sqrt((1 + 2 q1)(1 + 2 q2)))
    kernel = 2 / np.pi * np.arcsin(2 * q12 / np.sqrt((1 + 2 * q1) * (1 + 2 * q2)))
    erf_pair = lambda a, b: special.erf(a) * special.erf(b)  # noqa: E731
    np.testing.assert_allclose(expect_2d(erf_pair, q1, q2, q12, n=96), kernel, rtol=1e-9)


def test_expect_2d_broadcasts_and_chunks_consistently():
    q = np.linspace(0.0, 3.0, 1500)  # 1500 * 48**2 values: more than one chunk
    result = expect_2d(lambda a, b: np.tanh(a) * np.tanh(b), q, 1.0, 0.5 * np.sqrt(q))
    assert result.shape == q.shape
    for index in (0, 700, 1499):
        assert result[index] == expect_2d(lambda a, b: np.tanh(a) * np.tanh(b), q[index], 1.0, 0.5 * np.sqrt(q[index]))
    assert result[0] == 0.0


def test_expect_2d_rejects_a_covariance_beyond_the_cauchy_schwarz_bound():
    with pytest.raises(InitlabError) as error:
        expect_2d(lambda a, b: a * b, 1.0, 1.0, 1.5)
    assert str(error.value) == (
        "expect_2d: q12=1.5 is invalid; expected a covariance with |q12| <= sqrt(q1 * q2). "
        "A covariance larger than the product of the standard deviations is not positive semi-definite."
    )


def test_negative_variance_and_wrong_shape_are_rejected():
    with pytest.raises(InitlabError) as error:
        expect(np.cos, [1.0, -0.5])
    assert str(error.value) == "expect: q=[1.0, -0.5] is invalid; expected finite variances >= 0."
    for scalar in (-0.5, float("nan"), float("inf")):  # one number takes a path of its own
        with pytest.raises(InitlabError) as error:
            expect(np.cos, scalar)
        assert str(error.value) == f"expect: q={scalar!r} is invalid; expected finite variances >= 0."
    assert expect(np.cos, 0.0) == pytest.approx(1.0)
    with pytest.raises(InitlabError) as error:
        expect_graded(lambda x: x.sum(), 1.0)
    assert str(error.value) == (
        "expect_graded: f returned shape () for an input of shape (480,); "
        "expected a vectorised function that maps an array to an array of the same shape."
    )


def test_largest_offered_rule_has_finite_weights():
    nodes, weights = gauss_hermite(MAX_NODES)
    assert np.all(np.isfinite(weights)) and weights.sum() == pytest.approx(1.0, rel=1e-12)
