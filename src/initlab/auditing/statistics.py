"""Statistics of one tensor with plain torch operations (no rendering, no verdicts).

Every function reads a detached view of its tensor and returns plain Python numbers (or,
for the symmetry check, index tensors). Half-precision values are measured in float32.
Percentiles and histograms use an evenly strided subsample of at most :data:`SUBSAMPLE`
finite values, which puts the p-th percentile within about ``sqrt(p (1 - p) / SUBSAMPLE)``
in probability (0.8 % for the median) of the full tensor's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

SUBSAMPLE = 4096
"""Maximum number of values used for percentiles and histograms: figures to show (no verdict
reads them), where ~100 values per histogram bin suffice."""

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
            "numel": self.numel,
            "non_finite": self.non_finite,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "rms": self.rms,
            "percentiles": dict(self.percentiles),
            "histogram": {"counts": list(self.histogram_counts), "edges": list(self.histogram_edges)},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Summary:
        """Inverse of :meth:`to_dict`."""
        return cls(
            numel=data["numel"],
            non_finite=data["non_finite"],
            mean=data["mean"],
            std=data["std"],
            min=data["min"],
            max=data["max"],
            rms=data["rms"],
            percentiles=dict(data["percentiles"]),
            histogram_counts=list(data["histogram"]["counts"]),
            histogram_edges=list(data["histogram"]["edges"]),
        )


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    """The detached elements of ``tensor`` in one dimension, half precision widened to float32."""
    values = tensor.detach().reshape(-1)
    if values.dtype in (torch.float16, torch.bfloat16):
        values = values.float()
    return values


def subsample_step(numel: int) -> int:
    """Stride of the subsample ``values[::step]`` of ``numel`` values that percentiles and
    histograms read: at most :data:`SUBSAMPLE` values, evenly spread."""
    return max(1, math.ceil(numel / SUBSAMPLE))


def _total(values: torch.Tensor) -> float:
    """The sum of the 1-D ``values``: torch's cascade sum in their dtype (within a few ulps of
    the exact sum), in float64 when that overflows."""
    total = float(values.sum())
    if math.isinf(total):
        total = float(values.sum(dtype=torch.float64))
    return total


def _std(values: torch.Tensor, mean: float) -> float:
    """Std (Bessel) of the finite 1-D ``values`` (at least two) of mean ``mean``, by the two-pass
    formula ``std^2 = sum((x - mean)^2) / (n - 1)``, which loses no digits when the mean is
    large next to the std. The squares are summed in the values' dtype, or in float64 when
    that overflows."""
    centred = values - mean
    squares = float(torch.dot(centred, centred))
    if math.isinf(squares):
        centred = values.double() - mean
        squares = float(torch.dot(centred, centred))
    return math.sqrt(squares / (values.numel() - 1))


def _sorted(values: torch.Tensor) -> torch.Tensor:
    """A sorted CPU copy of the 1-D ``values`` (numpy's sort: many times faster than
    ``torch.sort`` on a few thousand values, as it computes no indices)."""
    return torch.from_numpy(np.sort(values.cpu().numpy()))


def _percentile_positions(count: int) -> tuple[list[int], list[int], list[float]]:
    """For :data:`PERCENTILES` of ``count`` sorted values, with numpy's default (linear)
    interpolation: the index below each percentile, the index above, and the weight of the
    value above."""
    positions = [p / 100 * (count - 1) for p in PERCENTILES]
    lower = [math.floor(position) for position in positions]
    upper = [min(index + 1, count - 1) for index in lower]
    return lower, upper, [position - index for position, index in zip(positions, lower)]


def _empty_summary(numel: int, non_finite: int) -> Summary:
    nan = float("nan")
    return Summary(
        numel,
        non_finite,
        nan,
        nan,
        nan,
        nan,
        nan,
        {f"p{p:g}": nan for p in PERCENTILES},
        [0] * HISTOGRAM_BINS,
        [nan] * (HISTOGRAM_BINS + 1),
    )


def summarize(tensor: torch.Tensor) -> Summary:
    """The :class:`Summary` of a floating tensor's values.

    Mean (sum in float64), std (Bessel, :func:`_std`; 0 for a single value), rms and range
    (``torch.aminmax``), all over the finite values (a finite sum proves every value finite;
    otherwise they are selected first). Percentiles
    (numpy's linear interpolation) and the histogram (``torch.histc`` between the
    subsample's smallest and largest value) come from the sorted strided subsample of
    :func:`subsample_step`.
    """
    values = _flat(tensor)
    numel = values.numel()
    total = _total(values)
    if not math.isfinite(total):
        values = values[torch.isfinite(values)]
        total = _total(values)
    count = values.numel()
    if count == 0:
        return _empty_summary(numel, numel)
    mean_value = total / count
    std_value = _std(values, mean_value) if count > 1 else 0.0
    low_value, high_value = torch.stack(torch.aminmax(values)).tolist()
    ordered = _sorted(values[:: subsample_step(count)])
    lower, upper, weights = _percentile_positions(len(ordered))
    picked = ordered[[0, len(ordered) - 1, *lower, *upper]].tolist()
    first, last, below, above = picked[0], picked[1], picked[2 : 2 + len(lower)], picked[2 + len(lower) :]
    counts = torch.histc(ordered, bins=HISTOGRAM_BINS, min=first, max=last)
    return Summary(
        numel=numel,
        non_finite=numel - count,
        mean=mean_value,
        std=std_value,
        min=low_value,
        max=high_value,
        rms=math.sqrt(mean_value**2 + std_value**2 * (count - 1) / count),
        percentiles={
            f"p{p:g}": low_pick + weight * (high_pick - low_pick)
            for p, low_pick, high_pick, weight in zip(PERCENTILES, below, above, weights)
        },
        histogram_counts=[int(c) for c in counts.tolist()],
        histogram_edges=torch.linspace(first, last, HISTOGRAM_BINS + 1, dtype=torch.float64).tolist(),
    )


def norm_and_std(tensor: torch.Tensor) -> tuple[float, float]:
    """Euclidean norm and std (Bessel) of all elements: the mean from a float64 sum, the std
    by :func:`_std`, and ``||x||^2 = (n - 1) std^2 + n mean^2``. One element: ``(|x|, 0)``;
    none: ``(0, 0)``; NaN/inf values give a NaN std and a NaN/inf norm."""
    values = _flat(tensor)
    count = values.numel()
    if count < 2:
        value = float(values[0]) if count else 0.0
        return abs(value), 0.0
    total = _total(values)
    if not math.isfinite(total):
        return vector_norm(values), math.nan
    mean = total / count
    std = _std(values, mean)
    return math.sqrt((count - 1) * std**2 + count * mean**2), std


def tensor_std(tensor: torch.Tensor) -> float:
    """Std (Bessel) of all elements of a floating tensor; 0 for fewer than two."""
    return norm_and_std(tensor)[1]


def vector_norm(tensor: torch.Tensor) -> float:
    """Euclidean norm of all elements, in float64 (so that a float32 norm does not overflow)."""
    return float(torch.linalg.vector_norm(tensor.detach(), dtype=torch.float64))


def non_finite_count(tensor: torch.Tensor) -> int:
    """How many elements are NaN or infinite."""
    return int(tensor.numel() - torch.isfinite(tensor.detach()).sum())


def unit_reduce_dims(ndim: int, unit_axis: int) -> list[int]:
    """The dimensions to reduce over to get one value per unit along ``unit_axis``."""
    axis = unit_axis % ndim
    return [dim for dim in range(ndim) if dim != axis]


def dead_units(output: torch.Tensor, unit_axis: int) -> tuple[int, int]:
    """``(dead, units)``: units (features or channels along ``unit_axis``) that are <= 0
    for every sample and position of the batch, and the number of units; ``(0, 0)`` for a
    tensor of fewer than two dimensions or without elements."""
    values = output.detach()
    if values.ndim < 2 or values.numel() == 0:
        return 0, 0
    largest = values.amax(dim=unit_reduce_dims(values.ndim, unit_axis))
    return int((largest <= 0).sum()), int(largest.numel())


def saturated_fraction(output: torch.Tensor, bounds: tuple[float, float], margin: float) -> float:
    """Fraction of the values within ``margin * (upper - lower)`` of a bound.

    For tanh (bounds -1, 1) and margin 0.005: the fraction with ``|y| >= 0.99``.
    """
    lower, upper = bounds
    width = margin * (upper - lower)
    values = output.detach()
    if values.numel() == 0:
        return float("nan")
    near = (values <= lower + width) | (values >= upper - width)
    return int(near.sum()) / values.numel()


def unit_vectors(tensor: torch.Tensor, unit_axis: int, columns: int = SYMMETRY_COLUMNS) -> torch.Tensor:
    """``(units, m)``: each unit's values over at most ``columns`` evenly strided samples and
    positions; a contiguous copy of those values only (the reductions of the symmetry check
    are several times slower on a transposed view)."""
    values = tensor.detach()
    axis = unit_axis % values.ndim
    units = values.shape[axis]
    if axis == values.ndim - 1:
        rows = values.reshape(-1, units)
        return rows[:: max(1, math.ceil(rows.shape[0] / columns))].T.contiguous()
    per_sample = values.movedim(axis, 1).flatten(2) if values.ndim > 2 else values.unsqueeze(-1)
    samples, positions = per_sample.shape[0], per_sample.shape[2]
    side = max(1, int(math.sqrt(columns)))
    picked = per_sample[:: max(1, math.ceil(samples / side)), :, :: max(1, math.ceil(positions / side))]
    return picked.transpose(0, 1).reshape(units, -1).contiguous()


def _neighbour_gaps(vectors: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The largest absolute difference between ``vectors[first[k]]`` and ``vectors[second[k]]``, per ``k``."""
    if vectors.shape[1] == 0:
        return torch.zeros(len(first), dtype=vectors.dtype)
    return (vectors[first] - vectors[second]).abs().amax(dim=1)


def duplicate_pairs(
    outputs: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    rtol: float,
    seed: int = 0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(i, j)`` of units with equal outputs and equal weight rows and biases, within ``rtol``.

    Units are sorted by a random projection of their output vector and weight row together
    (identical units have equal projections, so they sit next to each other), and each
    unit is compared with its neighbour in that order: a group of ``k`` identical units
    yields ``k - 1`` pairs, the number of units that duplicate another one. Weight rows
    are compared only for the pairs whose outputs are equal. Cost: O(units x (columns + fan_in)),
    or a sort of the first column only when no two units are that close there (equal
    outputs are equal in every column).

    Args:
        outputs: ``(units, m)`` from :func:`unit_vectors`.
        weight: ``(units, ...)``: one weight row per unit.
        bias: ``(units,)`` or None.
        rtol: tolerance relative to the largest magnitude of the compared values (for the
            outputs: ``scale``).
        seed: seed of the projection direction (a private generator: the global RNG is not used).
        scale: the outputs' magnitude the tolerance is relative to; by default their largest
            (the capture passes the largest magnitude of the whole layer output).
    """
    empty = torch.zeros(0, dtype=torch.long)
    units = outputs.shape[0]
    dtype = torch.promote_types(outputs.dtype, torch.float32)
    outputs = outputs.to(dtype)
    if scale is None:
        scale = float(outputs.abs().max()) if outputs.numel() else 0.0
    limit = rtol * scale
    if units < 2 or (outputs.shape[1] and not _any_close_neighbours(outputs[:, 0], limit)):
        return empty, empty
    rows = weight.detach().reshape(units, -1)
    if bias is not None:
        rows = torch.cat([rows, bias.detach().reshape(units, 1)], dim=1)
    rows = rows.to(dtype)
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(outputs.shape[1] + rows.shape[1], generator=generator).to(outputs.device, dtype)
    key = outputs @ directions[: outputs.shape[1]] + rows @ directions[outputs.shape[1] :]
    order = torch.argsort(key)
    first, second = order[:-1], order[1:]
    for columns in (outputs[:, :1], outputs):  # the first column rules out most pairs at little cost
        same = _neighbour_gaps(columns, first, second) <= limit
        first, second = first[same], second[same]
    same = _neighbour_gaps(rows, first, second) <= rtol * float(rows.abs().max())
    return first[same], second[same]


def _any_close_neighbours(values: torch.Tensor, limit: float) -> bool:
    """Whether two of the 1-D ``values`` lie within ``limit`` of each other (the closest two
    are neighbours once sorted)."""
    ordered = torch.sort(values).values
    return bool((ordered[1:] - ordered[:-1] <= limit).any())


def pairs_still_equal(vectors: torch.Tensor, first: torch.Tensor, second: torch.Tensor, rtol: float) -> int:
    """How many of the pairs ``(first[k], second[k])`` have equal vectors within ``rtol``."""
    if len(first) == 0:
        return 0
    scale = float(vectors.abs().max())
    return int((_neighbour_gaps(vectors, first, second) <= rtol * scale).sum())
