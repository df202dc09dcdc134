"""The one-tensor statistics agree with numpy / float64 references on awkward values, and the
snapshot's bit comparison tells NaN, -0.0 and every dtype apart as promised."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab.auditing import statistics
from initlab.auditing.state import bits_equal


def awkward_rows(generator: torch.Generator, count: int = 8, length: int = 3000) -> torch.Tensor:
    """Rows with ties, values exactly on histogram edges, ReLU zeros, a constant row and a large mean."""
    rows = torch.randn(count, length, generator=generator)
    rows[1] = torch.randint(-5, 6, (length,), generator=generator).float() * 0.1
    rows[2] = torch.relu(rows[2]) * 3
    rows[3] = (torch.rand(length, generator=generator) * 40).floor() / 40 * 7 - 2
    rows[4] = 0.5
    rows[5] = rows[5] * 1e4 + 3e4
    rows[6] = rows[6] * 1e-3 + 1e3  # a mean a million times the std
    return rows


def numpy_reference(values: torch.Tensor) -> dict:
    """What a Summary promises, computed in float64 by numpy on the finite values and on the
    strided subsample of them that percentiles and histograms read."""
    array = values.detach().double().reshape(-1).numpy()
    finite = array[np.isfinite(array)]
    sample = finite[:: statistics.subsample_step(finite.size)]
    low, high = sample.min(), sample.max()
    # histc's bins in the values' own precision (float64 arithmetic would move values on a bin edge)
    same_precision = torch.from_numpy(sample).to(torch.float64 if values.dtype == torch.float64 else torch.float32)
    counts = torch.histc(same_precision, bins=statistics.HISTOGRAM_BINS, min=low, max=high)
    return {
        "numel": array.size, "non_finite": array.size - finite.size, "mean": finite.mean(),
        "std": finite.std(ddof=1) if finite.size > 1 else 0.0, "min": finite.min(), "max": finite.max(),
        "rms": math.sqrt((finite**2).mean()), "scale": np.abs(finite).max(),
        "percentiles": {f"p{p:g}": np.percentile(sample, p) for p in statistics.PERCENTILES},
        "counts": counts.long().tolist(), "edges": np.linspace(low, high, statistics.HISTOGRAM_BINS + 1).tolist(),
    }


def assert_summary_matches(summary: statistics.Summary, values: torch.Tensor, rel: float) -> None:
    expected = numpy_reference(values)
    scale = expected["scale"]
    assert (summary.numel, summary.non_finite) == (expected["numel"], expected["non_finite"])
    assert (summary.min, summary.max) == (pytest.approx(expected["min"]), pytest.approx(expected["max"]))
    assert summary.mean == pytest.approx(expected["mean"], rel=rel, abs=rel * scale)
    assert summary.std == pytest.approx(expected["std"], rel=rel, abs=rel * scale)
    assert summary.rms == pytest.approx(expected["rms"], rel=rel, abs=rel * scale)
    assert summary.percentiles == pytest.approx(expected["percentiles"], rel=rel, abs=rel * scale)
    assert summary.histogram_edges == pytest.approx(expected["edges"], rel=1e-6, abs=1e-6 * scale)
    assert summary.histogram_counts == expected["counts"]


@pytest.mark.parametrize("length", [3000, 40000])  # below and above SUBSAMPLE
def test_summaries_of_awkward_rows_match_numpy(length):
    rows = awkward_rows(torch.Generator().manual_seed(length), length=length)
    for row in rows:
        # float32 reductions of 4e4 values: relative error well below 1e-5 (1e-4 when the mean is 1e6 x the std)
        assert_summary_matches(statistics.summarize(row), row, rel=1e-4 if row.mean() > 1e2 else 1e-5)


def test_non_finite_values_are_counted_and_left_out_of_every_other_figure():
    row = awkward_rows(torch.Generator().manual_seed(1))[0]
    row[[3, 70, 900]] = torch.tensor([float("nan"), float("-inf"), float("inf")])
    summary = statistics.summarize(row)
    assert summary.non_finite == 3
    assert_summary_matches(summary, row, rel=1e-5)
    everything_bad = statistics.summarize(torch.full((5,), float("nan")))
    assert everything_bad.non_finite == 5 and math.isnan(everything_bad.std) and everything_bad.histogram_counts == [
        0] * statistics.HISTOGRAM_BINS


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_summaries_of_other_dtypes_match_numpy(dtype):
    values = (torch.randn(50, 60, generator=torch.Generator().manual_seed(2)) * 2 + 0.5).to(dtype)
    assert_summary_matches(statistics.summarize(values), values, rel=1e-5)


def test_a_single_value_has_std_zero_and_a_strided_view_is_read_in_place():
    single = statistics.summarize(torch.tensor([[-2.5]]))
    assert (single.mean, single.std, single.rms, single.min, single.max) == (-2.5, 0.0, 2.5, -2.5, -2.5)
    base = torch.randn(300, 70, generator=torch.Generator().manual_seed(3))
    assert statistics.summarize(base.t()).to_dict() == statistics.summarize(base.t().contiguous()).to_dict()


def norm_and_std_reference(tensor: torch.Tensor) -> tuple[float, float]:
    values = tensor.detach().double().reshape(-1)
    norm = float(torch.linalg.vector_norm(values))
    return norm, (float(values.std()) if values.numel() > 1 else 0.0)


@pytest.mark.parametrize("case", ["contiguous", "transposed", "requires_grad", "float64", "float16", "bfloat16",
                                  "one", "empty", "constant", "large_mean", "huge"])
def test_norm_and_std_of_every_layout_and_dtype_matches_float64(case):
    generator = torch.Generator().manual_seed(7)
    base = torch.randn(300, 70, generator=generator)
    tensor = {
        "contiguous": base, "transposed": base.t(), "requires_grad": base.clone().requires_grad_(True),
        "float64": base.double(), "float16": base.half(), "bfloat16": base.bfloat16(),
        "one": torch.tensor([-2.5]), "empty": torch.zeros(0), "constant": torch.full((5000,), 0.1),
        "large_mean": base * 1e-3 + 1e3, "huge": base * 1e30,  # ||x||^2 overflows float32
    }[case]
    norm, std = statistics.norm_and_std(tensor)
    expected_norm, expected_std = norm_and_std_reference(tensor)
    assert norm == pytest.approx(expected_norm, rel=1e-6, abs=1e-12)
    scale = float(tensor.detach().double().abs().max()) if tensor.numel() else 0.0
    assert std == pytest.approx(expected_std, rel=1e-3 if case == "large_mean" else 1e-5, abs=1e-6 * scale)


def test_norm_and_std_of_non_finite_values():
    norm, std = statistics.norm_and_std(torch.tensor([1.0, float("inf"), 2.0]))
    assert norm == math.inf and math.isnan(std)
    norm, std = statistics.norm_and_std(torch.tensor([1.0, float("nan")]))
    assert math.isnan(norm) and math.isnan(std)
    assert statistics.non_finite_count(torch.tensor([1.0, float("nan"), -float("inf"), 0.0])) == 2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64])
def test_bits_equal_tells_nan_and_signed_zeros_apart_as_bits_do(dtype):
    values = torch.tensor([0.0, 1.5, float("nan")]).to(dtype)
    assert bits_equal(values, values.clone())  # NaN == NaN bit for bit, unlike torch.equal
    assert not torch.equal(values, values.clone())
    negative_zero = values.clone()
    negative_zero[0] = -0.0
    assert not bits_equal(values, negative_zero)  # -0.0 == 0.0 for torch.equal, not for bits
    assert torch.equal(values[:1], negative_zero[:1])
    other = {torch.float64: torch.float32, torch.complex64: torch.complex128}.get(dtype, torch.float64)
    assert not bits_equal(values, values.to(other))  # another dtype


def test_bits_equal_of_integers_booleans_and_strided_views():
    counts = torch.tensor([3, 4], dtype=torch.int64)
    assert bits_equal(counts, counts.clone()) and not bits_equal(counts, counts + 1)
    mask = torch.tensor([True, False])
    assert bits_equal(mask, mask.clone()) and not bits_equal(mask, ~mask)
    transposed = torch.randn(4, 6).t()
    changed = transposed.clone()
    changed[5, 3] += 1.0
    assert bits_equal(transposed, transposed.clone()) and not bits_equal(transposed, changed)
