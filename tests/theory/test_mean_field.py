"""Mean-field theory against closed forms, known critical points and exact error messages."""

import math

import numpy as np
import pytest
from scipy import integrate, optimize, special

from initlab.activations import SELU_ALPHA, SELU_SCALE
from initlab.errors import InitlabError
from initlab.theory import MeanField, critical_line, critical_sigma_w2, phase_diagram

# ---------------------------------------------------------------- closed-form references


def relu_q_map(q, sigma_w2, sigma_b2):
    return sigma_w2 * q / 2 + sigma_b2


def relu_c_map(c, q, sigma_w2, sigma_b2):
    """Arc-cosine kernel of degree 1 (Cho & Saul 2009)."""
    theta = math.acos(c)
    pair = q * (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2 * math.pi)
    return (sigma_w2 * pair + sigma_b2) / q


def erf_q_map(q, sigma_w2, sigma_b2):
    """Williams (1998): E[erf(u)^2] = (2/pi) arcsin(2q / (1 + 2q))."""
    return sigma_w2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + sigma_b2


def erf_c_map(c, q, sigma_w2, sigma_b2):
    return (sigma_w2 * 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q)) + sigma_b2) / q


REL = 1e-8


@pytest.mark.parametrize("q", [1e-3, 0.3, 1.0, 7.5, 1e3])
def test_relu_q_map_matches_closed_form(q):
    field = MeanField("relu", 1.7, 0.1)
    assert field.q_map(q) == pytest.approx(relu_q_map(q, 1.7, 0.1), rel=REL)


@pytest.mark.parametrize("c", [-1.0, -0.6, 0.0, 0.3, 0.9, 0.999, 1.0])
def test_relu_c_map_matches_arc_cosine_kernel(c):
    field = MeanField("relu", 1.7, 0.1)
    q_star = 0.1 / (1 - 1.7 / 2)
    assert field.q_star == pytest.approx(q_star, rel=1e-12)
    assert field.c_map(c) == pytest.approx(relu_c_map(c, q_star, 1.7, 0.1), rel=REL)


@pytest.mark.parametrize("q", [1e-3, 0.3, 1.0, 7.5])
def test_erf_q_map_matches_williams(q):
    field = MeanField("erf", 2.5, 0.2)
    assert field.q_map(q) == pytest.approx(erf_q_map(q, 2.5, 0.2), rel=REL)


@pytest.mark.parametrize("spec", ["erf", special.erf], ids=["named", "numpy-callable"])
@pytest.mark.parametrize("c", [-0.8, 0.0, 0.5, 0.95])
def test_erf_c_map_matches_williams_by_closed_form_and_by_2d_quadrature(spec, c):
    # the callable has no closed-form kernel: this checks the 2-D Gauss-Hermite path
    field = MeanField(spec, 2.5, 0.2)
    reference_q_star = field.q_star
    assert erf_q_map(reference_q_star, 2.5, 0.2) == pytest.approx(reference_q_star, rel=1e-12)
    assert field.c_map(c) == pytest.approx(erf_c_map(c, reference_q_star, 2.5, 0.2), rel=REL)


def test_erf_chaotic_fixed_point_satisfies_williams_c_map():
    field = MeanField("erf", 3.0, 0.05)
    assert field.phase == "chaotic"
    c_star = field.c_star
    assert erf_c_map(c_star, field.q_star, 3.0, 0.05) == pytest.approx(c_star, rel=1e-10)
    # chi_c = sigma_w2 E[erf'(u1) erf'(u2)] = sigma_w2 (4/pi) / sqrt((1+2q)^2 - (2qc)^2)
    q = field.q_star
    chi_c = 3.0 * 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - (2 * q * c_star) ** 2)
    assert field.chi_c == pytest.approx(chi_c, rel=REL)
    assert field.xi_c == pytest.approx(-1 / math.log(chi_c), rel=REL)


def test_linear_network_is_exact():
    field = MeanField("linear", 0.5, 0.3)
    assert field.q_star == pytest.approx(0.3 / (1 - 0.5), rel=1e-12)
    assert field.chi_1 == pytest.approx(0.5, rel=1e-12)
    q = field.q_star
    assert field.c_map(0.4) == pytest.approx((0.5 * q * 0.4 + 0.3) / q, rel=1e-12)
    assert field.xi_q == pytest.approx(-1 / math.log(0.5), rel=1e-12)
    assert field.xi_c == pytest.approx(-1 / math.log(0.5), rel=1e-12)


