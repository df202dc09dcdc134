"""Each verdict fires where the purpose-built model puts it, and not on healthy models (issue 5, sec. 6)."""

from __future__ import annotations

import pytest
import torch
from models_for_audit import batch, mlp, normal_init, scheme_init
from torch import nn

import initlab
from initlab.auditing import audit


def kinds(layer) -> set[str]:
    return {finding.kind for finding in layer.findings}


def test_all_zero_weights_are_symmetric_in_every_hidden_layer_but_not_the_readout():
    model = mlp(3, 100, nn.Tanh, lambda linear, _: nn.init.zeros_(linear.weight))
    report = audit(model, batch(), jacobian=False)
    assert report.verdict == "symmetric"
    hidden = [layer for layer in report.layers if layer.activation == "tanh"]
    assert len(hidden) == 3
    for layer in hidden:
        assert layer.verdict == "symmetric"
        assert layer.symmetric_units == 99  # 100 identical units: 99 duplicate the first
    readout = report.layers[-1]
    # its outputs are identical too, but the loss sends each a different gradient
    assert "symmetric" not in kinds(readout)
    assert readout.symmetric_units == 0
    fix = report.first("symmetric")
    assert "not zero or constant" in fix.fix and fix.fix_params == ["0.weight"]  # init_'s plan, only what differs


def test_a_random_init_has_no_symmetric_units():
    report = audit(mlp(3, 100, nn.Tanh, scheme_init(initlab.glorot_normal())), batch(), jacobian=False)
    assert all(layer.symmetric_units == 0 for layer in report.layers)


def test_small_weights_in_a_deep_tanh_mlp_vanish_forward_and_backward():
    report = audit(mlp(20, 128, nn.Tanh, normal_init(0.01)), batch(), jacobian=False)
    assert report.verdict == "vanishing"
    forward = [f for f in report.findings if f.kind == "vanishing" and f.direction == "forward"]
    backward = [f for f in report.findings if f.kind == "vanishing" and f.direction == "backward"]
    assert forward and backward
    # per-layer gain of N(0, 0.01^2) weights on width 128 is ~0.01 * sqrt(128) = 0.11
    deep = report.layers[10]
    assert deep.output.std < 1e-8 and 0.05 < deep.gain < 0.2
    assert {f.kind for f in report.findings} == {"vanishing"}
    # one fix for the whole network: every weight init_ would write differently (Glorot before tanh)
    assert "glorot_normal" in report.first("vanishing").fix
    assert {f"{2 * i}.weight" for i in range(20)} <= set(report.first("vanishing").fix_params)


def test_unit_variance_weights_saturate_a_wide_tanh_mlp():
    report = audit(mlp(5, 256, nn.Tanh, normal_init(1.0)), batch(), jacobian=False)
    assert report.verdict == "saturated"
    hidden = [layer for layer in report.layers if layer.activation == "tanh"]
    for layer in hidden:
        assert layer.verdict == "saturated"
        # pre-activations have std ~ sqrt(256) = 16 beyond layer 1: most |tanh| exceed 0.99
        assert layer.saturated_fraction > 0.5
    assert "too large" in report.first("saturated").fix


def test_xavier_tanh_mlp_is_healthy_and_not_saturated():
    report = audit(mlp(20, 128, nn.Tanh, scheme_init(initlab.glorot_normal())), batch(), jacobian=False)
    assert report.healthy, report.fixes
    assert max(layer.saturated_fraction for layer in report.layers if layer.saturated_fraction is not None) < 0.05


def test_he_initialised_20_layer_relu_mlp_is_healthy():
    report = audit(mlp(20, 256, nn.ReLU, scheme_init(initlab.he_normal())), batch())
    assert report.healthy, report.fixes
    assert report.verdict == "healthy"
    assert all(layer.verdict == "healthy" for layer in report.layers)
    assert len(report.layers) == 21  # 20 Linear -> ReLU rows and the readout


def test_one_layer_times_100_is_exploding_at_that_layer_only():
    model = mlp(10, 256, nn.ReLU, scheme_init(initlab.he_normal()))
    culprit = model[8]  # the 5th Linear, layer 5 of the report
    with torch.no_grad():
        culprit.weight.mul_(100)
    report = audit(model, batch(), jacobian=False)
    assert report.verdict == "exploding"
    first = report.first("exploding")
    assert first.layer == 5 and first.layer_name == "8"
    assert report.layer("8").gain == pytest.approx(100, rel=0.3)
    assert all(layer.verdict == "healthy" for layer in report.layers[:4])
    assert {f.layer for f in report.findings} == {5}  # forward and backward both blame layer 5 only
    assert "he_normal" in first.fix and first.fix_params == ["8.weight"]  # init_'s choice, for that layer only


def test_negative_bias_before_relu_kills_that_layer():
    model = mlp(6, 128, nn.ReLU, scheme_init(initlab.he_normal()))
    with torch.no_grad():
        model[6].bias.fill_(-10.0)  # the 4th Linear
    report = audit(model, batch(), jacobian=False)
    layer = report.layer("6")
    assert layer.verdict == "dead"
    assert layer.dead_units == layer.units == 128
    assert report.first("dead").layer == layer.index == 4
    assert all(earlier.verdict == "healthy" for earlier in report.layers[:3])
    assert report.first("dead").fix_params == ["6.bias"] and "6.bias: zeros" in report.first("dead").fix


def test_nan_inside_the_model_is_a_finding_at_the_first_layer_where_it_appears():
    class LogLayer(nn.Module):
        def forward(self, x):
            return torch.log(x)  # NaN for the negative inputs

    model = nn.Sequential(nn.Linear(40, 16), nn.Tanh(), LogLayer(), nn.Linear(16, 4))
    report = audit(model, batch(), jacobian=False)
    assert report.verdict == "non_finite"
    finding = report.first("non_finite")
    assert finding.layer_name == "2" and finding.direction == "forward"
    assert len([f for f in report.findings if f.kind == "non_finite"]) == 1


def test_a_figure_near_its_threshold_is_borderline_a_warning_not_a_verdict():
    from initlab.auditing import Thresholds

    model = mlp(10, 256, nn.ReLU, scheme_init(initlab.he_normal()))
    with torch.no_grad():
        model[8].weight.mul_(100)
    # gain ~100 against layer_gain_max=60: within the factor 2 of the threshold on either side
    report = audit(model, batch(), jacobian=False, thresholds=Thresholds(layer_gain_max=60.0))
    assert report.verdict == "borderline" and report.healthy and report.findings == []
    near = report.borderline[0]
    assert near.kind == "exploding" and near.borderline and near.layer_name == "8"
    assert report.layer("8").verdict == "borderline"
    assert report.fixes[-1].startswith("borderline exploding (signal_gain=")
    # beyond the factor: definite
    definite = audit(model, batch(), jacobian=False, thresholds=Thresholds(layer_gain_max=40.0))
    assert definite.verdict == "exploding" and not definite.healthy


def test_thresholds_bands_are_symmetric_around_the_threshold():
    from initlab.auditing import Thresholds

    limits = Thresholds()
    assert [limits.above(v, 10.0) for v in (4.9, 5.1, 19.9, 20.1)] == [None, "borderline", "borderline", "definite"]
    assert [limits.below(v, 1e-3) for v in (2.1e-3, 1.9e-3, 5.1e-4, 4.9e-4)] == [None, "borderline", "borderline",
                                                                                  "definite"]
    assert [limits.fraction_above(v, 0.5) for v in (0.39, 0.41, 0.59, 0.61)] == [None, "borderline", "borderline",
                                                                                 "definite"]
