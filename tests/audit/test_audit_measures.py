"""What the audit measures: per-unit dead counts, saturation, summaries, identical units,
the Jacobian spectrum and the mean-field overlay, against values known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from models_for_audit import ConvNet, batch, mlp, scheme_init
from torch import nn

import initlab
from initlab.auditing import audit, statistics
from initlab.auditing import jacobian as jacobian_module
from initlab.auditing.fixes import plan_of


def test_dead_units_are_counted_per_unit_not_per_element():
    # 90 % of the elements are <= 0, yet every unit is positive on one sample: no dead unit
    values = -torch.ones(10, 6)
    values[torch.arange(6), torch.arange(6)] = 1.0
    assert statistics.dead_units(values, unit_axis=-1) == (0, 6)
    values[:, 2] = 0.0
    assert statistics.dead_units(values, unit_axis=-1) == (1, 6)
    # channels of a conv output: axis 1, reduced over batch and positions
    channels = -torch.ones(4, 3, 5, 5)
    channels[2, 0, 4, 4] = 0.5
    assert statistics.dead_units(channels, unit_axis=1) == (2, 3)


def test_saturated_fraction_uses_the_documented_margin():
    values = torch.tensor([-1.0, -0.995, -0.98, 0.0, 0.5, 0.989, 0.991, 1.0])
    # margin 0.005 of the range 2 -> |y| >= 0.99
    assert statistics.saturated_fraction(values, (-1.0, 1.0), 0.005) == pytest.approx(4 / 8)
    assert statistics.saturated_fraction(torch.tensor([0.001, 0.5, 0.999]), (0.0, 1.0), 0.005) == pytest.approx(2 / 3)


def test_summary_matches_numpy_and_skips_non_finite_values():
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(1000, generator=generator) * 3 + 1
    summary = statistics.summarize(values)
    array = values.numpy().astype(np.float64)
    assert summary.mean == pytest.approx(array.mean(), rel=1e-5)
    assert summary.std == pytest.approx(array.std(ddof=1), rel=1e-5)
    assert summary.rms == pytest.approx(math.sqrt((array**2).mean()), rel=1e-5)
    assert summary.percentiles["p50"] == pytest.approx(np.percentile(array, 50), rel=1e-5)
    assert summary.percentiles["p99"] == pytest.approx(np.percentile(array, 99), rel=1e-5)
    assert sum(summary.histogram_counts) == 1000
    values[[3, 7]] = torch.tensor([float("nan"), float("inf")])
    with_bad = statistics.summarize(values)
    assert with_bad.non_finite == 2 and math.isfinite(with_bad.std)


def test_duplicate_pairs_count_each_copy_once():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    weight[3], weight[5] = weight[1], weight[1]  # a group of three equal units
    bias = torch.zeros(6, dtype=torch.float64)
    outputs = torch.randn(6, 9, generator=generator, dtype=torch.float64)
    outputs[3], outputs[5] = outputs[1], outputs[1]
    first, second = statistics.duplicate_pairs(outputs, weight, bias, rtol=1e-9)
    assert len(first) == 2
    assert sorted(torch.cat([first, second]).unique().tolist()) == [1, 3, 5]
    # equal outputs but a different bias: not symmetric
    bias[5] = 1.0
    assert len(statistics.duplicate_pairs(outputs, weight, bias, rtol=1e-9)[0]) == 1
    # equal outputs but different weights: not symmetric (e.g. two dead ReLU units)
    weight[3] = weight[3] + 1.0
    assert len(statistics.duplicate_pairs(outputs, weight, None, rtol=1e-9)[0]) == 1


def test_exact_jacobian_of_a_linear_map_is_its_singular_values():
    weight = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stats = jacobian_module.jacobian_spectrum(lambda x: x @ weight.T, torch.randn(3, 5, dtype=torch.float64))
    expected = torch.linalg.svdvals(weight).numpy()
    assert stats.method == "exact" and stats.samples == 3
    for values in stats.singular_values:
        np.testing.assert_allclose(values, expected, rtol=1e-10)
    assert stats.mean_squared_singular_value == pytest.approx(float((expected**2).mean()), rel=1e-10)
    assert stats.squared_singular_value_variance == pytest.approx(float((expected**2).var()), rel=1e-8)


def test_lanczos_finds_a_dominant_singular_value_from_below_and_the_mean_within_its_error():
    size = 96  # more outputs than EXACT_MAX_OUTPUTS: the Lanczos path
    generator = torch.Generator().manual_seed(1)
    orthogonal, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    scales = torch.linspace(0.5, 2.0, size, dtype=torch.float64)
    scales[-1] = 20.0  # far above the bulk: the top Ritz value converges geometrically (Kaniel-Paige)
    weight = orthogonal * scales  # singular values: the scales
    stats = jacobian_module.jacobian_spectrum(lambda x: x @ weight.T, torch.zeros(2, size, dtype=torch.float64))
    assert stats.method == "lanczos" and stats.products == 2 * jacobian_module.LANCZOS_STEPS
    assert stats.max_singular_value <= 20.0 * (1 + 1e-12)  # a Ritz value never exceeds the top
    assert stats.max_singular_value == pytest.approx(20.0, rel=1e-3)
    true_mean = float((scales**2).mean())
    assert abs(stats.mean_squared_singular_value - true_mean) <= 3 * stats.mean_squared_singular_value_error
    assert stats.min_singular_value is None


def test_theory_overlay_matches_measured_q_on_a_wide_tanh_mlp():
    # mean-field is exact as width -> infinity; at width 512 q^l differs by a few percent
    model = mlp(8, 512, nn.Tanh, scheme_init(initlab.variance_scaling(scale=1.5)))
    report = audit(model, batch(128), jacobian=False)
    overlay = report.theory
    assert overlay is not None and overlay.activation == "tanh"
    assert overlay.layers == [layer.index for layer in report.layers]
    assert overlay.sigma_w2[1] == pytest.approx(1.5, rel=0.02)
    q_input = float(batch(128).double().pow(2).mean())
    assert overlay.predicted_q[0] == pytest.approx(overlay.sigma_w2[0] * q_input)
    np.testing.assert_allclose(overlay.predicted_q, overlay.measured_q, rtol=0.1)
    # and the overlay is not a copy of the measurement: a different activation predicts differently
    assert not np.allclose(overlay.predicted_q[1:], [s * q for s, q in zip(overlay.sigma_w2[1:],
                                                                           overlay.predicted_q[:-1])], rtol=0.05)


def test_functional_activations_in_forward_are_recorded_and_paired():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(40, 32), nn.Linear(32, 5)

        def forward(self, x):
            return self.fc2(nn.functional.leaky_relu(self.fc1(x), 0.2))

    model = Functional()
    report = audit(model, batch(16), jacobian=False)
    first = report.layers[0]
    assert first.kind == "Linear → F.leaky_relu" and first.activation == "leaky_relu"
    assert first.pre_activation is not None
    assert first.activation_params == {"negative_slope": 0.2}
    # the fix is init_'s plan: He with the slope of the activation actually used, scale 2 / (1 + 0.2^2)
    assert plan_of(model, batch(16))[first.name + ".weight"].target_rms == pytest.approx(math.sqrt(2 / 1.04 / 40))


def test_the_fix_is_what_init_would_write_for_each_layer():
    model = nn.Sequential(nn.Linear(40, 32), nn.LeakyReLU(0.2), nn.Linear(32, 16), nn.LeakyReLU(0.5),
                          nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, 5))
    planned = plan_of(model, batch(16))
    rows = {row.name: row for row in initlab.preview(model, example_input=batch(16)).rows}
    # He with each layer's slope: scale 2 / (1 + a^2); target std sqrt(scale / fan_in); one source: init_'s preview
    assert [planned[f"{i}.weight"].target_rms for i in (0, 2, 4)] == pytest.approx(
        [math.sqrt(2 / 1.04 / 40), math.sqrt(2 / 1.25 / 32), math.sqrt(2 / 1.04 / 16)])
    assert all(planned[name].target_rms == pytest.approx(rows[name].target_std) for name in rows)
    assert planned["0.bias"].target_rms == 0.0


@pytest.mark.parametrize("build", [lambda: mlp(4, 16, nn.ReLU, scheme_init(initlab.he_normal())),
                                   lambda: mlp(3, 8, nn.Tanh, lambda linear, position: nn.init.zeros_(linear.weight)),
                                   ConvNet])
def test_skipping_the_gradients_no_layer_reads_changes_no_figure(monkeypatch, build):
    from initlab.auditing.capture import Capture

    torch.manual_seed(0)
    model = build()
    x = torch.randn(8, 3, 16, 16) if isinstance(model, ConvNet) else batch(8)
    skipped = audit(model, x, jacobian=False).to_dict()
    monkeypatch.setattr(Capture, "finish_forward", lambda self: None)  # every gradient measured
    assert audit(model, x, jacobian=False).to_dict() == skipped


def test_a_sequential_subclass_with_its_own_forward_still_has_its_functions_recorded():
    class Squashed(nn.Sequential):
        def forward(self, x):
            return torch.tanh(super().forward(x))

    report = audit(nn.Sequential(Squashed(nn.Linear(40, 8)), nn.Linear(8, 3)), batch(8), jacobian=False)
    assert [layer.kind for layer in report.layers] == ["Linear → F.tanh", "Linear"]
