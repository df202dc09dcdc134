"""Singular values of the input-output Jacobian at a bounded cost: one forward pass and at
most :data:`PRODUCT_BUDGET` Jacobian-vector products, with reverse-mode autograd only.

For the batch ``X`` (``B`` samples of ``n`` inputs) and the audited output ``F(X)`` (``m``
values per sample), ``J = d vec F(X) / d vec X``. A model that treats samples independently
has a block-diagonal ``J`` whose blocks are the per-sample Jacobians ``J_i = d F(X)_i / d X_i``
(``m x n``); its singular values are the union of theirs. BatchNorm in training mode couples
the samples through the batch statistics and adds terms of order ``1 / B``. The figures
summarise the ``B * r`` singular values that can be non-zero, ``r = min(m, n)``.

* ``exact`` (``m <= EXACT_MAX_OUTPUTS``): row ``k`` of every ``J_i`` is one vector-Jacobian
  product with the cotangent ``e_k`` at every sample (batched with ``is_grads_batched``, a
  loop when an operation has no batching rule); ``sigma^2`` are the eigenvalues of
  ``J_i J_i^T``. ``m`` products.
* ``lanczos``: :data:`LANCZOS_STEPS` steps of Lanczos on ``A = J^T J`` (``N = B n``
  dimensions) from one random unit vector ``v``, with full re-orthogonalization. ``J^T u`` is
  a vector-Jacobian product; ``J v`` the derivative of the linear map ``u -> J^T u`` (double
  backward), so one forward pass serves every product. Stochastic Lanczos quadrature
  (Ubaru, Chen & Saad 2017) gives ``N v^T A v = N sum_k tau_k^2 theta_k`` and
  ``N v^T A^2 v = N sum_k tau_k^2 theta_k^2`` exactly for ``v`` from two steps on; their
  expectations over ``v`` are ``tr A`` and ``tr A^2``. The standard error of the first, for
  ``v`` uniform on the sphere, is ``sqrt(2 N / (N + 2) * (tr A^2 - (tr A)^2 / N))`` (Hutchinson's
  estimator), estimated by plugging in the two estimates. The largest Ritz value
  ``theta_max`` is a lower bound of ``sigma_max^2`` that converges first (Kaniel-Paige).
  ``2 * LANCZOS_STEPS`` products.
* ``hutchinson`` (the model has no double backward): ``LANCZOS_STEPS`` vector-Jacobian products
  ``J^T u`` with Gaussian ``u``; ``||J^T u||^2`` estimates ``tr A``, its standard error is the
  spread of the estimates over ``sqrt(LANCZOS_STEPS)``; ``max ||J^T u|| / ||u||`` is a lower bound
  of ``sigma_max``; the spread of ``sigma^2`` is not estimated.

Dynamical isometry (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017) asks for a
mean squared singular value near 1 and a small spread (variance of ``sigma^2``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from initlab.random import Stream, normal_

LANCZOS_STEPS = 3
"""Lanczos steps (each one Jacobian-vector and one vector-Jacobian product) for larger outputs."""

PRODUCT_BUDGET = 2 * LANCZOS_STEPS
"""Most Jacobian products of any method."""

EXACT_MAX_OUTPUTS = PRODUCT_BUDGET
"""Largest per-sample output size for which the Jacobian is formed exactly (one product per output)."""


class NotPerSample(ValueError):
    """The output's first dimension does not index the batch's samples."""


@dataclass(frozen=True)
class JacobianStats:
    """Spectrum of the input-output Jacobian of the batch (see the module docstring).

    Attributes:
        method: ``"exact"``, ``"lanczos"`` or ``"hutchinson"``.
        samples: number of samples (the batch size ``B``).
        input_dim, output_dim: ``n`` and ``m`` of each sample.
        products: Jacobian-vector products spent (each about one backward pass).
        singular_values: exact: per sample, its ``r`` singular values; lanczos: one row,
            the square roots of the Ritz values; hutchinson: no row. Descending.
        mean_squared_singular_value: mean of ``sigma^2`` over the ``B r`` singular values; 1
            for an isometry.
        mean_squared_singular_value_error: its standard error (0 when exact).
        squared_singular_value_variance: variance of ``sigma^2`` over them, the spread
            (None for hutchinson).
        max_singular_value: the largest (exact), or a lower bound of it (estimates).
        min_singular_value: the smallest (exact only, else None).
    """

    method: str
    samples: int
    input_dim: int
    output_dim: int
    products: int
    singular_values: list[list[float]]
    mean_squared_singular_value: float
    mean_squared_singular_value_error: float
    squared_singular_value_variance: float | None
    max_singular_value: float
    min_singular_value: float | None

    @property
    def exact(self) -> bool:
        """Whether the figures are exact (up to rounding)."""
        return self.method == "exact"

    def describe(self) -> str:
        """How the figures were obtained and how far they can be off, in one sentence."""
        size = f"J is {self.output_dim} x {self.input_dim} per sample, {self.samples} samples"
        if self.exact:
            return f"exact, from {self.products} products; {size}"
        how = {
            "lanczos": f"{self.products // 2} Lanczos steps ({self.products} products)",
            "hutchinson": f"{self.products} random products (the model has no second derivative)",
        }[self.method]
        return (
            f"estimated from {how}; {size}; the +/- is one standard error of the mean; "
            "max sigma is a lower bound (it converges from below)"
        )

    def to_dict(self) -> dict:
        """Plain-data form."""
        return {
            "method": self.method,
            "samples": self.samples,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "products": self.products,
            "singular_values": [list(row) for row in self.singular_values],
            "mean_squared_singular_value": self.mean_squared_singular_value,
            "mean_squared_singular_value_error": self.mean_squared_singular_value_error,
            "squared_singular_value_variance": self.squared_singular_value_variance,
            "max_singular_value": self.max_singular_value,
            "min_singular_value": self.min_singular_value,
        }

    @classmethod
    def from_dict(cls, data: dict) -> JacobianStats:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "singular_values": [list(row) for row in data["singular_values"]]})


def jacobian_spectrum(
    forward: Callable[[torch.Tensor], torch.Tensor],
    batch: torch.Tensor,
    *,
    seed: int = 0,
    exact: bool | None = None,
    progress: Callable[[str], None] | None = None,
) -> JacobianStats:
    """Spectrum of ``d forward(X) / d X`` on ``batch`` from one forward pass and a bounded
    number of products (see the module docstring).

    Args:
        forward: the model's forward pass, returning the audited output tensor whose first
            dimension indexes the samples of ``batch``.
        batch: a floating-point tensor (the first dimension indexes samples).
        seed: seed of the random vectors (``initlab.random`` streams ``audit.lanczos``,
            ``audit.hutchinson``).
        exact: force (True) or forbid (False) the exact method; by default exact when the
            output has at most :data:`EXACT_MAX_OUTPUTS` values per sample.
        progress: called with a description of each step as it starts.

    Raises:
        NotPerSample: the output's first dimension is not the batch's.
    """
    step = progress if progress is not None else _silent
    step("Jacobian: forward pass")
    inputs = batch.detach().clone().requires_grad_(True)
    output = forward(inputs)
    if output.ndim == 0 or output.shape[0] != batch.shape[0]:
        raise NotPerSample(
            f"the output's first dimension ({tuple(output.shape)}) does not index the batch's samples "
            f"({tuple(batch.shape)})"
        )
    if not output.requires_grad:
        return _constant(inputs, output)
    if exact if exact is not None else output[0].numel() <= EXACT_MAX_OUTPUTS:
        step(f"Jacobian: {output[0].numel()} exact products")
        return _exact(output, inputs)
    try:
        return _lanczos_stats(output, inputs, Stream(seed, "audit.lanczos"), step)
    except RuntimeError:  # no double backward through some operation of the model
        return _hutchinson(output, inputs, Stream(seed, "audit.hutchinson"), step)


def _silent(_step: str) -> None:
    """No progress display."""


def _vector_jacobian(output: torch.Tensor, inputs: torch.Tensor, cotangent: torch.Tensor, **options) -> torch.Tensor:
    """``J^T cotangent`` (zeros where the output does not depend on the input)."""
    (product,) = torch.autograd.grad(output, inputs, cotangent, retain_graph=True, allow_unused=True, **options)
    if product is None:
        batched = options.get("is_grads_batched", False)
        shape = (cotangent.shape[0], *inputs.shape) if batched else inputs.shape
        return torch.zeros(shape, dtype=inputs.dtype, device=inputs.device)
    return product


def _exact(output: torch.Tensor, inputs: torch.Tensor) -> JacobianStats:
    """Every ``J_i`` from one product per output value; ``sigma^2`` from ``J_i J_i^T``."""
    rows = output[0].numel()
    samples = output.shape[0]
    basis = torch.eye(rows, dtype=output.dtype, device=output.device)
    cotangents = basis[:, None, :].expand(rows, samples, rows).reshape(rows, *output.shape)
    try:
        products = _vector_jacobian(output, inputs, cotangents, is_grads_batched=True)
    except RuntimeError:
        products = torch.stack([_vector_jacobian(output, inputs, cotangent) for cotangent in cotangents])
    jacobians = products.reshape(rows, samples, -1).transpose(0, 1).to(torch.float64)  # B x m x n
    gram = jacobians @ jacobians.transpose(1, 2)
    rank = min(rows, inputs[0].numel())
    squares = torch.linalg.eigvalsh(gram).clamp_min(0).flip(-1)[:, :rank]  # descending
    values = squares.sqrt().cpu().numpy()
    flat = squares.cpu().numpy().reshape(-1)
    return JacobianStats(
        method="exact",
        samples=samples,
        input_dim=inputs[0].numel(),
        output_dim=rows,
        products=rows,
        singular_values=[[float(v) for v in row] for row in values],
        mean_squared_singular_value=float(flat.mean()),
        mean_squared_singular_value_error=0.0,
        squared_singular_value_variance=float(flat.var()),
        max_singular_value=float(values.max()),
        min_singular_value=float(values.min()),
    )


def _constant(inputs: torch.Tensor, output: torch.Tensor) -> JacobianStats:
    """The output does not depend on the input: ``J = 0``."""
    return JacobianStats(
        method="exact",
        samples=output.shape[0],
        input_dim=inputs[0].numel(),
        output_dim=output[0].numel(),
        products=0,
        singular_values=[],
        mean_squared_singular_value=0.0,
        mean_squared_singular_value_error=0.0,
        squared_singular_value_variance=0.0,
        max_singular_value=0.0,
        min_singular_value=0.0,
    )


def _normal_vector(size: int, stream: Stream) -> torch.Tensor:
    vector = torch.empty(size, dtype=torch.float64)
    return normal_(vector, stream)


def _lanczos_stats(
    output: torch.Tensor, inputs: torch.Tensor, stream: Stream, step: Callable[[str], None]
) -> JacobianStats:
    """Lanczos on ``J^T J`` with products from one forward pass (double backward for ``J v``)."""
    dummy = torch.zeros_like(output, requires_grad=True)
    (transpose_product,) = torch.autograd.grad(output, inputs, dummy, create_graph=True, allow_unused=True)
    if transpose_product is None:  # the output does not depend on the input
        return _constant(inputs, output)
    if not transpose_product.requires_grad:  # a backward pass autograd cannot differentiate (untracked code)
        raise RuntimeError("no double backward: the vector-Jacobian product does not depend on the vector")

    steps = min(LANCZOS_STEPS, inputs.numel())
    done = [0]

    def apply(vector: torch.Tensor) -> torch.Tensor:
        done[0] += 1
        step(f"Jacobian: Lanczos step {done[0]} of {steps}")
        tangent = vector.reshape(inputs.shape).to(inputs.dtype)
        (forward_product,) = torch.autograd.grad(transpose_product, dummy, tangent, retain_graph=True)
        return _vector_jacobian(output, inputs, forward_product).reshape(-1).to(torch.float64)

    dimension = inputs.numel()
    start = _normal_vector(dimension, stream).to(inputs.device)
    ritz_values, weights, applied = _lanczos(apply, start / torch.linalg.vector_norm(start), steps)
    trace = dimension * float(np.sum(weights * ritz_values))
    trace_of_square = dimension * float(np.sum(weights * ritz_values**2))
    count = output.shape[0] * min(inputs[0].numel(), output[0].numel())
    spread = max(trace_of_square - trace**2 / dimension, 0.0)
    error = math.sqrt(2 * dimension / (dimension + 2) * spread) / count
    mean = trace / count
    singular_values = np.sqrt(np.clip(ritz_values, 0, None))[::-1]
    return JacobianStats(
        method="lanczos",
        samples=output.shape[0],
        input_dim=inputs[0].numel(),
        output_dim=output[0].numel(),
        products=2 * applied,
        singular_values=[[float(v) for v in singular_values]],
        mean_squared_singular_value=mean,
        mean_squared_singular_value_error=error,
        squared_singular_value_variance=max(trace_of_square / count - mean**2, 0.0),
        max_singular_value=float(singular_values[0]),
        min_singular_value=None,
    )


def _lanczos(
    apply: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, steps: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Ritz values of the symmetric operator ``apply``, their quadrature weights ``tau_k^2``,
    and the number of times ``apply`` ran."""
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
    return values, vectors[0] ** 2, len(alphas)


