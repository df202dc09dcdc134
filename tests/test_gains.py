"""Gains: torch's table reproduced exactly, forward gains from second moments, critical via theory."""

import math
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import integrate

from initlab.activations import get_activation, known_activations
from initlab.errors import InitlabError
from initlab.gains import gain

TORCH_NAMES = [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None),
    ("conv_transpose1d", None), ("conv_transpose2d", None), ("conv_transpose3d", None),
    ("sigmoid", None), ("tanh", None), ("relu", None), ("selu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0.0), ("leaky_relu", 1.0), ("leaky_relu", 3),
]


@pytest.mark.parametrize("name,slope", TORCH_NAMES)
def test_torch_criterion_equals_calculate_gain_exactly(name, slope):
    params = {} if slope is None else {"negative_slope": slope}
    assert gain(name, criterion="torch", **params) == torch.nn.init.calculate_gain(name, slope)


def test_torch_criterion_accepts_torch_modules():
    assert gain(nn.LeakyReLU(0.2), criterion="torch") == torch.nn.init.calculate_gain("leaky_relu", 0.2)
    assert gain(nn.Tanh(), criterion="torch") == 5 / 3
    assert gain(torch.relu, criterion="torch") == math.sqrt(2)


def test_torch_criterion_rejects_activations_torch_does_not_know():
    with pytest.raises(InitlabError) as error:
        gain("gelu", criterion="torch")
    assert str(error.value) == (
        "gain: activation='gelu' is invalid; expected one of linear, sigmoid, tanh, relu, leaky_relu, selu "
        "(or a conv layer name) for criterion='torch'. "
        "torch.nn.init.calculate_gain has no value for it; use criterion='forward'."
    )


def test_forward_gain_of_relu_family_and_linear_is_exact():
    assert gain("relu") == math.sqrt(2)
    assert gain("linear") == 1.0
    for slope in (0.01, 0.2, 0.5, 1.0, 3.0):
        assert gain("leaky_relu", negative_slope=slope) == math.sqrt(2 / (1 + slope**2))
    assert gain(nn.PReLU(init=0.25)) == math.sqrt(2 / (1 + 0.25**2))


def test_forward_gain_of_selu_is_one_and_of_erf_is_the_closed_form():
    assert gain("selu") == pytest.approx(1.0, rel=1e-12)  # selu's fixed point: E[selu(z)^2] = 1
    assert gain("erf") == pytest.approx(1 / math.sqrt(2 / math.pi * math.asin(2 / 3)), rel=1e-15)


@pytest.mark.parametrize("name", known_activations())
def test_forward_gain_preserves_the_second_moment_through_one_layer(name):
    activation = get_activation(name)
    g = gain(name)
    # the next pre-activation has second moment g^2 E[phi(z)^2], which must be 1; E[phi(z)^2]
    # by adaptive quadrature split at the kinks of every named activation (-1, 0, 1)
    integrand = lambda z: float(activation(np.array(z))) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    pieces = zip((-12.0, -1.0, 0.0, 1.0), (-1.0, 0.0, 1.0, 12.0))
    second_moment = sum(integrate.quad(integrand, a, b, epsabs=0, epsrel=1e-13)[0] for a, b in pieces)
    assert g**2 * second_moment == pytest.approx(1.0, rel=1e-10)


def test_forward_gain_of_a_numpy_callable():
    assert gain(lambda x: np.maximum(x, 0)) == pytest.approx(math.sqrt(2), rel=1e-12)


def test_critical_gain_is_the_square_root_of_the_theory_value(monkeypatch):
    calls = []

    def critical_sigma_w2(activation, sigma_b2):
        calls.append((activation, sigma_b2))
        return 2.25

    fake_theory = types.ModuleType("initlab.theory")
    fake_theory.critical_sigma_w2 = critical_sigma_w2
    monkeypatch.setitem(sys.modules, "initlab.theory", fake_theory)
    assert gain("tanh", criterion="critical", sigma_b2=0.05) == 1.5
    assert calls == [(get_activation("tanh"), 0.05)]
    assert gain("relu", criterion="critical") == 1.5
    assert calls[-1] == (get_activation("relu"), 0.0)


def test_critical_gain_without_theory_says_it_is_not_available_yet(monkeypatch):
    monkeypatch.setitem(sys.modules, "initlab.theory", None)  # makes the import fail
    with pytest.raises(InitlabError) as error:
        gain("tanh", criterion="critical")
    message = str(error.value)
    assert message.startswith("gain: criterion='critical' is not available yet: the theory module")
    assert message.endswith("Use criterion='forward' or criterion='torch'.")


def _silent(x):
    return 0 * x


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda: gain("relu", criterion="backward"),
            "gain: criterion='backward' is invalid; expected one of torch, forward, critical.",
        ),
        (
            lambda: gain("relu", sigma_b2=0.1),
            "gain: sigma_b2=0.1 is invalid; expected no sigma_b2 unless criterion='critical'. "
            "criterion='forward' does not depend on the bias variance.",
        ),
        (
            lambda: gain("tanh", criterion="critical", sigma_b2=-1.0),
            "gain: sigma_b2=-1.0 is invalid; expected a finite number >= 0 (the bias variance).",
        ),
        (
            lambda: gain(_silent),
            "gain: activation='custom:_silent' is invalid; expected an activation with a finite, "
            "positive E[phi(z)^2] for criterion='forward'. E[phi(z)^2] = 0.0.",
        ),
        (
            lambda: gain("leaky_relu", criterion="torch", negative_slope="a"),
            "get_activation('leaky_relu'): negative_slope='a' is invalid; expected a finite real number.",
        ),
    ],
)
def test_bad_input_is_rejected_with_exact_messages(call, message):
    with pytest.raises(InitlabError) as error:
        call()
    assert str(error.value) == message


def test_critical_gain_with_the_real_theory_matches_known_edges_of_chaos():
    pytest.importorskip("initlab.theory")
    # at sigma_b = 0 the edge of chaos is sigma_w^2 = 1 / phi'(0)^2 for tanh and 2 for relu
    assert gain("tanh", criterion="critical") == pytest.approx(1.0, rel=1e-6)
    assert gain("relu", criterion="critical") == pytest.approx(math.sqrt(2), rel=1e-9)
