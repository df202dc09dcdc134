"""Activation registry: functions and derivatives against torch, moments against adaptive quadrature."""

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import integrate

from initlab.activations import SELU_ALPHA, SELU_SCALE, Activation, get_activation, known_activations
from initlab.errors import InitlabError
from initlab.quadrature import expect_graded

REQUIRED = [
    "linear", "relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "gelu_tanh", "silu",
    "mish", "softplus", "softsign", "sigmoid", "tanh", "hardtanh", "sin", "erf",
]

# (name, params, kinks of phi or phi') for moment tests
CASES = [
    ("linear", {}, ()),
    ("relu", {}, (0.0,)),
    ("leaky_relu", {"negative_slope": 0.2}, (0.0,)),
    ("prelu", {}, (0.0,)),
    ("elu", {"alpha": 0.7}, (0.0,)),
    ("selu", {}, (0.0,)),
    ("hardtanh", {}, (-1.0, 1.0)),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, (-2.0, 0.5)),
    ("hardtanh", {"min_val": 0.0, "max_val": 6.0}, (0.0, 6.0)),
    ("erf", {}, ()),
    ("sin", {}, ()),
    ("gelu", {}, ()),
    ("gelu_tanh", {}, ()),
    ("silu", {}, ()),
    ("mish", {}, ()),
    ("softplus", {"beta": 2.0}, ()),
    ("softsign", {}, (0.0,)),
    ("sigmoid", {}, ()),
    ("tanh", {}, ()),
]
VARIANCES = [1e-3, 0.1, 1.0, 3.0, 30.0, 1e3, 1e4]


def _quad_expectation(g, q, kinks):
    """E[g(X)], X ~ N(0, q), by scipy.integrate.quad on [-12 s, 12 s] split at 0 and the kinks."""
    s = math.sqrt(q)
    breaks = sorted({-12 * s, 0.0, 12 * s, *(k for k in kinks if abs(k) < 12 * s)})
    density = lambda x: math.exp(-x * x / (2 * q)) / math.sqrt(2 * math.pi * q)  # noqa: E731
    return sum(
        integrate.quad(lambda x: float(g(np.array(x))) * density(x), a, b, epsabs=0, epsrel=1e-13, limit=500)[0]
        for a, b in zip(breaks[:-1], breaks[1:])
    )


def test_every_required_activation_is_known():
    assert set(REQUIRED) <= set(known_activations())


