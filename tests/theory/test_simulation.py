"""A wide random numpy network follows the mean-field prediction within sampling error."""

import math

import numpy as np
import pytest

from initlab.quadrature import expect_graded
from initlab.theory import MeanField

WIDTH, SEEDS, DEPTH = 1500, 4, 6
SIGMA_W2, SIGMA_B2, Q0, C0 = 2.5, 0.05, 1.0, 0.6


def simulate(seed):
    """Forward two inputs through a tanh network, back-propagate a random error; per-layer statistics."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((WIDTH, 2)))[0] * math.sqrt(WIDTH * Q0)
    h1 = basis[:, 0]
    h2 = C0 * basis[:, 0] + math.sqrt(1 - C0**2) * basis[:, 1]  # exactly q0 and c0 empirically
    q, c, pre, weights = [np.mean(h1**2)], [np.mean(h1 * h2) / np.mean(h1**2)], [h1], []
    for _ in range(DEPTH):
        w = rng.standard_normal((WIDTH, WIDTH)) * math.sqrt(SIGMA_W2 / WIDTH)
        b = rng.standard_normal(WIDTH) * math.sqrt(SIGMA_B2)
        h1, h2 = w @ np.tanh(h1) + b, w @ np.tanh(h2) + b
        q.append(np.mean(h1**2))
        c.append(np.mean(h1 * h2) / math.sqrt(np.mean(h1**2) * np.mean(h2**2)))
        pre.append(h1)
        weights.append(w)
    delta = rng.standard_normal(WIDTH)
    squared_norms = [np.sum(delta**2)]
    for layer in range(DEPTH - 1, -1, -1):
        delta = (1 - np.tanh(pre[layer]) ** 2) * (weights[layer].T @ delta)
        squared_norms.append(np.sum(delta**2))
    norms = np.array(squared_norms[::-1])
    return np.array(q), np.array(c), norms[:-1] / norms[1:]


@pytest.fixture(scope="module")
def measured():
    runs = [simulate(seed) for seed in range(SEEDS)]
    return tuple(np.mean([run[k] for run in runs], axis=0) for k in range(3))


@pytest.fixture(scope="module")
def field():
    return MeanField("tanh", SIGMA_W2, SIGMA_B2)


def test_layer_variances_match_q_map(measured, field):
    q_measured, _, _ = measured
    predicted = field.propagate(DEPTH, q0=Q0).q
    # Given layer l, h^{l+1}_i are iid N(0, q^{l+1}): the sample mean of h^2 has relative std
    # sqrt(2 / N). Errors injected at earlier layers decay by the q-map slope s per layer, so the
    # accumulated std is at most sqrt(2 / N) / sqrt(1 - s^2); averaged over the seeds, 5 sigma.
    slope = min(field.q_map_slope, 0.9)
    tolerance = 5 * math.sqrt(2 / (WIDTH * SEEDS)) / math.sqrt(1 - slope**2)
    assert np.all(np.abs(q_measured / predicted - 1) < tolerance), (q_measured, predicted)
    # and the test can fail: a 10 % different weight variance is outside the tolerance
    wrong = MeanField("tanh", SIGMA_W2 * 1.1, SIGMA_B2).propagate(DEPTH, q0=Q0).q
    assert np.any(np.abs(q_measured / wrong - 1) > tolerance)


def test_layer_correlations_match_c_map(measured, field):
    _, c_measured, _ = measured
    predicted = field.propagate(DEPTH, q0=Q0, c0=C0).c
    # the sample correlation of N pairs has std <= (1 - c^2) / sqrt(N) + the q noise; errors decay
    # by chi_c per layer, so accumulated std <= sqrt(2 / N) / sqrt(1 - chi_c^2); 5 sigma over seeds.
    chi = min(field.chi_1, 0.95) if field.chi_1 < 1 else min(field.chi_c, 0.95)
    tolerance = 5 * math.sqrt(2 / (WIDTH * SEEDS)) / math.sqrt(1 - chi**2)
    assert np.all(np.abs(c_measured - predicted) < tolerance), (c_measured, predicted)
    assert abs(predicted[-1] - field.c_star) < abs(predicted[0] - field.c_star)  # moves toward c*


def test_gradient_norms_grow_by_chi_per_layer(measured, field):
    _, _, ratios = measured
    propagation = field.propagate(DEPTH, q0=Q0)
    # ||delta^l||^2 = sum_i phi'(h_i)^2 g_i^2, g ~ N(0, chi-scaled): relative variance per unit
    # 3 mu_2 / mu_1^2 - 1 with mu_k = E[phi'^(2k)]; over N units and the seeds, 5 sigma.
    q_star = field.q_star
    mu_1 = expect_graded(lambda u: (1 - np.tanh(u) ** 2) ** 2, q_star)
    mu_2 = expect_graded(lambda u: (1 - np.tanh(u) ** 2) ** 4, q_star)
    tolerance = 5 * math.sqrt((3 * mu_2 / mu_1**2 - 1) / (WIDTH * SEEDS))
    assert np.all(np.abs(ratios / propagation.chi - 1) < tolerance), (ratios, propagation.chi)
    assert propagation.gradient_norm_ratio[0] == pytest.approx(np.prod(propagation.chi), rel=1e-12)
