"""Statistics of one tensor, computed in a few passes over it (no rendering, no verdicts).

Everything here reads detached tensors and returns plain Python numbers or lists. The
``*_rows`` functions take a stack of same-shaped layer outputs (one per row) and give, for
each, the figures of the one-tensor function of the same name with a handful of vectorised
ops for the whole stack: the capture measures outputs a buffer at a time with them.
Percentiles and histograms use an evenly strided subsample of at most
``SUBSAMPLE`` finite values, which puts the p-th percentile within about
``sqrt(p (1 - p) / SUBSAMPLE)`` in probability (0.8 % for the median) of the full tensor's.

A float32, contiguous CPU tensor is measured by the compiled one-pass kernel
``initlab._kernels.moments`` (:func:`float32_pass`, and :func:`norm_and_std`): its
sums are accumulated in double, so its mean, std and norm can differ from the float32
torch reductions used for other tensors in the last bits (they are the more accurate
ones); counts, range, percentiles and histograms are the same.
"""

from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from initlab import _kernels
from initlab.errors import InitlabError

SUBSAMPLE = 4096
"""Maximum number of values used for percentiles and histograms: figures to show (no verdict
reads them), where ~100 values per histogram bin suffice. Sorting 16384 values instead took
about a tenth of a 50-layer MLP's audit."""

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
    _CALLER_THREADS.append(previous)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        _CALLER_THREADS.pop()
        torch.set_num_threads(previous)


LARGE_NUMEL = 2**20
"""Reductions over this many elements or more run on the caller's threads (:func:`shared_threads`)."""

_CALLER_THREADS: list[int] = []


@contextmanager
def shared_threads(large: bool = True) -> Iterator[None]:
    """Inside :func:`single_threaded`: when ``large``, run on the intra-op threads the caller had
    (as the model's own passes do): a reduction over megabytes splits well, unlike the many
    small per-layer ones that :func:`single_threaded` is for."""
    if not large or not _CALLER_THREADS:
        yield
        return
    current = torch.get_num_threads()
    torch.set_num_threads(_CALLER_THREADS[0])
    try:
        yield
    finally:
        torch.set_num_threads(current)


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


def _sorted_rows(rows: torch.Tensor) -> torch.Tensor:
    """A copy of ``rows`` with each row sorted ascending, on the CPU (numpy's vectorised sort,
    ~20x torch.sort here, in place on one contiguous copy)."""
    dtype = torch.float32 if rows.dtype in (torch.float16, torch.bfloat16) else rows.dtype
    copy = rows.detach().to("cpu", dtype)
    if copy.data_ptr() == rows.data_ptr():
        copy = copy.clone(memory_format=torch.contiguous_format)
    copy = copy.contiguous()
    copy.numpy().sort(axis=1)
    return copy