def _hutchinson(
    output: torch.Tensor, inputs: torch.Tensor, stream: Stream, step: Callable[[str], None]
) -> JacobianStats:
    """``tr(J^T J)`` from ``LANCZOS_STEPS`` products ``J^T u``, Gaussian ``u``."""
    noise = _normal_vector(LANCZOS_STEPS * output.numel(), stream).reshape(LANCZOS_STEPS, *output.shape)
    traces, ratios = [], []
    for number, cotangent in enumerate(noise.to(device=output.device, dtype=output.dtype), start=1):
        step(f"Jacobian: product {number} of {LANCZOS_STEPS}")
        product = _vector_jacobian(output, inputs, cotangent).to(torch.float64)
        square = float(torch.linalg.vector_norm(product)) ** 2
        traces.append(square)
        ratios.append(math.sqrt(square) / float(torch.linalg.vector_norm(cotangent.to(torch.float64))))
    count = output.shape[0] * min(inputs[0].numel(), output[0].numel())
    estimates = np.asarray(traces) / count
    return JacobianStats(
        method="hutchinson",
        samples=output.shape[0],
        input_dim=inputs[0].numel(),
        output_dim=output[0].numel(),
        products=LANCZOS_STEPS,
        singular_values=[],
        mean_squared_singular_value=float(estimates.mean()),
        mean_squared_singular_value_error=float(estimates.std(ddof=1) / math.sqrt(len(estimates))),
        squared_singular_value_variance=None,
        max_singular_value=max(ratios),
        min_singular_value=None,
    )
