"""Singular values of the input-output Jacobian, per sample, with reverse-mode autograd only.

For sample ``i`` of the batch ``X`` and the model's output ``F(X)``, the Jacobian is the
diagonal block ``J_i = d F(X)_i / d X_i`` (``m`` outputs x ``n`` inputs). It includes the
dependence through batch statistics (BatchNorm in train mode) of sample ``i`` on itself.

* ``exact`` (``m <= EXACT_MAX_OUTPUTS``): the ``m`` rows of ``J_i`` come from one batched
  vector-Jacobian product per sample (``is_grads_batched``, i.e. ``torch.func.vmap`` over
  the backward pass; a loop when an operation has no batching rule), then an SVD.
* ``lanczos`` (larger outputs): ``LANCZOS_STEPS`` steps of Lanczos on ``A = J_i^T J_i`` with
  full re-orthogonalization. ``J^T u`` is a vector-Jacobian product; ``J v`` is the
  derivative of the linear map ``u -> J^T u`` (double backward), so one forward pass
  serves every product. The largest Ritz values converge to the largest ``sigma^2``;
  the mean and second moment of the spectrum are stochastic Lanczos quadrature
  estimates, ``v^T f(A) v ~= sum_k tau_k^2 f(theta_k)`` (Ubaru, Chen & Saad 2017).

Dynamical isometry (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017) asks for a
mean squared singular value near 1 and a small spread (variance of ``sigma^2``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from initlab.random import Stream, normal_

EXACT_MAX_OUTPUTS = 512
"""Largest per-sample output size for which the Jacobian is formed exactly."""

LANCZOS_STEPS = 32
"""Lanczos steps (Krylov dimension) per sample for larger outputs."""

SAMPLES = 4
"""Number of samples (the first ones of the batch) whose Jacobian is analysed."""


@dataclass(frozen=True)
class JacobianStats:
    """Spectrum of the input-output Jacobian on a few samples.

    Attributes:
        method: ``"exact"`` or ``"lanczos"``.
        samples: number of samples analysed.
        input_dim, output_dim: ``n`` and ``m`` of each ``J_i``.
        singular_values: per sample, the singular values (exact: all ``min(m, n)``;
            lanczos: square roots of the Ritz values), descending.
        mean_squared_singular_value: mean over samples of mean(sigma^2) over the
            ``min(m, n)`` singular values; 1 for an isometry.
        squared_singular_value_variance: mean over samples of var(sigma^2), the spread.
        max_singular_value: largest over samples.
        min_singular_value: smallest over samples (exact only, else None).
    """

    method: str
    samples: int
    input_dim: int
    output_dim: int
    singular_values: list[list[float]]
    mean_squared_singular_value: float
    squared_singular_value_variance: float
    max_singular_value: float
    min_singular_value: float | None

    def to_dict(self) -> dict:
        """Plain-data form."""
        return {
            "method": self.method,
            "samples": self.samples,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "singular_values": [list(row) for row in self.singular_values],
            "mean_squared_singular_value": self.mean_squared_singular_value,
            "squared_singular_value_variance": self.squared_singular_value_variance,
            "max_singular_value": self.max_singular_value,
            "min_singular_value": self.min_singular_value,
        }

    @classmethod
    def from_dict(cls, data: dict) -> JacobianStats:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "singular_values": [list(row) for row in data["singular_values"]]})


def jacobian_spectrum(
    forward: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, *, seed: int = 0, samples: int = SAMPLES
) -> JacobianStats:
    """Spectrum of ``d forward(X)_i / d X_i`` for the first ``samples`` samples of ``batch``.

    Args:
        forward: the model's forward pass, returning the audited output tensor whose first
            dimension indexes the samples of ``batch``.
        batch: a floating-point tensor (the first dimension indexes samples).
        seed: seed of the Lanczos start vectors (``initlab.random`` stream ``audit.lanczos``).
        samples: how many samples to analyse.
    """
    inputs = batch.detach().clone().requires_grad_(True)
    output = forward(inputs)
    count = min(samples, batch.shape[0])
    input_dim = inputs[0].numel()
    output_dim = output[0].numel()
    if output_dim <= EXACT_MAX_OUTPUTS:
        spectra = [_exact_singular_values(output, inputs, i) for i in range(count)]
        return _summarize("exact", spectra, input_dim, output_dim, exact=True)
    spectra = [_lanczos_singular_values(output, inputs, i, Stream(seed, f"audit.lanczos.{i}")) for i in range(count)]
    moments = [moment for _, moment in spectra]
    return _summarize("lanczos", [values for values, _ in spectra], input_dim, output_dim, exact=False, moments=moments)


def _basis_cotangents(output: torch.Tensor, sample: int) -> torch.Tensor:
    rows = output[0].numel()
    basis = torch.zeros((rows, *output.shape), dtype=output.dtype, device=output.device)
    basis.view(rows, output.shape[0], rows)[:, sample, :] = torch.eye(rows, dtype=output.dtype, device=output.device)
    return basis


def _exact_singular_values(output: torch.Tensor, inputs: torch.Tensor, sample: int) -> np.ndarray:
    basis = _basis_cotangents(output, sample)
    try:
        (rows,) = torch.autograd.grad(output, inputs, basis, retain_graph=True, is_grads_batched=True)
    except RuntimeError:
        rows = torch.stack(
            [torch.autograd.grad(output, inputs, cotangent, retain_graph=True)[0] for cotangent in basis]
        )
    jacobian = rows[:, sample].reshape(basis.shape[0], -1).to(torch.float64)
    return torch.linalg.svdvals(jacobian).numpy()


def _lanczos_singular_values(output, inputs, sample: int, stream: Stream) -> tuple[np.ndarray, tuple[float, float]]:
    dummy = torch.zeros_like(output, requires_grad=True)
    (transpose_product,) = torch.autograd.grad(output, inputs, dummy, create_graph=True)

    def apply(vector: torch.Tensor) -> torch.Tensor:
        tangent = torch.zeros_like(inputs)
        tangent[sample] = vector.reshape(inputs[sample].shape).to(inputs.dtype)
        (forward_product,) = torch.autograd.grad(transpose_product, dummy, tangent, retain_graph=True)
        cotangent = torch.zeros_like(output)
        cotangent[sample] = forward_product[sample]
        (back,) = torch.autograd.grad(output, inputs, cotangent, retain_graph=True)
        return back[sample].reshape(-1).to(torch.float64)

    dimension = inputs[sample].numel()
    start = torch.empty(dimension, dtype=torch.float64)
    normal_(start, stream)
    ritz_values, weights = _lanczos(apply, start / torch.linalg.vector_norm(start), min(LANCZOS_STEPS, dimension))
    first = float(np.sum(weights * ritz_values))
    second = float(np.sum(weights * ritz_values**2))
    return np.sqrt(np.clip(ritz_values, 0, None))[::-1], (first, second)


def _lanczos(
    apply: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values of the symmetric operator ``apply`` and their quadrature weights ``tau_k^2``."""
    basis = [start]
    alphas: list[float] = []
    betas: list[float] = []
    for step in range(steps):
        w = apply(basis[-1])
        alpha = float(w @ basis[-1])
        alphas.append(alpha)
        stacked = torch.stack(basis)
        w = w - stacked.T @ (stacked @ w)
        w = w - stacked.T @ (stacked @ w)
        beta = float(torch.linalg.vector_norm(w))
        if step == steps - 1 or beta <= 1e-12 * max(abs(alpha), 1e-300):
            break
        betas.append(beta)
        basis.append(w / beta)
    tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    values, vectors = np.linalg.eigh(tridiagonal)
    return values, vectors[0] ** 2


def _summarize(method, spectra, input_dim, output_dim, *, exact: bool, moments=None) -> JacobianStats:
    rank = min(input_dim, output_dim)
    if exact:
        means = [float(np.mean(values**2)) for values in spectra]
        variances = [float(np.var(values**2)) for values in spectra]
    else:
        scale = input_dim / rank
        means = [scale * first for first, _ in moments]
        variances = [max(scale * second - (scale * first) ** 2, 0.0) for first, second in moments]
    return JacobianStats(
        method=method,
        samples=len(spectra),
        input_dim=input_dim,
        output_dim=output_dim,
        singular_values=[[float(v) for v in values] for values in spectra],
        mean_squared_singular_value=float(np.mean(means)),
        squared_singular_value_variance=float(np.mean(variances)),
        max_singular_value=float(max(values.max() for values in spectra)),
        min_singular_value=float(min(values.min() for values in spectra)) if exact else None,
    )