@functools.lru_cache(maxsize=256)
def _percentile_picks(count: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """For :data:`PERCENTILES` of ``count`` sorted values, numpy's default linear interpolation:
    the positions to pick (the lower index of each percentile, then the upper one; a
    read-only array, cached) and each percentile's weight of its upper value."""
    last = count - 1
    positions = [p / 100 * last for p in PERCENTILES]
    lower = [math.floor(x) for x in positions]
    upper = [min(i + 1, last) for i in lower]
    index = np.array(lower + upper, dtype=np.intp)
    index.flags.writeable = False
    return index, tuple(x - i for x, i in zip(positions, lower))


_PERCENTILE_NAMES = tuple(f"p{p:g}" for p in PERCENTILES)

_EDGE_STEPS = np.arange(HISTOGRAM_BINS + 1, dtype=np.float64)
_EDGE_LOWER = _EDGE_STEPS <= HISTOGRAM_BINS / 2


def histogram_edges(firsts: list[float], lasts: list[float]) -> list[list[float]]:
    """The ``HISTOGRAM_BINS + 1`` evenly spaced edges from each ``first`` to its ``last`` (in
    float64, with ``torch.linspace``'s rule: ``first + k step`` over the lower half and
    ``last - (bins - k) step`` over the upper one, so both ends are exact; within an ulp of
    ``linspace``). All rows in a few numpy operations instead of one ``linspace`` per row."""
    low = np.asarray(firsts, dtype=np.float64)[:, None]
    high = np.asarray(lasts, dtype=np.float64)[:, None]
    step = (high - low) / HISTOGRAM_BINS
    return np.where(_EDGE_LOWER, low + step * _EDGE_STEPS, high - step * (HISTOGRAM_BINS - _EDGE_STEPS)).tolist()


def _percentiles_from(picked: list[float], fractions: tuple[float, ...]) -> dict[str, float]:
    count = len(PERCENTILES)
    return {
        name: picked[k] + fractions[k] * (picked[count + k] - picked[k])
        for k, name in enumerate(_PERCENTILE_NAMES)
    }


def _empty_summary(numel: int, non_finite: int) -> Summary:
    nan = float("nan")
    return Summary(numel, non_finite, nan, nan, nan, nan, nan, {f"p{p:g}": nan for p in PERCENTILES},
                   [0] * HISTOGRAM_BINS, [nan] * (HISTOGRAM_BINS + 1))


def row_moments(rows: torch.Tensor) -> tuple[list[float], list[float]]:
    """``(sums, norms)``: the sum and the Euclidean norm of each row of a 2-D tensor
    (Python floats). Squares are summed by BLAS ``dot``, row by row: as accurate as the
    two-pass :func:`std_mean`, where float32 ``torch.linalg.vector_norm`` drifts by ~1e-5
    relative over a million values."""
    sums = rows.sum(dim=1)
    squares = torch.stack([torch.dot(row, row) for row in rows])
    return sums.tolist(), squares.sqrt().tolist()


def std_from_moments(total: float, norm: float, count: int) -> tuple[float, float] | None:
    """``(std, mean)`` (Bessel) from the sum and the norm of ``count`` values, or None when
    that formula loses precision and the two-pass :func:`std_mean` must be used instead.

    ``(n - 1) std^2 = ||x||^2 - n mean^2``: the subtraction cancels digits when the mean
    dominates the second moment, so the formula is used only while ``mean^2 <= std^2``
    (ReLU outputs: ``mean^2 ~ 0.47 std^2``), where its relative error stays within a few
    float32 roundings of the sums; constant-like tensors take the two-pass route.
    """
    if count < 2 or not (math.isfinite(total) and math.isfinite(norm)):
        return None
    mean = total / count
    square = norm * norm
    if not math.isfinite(square) or 2.0 * count * mean * mean > square:
        return None
    variance = (square - count * mean * mean) / (count - 1)
    return math.sqrt(max(variance, 0.0)), mean


DOUBLE_CANCELLATION = 2.0**20
"""Largest ``n mean^2 / ((n - 1) std^2)`` for which the std is taken from double sums
(:func:`std_from_double_moments`): the subtraction then loses at most ~20 of double's 53
bits, far below float32 rounding."""


def std_from_double_moments(total: float, squares: float, count: int) -> tuple[float, float] | None:
    """``(std, mean)`` (Bessel) from the double-precision sum and sum of squares of ``count``
    values, or None when ``(n - 1) std^2 = sum(x^2) - n mean^2`` cancels too many digits
    (``n mean^2 > DOUBLE_CANCELLATION (n - 1) std^2``, e.g. a constant-like tensor): use the
    two-pass :func:`std_mean` then."""
    if count < 2:
        return None
    mean = total / count
    shift = count * mean * mean
    centred = squares - shift
    if shift > DOUBLE_CANCELLATION * centred:
        return None
    return math.sqrt(centred / (count - 1)), mean


def subsample_step(numel: int) -> int:
    """Stride of the subsample ``values[::step]`` of ``numel`` values that percentiles and
    histograms read: at most :data:`SUBSAMPLE` values, evenly spread."""
    return max(1, math.ceil(numel / SUBSAMPLE))


def compiled_layout(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` can be read by the compiled kernels: a non-empty float32, strided,
    C-contiguous CPU tensor."""
    return (tensor.dtype is torch.float32 and tensor.is_cpu and tensor.layout is torch.strided
            and tensor.numel() > 0 and tensor.is_contiguous())


@dataclass
class Float32Pass:
    """What one pass of ``_kernels.layer_pass`` over a float32 tensor leaves to finish its
    :class:`Summary` (:func:`summaries_from_passes`) without reading the tensor again.

    Attributes:
        numel, mean, std, min, max: of the tensor (finite values only).
        subsample: the strided subsample ``values[::step]`` (a private copy).
        maxima: each unit's largest value (when asked), else None.
        near: count of values within the saturation limits (0 without limits).
        dead: count of units whose largest value is <= 0 (0 without maxima).
        weight_moments: ``(norm, std)`` of the ``weight`` passed (:func:`norm_and_std`), or
            None (no weight, fewer than 2 values, NaN/inf or cancelling sums).
        apart: whether no two units are alike in their outputs and weights
            (:func:`first_values_apart`), when a symmetry check was asked and the output and
            weight are finite; else None.
    """

    numel: int
    mean: float
    std: float
    min: float
    max: float
    subsample: np.ndarray
    maxima: np.ndarray | None
    near: int
    dead: int = 0
    weight_moments: tuple[float, float] | None = None
    apart: bool | None = None


def float32_pass(tensor: torch.Tensor, *, units: int = 1, inner: int = 1, limits: tuple[float, float] | None = None,
                 unit_maxima: bool = False, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                 rtol: float = 0.0, symmetry_step: int = 0) -> Float32Pass | None:
    """One pass of ``_kernels.layer_pass`` over a tensor accepted by :func:`compiled_layout`
    (and the two-pass :func:`std_mean` when the double sums cancel), or None when it holds
    NaN/inf (summarise it with :func:`summarize_rows` then). :func:`summaries_from_passes`
    finishes its :class:`Summary`. The kernel reads the tensors at their ``data_ptr()``: no
    numpy view is made (in a forward hook, three views cost about as much as the pass).

    Mean and std come from double sums (:func:`std_from_double_moments`); percentiles and
    histogram from the strided subsample ``values[::step]`` of :func:`summarize_rows` (same
    values, same figures).

    Args:
        tensor: the values, seen as ``(outer, units, inner)`` for the unit maxima.
        units, inner: unit count and positions per unit and sample (channels-first conv
            output ``(N, C, H, W)``: ``C`` and ``H * W``; features last: ``F`` and 1).
        limits: count the values ``<= limits[0]`` or ``>= limits[1]`` (float32 values).
        unit_maxima: also keep each unit's largest value.
        weight, bias: :func:`compiled_layout` weight rows (one per unit) and bias (or None) of
            the layer that produced ``tensor``: measured in the same call (the layer's
            product just read them), and with ``symmetry_step``
            (:func:`symmetry_step`) the symmetry check of :func:`first_values_apart`
            with ``limit = 2 rtol max|x|`` and the weight's largest magnitude.
    """
    for name, given in (("tensor", tensor), ("weight", weight), ("bias", bias)):
        if given is not None and not compiled_layout(given):
            raise InitlabError(f"float32_pass: {name} is a {given.dtype} tensor on {given.device} (contiguous: "
                               f"{given.is_contiguous()}); expected a non-empty float32 C-contiguous CPU tensor.")
    numel = tensor.numel()
    step = subsample_step(numel)
    subsample = np.empty(len(range(0, numel, step)), dtype=np.float32)
    maxima = np.empty(units, dtype=np.float32) if unit_maxima else None
    low, high = (-math.inf, math.inf) if limits is None else limits
    nans, infs, total, squares, minimum, maximum, near, dead, weight_totals, apart = _kernels.layer_pass(
        (tensor.data_ptr(), numel), units, inner, low, high, maxima, step, subsample,
        None if weight is None else (weight.data_ptr(), weight.numel()),
        None if bias is None else (bias.data_ptr(), bias.numel()), rtol, symmetry_step)
    if nans or infs:
        return None
    moment = std_from_double_moments(total, squares, numel)
    if moment is None:
        std_tensor, mean_tensor = std_mean(tensor.detach())
        moment = tuple(torch.stack([std_tensor, mean_tensor]).tolist())
    std_value, mean_value = moment
    if numel == 1:
        std_value, mean_value = 0.0, total
    weight_moments = None
    if weight_totals is not None and weight.numel() >= 2:
        weight_moments = totals_norm_and_std(weight_totals, weight.numel())
    return Float32Pass(numel, mean_value, std_value, minimum, maximum, subsample, maxima, near, dead,
                       weight_moments, apart)


def summaries_from_passes(passes: list[Float32Pass]) -> list[Summary]:
    """The :class:`Summary` of each :func:`float32_pass`: percentiles and histogram from its
    sorted subsample. The subsamples of one length are sorted as the rows of one array and
    their percentiles picked at once: a few numpy calls per length instead of a few per
    pass (a deep MLP's outputs share one length). Reads no tensor: it may run after the
    tensors changed."""
    summaries: list[Summary | None] = [None] * len(passes)
    by_size: dict[int, list[int]] = {}
    for position, measured in enumerate(passes):
        by_size.setdefault(measured.subsample.size, []).append(position)
    counts = np.empty(HISTOGRAM_BINS, dtype=np.int64)
    for size, positions in by_size.items():
        block = np.stack([passes[position].subsample for position in positions])
        block.sort(axis=1)
        index, fractions = _percentile_picks(size)
        picked = block[:, index].tolist()
        ends = block[:, [0, -1]].tolist()
        edges = histogram_edges([first for first, _ in ends], [last for _, last in ends])
        for row, position in enumerate(positions):
            first, last = ends[row]
            if first == last:
                histogram = [int(c) for c in torch.histc(torch.from_numpy(block[row]), bins=HISTOGRAM_BINS,
                                                          min=first, max=last).tolist()]
            else:
                _kernels.histogram(block[row], counts)
                histogram = counts.tolist()
            measured = passes[position]
            numel, mean_value, std_value = measured.numel, measured.mean, measured.std
            summaries[position] = Summary(
                numel=numel, non_finite=0, mean=mean_value, std=std_value, min=measured.min, max=measured.max,
                rms=math.sqrt(max(mean_value**2 + std_value**2 * (numel - 1) / numel, 0.0)),
                percentiles=_percentiles_from(picked[row], fractions), histogram_counts=histogram,
                histogram_edges=edges[row],
            )
    return summaries  # type: ignore[return-value]


def saturation_limits(bounds: tuple[float, float], margin: float) -> tuple[float, float]:
    """The float32 limits ``lower + width`` and ``upper - width``, ``width = margin * (upper -
    lower)``, that :func:`saturated_counts` compares float32 values with."""
    lower, upper = bounds
    width = margin * (upper - lower)
    return float(np.float32(lower + width)), float(np.float32(upper - width))


def _histograms(ordered: torch.Tensor, *, in_place: bool = False) -> torch.Tensor:
    """``HISTOGRAM_BINS`` counts per row of sorted, finite, non-constant rows, equal to
    ``torch.histc(row, bins, min=row[0], max=row[-1])``: histc puts ``x`` in bin
    ``int((x - min) * bins / (max - min))`` (float arithmetic, the maximum in the last
    bin); that position is monotone in ``x``, so on sorted rows the counts are differences
    of :func:`torch.searchsorted` positions of the bin numbers. ``in_place``: overwrite
    ``ordered`` with those positions instead of allocating them."""
    low, high = ordered[:, :1].clone(), ordered[:, -1:].clone()
    position = ordered.sub_(low) if in_place else torch.sub(ordered, low)
    position.mul_(HISTOGRAM_BINS).div_(high - low)
    bins = torch.arange(1, HISTOGRAM_BINS, dtype=position.dtype).expand(len(ordered), -1).contiguous()
    below = torch.searchsorted(position, bins)  # values in bins < b
    edges = torch.cat([torch.zeros(len(ordered), 1, dtype=below.dtype), below,
                       torch.full((len(ordered), 1), ordered.shape[1], dtype=below.dtype)], dim=1)
    return edges[:, 1:] - edges[:, :-1]


def summarize_rows(rows: torch.Tensor, *, two_pass: bool = False, highs: list[float] | None = None) -> list[Summary]:
    """:class:`Summary` of each row of a 2-D floating tensor (e.g. the flattened outputs of
    layers of one shape, stacked), with a handful of vectorised ops for all rows.

    Sums and norms give mean and std (:func:`std_from_moments`, else the two-pass
    :func:`std_mean`), ``amin``/``amax`` the range; percentiles and histogram come from one
    sort (numpy's) of each row's evenly strided subsample of at most :data:`SUBSAMPLE`
    values. A row holding NaN/inf (its sum is not finite) is summarised over its finite
    values on its own, with the two-pass std (``two_pass=True``). ``highs``: each row's
    maximum when already known (e.g. from per-unit maxima).
    """
    count, numel = rows.shape
    if count == 0:
        return []
    if numel == 0:
        return [_empty_summary(0, 0) for _ in range(count)]
    summaries: list[Summary | None] = [None] * count
    if two_pass:
        moments: list[tuple[float, float] | None] = [None] * count
    else:
        sums, norms = row_moments(rows)
        moments = [std_from_moments(total, norm, numel) for total, norm in zip(sums, norms)]
        for row, total in enumerate(sums):
            if not math.isfinite(total):  # NaN/inf inside (or a float overflow of the sum)
                summaries[row] = _summarize_non_finite(rows[row])
    regular = [row for row in range(count) if summaries[row] is None]
    if not regular:
        return summaries  # type: ignore[return-value]
    block = rows if len(regular) == count else rows[regular]
    if highs is not None:
        lows, highs = block.amin(dim=1).tolist(), [highs[row] for row in regular]
    elif len(block) <= 8:  # one aminmax pass per long row beats amin + amax over the rows
        lows, highs = torch.stack([torch.stack(torch.aminmax(row)) for row in block]).T.tolist()
    else:
        lows, highs = block.amin(dim=1).tolist(), block.amax(dim=1).tolist()
    ordered = _sorted_rows(block[:, ::subsample_step(numel)])
    index, fractions = _percentile_picks(ordered.shape[1])
    picked = ordered[:, torch.from_numpy(index.copy())].tolist()
    ends = ordered[:, [0, -1]]
    firsts, lasts = ends[:, 0].tolist(), ends[:, 1].tolist()
    constant = [first == last for first, last in zip(firsts, lasts)]
    constant_rows = {position: ordered[position].clone() for position, same in enumerate(constant) if same}
    counts = _histograms(ordered, in_place=True).tolist() if not all(constant) else [None] * len(regular)
    edges = histogram_edges(firsts, lasts)
    for position, row in enumerate(regular):
        moment = moments[row]
        if moment is None:
            std_tensor, mean_tensor = std_mean(rows[row])
            moment = tuple(torch.stack([std_tensor, mean_tensor]).tolist())
        std_value, mean_value = moment
        if numel == 1:
            std_value = 0.0
        histogram = counts[position]
        first, last = firsts[position], lasts[position]
        if constant[position]:
            histogram = [int(c) for c in torch.histc(constant_rows[position], bins=HISTOGRAM_BINS, min=first,
                                                      max=last).tolist()]
        summaries[row] = Summary(
            numel=numel, non_finite=0, mean=mean_value, std=std_value, min=lows[position], max=highs[position],
            rms=math.sqrt(max(mean_value**2 + std_value**2 * (numel - 1) / numel, 0.0)),
            percentiles=_percentiles_from(picked[position], fractions),
            histogram_counts=histogram, histogram_edges=edges[position],
        )
    return summaries  # type: ignore[return-value]


def _summarize_non_finite(row: torch.Tensor) -> Summary:
    """Summary of the finite values of a row that holds NaN/inf (counted in ``non_finite``)."""
    numel = row.numel()
    finite = row[torch.isfinite(row)]
    if finite.numel() == 0:
        return _empty_summary(numel, numel)
    summary = summarize_rows(finite.reshape(1, -1), two_pass=True)[0]
    return Summary(numel, numel - finite.numel(), summary.mean, summary.std, summary.min, summary.max, summary.rms,
                   summary.percentiles, summary.histogram_counts, summary.histogram_edges)


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


def unit_maxima_rows(stack: torch.Tensor, unit_axis: int) -> torch.Tensor:
    """``(layers, units)``: each unit's largest value, for a stack ``(layers, *shape)`` of
    outputs of one shape (``unit_axis`` counts in ``shape``)."""
    ndim = stack.ndim - 1
    axis = unit_axis % ndim
    return stack.amax(dim=[dim + 1 for dim in range(ndim) if dim != axis])


def saturated_counts(rows: torch.Tensor, bounds: tuple[float, float], margin: float) -> list[int]:
    """Per row of a 2-D tensor: how many values lie within ``margin * (upper - lower)`` of a
    bound (see :func:`saturated_fraction`)."""
    lower, upper = bounds
    width = margin * (upper - lower)
    near = (rows <= lower + width) | (rows >= upper - width)
    return near.sum(dim=1).tolist()


def unit_vectors_rows(stack: torch.Tensor, unit_axis: int, columns: int = SYMMETRY_COLUMNS) -> torch.Tensor:
    """``(layers, units, m)``: :func:`unit_vectors` of every output in a stack ``(layers, *shape)``
    (the same samples and positions, in the same order), as views where possible."""
    layers = stack.shape[0]
    ndim = stack.ndim - 1
    axis = unit_axis % ndim
    units = stack.shape[axis + 1]
    if axis == ndim - 1:
        rows = stack.reshape(layers, -1, units)
        return rows[:, :: max(1, math.ceil(rows.shape[1] / columns))].transpose(1, 2)
    per_sample = stack.movedim(axis + 1, 2).flatten(3) if ndim > 2 else stack.unsqueeze(-1)
    samples, positions = per_sample.shape[1], per_sample.shape[3]
    side = max(1, int(math.sqrt(columns)))
    picked = per_sample[:, :: max(1, math.ceil(samples / side)), :, :: max(1, math.ceil(positions / side))]
    return picked.transpose(1, 2).reshape(layers, units, -1)


PREFILTER_COLUMNS = 8
"""Columns compared on every neighbour pair before the full comparison (see :func:`duplicate_pairs_rows`)."""


def unit_vector_length(shape: tuple[int, ...], unit_axis: int, columns: int = SYMMETRY_COLUMNS) -> int:
    """``m``, the length of each unit's vector in :func:`unit_vectors` of a tensor of ``shape``."""
    ndim = len(shape)
    axis = unit_axis % ndim
    units = shape[axis]
    if axis == ndim - 1:
        rows = math.prod(shape) // units if units else 0
        return len(range(0, rows, max(1, math.ceil(rows / columns))))
    others = [size for dim, size in enumerate(shape) if dim != axis]
    samples = others[0]
    positions = math.prod(others[1:]) if ndim > 2 else 1
    side = max(1, int(math.sqrt(columns)))
    return (len(range(0, samples, max(1, math.ceil(samples / side))))
            * len(range(0, positions, max(1, math.ceil(positions / side)))))


@functools.lru_cache(maxsize=64)
def projection_direction(columns: int, width: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """The random direction of :func:`duplicate_pairs` for ``m = columns`` output values and
    weight rows (bias included) of ``width`` values: the output part first (cached; read only)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(columns + width, generator=generator).to(dtype)


def row_key(weight: torch.Tensor, bias: torch.Tensor | None, direction: torch.Tensor) -> torch.Tensor:
    """``(units,)``: each unit's weight row and bias projected on the weight part of ``direction``
    (its last ``weight row + bias`` values)."""
    units = weight.shape[0]
    rows = weight.detach().reshape(units, -1).to(direction.dtype)
    width = rows.shape[1]
    start = direction.numel() - width - (bias is not None)
    key = rows @ direction[start: start + width]
    if bias is not None:
        key = key + bias.detach().to(direction.dtype) * direction[-1]
    return key


def duplicate_pairs_rows(vectors: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor | None],
                         rtol: float, seed: int = 0, scales: list[float] | None = None,
                         row_keys: list[torch.Tensor] | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`duplicate_pairs` for a stack of layers: ``vectors`` ``(layers, units, m)`` from
    :func:`unit_vectors_rows`, one weight (and bias or None) per layer.

    Same pairs as :func:`duplicate_pairs` layer by layer, with the sort and the output
    comparison done for all layers at once. A neighbour pair can only have equal outputs
    if its first :data:`PREFILTER_COLUMNS` columns are equal, so those are compared on
    every pair and all ``m`` columns only on the pairs that pass (an exact shortcut: the
    largest gap over all columns is at least the one over a few of them); weight rows are
    compared only for pairs with equal outputs.

    Args:
        scales: each layer's largest magnitude in ``vectors``, when already known.
        row_keys: each layer's :func:`row_key`, when already computed (e.g. while the
            weight was in cache).
    """
    layers, units, columns = vectors.shape
    empty = torch.zeros(0, dtype=torch.long)
    if units < 2:
        return [(empty, empty)] * layers
    dtype = vectors.dtype
    keys = torch.empty(layers, units, dtype=dtype)
    for layer, (weight, bias) in enumerate(zip(weights, biases)):
        width = math.prod(weight.shape[1:]) + (bias is not None)
        direction = projection_direction(columns, width, seed, dtype)
        key = row_keys[layer] if row_keys is not None else row_key(weight, bias, direction)
        torch.add(key, vectors[layer] @ direction[:columns], out=keys[layer])
    order = torch.argsort(keys, dim=1)
    if columns == 0:
        same = torch.ones(layers, units - 1, dtype=torch.bool)
        scales = [0.0] * layers
    else:
        if scales is None:
            scales = torch.maximum(vectors.amax(dim=(1, 2)), vectors.amin(dim=(1, 2)).neg()).tolist()
        limits = rtol * torch.tensor(scales, dtype=dtype)[:, None]
        head = vectors[:, :, :PREFILTER_COLUMNS]
        ordered_head = torch.gather(head, 1, order[:, :, None].expand(-1, -1, head.shape[2]))
        same = (ordered_head[:, 1:] - ordered_head[:, :-1]).abs().amax(dim=2) <= limits
    found = same.any(dim=1).tolist()
    results = []
    for layer in range(layers):
        if not found[layer]:
            results.append((empty, empty))
            continue
        first, second = order[layer, :-1][same[layer]], order[layer, 1:][same[layer]]
        if columns > PREFILTER_COLUMNS:
            keep = _neighbour_gaps(vectors[layer], first, second) <= rtol * scales[layer]
            first, second = first[keep], second[keep]
        if len(first):
            rows = weights[layer].detach().reshape(units, -1).to(dtype)
            if biases[layer] is not None:
                rows = torch.cat([rows, biases[layer].detach().reshape(units, 1).to(dtype)], dim=1)
            keep = _neighbour_gaps(rows, first, second) <= rtol * float(rows.abs().max())
            first, second = first[keep], second[keep]
        results.append((first, second) if len(first) else (empty, empty))
    return results


SURELY_DISTINCT_CANDIDATES = 64
"""Most units compared in full by :func:`units_surely_distinct` before it leaves the answer to
:func:`duplicate_pairs_rows`."""


def symmetry_step(shape: tuple[int, ...], unit_axis: int) -> int:
    """Stride along the first axis of the positions at which :func:`unit_vectors` samples each
    unit first (its first column: ``step`` apart over the samples), or 0 for a unit axis other
    than the channels (1) or the last one."""
    axis = unit_axis % len(shape)
    if axis == len(shape) - 1:
        return max(1, math.ceil(math.prod(shape[:-1]) / SYMMETRY_COLUMNS))
    if axis == 1:
        return max(1, math.ceil(shape[0] / max(1, int(math.sqrt(SYMMETRY_COLUMNS)))))
    return 0


def first_values_apart(tensor: torch.Tensor, unit_axis: int, limit: float, weight: torch.Tensor | None = None,
                       bias: torch.Tensor | None = None, rtol: float = 0.0,
                       weight_bound: float | None = None) -> bool:
    """Whether no two units of a :func:`compiled_layout` tensor are alike: within ``limit`` of
    each other at every sample :func:`unit_vectors` takes at the first position and, when
    ``weight`` (one row per unit; ``bias`` or None) is given and both are
    :func:`compiled_layout`, with weight rows and biases within ``2 rtol`` x their largest
    magnitude (``_kernels.units_apart``: one compiled sort of the units' first values,
    then a comparison of the few close ones). With ``limit = 2 rtol max|x|``, True means
    :func:`duplicate_pairs_rows` finds no pair. False for unit axes other than the
    channels (1) or the last one.

    Args:
        weight_bound: an upper bound of the weight's largest magnitude (e.g. its norm),
            used instead of a pass over it: a looser tolerance only makes the answer False
            more often.
    """
    shape = tensor.shape
    axis = unit_axis % len(shape)
    units, inner = shape[axis], math.prod(shape[axis + 1:])
    step = symmetry_step(shape, unit_axis)
    if step == 0:
        return False
    values = tensor.detach().reshape(-1).numpy()
    if weight is None or not compiled_layout(weight) or (bias is not None and not compiled_layout(bias)):
        return _kernels.units_apart(values, units, inner, limit, step)
    return _kernels.units_apart(values, units, inner, limit, step, weight.detach().reshape(-1).numpy(),
                                None if bias is None else bias.detach().reshape(-1).numpy(), rtol,
                                largest_magnitude(weight) if weight_bound is None else weight_bound)


def units_surely_distinct(vectors: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, rtol: float,
                          scale: float | None = None, weight_bound: float | None = None) -> bool:
    """Whether :func:`duplicate_pairs_rows` surely finds no pair among the units ``vectors``
    ``(units, m)`` (finite values) with weight rows ``weight`` and ``bias``: a cheap exact
    shortcut for the usual case.

    A pair it reports differs by at most ``rtol * scale`` (``scale``: the largest magnitude
    in ``vectors``, computed when None) in every output column, and by at most ``rtol`` x
    the largest weight/bias magnitude in its weight row and bias. Sort the first column: such
    a pair lies in one run of neighbours less than twice that tolerance apart (twice: a
    margin for float32 rounding). If there is no run, or no two of the (at most
    :data:`SURELY_DISTINCT_CANDIDATES`) units in runs are within twice the tolerances in
    every output column and weight, no pair is. Costs a sort of ``units`` values instead of
    the projection, sort and comparisons of every unit.

    Args:
        weight_bound: an upper bound of the largest weight magnitude (e.g. the weight's
            norm): a looser weight tolerance only makes the answer False more often.
    """
    units, columns = vectors.shape
    if units < 2:
        return True
    if columns == 0:
        return False
    if scale is None:
        scale = float(vectors.abs().max())
    limit = 2.0 * rtol * scale
    first = vectors[:, 0].numpy()
    order = np.argsort(first)
    ordered = first[order]
    close = np.flatnonzero(ordered[1:] - ordered[:-1] <= limit)
    if close.size == 0:
        return True
    candidates = np.unique(np.concatenate([order[close], order[close + 1]]))
    if candidates.size > SURELY_DISTINCT_CANDIDATES:
        return False
    outputs = vectors.numpy()[candidates]
    near = np.abs(outputs[:, None, :] - outputs[None, :, :]).max(axis=2) <= limit
    np.fill_diagonal(near, False)
    if not near.any():
        return True
    rows = _picked_rows(weight, candidates)
    weight_scale = largest_magnitude(weight) if weight_bound is None else weight_bound
    if bias is not None:
        biases = _picked_rows(bias, candidates)
        rows = np.concatenate([rows, biases], axis=1)
        weight_scale = max(weight_scale, largest_magnitude(bias))
    near &= np.abs(rows[:, None, :] - rows[None, :, :]).max(axis=2) <= 2.0 * rtol * weight_scale
    return not bool(near.any())


def _picked_rows(tensor: torch.Tensor, picked: np.ndarray) -> np.ndarray:
    """``tensor``'s rows (first axis) at ``picked``, flattened, as a float64 array."""
    values = tensor.detach()
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        return values.numpy().reshape(values.shape[0], -1)[picked].astype(np.float64)
    return values[torch.from_numpy(picked)].reshape(len(picked), -1).double().cpu().numpy()


def compiled_totals(tensor: torch.Tensor) -> tuple:
    """``_kernels.moments`` of all the elements of a :func:`compiled_layout` tensor, read at its
    ``data_ptr()``: ``(nan_count, inf_count, total, squares, minimum, maximum, 0)``."""
    return _kernels.moments((tensor.data_ptr(), tensor.numel()), 1, 1, -math.inf, math.inf, None, 1, None)


def largest_magnitude(tensor: torch.Tensor) -> float:
    """``max |x|`` over the elements (one compiled pass for :func:`compiled_layout` tensors)."""
    if compiled_layout(tensor):
        minimum, maximum = compiled_totals(tensor)[4:6]
        return max(-minimum, maximum)
    return float(tensor.detach().abs().max())


def totals_norm_and_std(totals: tuple, count: int) -> tuple[float, float] | None:
    """``(norm, std)`` of ``count >= 2`` values from their ``_kernels.moments`` totals
    ``(nan_count, inf_count, total, squares, ...)`` (:func:`std_from_double_moments`), or None
    when they hold NaN/inf or the double sums cancel: :func:`norm_and_std` decides then."""
    nans, infs, total, squares = totals[:4]
    if nans or infs:
        return None
    moment = std_from_double_moments(total, squares, count)
    return None if moment is None else (math.sqrt(squares), moment[0])


def norm_and_std(tensor: torch.Tensor) -> tuple[float, float]:
    """Euclidean norm and std (Bessel) of all elements: the double sums of one compiled pass
    for a tensor accepted by :func:`compiled_layout` (:func:`std_from_double_moments`),
    otherwise one sum and one norm (:func:`std_from_moments`); else the two-pass
    :func:`std_mean` with ``||x||^2 = (n - 1) std^2 + n mean^2`` (a float64 norm when that is
    not finite). One element: ``(|x|, 0)``; none: ``(0, 0)``.

    The hooks of the backward pass call it on every gradient, between two of the model's
    products, where each Python step costs several times what it costs in a loop: the
    compiled pass reads the tensor at its ``data_ptr()`` (no numpy view)."""
    count = tensor.numel()
    if count >= 2 and compiled_layout(tensor):
        measured = totals_norm_and_std(compiled_totals(tensor), count)
        if measured is not None:
            return measured
    if count < 2:
        value = float(tensor.detach().reshape(-1)[0]) if count else 0.0
        return abs(value), 0.0
    with shared_threads(count >= LARGE_NUMEL):
        values = tensor.detach().reshape(-1)
        if values.dtype in (torch.float16, torch.bfloat16):
            values = values.float()
        norm = math.sqrt(float(torch.dot(values, values)))
        moment = std_from_moments(float(values.sum()), norm, count)
        if moment is not None:
            return norm, moment[0]
        std, mean = std_mean(values)
        std_value, mean_value = torch.stack([std, mean]).tolist()
    norm = math.sqrt((count - 1) * std_value**2 + count * mean_value**2)
    if not math.isfinite(norm):  # inf values (std is NaN then) or a float32 overflow of std
        norm = vector_norm(tensor)
    return norm, std_value


def non_finite_count(tensor: torch.Tensor) -> int:
    """How many elements are NaN or infinite (one compiled pass for :func:`compiled_layout` tensors)."""
    if compiled_layout(tensor):
        nans, infs = compiled_totals(tensor)[:2]
        return nans + infs
    return int((~torch.isfinite(tensor.detach())).sum())


def tensor_std(tensor: torch.Tensor) -> float:
    """Std (Bessel) of all elements of a floating tensor (:func:`norm_and_std`)."""
    return norm_and_std(tensor)[1]


def vector_norm(tensor: torch.Tensor) -> float:
    """Euclidean norm of all elements, in float64 (so that a float32 norm does not overflow)."""
    return float(torch.linalg.vector_norm(tensor.detach(), dtype=torch.float64))
