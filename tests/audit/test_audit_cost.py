"""The default audit (Jacobian on) has a bounded cost: two forward passes of the model and at
most eight backward passes, whatever the model; the Jacobian estimates agree with the exact
Jacobian within their stated standard error."""

from __future__ import annotations

import io
import math

import pytest
import torch
from models_for_audit import ConvNet, batch, mlp, normal_init
from test_audit_guarantees import ARCHITECTURES
from torch import nn

import initlab
from initlab.auditing import jacobian as jacobian_module

BACKWARD_BUDGET = 2 + jacobian_module.PRODUCT_BUDGET
"""Backward passes of the whole default audit: 1 (statistics) + 1 (the graph of J^T u) + 6 products."""


class Counted:
    """Counts the model's forward calls (a forward pre-hook) and the backward passes
    (``torch.autograd.grad`` calls; a batched call counts once per cotangent)."""

    def __init__(self, model: nn.Module, monkeypatch: pytest.MonkeyPatch):
        self.forwards = 0
        self.backwards = 0
        model.register_forward_pre_hook(self._forward)
        grad = torch.autograd.grad

        def counting_grad(outputs, inputs, grad_outputs=None, *args, **kwargs):
            batched = kwargs.get("is_grads_batched", False)
            self.backwards += grad_outputs.shape[0] if batched else 1
            return grad(outputs, inputs, grad_outputs, *args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", counting_grad)

    def _forward(self, module, inputs) -> None:
        self.forwards += 1


class Classifier(nn.Module):
    """A 20-layer tanh MLP with 100 outputs (above the exact limit)."""

    def __init__(self):
        super().__init__()
        self.body = mlp(20, 64, nn.Tanh, normal_init(0.15), out=100)

    def forward(self, x):
        return self.body(x)


CASES = {
    **{name: ARCHITECTURES[name] for name in ("mlp", "conv2d_bn", "resnet", "transformer", "gru_lstm_tuple")},
    "tanh_classifier": (Classifier, lambda: batch(32)),
    "encoder": (
        lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 32, batch_first=True), 3),
        lambda: torch.randn(4, 6, 16, generator=torch.Generator().manual_seed(0)),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_default_audit_runs_the_model_twice_forward_and_at_most_eight_times_backward(monkeypatch, case):
    build, make_batch = CASES[case]
    torch.manual_seed(0)
    model = build()
    counted = Counted(model, monkeypatch)
    report = initlab.audit(model, make_batch())
    assert report.jacobian is not None, report.notes
    assert counted.forwards == 2  # the statistics pass and the Jacobian's one pass
    assert counted.backwards <= BACKWARD_BUDGET == 8
    assert report.jacobian.products <= jacobian_module.PRODUCT_BUDGET


def test_the_cost_does_not_grow_with_the_output_or_input_size(monkeypatch):
    # the former per-sample exact SVD needed one product per output value (here 4 x 300)
    model = nn.Sequential(nn.Linear(500, 300), nn.Tanh(), nn.Linear(300, 300))
    counted = Counted(model, monkeypatch)
    report = initlab.audit(model, torch.randn(16, 500, generator=torch.Generator().manual_seed(0)))
    assert report.jacobian.method == "lanczos"
    assert (counted.forwards, counted.backwards) == (2, 2 + jacobian_module.PRODUCT_BUDGET)


def _tanh_mlp(depth: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(30, 30), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(30, 20)).double()


@pytest.mark.parametrize("depth", [1, 4, 12])
def test_lanczos_estimates_agree_with_the_exact_jacobian_within_the_stated_error(depth):
    model = _tanh_mlp(depth, depth)
    x = torch.randn(16, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(depth))
    exact = jacobian_module.jacobian_spectrum(model, x, exact=True)
    assert exact.method == "exact" and exact.products == 20 and exact.samples == 16
    for seed in range(5):
        estimate = jacobian_module.jacobian_spectrum(model, x, seed=seed)
        assert estimate.method == "lanczos"
        error = estimate.mean_squared_singular_value_error
        assert 0 < error < 0.5 * exact.mean_squared_singular_value  # informative, not vacuous
        # a z-test at 3 standard errors (the error is itself a plug-in estimate)
        assert abs(estimate.mean_squared_singular_value - exact.mean_squared_singular_value) <= 3 * error
        # Ritz values are lower bounds that converge to the top of the spectrum first
        assert estimate.max_singular_value <= exact.max_singular_value * (1 + 1e-9)
        assert estimate.max_singular_value >= 0.8 * exact.max_singular_value
        assert estimate.squared_singular_value_variance == pytest.approx(
            exact.squared_singular_value_variance, rel=0.5)


def test_without_a_second_derivative_the_jacobian_is_estimated_from_vector_jacobian_products_only():
    class FirstOrderOnly(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, gradient):
            return OnceDifferentiable.apply(gradient)

    class OnceDifferentiable(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, gradient):
            raise RuntimeError("no second derivative")

    weight = torch.randn(40, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = torch.randn(64, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    stats = jacobian_module.jacobian_spectrum(lambda inputs: FirstOrderOnly.apply(inputs @ weight.T), x)
    singular = torch.linalg.svdvals(2 * weight)
    assert stats.method == "hutchinson" and stats.products == jacobian_module.LANCZOS_STEPS
    true_mean = float((singular**2).mean())
    assert abs(stats.mean_squared_singular_value - true_mean) <= 3 * stats.mean_squared_singular_value_error
    assert stats.max_singular_value <= float(singular.max())
    assert stats.squared_singular_value_variance is None and "lower bound" in stats.describe()


def test_a_model_whose_output_ignores_the_input_has_a_zero_jacobian():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.ones(50))

        def forward(self, x):
            return self.bias.expand(x.shape[0], 50) * 1.0

    report = initlab.audit(Constant(), batch(8))
    assert report.jacobian is not None and report.jacobian.max_singular_value == 0.0
    assert report.jacobian.mean_squared_singular_value == 0.0


def test_the_report_states_how_the_jacobian_was_obtained_and_its_error():
    model = ConvNet()
    report = initlab.audit(model, torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    text = report.jacobian.describe()
    assert text.startswith(f"estimated from {jacobian_module.LANCZOS_STEPS} Lanczos steps")
    assert "one standard error" in text and "lower bound" in text
    error = report.jacobian.mean_squared_singular_value_error
    assert math.isfinite(error) and error > 0
    out = io.StringIO()
    report.print(file=out)
    assert f"+/- {error:.2g}" in out.getvalue()
    page = report.to_html()
    assert f"± {error:.3g}" in page and "one standard error" in page


def test_a_transformers_resnet_costs_the_same_bounded_passes(monkeypatch):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="bottleneck")
    model = transformers.ResNetModel(config)
    counted = Counted(model, monkeypatch)
    report = initlab.audit(model, torch.randn(4, 3, 32, 32), output_fn=lambda out: out.pooler_output)
    assert report.jacobian is not None and report.jacobian.method == "lanczos"
    assert (counted.forwards, counted.backwards) == (2, BACKWARD_BUDGET)


def test_a_backward_pass_written_outside_autograd_is_not_taken_for_a_zero_jacobian():
    class UntrackedBackward(torch.autograd.Function):
        """y = 3 x, whose backward computes through numpy: autograd cannot differentiate it."""

        @staticmethod
        def forward(ctx, x):
            return 3 * x

        @staticmethod
        def backward(ctx, gradient):
            return torch.from_numpy(3 * gradient.detach().numpy())

    x = torch.randn(32, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    stats = jacobian_module.jacobian_spectrum(lambda inputs: UntrackedBackward.apply(inputs).repeat(1, 2), x)
    # J = [3 I; 3 I] per sample: every singular value is sqrt(18)
    assert stats.method == "hutchinson" and stats.max_singular_value <= math.sqrt(18) * (1 + 1e-12)
    error = stats.mean_squared_singular_value_error
    assert 0 < error < 1 and abs(stats.mean_squared_singular_value - 18.0) <= 3 * error  # not 0