def test_relu_without_bias_is_critical_at_two_exactly():
    assert critical_sigma_w2("relu", 0.0) == 2.0
    field = MeanField("relu", 2.0, 0.0)
    assert field.chi_1 == 1.0
    assert field.phase == "critical"
    assert field.xi_c == math.inf
    assert MeanField("relu", 1.9, 0.0).phase == "ordered"


def test_selu_with_lecun_normal_has_unit_fixed_point():
    field = MeanField("selu", 1.0, 0.0)
    assert field.q_star == pytest.approx(1.0, rel=1e-9)
    # the same with the constants written out, through the generic callable path
    def selu(x):
        return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))

    assert MeanField(selu, 1.0, 0.0).q_star == pytest.approx(1.0, rel=1e-8)
    assert SELU_SCALE == 1.0507009873554805 and SELU_ALPHA == 1.6732632423543772


def _gaussian_mean(function) -> float:
    """E[f(z)], z ~ N(0, 1), by adaptive quadrature on the real line (independent of initlab)."""
    return integrate.quad(lambda z: function(z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                          -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13)[0]


def _reference_tanh_critical_sigma_w2(sigma_b2: float) -> float:
    """sigma_w^2 with chi_1 = sigma_w^2 E[sech^4(sqrt(q*) z)] = 1, q* = sigma_w^2 E[tanh^2(sqrt(q*) z)] + sigma_b^2."""

    def q_star(sigma_w2: float) -> float:
        return optimize.brentq(
            lambda q: sigma_w2 * _gaussian_mean(lambda z: math.tanh(math.sqrt(q) * z) ** 2) + sigma_b2 - q,
            1e-12, 100.0, xtol=1e-15)

    def chi_1_minus_1(sigma_w2: float) -> float:
        q = q_star(sigma_w2)
        # sech^4(x) = (2 e^-|x| / (1 + e^-2|x|))^4, without overflow in cosh
        sech4 = lambda x: (2 * math.exp(-abs(x)) / (1 + math.exp(-2 * abs(x)))) ** 4  # noqa: E731
        return sigma_w2 * _gaussian_mean(lambda z: sech4(math.sqrt(q) * z)) - 1.0

    return optimize.brentq(chi_1_minus_1, 1.0, 3.0, xtol=1e-13)


def test_tanh_critical_point_has_unit_chi_1_and_infinite_depth_scale():
    sigma_w2 = critical_sigma_w2("tanh", 0.05)
    # an independent solve with scipy's adaptive quadrature and root finder
    assert sigma_w2 == pytest.approx(_reference_tanh_critical_sigma_w2(0.05), rel=1e-10)
    # Schoenholz et al. (2017), fig. 1: the tanh edge of chaos at sigma_b2 = 0.05 is at ~1.76
    assert round(sigma_w2, 2) == 1.76
    field = MeanField("tanh", sigma_w2, 0.05)
    assert field.chi_1 == pytest.approx(1.0, abs=1e-12)
    assert field.phase == "critical" and field.xi_c == math.inf
    assert MeanField("tanh", sigma_w2 * 0.9, 0.05).phase == "ordered"
    assert MeanField("tanh", sigma_w2 * 1.1, 0.05).phase == "chaotic"


def test_tanh_without_bias_is_critical_at_one():
    assert critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)
    assert MeanField("tanh", 0.8, 0.0).q_star == 0.0


def test_xi_c_follows_chi_c_on_both_sides_and_trainable_depth_is_six_xi_c():
    ordered = MeanField("tanh", 1.2, 0.05)
    assert ordered.c_star == 1.0 and ordered.chi_c == ordered.chi_1
    assert ordered.xi_c == pytest.approx(-1 / math.log(ordered.chi_1), rel=1e-12)
    chaotic = MeanField("tanh", 3.0, 0.05)
    assert 0 < chaotic.c_star < 1
    assert chaotic.c_map(chaotic.c_star) == pytest.approx(chaotic.c_star, abs=1e-12)
    assert chaotic.trainable_depth() == pytest.approx(6 * chaotic.xi_c, rel=1e-15)


def test_xi_q_is_minus_inverse_log_of_q_map_slope():
    field = MeanField("tanh", 1.5, 0.1)
    h = 1e-5 * field.q_star
    slope = (field.q_map(field.q_star + h) - field.q_map(field.q_star - h)) / (2 * h)
    assert field.xi_q == pytest.approx(-1 / math.log(slope), rel=1e-7)


def test_fixed_point_is_found_from_far_starts():
    reference = MeanField("tanh", 2.0, 0.3).q_star
    for q0 in (1e-20, 1e-3, 1e4, 1e9):
        assert MeanField("tanh", 2.0, 0.3, q0=q0).q_star == pytest.approx(reference, rel=1e-12)


