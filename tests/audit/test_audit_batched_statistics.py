"""The batched statistics (one stack of same-shaped layer outputs at a time) give the same
figures as the one-tensor functions they replace in the capture."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab.audit import statistics


def awkward_rows(generator: torch.Generator, count: int = 40, length: int = 3000) -> torch.Tensor:
    """Rows with ties, values exactly on histogram edges, ReLU zeros, a constant row and a wide range."""
    rows = torch.randn(count, length, generator=generator)
    rows[1] = torch.randint(-5, 6, (length,), generator=generator).float() * 0.1
    rows[2] = torch.relu(rows[2]) * 3
    rows[3] = (torch.rand(length, generator=generator) * 40).floor() / 40 * 7 - 2
    rows[4] = 0.5
    rows[5] = rows[5] * 1e4 + 3e4
    return rows


def test_batched_histograms_equal_torch_histc_bin_for_bin():
    rows = awkward_rows(torch.Generator().manual_seed(0))
    for dtype in (torch.float32, torch.float64):
        ordered = statistics._sorted_rows(rows.to(dtype))
        varying = ordered[:, 0] != ordered[:, -1]
        counts = statistics._histograms(ordered[varying])
        for row, count in zip(ordered[varying], counts):
            expected = torch.histc(row, bins=statistics.HISTOGRAM_BINS, min=float(row[0]), max=float(row[-1]))
            assert torch.equal(count, expected.long())


def test_summarize_rows_matches_one_row_at_a_time_and_numpy():
    generator = torch.Generator().manual_seed(1)
    rows = awkward_rows(generator, length=40000)  # > SUBSAMPLE: the strided subsample is used
    rows[6, [3, 70]] = torch.tensor([float("nan"), float("-inf")])
    summaries = statistics.summarize_rows(rows)
    for row, summary in zip(rows, summaries):
        single = statistics.summarize(row)
        assert summary.numel == single.numel and summary.non_finite == single.non_finite
        assert (summary.min, summary.max) == (single.min, single.max)
        assert summary.percentiles == single.percentiles
        assert summary.histogram_counts == single.histogram_counts
        assert summary.histogram_edges == single.histogram_edges
        finite = row[torch.isfinite(row)].double().numpy()
        # float32 sums of 4e4 values: relative error well below 1e-5
        assert summary.mean == pytest.approx(finite.mean(), rel=1e-5, abs=1e-6 * np.abs(finite).max())
        assert summary.std == pytest.approx(finite.std(ddof=1), rel=1e-5, abs=1e-6 * np.abs(finite).max())
    assert summaries[6].non_finite == 2
    assert summaries[4].std < 1e-6  # the constant row goes through the two-pass std


def test_std_from_moments_refuses_when_the_mean_dominates():
    # 1e6 values of mean 1 and std 1e-4: the moment formula would cancel every digit
    assert statistics.std_from_moments(1e6, math.sqrt(1e6 * (1 + 1e-8)), 10**6) is None
    std, mean = statistics.std_from_moments(0.0, math.sqrt(999.0), 1000)
    assert (std, mean) == (pytest.approx(1.0), 0.0)


@pytest.mark.parametrize("shape, axis", [((64, 48), -1), ((300, 20), -1), ((6, 5, 9, 9), 1), ((4, 7, 30), 1),
                                         ((3, 4, 5, 6), 2)])
def test_unit_vectors_rows_are_unit_vectors_of_each_layer(shape, axis):
    stack = torch.randn(3, *shape, generator=torch.Generator().manual_seed(2))
    batched = statistics.unit_vectors_rows(stack, axis)
    for layer in range(3):
        single = statistics.unit_vectors(stack[layer], axis)
        assert torch.equal(batched[layer], single)
        assert single.shape[1] == statistics.unit_vector_length(shape, axis)


def test_duplicate_pairs_rows_find_the_pairs_of_duplicate_pairs():
    generator = torch.Generator().manual_seed(3)
    layers, units, columns, fan_in = 4, 12, 20, 7
    outputs = torch.randn(layers, units, columns, generator=generator, dtype=torch.float64)
    weights = [torch.randn(units, fan_in, generator=generator, dtype=torch.float64) for _ in range(layers)]
    biases = [torch.zeros(units, dtype=torch.float64) for _ in range(layers)]
    for layer, copies in ((0, (1, 3, 5)), (2, (0, 11))):
        for unit in copies[1:]:
            outputs[layer, unit] = outputs[layer, copies[0]]
            weights[layer][unit] = weights[layer][copies[0]]
    outputs[3, 4] = outputs[3, 2]  # equal outputs, different weights: not symmetric
    outputs[1, 6, :statistics.PREFILTER_COLUMNS] = outputs[1, 7, :statistics.PREFILTER_COLUMNS]  # equal head only
    batched = statistics.duplicate_pairs_rows(outputs, weights, biases, rtol=1e-9)
    for layer, (first, second) in enumerate(batched):
        single = statistics.duplicate_pairs(outputs[layer], weights[layer], biases[layer], rtol=1e-9)
        assert sorted(zip(first.tolist(), second.tolist())) == sorted(zip(single[0].tolist(), single[1].tolist()))
    assert [len(first) for first, _ in batched] == [2, 0, 1, 0]


def test_report_does_not_depend_on_how_outputs_are_buffered(monkeypatch):
    from torch import nn

    from initlab.audit import audit, capture

    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Sequential(nn.Linear(16 + i % 3, 16 + (i + 1) % 3), nn.ReLU()) for i in range(9)])
    batch = torch.randn(64, 16, generator=torch.Generator().manual_seed(4))
    default = audit(model, batch, jacobian=False).to_json()
    monkeypatch.setattr(capture, "GROUP_BYTES", 3 * 64 * 18 * 4)  # buffers of 2-3 outputs
    monkeypatch.setattr(capture, "PENDING_BYTES", 10_000)  # and frequent flushes of part-filled ones
    assert audit(model, batch, jacobian=False).to_json() == default
    monkeypatch.setattr(capture, "GROUP_BYTES", 0)  # every output measured on its own, no copy
    assert audit(model, batch, jacobian=False).to_json() == default