# quad warns of round-off on sin(x) at q = 1e4 (thousands of oscillations); it still meets 1e-8
@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("name,params,kinks", CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_moments_match_adaptive_quadrature_on_the_real_line(name, params, kinks):
    activation = get_activation(name, **params)
    for q in VARIANCES:
        references = {
            "mean": _quad_expectation(activation, q, kinks),
            "second_moment": _quad_expectation(lambda x: activation(x) ** 2, q, kinks),
            "derivative_second_moment": _quad_expectation(lambda x: activation.derivative(x) ** 2, q, kinks),
        }
        scale = math.sqrt(references["second_moment"])  # odd activations have mean 0: compare to the spread
        for kind, reference in references.items():
            value = getattr(activation, kind)(q)
            assert value == pytest.approx(reference, rel=1e-8, abs=1e-12 * scale), (kind, q)


@pytest.mark.parametrize(
    "name,params", [(n, p) for n, p, _ in CASES if n in {"relu", "leaky_relu", "elu", "selu", "erf", "sin", "linear"}]
)
def test_closed_forms_agree_with_graded_quadrature_on_a_wide_grid(name, params):
    activation = get_activation(name, **params)
    # sin(sqrt(q) z) oscillates sqrt(q) times per unit of z: the fixed rule resolves it up to q ~ 10
    q = np.geomspace(1e-8, 10.0 if name == "sin" else 1e6, 71)
    np.testing.assert_allclose(activation.second_moment(q), expect_graded(lambda x: activation(x) ** 2, q), rtol=1e-11)
    np.testing.assert_allclose(
        activation.derivative_second_moment(q), expect_graded(lambda x: activation.derivative(x) ** 2, q), rtol=1e-11
    )


def test_moments_are_vectorised_and_take_the_limit_at_q_zero():
    for name in known_activations():
        activation = get_activation(name)
        q = np.array([[0.0, 0.5], [2.0, 8.0]])
        second = activation.second_moment(q)
        assert second.shape == (2, 2)
        assert second[1, 1] == pytest.approx(activation.second_moment(8.0), rel=1e-14)
        assert activation.mean(0.0) == pytest.approx(float(activation(np.array(0.0))), abs=1e-15), name
        assert activation.second_moment(0.0) == pytest.approx(float(activation(np.array(0.0))) ** 2, abs=1e-15)


def test_selu_constants_give_the_self_normalising_fixed_point():
    selu = get_activation("selu")
    # Klambauer et al. (2017): mean 0 and variance 1 are a fixed point for N(0, 1) input
    assert selu.mean(1.0) == pytest.approx(0.0, abs=1e-12)
    assert selu.second_moment(1.0) == pytest.approx(1.0, rel=1e-12)
    assert (SELU_SCALE, SELU_ALPHA) == (1.0507009873554805, 1.6732632423543772)


def test_relu_family_closed_forms_are_the_textbook_values():
    assert get_activation("relu").second_moment(3.0) == 1.5
    assert get_activation("leaky_relu", negative_slope=0.2).second_moment(1.0) == (1 + 0.04) / 2
    assert get_activation("erf").second_moment(1.0) == pytest.approx(2 / math.pi * math.asin(2 / 3), rel=1e-15)


TORCH_EQUIVALENTS = [
    ("linear", {}, nn.Identity()),
    ("relu", {}, nn.ReLU()),
    ("leaky_relu", {"negative_slope": 0.2}, nn.LeakyReLU(0.2)),
    ("elu", {"alpha": 0.7}, nn.ELU(0.7)),
    ("selu", {}, nn.SELU()),
    ("gelu", {}, nn.GELU()),
    ("gelu_tanh", {}, nn.GELU(approximate="tanh")),
    ("silu", {}, nn.SiLU()),
    ("mish", {}, nn.Mish()),
    ("softplus", {"beta": 2.0}, nn.Softplus(beta=2.0)),
    ("softsign", {}, nn.Softsign()),
    ("sigmoid", {}, nn.Sigmoid()),
    ("tanh", {}, nn.Tanh()),
    ("hardtanh", {"min_val": -2.0, "max_val": 2.0}, nn.Hardtanh(-2.0, 2.0)),
    ("sin", {}, torch.sin),
    ("erf", {}, torch.erf),
]
# points away from every kink (0, +-1, +-2)
POINTS = np.array([-7.3, -2.6, -1.7, -0.9, -0.31, 0.23, 0.77, 1.4, 2.3, 4.1, 8.6])


@pytest.mark.parametrize("name,params,module", TORCH_EQUIVALENTS, ids=[c[0] for c in TORCH_EQUIVALENTS])
def test_function_and_derivatives_match_torch_autograd(name, params, module):
    activation = get_activation(name, **params)
    x = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    y = module(x)
    (first,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), x) if first.requires_grad else (torch.zeros_like(x),)
    np.testing.assert_allclose(activation(POINTS), y.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(activation.derivative(POINTS), first.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(activation.second_derivative(POINTS), second.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", REQUIRED)
def test_derivatives_match_central_differences(name):
    activation = get_activation(name)
    h = 1e-6
    numeric_first = (activation(POINTS + h) - activation(POINTS - h)) / (2 * h)
    numeric_second = (activation.derivative(POINTS + h) - activation.derivative(POINTS - h)) / (2 * h)
    np.testing.assert_allclose(activation.derivative(POINTS), numeric_first, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(activation.second_derivative(POINTS), numeric_second, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    "spec,name,params",
    [
        (nn.LeakyReLU(0.2), "leaky_relu", {"negative_slope": 0.2}),
        (nn.GELU(approximate="tanh"), "gelu_tanh", {}),
        (nn.GELU(), "gelu", {}),
        (nn.Hardtanh(-2, 2), "hardtanh", {"min_val": -2.0, "max_val": 2.0}),
        (nn.ReLU6(), "hardtanh", {"min_val": 0.0, "max_val": 6.0}),
        (nn.PReLU(init=0.1), "prelu", {"negative_slope": pytest.approx(0.1)}),
        (nn.ELU(alpha=0.5), "elu", {"alpha": 0.5}),
        (nn.Softplus(beta=3.0), "softplus", {"beta": 3.0}),
        (nn.Identity(), "linear", {}),
        (F.relu, "relu", {}),
        (torch.tanh, "tanh", {}),
        (F.gelu, "gelu", {}),
        (F.silu, "silu", {}),
        (F.relu6, "hardtanh", {"min_val": 0.0, "max_val": 6.0}),
        ("swish", "silu", {}),
        ("Identity", "linear", {}),
        ("leaky-relu", "leaky_relu", {"negative_slope": 0.01}),
        ("conv2d", "linear", {}),
    ],
)
def test_torch_objects_and_aliases_are_recognised(spec, name, params):
    activation = get_activation(spec)
    assert activation.name == name
    assert dict(activation.params) == params


def test_a_subclass_of_a_torch_module_is_recognised_by_its_torch_base():
    class MyLeaky(nn.LeakyReLU):
        pass

    assert get_activation(MyLeaky(0.3)) == get_activation("leaky_relu", negative_slope=0.3)


def test_explicit_params_override_and_gelu_approximate_selects_the_tanh_form():
    assert get_activation(nn.LeakyReLU(0.2), negative_slope=0.1).params["negative_slope"] == 0.1
    assert get_activation("gelu", approximate="tanh").name == "gelu_tanh"
    assert get_activation(F.leaky_relu, negative_slope=0.3).params == {"negative_slope": 0.3}


def test_families_and_bounds():
    assert [get_activation(n).family for n in ("relu", "leaky_relu", "prelu", "selu", "linear", "gelu")] == [
        "relu", "relu", "relu", "selu", "linear", "other",
    ]
    assert {n: get_activation(n).bounds for n in ("tanh", "sigmoid", "softsign", "erf")} == {
        "tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "softsign": (-1.0, 1.0), "erf": (-1.0, 1.0),
    }
    assert get_activation("hardtanh", min_val=-3, max_val=2).bounds == (-3.0, 2.0)
    assert get_activation("relu").bounds is None


def test_equality_hash_dict_and_pickle_round_trip():
    leaky = get_activation("leaky_relu", negative_slope=0.2)
    assert leaky == get_activation(leaky.to_dict()) and hash(leaky) == hash(get_activation(leaky.to_dict()))
    assert leaky != get_activation("leaky_relu")
    assert leaky.to_dict() == {"name": "leaky_relu", "params": {"negative_slope": 0.2}, "family": "relu", "bounds": None}
    assert pickle.loads(pickle.dumps(leaky)) == leaky
    assert get_activation(leaky) is leaky


def test_a_numpy_callable_becomes_a_custom_activation_with_numerical_derivatives():
    def scaled_tanh(x):
        return 1.7 * np.tanh(x)

    custom = get_activation(scaled_tanh)
    assert custom.name.startswith("custom:") and custom.name.endswith("scaled_tanh")
    tanh = get_activation("tanh")
    np.testing.assert_allclose(custom.derivative(POINTS), 1.7 * tanh.derivative(POINTS), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(custom.second_derivative(POINTS), 1.7 * tanh.second_derivative(POINTS), atol=1e-6)
    assert custom.second_moment(2.0) == pytest.approx(1.7**2 * tanh.second_moment(2.0), rel=1e-12)
    with pytest.raises(TypeError):
        pickle.dumps(custom)


def test_unknown_name_lists_the_known_names():
    with pytest.raises(InitlabError) as error:
        get_activation("relu7")
    message = str(error.value)
    assert message.startswith("get_activation: spec='relu7' is invalid; expected one of linear, relu, leaky_relu,")
    assert all(name in message for name in REQUIRED)
    assert message.endswith("Or pass a torch module or a vectorised numpy callable.")


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda: get_activation("leaky_relu", negative_slope="0.1"),
            "get_activation('leaky_relu'): negative_slope='0.1' is invalid; expected a finite real number.",
        ),
        (
            lambda: get_activation("elu", alpha=float("nan")),
            "get_activation('elu'): alpha=nan is invalid; expected a finite real number.",
        ),
        (
            lambda: get_activation("hardtanh", min_val=1.0, max_val=1.0),
            "get_activation('hardtanh'): min_val=1.0 is invalid; expected a number below max_val=1.0. "
            "hardtanh clips to [min_val, max_val], which must be a non-empty interval.",
        ),
        (
            lambda: get_activation("softplus", beta=0.0),
            "get_activation('softplus'): beta=0.0 is invalid; expected a number > 0.",
        ),
        (
            lambda: get_activation("relu", negative_slope=0.1),
            "get_activation('relu'): params={'negative_slope': 0.1} is invalid; expected no parameters. "
            "'negative_slope' is not a parameter of relu.",
        ),
        (
            lambda: get_activation("gelu", approximate="fast"),
            "get_activation('gelu'): approximate='fast' is invalid; expected 'none' or 'tanh'.",
        ),
    ],
)
def test_bad_parameters_are_rejected_with_exact_messages(call, message):
    with pytest.raises(InitlabError) as error:
        call()
    assert str(error.value) == message


def test_bad_callables_and_unknown_torch_objects_are_rejected():
    def log(x):
        return np.log(x)

    def first_three(x):
        return x[:3]

    with pytest.raises(InitlabError, match=r"expected a function with finite values\. It returned non-finite"):
        get_activation(log)
    with pytest.raises(InitlabError) as error:
        get_activation(first_three)
    assert str(error.value).endswith(
        "expected a function returning an array of its input's shape. "
        "It returned shape (3,) for an input of shape (13,)."
    )
    with pytest.raises(InitlabError, match=r"torch module 'Linear' is not a known activation"):
        get_activation(nn.Linear(2, 2))
    with pytest.raises(InitlabError, match=r"torch function 'exp' is not a known activation"):
        get_activation(torch.exp)
    with pytest.raises(InitlabError, match=r"A per-channel PReLU has no single gain"):
        get_activation(nn.PReLU(num_parameters=3).requires_grad_(False).apply(lambda m: m.weight.uniform_()))
    with pytest.raises(InitlabError, match=r"get_activation: spec=3 is invalid"):
        get_activation(3)


def test_activation_type_is_the_public_dataclass():
    assert isinstance(get_activation("relu"), Activation)