def test_jacobian_spectrum_pennington_closed_forms():
    # ReLU at criticality: mu_1 = mu_2 = 1/2, so the variance is 2L (Gaussian) and L (orthogonal)
    field = MeanField("relu", 2.0, 0.0)
    gaussian = field.jacobian_spectrum(10, "gaussian")
    orthogonal = field.jacobian_spectrum(10, "orthogonal")
    assert gaussian.mean == pytest.approx(1.0, rel=1e-12)
    assert gaussian.variance == pytest.approx(20.0, rel=1e-10)
    assert orthogonal.variance == pytest.approx(10.0, rel=1e-10)
    # deep linear orthogonal network: perfect dynamical isometry
    assert MeanField("linear", 1.0, 0.0).jacobian_spectrum(50, "orthogonal").variance == pytest.approx(0, abs=1e-12)


def test_phase_diagram_agrees_with_mean_field_point_by_point():
    weights, biases = np.array([0.8, 1.5, 2.5, 4.0]), np.array([0.0, 0.05, 0.3])
    for activation in ("tanh", "erf", "relu"):
        diagram = phase_diagram(activation, weights, biases)
        for i, w in enumerate(weights):
            for j, b in enumerate(biases):
                if diagram.phase[i, j] == "unbounded":
                    with pytest.raises(InitlabError, match="grows without bound"):
                        _ = MeanField(activation, w, b).q_star
                    continue
                field = MeanField(activation, w, b)
                assert diagram.q_star[i, j] == pytest.approx(field.q_star, rel=1e-10, abs=1e-300)
                assert diagram.chi_1[i, j] == pytest.approx(field.chi_1, rel=1e-10)
                assert diagram.c_star[i, j] == pytest.approx(field.c_star, rel=1e-6, abs=1e-7)
                assert diagram.xi_c[i, j] == pytest.approx(field.xi_c, rel=1e-5)
                assert diagram.phase[i, j] == field.phase


def test_critical_line_is_nan_where_no_edge_exists():
    line = critical_line("relu", [0.0, 0.1])
    assert line[0] == 2.0 and math.isnan(line[1])
    tanh_line = critical_line("tanh", [0.0, 0.05, 0.2])
    assert np.all(np.diff(tanh_line) > 0)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("sigma_w2", [0.0, -1.0, math.nan, math.inf])
def test_bad_sigma_w2_is_named(sigma_w2):
    with pytest.raises(InitlabError, match=r"MeanField: sigma_w2=.* is invalid; expected a finite weight variance > 0"):
        MeanField("tanh", sigma_w2, 0.0)


@pytest.mark.parametrize("sigma_b2", [-0.1, math.nan])
def test_bad_sigma_b2_is_named(sigma_b2):
    with pytest.raises(InitlabError, match=r"MeanField: sigma_b2=.* is invalid; expected a finite bias variance >= 0"):
        MeanField("tanh", 1.0, sigma_b2)


def test_activation_with_non_finite_values_is_named():
    def blows_up(x):
        return np.where(np.abs(x) > 5, np.inf, x)

    with pytest.raises(InitlabError, match=r"activation='custom:.*blows_up' is invalid; .*phi\(-12\) = inf"):
        MeanField(blows_up, 1.0, 0.0)


def test_exploding_activation_moment_is_reported():
    with pytest.raises(InitlabError, match="activation='custom:.*' is invalid"):
        MeanField(lambda x: np.exp(np.minimum(x, 700) ** 2 / 10), 1.0, 0.0).q_map(1e4)


@pytest.mark.parametrize("argument, grid", [("sigma_w2_grid", [1.0, math.nan]), ("sigma_b2_grid", [math.nan])])
def test_phase_diagram_rejects_nan_grids(argument, grid):
    grids = {"sigma_w2_grid": [1.0, 2.0], "sigma_b2_grid": [0.0, 0.1], argument: grid}
    with pytest.raises(InitlabError, match=rf"phase_diagram: {argument}=.*nan.* is invalid"):
        phase_diagram("tanh", **grids)


def test_no_critical_point_says_why():
    with pytest.raises(InitlabError, match=r"sigma_b2=0.05 is invalid.*no fixed point when sigma_b2 > 0"):
        critical_sigma_w2("relu", 0.05)
    with pytest.raises(InitlabError, match="chi_1 stays below 1"):
        critical_sigma_w2(lambda x: np.tanh(x) * 1e-3 + 0.9 * np.sign(x) * (np.abs(x) > 1), 0.0)


def test_unbounded_variance_error_names_sigma_w2():
    with pytest.raises(InitlabError, match=r"sigma_w2=3.0 is invalid.*grows without bound"):
        _ = MeanField("relu", 3.0, 0.05).q_star
