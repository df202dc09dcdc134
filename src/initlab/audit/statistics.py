"""Statistics of one tensor, computed in a few passes over it (no rendering, no verdicts).

Everything here reads detached tensors and returns plain Python numbers or lists.
Percentiles and histograms use an evenly strided subsample of at most
``SUBSAMPLE`` finite values, which puts the p-th percentile within about
``sqrt(p (1 - p) / SUBSAMPLE)`` in probability (0.4 % for the median) of the full tensor's.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

SUBSAMPLE = 16384
"""Maximum number of values used for percentiles and histograms."""

PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)
"""Percentiles reported for every layer output."""

HISTOGRAM_BINS = 40
"""Bins of each layer's compact histogram (edges from the subsample's min to max)."""

SYMMETRY_COLUMNS = 256
"""Samples/positions per unit compared when looking for identical units."""


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch ops on one intra-op thread, then restore the thread count.

    The audit's statistics are many small reductions: on one thread each costs its memory
    pass, while waking a thread pool costs more than that for most layer outputs, and far
    more on a loaded machine (measured: std of 65k floats 0.7 ms on one thread vs 13 ms on
    two busy cores). The model's own forward and backward passes keep every thread.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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


def std_mean(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(std with Bessel's correction, mean) of all elements, by the two-pass algorithm.

    mean = sum(x) / n, std^2 = sum((x - mean)^2) / (n - 1): a cascade sum, a subtraction
    and a BLAS dot, each vectorised, where ``torch.std_mean``'s single-threaded Welford
    pass is several times slower on the layer-sized tensors the audit reduces.
    """
    flat = values.reshape(-1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    mean = flat.sum() / flat.numel()
    centred = flat - mean
    return torch.sqrt(torch.dot(centred, centred) / (flat.numel() - 1)), mean


def _strided_subsample(flat: torch.Tensor, limit: int) -> torch.Tensor:
    step = max(1, math.ceil(flat.numel() / limit))
    return flat[::step]


def _sorted(values: torch.Tensor) -> torch.Tensor:
    """``values`` sorted ascending, on the CPU (numpy's vectorised sort: ~20x torch.sort here)."""
    dtype = torch.float32 if values.dtype in (torch.float16, torch.bfloat16) else values.dtype
    return torch.from_numpy(np.sort(values.detach().to("cpu", dtype).numpy()))


def _interpolated_percentiles(ordered: torch.Tensor) -> dict[str, float]:
    """Percentiles of sorted values by linear interpolation (numpy's default method)."""
    last = ordered.numel() - 1
    positions = [p / 100 * last for p in PERCENTILES]
    lower = [math.floor(x) for x in positions]
    picked = ordered[torch.tensor(lower + [min(i + 1, last) for i in lower])].tolist()
    count = len(PERCENTILES)
    return {
        f"p{p:g}": picked[k] + (positions[k] - lower[k]) * (picked[count + k] - picked[k])
        for k, p in enumerate(PERCENTILES)
    }


def _empty_summary(numel: int, non_finite: int) -> Summary:
    nan = float("nan")
    return Summary(numel, non_finite, nan, nan, nan, nan, nan, {f"p{p:g}": nan for p in PERCENTILES},
                   [0] * HISTOGRAM_BINS, [nan] * (HISTOGRAM_BINS + 1))


def summarize(tensor: torch.Tensor) -> Summary:
    """Mean, std, min, max, rms, percentiles and a histogram of ``tensor``'s finite values.

    A few vectorised passes (:func:`std_mean`, ``aminmax``); NaN/inf are filtered out only
    when the mean or std shows that there are some.
    """
    values = tensor.detach()
    if not values.is_floating_point():
        values = values.float()
    flat = values.reshape(-1)
    numel = flat.numel()
    if numel == 0:
        return _empty_summary(0, 0)
    std, mean = std_mean(flat)
    non_finite = 0
    if not (math.isfinite(float(mean)) and math.isfinite(float(std))):
        finite_mask = torch.isfinite(flat)
        flat = flat[finite_mask]
        non_finite = numel - flat.numel()
        if flat.numel() == 0:
            return _empty_summary(numel, non_finite)
        std, mean = std_mean(flat)
    low, high = torch.aminmax(flat)
    count = flat.numel()
    mean_value, std_value, low_value, high_value = torch.stack([mean, std, low, high]).tolist()
    if count == 1:
        std_value = 0.0
    rms = math.sqrt(max(mean_value**2 + std_value**2 * (count - 1) / count, 0.0))
    ordered = _sorted(_strided_subsample(flat, SUBSAMPLE))
    first, last = ordered[[0, -1]].tolist()
    counts = torch.histc(ordered, bins=HISTOGRAM_BINS, min=first, max=last)
    edges = torch.linspace(first, last, HISTOGRAM_BINS + 1, dtype=torch.float64)
    return Summary(
        numel=numel, non_finite=non_finite, mean=mean_value, std=std_value, min=low_value, max=high_value,
        rms=rms, percentiles=_interpolated_percentiles(ordered),
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
    """``(units, m)``: each unit's values over at most ``columns`` evenly strided samples and
    positions, gathered without copying the whole tensor."""
    values = tensor.detach()
    axis = unit_axis % values.ndim
    units = values.shape[axis]
    if axis == values.ndim - 1:
        rows = values.reshape(-1, units)
        return rows[:: max(1, math.ceil(rows.shape[0] / columns))].T
    per_sample = values.movedim(axis, 1).flatten(2) if values.ndim > 2 else values.unsqueeze(-1)
    samples, positions = per_sample.shape[0], per_sample.shape[2]
    side = max(1, int(math.sqrt(columns)))
    picked = per_sample[:: max(1, math.ceil(samples / side)), :, :: max(1, math.ceil(positions / side))]
    return picked.transpose(0, 1).reshape(units, -1)


def _neighbour_gaps(vectors: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    if vectors.shape[1] == 0:
        return torch.zeros(len(first), dtype=vectors.dtype)
    return (vectors[first] - vectors[second]).abs().amax(dim=1)


def duplicate_pairs(outputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, rtol: float,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(i, j)`` of units with equal outputs and equal weight rows and biases, within ``rtol``.

    Units are sorted by a random projection of their output vector and weight row together
    (identical units have equal projections, so they sit next to each other), and each
    unit is compared with its neighbour in that order: a group of ``k`` identical units
    yields ``k - 1`` pairs, the number of units that duplicate another one. Weight rows
    are compared only for the pairs whose outputs are equal. Cost: O(units x (columns + fan_in)).

    Args:
        outputs: ``(units, m)`` from :func:`unit_vectors`.
        weight: ``(units, ...)``: one weight row per unit.
        bias: ``(units,)`` or None.
        rtol: tolerance relative to the largest magnitude of the compared values.
        seed: seed of the projection direction (a fixed, private generator).
    """
    empty = torch.zeros(0, dtype=torch.long)
    units = outputs.shape[0]
    if units < 2:
        return empty, empty
    rows = weight.detach().reshape(units, -1)
    if bias is not None:
        rows = torch.cat([rows, bias.detach().reshape(units, 1)], dim=1)
    rows = rows.to(outputs.dtype)
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(outputs.shape[1] + rows.shape[1], generator=generator).to(outputs.dtype)
    key = outputs @ directions[: outputs.shape[1]] + rows @ directions[outputs.shape[1]:]
    order = torch.argsort(key)
    first, second = order[:-1], order[1:]
    same = _neighbour_gaps(outputs, first, second) <= rtol * float(outputs.abs().max())
    if not bool(same.any()):
        return empty, empty
    first, second = first[same], second[same]
    same = _neighbour_gaps(rows, first, second) <= rtol * float(rows.abs().max())
    return first[same], second[same]


def pairs_still_equal(vectors: torch.Tensor, first: torch.Tensor, second: torch.Tensor, rtol: float) -> int:
    """How many of the pairs ``(first[k], second[k])`` have equal vectors within ``rtol``."""
    if len(first) == 0:
        return 0
    scale = float(vectors.abs().max())
    return int((_neighbour_gaps(vectors, first, second) <= rtol * scale).sum())


def norm_and_std(tensor: torch.Tensor) -> tuple[float, float]:
    """Euclidean norm and std (Bessel) of all elements from :func:`std_mean`:
    ``||x||^2 = (n - 1) std^2 + n mean^2`` (a float64 norm when that is not finite)."""
    count = tensor.numel()
    if count < 2:
        value = float(tensor.detach().reshape(-1)[0]) if count else 0.0
        return abs(value), 0.0
    std, mean = std_mean(tensor.detach())
    std_value, mean_value = torch.stack([std, mean]).tolist()
    norm = math.sqrt((count - 1) * std_value**2 + count * mean_value**2)
    if not math.isfinite(norm):  # inf values (std is NaN then) or a float32 overflow of std
        norm = vector_norm(tensor)
    return norm, std_value


def vector_norm(tensor: torch.Tensor) -> float:
    """Euclidean norm of all elements, in float64 (so that a float32 norm does not overflow)."""
    return float(torch.linalg.vector_norm(tensor.detach(), dtype=torch.float64))
