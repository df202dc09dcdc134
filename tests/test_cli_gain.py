"""`initlab gain`: every criterion for one activation, the table, and bad usage."""

import math
import sys
import types

import pytest
import torch
from scipy import integrate, special

from initlab.activations import known_activations
from initlab.cli import main


@pytest.fixture
def no_theory(monkeypatch):
    monkeypatch.setitem(sys.modules, "initlab.theory", None)  # the import of the theory fails


def test_gain_prints_every_criterion(capsys, no_theory):
    assert main(["gain", "leaky_relu", "--param", "negative_slope=0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "leaky_relu {'negative_slope': 0.2}"
    expected = repr(torch.nn.init.calculate_gain("leaky_relu", 0.2))
    assert lines[1] == f"  torch     {expected}"
    assert lines[2] == f"  forward   {expected}"
    assert lines[3].startswith("  critical  not available: gain: criterion='critical' is not available yet")


def test_gain_explains_a_torch_value_that_does_not_exist(capsys, no_theory):
    assert main(["gain", "gelu"]) == 0
    out = capsys.readouterr().out
    assert "  torch     not available: gain: activation='gelu' is invalid;" in out
    gelu_squared = lambda z: (z * special.ndtr(z)) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    second_moment = integrate.quad(gelu_squared, -12, 12, epsabs=0, epsrel=1e-13)[0]
    forward = float(out.split("  forward   ")[1].split()[0])
    assert forward == pytest.approx(1 / math.sqrt(second_moment), rel=1e-12)


def test_gain_passes_sigma_b2_to_the_critical_criterion_only(capsys, monkeypatch):
    fake_theory = types.ModuleType("initlab.theory")
    fake_theory.critical_sigma_w2 = lambda activation, sigma_b2: 1.0 + sigma_b2
    monkeypatch.setitem(sys.modules, "initlab.theory", fake_theory)
    assert main(["gain", "tanh", "--param", "sigma_b2=0.44"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == ["  torch     1.6666666666666667", f"  forward   {out[2].split()[-1]}", "  critical  1.2"]


def test_gain_table_lists_every_named_activation(capsys, no_theory):
    assert main(["gain", "--table"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert list(rows) == known_activations()
    assert "1.414214" in rows["relu"] and "1.666667" in rows["tanh"] and "n/a" in rows["gelu"]
    assert "critical: n/a because gain: criterion='critical' is not available yet" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["gain", "relu7"], "initlab gain: error: get_activation: spec='relu7' is invalid; expected one of linear,"),
        (["gain"], "initlab gain: error: give exactly one of ACTIVATION or --table."),
        (["gain", "relu", "--table"], "initlab gain: error: give exactly one of ACTIVATION or --table."),
        (
            ["gain", "relu", "--param", "slope"],
            "initlab gain: error: --param='slope' is invalid; expected KEY=VALUE, e.g. negative_slope=0.2.",
        ),
        (
            ["gain", "leaky_relu", "--param", "negative_slope=steep"],
            "initlab gain: error: get_activation('leaky_relu'): negative_slope='steep' is invalid; "
            "expected a finite real number.",
        ),
    ],
)
def test_bad_usage_exits_with_status_2_and_says_why(capsys, argv, message):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(message)
