"""Statistics of one tensor, computed in a few passes over it (no rendering, no verdicts).

Everything here reads detached tensors and returns plain Python numbers or lists.
Percentiles and histograms use an evenly strided subsample of at most
``SUBSAMPLE`` finite values, which puts the p-th percentile within about
``sqrt(p (1 - p) / SUBSAMPLE)`` (0.2 % for the median) of the full tensor's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SUBSAMPLE = 65536
"""Maximum number of values used for percentiles and histograms."""

PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)
"""Percentiles reported for every layer output."""

HISTOGRAM_BINS = 40
"""Bins of each layer's compact histogram (edges from the subsample's min to max)."""

SYMMETRY_COLUMNS = 256
"""Samples/positions per unit compared when looking for identical units."""


@dataclass(frozen=True)
class Summary:
    """Distribution of one tensor's values.

    Attributes:
        numel: number of elements.
        non_finite: number of NaN or infinite elements (other figures use the finite ones).
        mean, std, min, max: of the finite values (``std`` with Bessel's correction).
        rms: root mean square, ``sqrt(mean(x^2))``; for a pre-activation this is the
            measured ``sqrt(q)`` of mean-field theory.
        percentiles: ``{"p50": ...}`` for each of :data:`PERCENTILES`.
        histogram_counts, histogram_edges: ``HISTOGRAM_BINS`` counts and their edges.
    """

    numel: int
    non_finite: int
    mean: float
    std: float
    min: float
    max: float
    rms: float
    percentiles: dict[str, float]
    histogram_counts: list[int]
    histogram_edges: list[float]

    def to_dict(self) -> dict:
        """Plain-data form."""
        return {
            "numel": self.numel, "non_finite": self.non_finite, "mean": self.mean, "std": self.std,
            "min": self.min, "max": self.max, "rms": self.rms, "percentiles": dict(self.percentiles),
            "histogram": {"counts": list(self.histogram_counts), "edges": list(self.histogram_edges)},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Summary":
        """Inverse of :meth:`to_dict`."""
        return cls(
            numel=data["numel"], non_finite=data["non_finite"], mean=data["mean"], std=data["std"],
            min=data["min"], max=data["max"], rms=data["rms"], percentiles=dict(data["percentiles"]),
            histogram_counts=list(data["histogram"]["counts"]), histogram_edges=list(data["histogram"]["edges"]),
        )


def _strided_subsample(flat: torch.Tensor, limit: int) -> torch.Tensor:
    step = max(1, math.ceil(flat.numel() / limit))
    return flat[::step]


def summarize(tensor: torch.Tensor) -> Summary:
    """Mean, std, min, max, rms, percentiles and a histogram of ``tensor``'s finite values."""
    values = tensor.detach()
    if not values.is_floating_point():
        values = values.float()
    flat = values.reshape(-1)
    numel = flat.numel()
    std, mean = torch.std_mean(flat) if numel > 1 else (torch.zeros(()), flat.sum())
    non_finite = 0
    if not (math.isfinite(float(mean)) and math.isfinite(float(std))):
        finite_mask = torch.isfinite(flat)
        non_finite = int(numel - finite_mask.sum())
        flat = flat[finite_mask]
        std, mean = torch.std_mean(flat) if flat.numel() > 1 else (torch.zeros(()), flat.sum())
    if flat.numel() == 0:
        nan = float("nan")
        return Summary(numel, non_finite, nan, nan, nan, nan, nan, {f"p{p:g}": nan for p in PERCENTILES},
                       [0] * HISTOGRAM_BINS, [nan] * (HISTOGRAM_BINS + 1))
    low, high = torch.aminmax(flat)
    mean_value, std_value = float(mean), float(std)
    count = flat.numel()
    rms = math.sqrt(max(mean_value**2 + std_value**2 * (count - 1) / count, 0.0))
    sample = _strided_subsample(flat, SUBSAMPLE).to(torch.float64)
    quantiles = torch.quantile(sample, torch.tensor(PERCENTILES, dtype=torch.float64) / 100)
    edges = torch.linspace(float(sample.min()), float(sample.max()), HISTOGRAM_BINS + 1, dtype=torch.float64)
    counts = torch.histc(sample, bins=HISTOGRAM_BINS, min=float(edges[0]), max=float(edges[-1]))
    return Summary(
        numel=numel, non_finite=non_finite, mean=mean_value, std=std_value, min=float(low), max=float(high),
        rms=rms, percentiles={f"p{p:g}": float(q) for p, q in zip(PERCENTILES, quantiles)},
        histogram_counts=[int(c) for c in counts.tolist()], histogram_edges=edges.tolist(),
    )


def unit_reduce_dims(ndim: int, unit_axis: int) -> list[int]:
    """The dimensions to reduce over to get one value per unit along ``unit_axis``."""
    axis = unit_axis % ndim
    return [dim for dim in range(ndim) if dim != axis]


def dead_units(output: torch.Tensor, unit_axis: int) -> tuple[int, int]:
    """``(dead, units)``: units (features or channels along ``unit_axis``) that are <= 0
    for every sample and position of the batch, and the number of units."""
    values = output.detach()
    if values.ndim < 2:
        return 0, 0
    largest = values.amax(dim=unit_reduce_dims(values.ndim, unit_axis))
    return int((largest <= 0).sum()), int(largest.numel())


def saturated_fraction(output: torch.Tensor, bounds: tuple[float, float], margin: float) -> float:
    """Fraction of the finite values within ``margin * (upper - lower)`` of a bound.

    For tanh (bounds -1, 1) and margin 0.005: the fraction with ``|y| >= 0.99``.
    """
    lower, upper = bounds
    width = margin * (upper - lower)
    values = output.detach()
    near = (values <= lower + width) | (values >= upper - width)
    return float(near.float().mean())


def unit_vectors(tensor: torch.Tensor, unit_axis: int, columns: int = SYMMETRY_COLUMNS) -> torch.Tensor:
    """``(units, m)``: each unit's values over the batch (and positions), at most ``columns``
    evenly strided ones, in float64."""
    values = tensor.detach().movedim(unit_axis, 0)
    flat = values.reshape(values.shape[0], -1)
    step = max(1, math.ceil(flat.shape[1] / columns))
    return flat[:, ::step].to(torch.float64)


def _close_rows(vectors: torch.Tensor, first: torch.Tensor, second: torch.Tensor, rtol: float) -> torch.Tensor:
    scale = float(vectors.abs().max()) if vectors.numel() else 0.0
    difference = (vectors[first] - vectors[second]).abs()
    largest = difference.amax(dim=1) if difference.shape[1] else torch.zeros(len(first), dtype=torch.float64)
    return largest <= rtol * scale


def duplicate_pairs(outputs: torch.Tensor, weight_rows: torch.Tensor, rtol: float, seed: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(i, j)`` of units with equal outputs and equal weight rows, within ``rtol``.

    Units are sorted by a random projection of their output vectors (equal vectors have
    equal projections), and each unit is compared with its neighbour in that order, so
    a group of ``k`` identical units yields ``k - 1`` pairs: the number of units that
    duplicate another one. Cost: O(units x (columns + fan_in)).

    Args:
        outputs: ``(units, m)`` from :func:`unit_vectors`.
        weight_rows: ``(units, fan_in [+ 1 for the bias])``.
        rtol: tolerance relative to the largest magnitude of the compared values.
        seed: seed of the projection direction (a fixed, private generator).
    """
    units = outputs.shape[0]
    if units < 2:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(outputs.shape[1], generator=generator, dtype=torch.float64)
    order = torch.argsort(outputs @ direction)
    first, second = order[:-1], order[1:]
    same = _close_rows(outputs, first, second, rtol) & _close_rows(weight_rows.to(torch.float64), first, second, rtol)
    return first[same], second[same]


def pairs_still_equal(vectors: torch.Tensor, first: torch.Tensor, second: torch.Tensor, rtol: float) -> int:
    """How many of the pairs ``(first[k], second[k])`` have equal vectors within ``rtol``."""
    if len(first) == 0:
        return 0
    return int(_close_rows(vectors, first, second, rtol).sum())


def vector_norm(tensor: torch.Tensor) -> float:
    """Euclidean norm of all elements, in float64 (so that a float32 norm does not overflow)."""
    return float(torch.linalg.vector_norm(tensor.detach(), dtype=torch.float64))
