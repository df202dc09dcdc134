"""The batched statistics (one stack of same-shaped layer outputs at a time) give the same
figures as the one-tensor functions they replace in the capture."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from initlab.audit import statistics
from initlab.errors import InitlabError


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
        single = statistics.summarize_rows(row.reshape(1, -1))[0]
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
    # float64: float32 CPU outputs are measured in the hook by the compiled kernel, without buffers
    model = nn.Sequential(*[nn.Sequential(nn.Linear(16 + i % 3, 16 + (i + 1) % 3), nn.ReLU()) for i in range(9)])
    model = model.double()
    batch = torch.randn(64, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    default = audit(model, batch, jacobian=False).to_json()
    monkeypatch.setattr(capture, "GROUP_BYTES", 3 * 64 * 18 * 8)  # buffers of 2-3 outputs
    monkeypatch.setattr(capture, "PENDING_BYTES", 10_000)  # and frequent flushes of part-filled ones
    assert audit(model, batch, jacobian=False).to_json() == default
    monkeypatch.setattr(capture, "GROUP_BYTES", 0)  # every output measured on its own, no copy
    assert audit(model, batch, jacobian=False).to_json() == default


def _summarize_float32(tensor, **options):
    """float32_pass then summaries_from_passes, as the audit does: (summary, maxima, near) or None."""
    measured = statistics.float32_pass(tensor, **options)
    return None if measured is None else (statistics.summaries_from_passes([measured])[0], measured.maxima, measured.near)


def test_the_compiled_pass_gives_the_figures_of_summarize_rows():
    generator = torch.Generator().manual_seed(5)
    rows = awkward_rows(generator, length=40000)  # > SUBSAMPLE: the strided subsample is used
    rows[7, :100] = 2.0  # saturated values at the limits
    limits = statistics.saturation_limits((-2.0, 2.0), 0.005)
    for row in list(rows) + [rows[8, :1], rows[9, :37]]:
        summary, maxima, near = _summarize_float32(row.reshape(-1, 8) if row.numel() % 8 == 0 else row,
                                                   units=8 if row.numel() % 8 == 0 else 1,
                                                   limits=limits, unit_maxima=True)
        reference = statistics.summarize_rows(row.reshape(1, -1))[0]
        assert (summary.numel, summary.non_finite, summary.min, summary.max) == (
            reference.numel, reference.non_finite, reference.min, reference.max)
        assert summary.percentiles == reference.percentiles
        assert summary.histogram_counts == reference.histogram_counts
        assert summary.histogram_edges == reference.histogram_edges
        values = row.double().numpy()
        # double sums: within a few float32 roundings of the float64 reference (float32 sums: 1e-5)
        assert summary.mean == pytest.approx(values.mean(), rel=1e-6, abs=1e-7 * np.abs(values).max())
        if row.numel() > 1:
            assert summary.std == pytest.approx(values.std(ddof=1), rel=1e-6, abs=1e-7 * np.abs(values).max())
        assert near == statistics.saturated_counts(row.reshape(1, -1), (-2.0, 2.0), 0.005)[0]
        units = 8 if row.numel() % 8 == 0 else 1
        np.testing.assert_array_equal(maxima, row.reshape(-1, units).amax(dim=0).numpy())
    rows[6, 3] = float("nan")
    assert _summarize_float32(rows[6]) is None  # NaN/inf: summarize_rows' job


def test_units_surely_distinct_never_hides_a_pair_duplicate_pairs_rows_finds():
    generator = torch.Generator().manual_seed(6)
    rtol = 1e-5
    checked = {True: 0, False: 0}
    for trial in range(300):
        units, columns, fan_in = 12, 9, 5
        vectors = torch.randn(units, columns, generator=generator)
        weight, bias = torch.randn(units, fan_in, generator=generator), torch.randn(units, generator=generator)
        kind = trial % 5
        if kind >= 1:  # first columns equal (constant-like units), outputs or weights equal too
            vectors[3, 0] = vectors[7, 0]
        if kind >= 2:
            vectors[3] = vectors[7] * (1 + 2e-6 * (kind - 2))
        if kind >= 3:
            weight[3], bias[3] = weight[7], bias[7] * (1 + 4e-6 * (kind == 4))
        if kind == 4:
            vectors[:, 0] = 0.25  # every unit in one run
        pairs = statistics.duplicate_pairs_rows(vectors[None], [weight], [bias], rtol)[0]
        surely = statistics.units_surely_distinct(vectors, weight, bias, rtol)
        # an upper bound of the weights' magnitude (their norm) instead of the largest one
        bounded = statistics.units_surely_distinct(vectors, weight, bias, rtol, weight_bound=float(weight.norm()))
        if surely or bounded:
            assert len(pairs[0]) == 0, trial
        checked[surely] += 1
    assert checked[True] > 50 and checked[False] > 50  # both answers were exercised


def test_summaries_of_many_passes_equal_those_of_one_pass_at_a_time():
    generator = torch.Generator().manual_seed(10)
    tensors = [torch.randn(n, generator=generator) * scale for n, scale in
               [(5000, 1.0), (300, 3.0), (5000, 0.1), (1, 2.0), (300, 1.0), (70000, 1.0)]]
    tensors += [torch.full((5000,), 0.75), torch.relu(torch.randn(5000, generator=generator))]
    passes = [statistics.float32_pass(tensor) for tensor in tensors]
    together = statistics.summaries_from_passes(passes)
    for tensor, summary in zip(tensors, together):
        assert summary == statistics.summaries_from_passes([statistics.float32_pass(tensor)])[0]
        reference = statistics.summarize_rows(tensor.reshape(1, -1))[0]  # float32 sums: mean/std differ in last bits
        assert (summary.percentiles, summary.histogram_counts, summary.histogram_edges, summary.min, summary.max) == (
            reference.percentiles, reference.histogram_counts, reference.histogram_edges, reference.min, reference.max)


@pytest.mark.parametrize("axis", [-1, 1])
def test_first_values_apart_never_hides_a_pair_duplicate_pairs_rows_finds(axis):
    generator = torch.Generator().manual_seed(9)
    rtol = 1e-5
    answers = {True: 0, False: 0}
    for trial in range(400):
        if axis == -1:
            shape = (int(torch.randint(1, 600, (1,), generator=generator)), int(torch.randint(2, 40, (1,), generator=generator)))
        else:
            shape = (int(torch.randint(1, 40, (1,), generator=generator)), int(torch.randint(2, 20, (1,), generator=generator)), 3, 5)
        outputs = torch.randn(*shape, generator=generator)
        if trial % 3 == 0:  # a planted duplicate unit, sometimes off by a relative 1e-6
            outputs.select(axis, shape[axis] - 1).copy_(outputs.select(axis, 0) * (1 + 1e-6 * (trial % 2)))
        if trial % 5 == 0:
            outputs = torch.round(outputs * 4) / 4  # many equal values
        units = shape[axis]
        weights = torch.randn(units, 3, generator=generator) * (trial % 4 != 0)  # all equal rows, or random ones
        bias = torch.randn(units, generator=generator) if trial % 2 else None
        if trial % 3 == 0:  # the planted duplicate's weights too, sometimes off by a relative 1e-6
            weights[-1] = weights[0] * (1 + 1e-6 * (trial % 6 == 3))
            if bias is not None:
                bias[-1] = bias[0]
        limit = 2 * rtol * float(outputs.abs().max())
        pairs = statistics.duplicate_pairs_rows(statistics.unit_vectors_rows(outputs[None], axis), [weights], [bias],
                                                rtol)[0]
        for apart in (statistics.first_values_apart(outputs, axis, limit),
                      statistics.first_values_apart(outputs, axis, limit, weights, bias, rtol),
                      statistics.first_values_apart(outputs, axis, limit, weights, bias, rtol,
                                                    weight_bound=float(weights.norm()))):
            if apart:
                assert len(pairs[0]) == 0, trial
            answers[apart] += 1
    assert answers[True] > 300 and answers[False] > 150
    assert statistics.first_values_apart(torch.randn(2, 3, 4, 5), 2, 1.0) is False  # not a unit axis it reads


def test_compiled_statistics_give_the_report_of_the_torch_ones(monkeypatch):
    from torch import nn

    from initlab.audit import audit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32),
                          nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        model[2].weight[5] = model[2].weight[9]  # a symmetric pair of units
        model[2].bias[5] = model[2].bias[9]
        model[4].weight[:, 5] = model[4].weight[:, 9]  # and equal gradients
        model[4].bias[:3] = -20.0  # dead units
    batch = torch.randn(48, 24, generator=torch.Generator().manual_seed(7)) * 3  # tanh saturates
    compiled = json.loads(audit(model, batch, jacobian=False).to_json())
    monkeypatch.setattr(statistics, "compiled_layout", lambda tensor: False)
    reference = json.loads(audit(model, batch, jacobian=False).to_json())

    def compare(ours, theirs, path):
        if isinstance(ours, dict):
            assert ours.keys() == theirs.keys(), path
            for key in ours:
                compare(ours[key], theirs[key], f"{path}.{key}")
        elif isinstance(ours, list):
            assert len(ours) == len(theirs), path
            for index, (mine, other) in enumerate(zip(ours, theirs)):
                compare(mine, other, f"{path}[{index}]")
        elif isinstance(ours, float) and isinstance(theirs, float):
            # double sums against float32 ones: mean, std, norms and what derives from them
            assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-9) or (math.isnan(ours) and math.isnan(theirs)), path
        else:
            assert ours == theirs, path

    compare(compiled, reference, "report")
    layers = {layer["name"]: layer for layer in compiled["layers"]}
    assert (layers["2"]["symmetric_units"], layers["4"]["dead_units"]) == (1, 3)
    assert layers["0"]["saturated_fraction"] > 0.05


def test_report_does_not_depend_on_how_long_compiled_statistics_wait(monkeypatch):
    from torch import nn

    from initlab.audit import audit, capture

    torch.manual_seed(0)
    # float32 CPU outputs: the hook reads each one (kernel pass, unit-vector copy); summaries,
    # weight norms and symmetry checks wait for the end of the forward pass, or for
    # PENDING_BYTES of waiting copies. An in-place ReLU changes each Linear output after its hook.
    model = nn.Sequential(*[nn.Sequential(nn.Linear(16, 16), nn.ReLU(inplace=True)) for _ in range(6)],
                          nn.Linear(16, 4))
    with torch.no_grad():
        model[2][0].weight[3] = model[2][0].weight[5]  # two identical units: the full symmetry check runs
        model[2][0].bias[3] = model[2][0].bias[5]
        model[3][0].weight[:, 3] = model[3][0].weight[:, 5]  # read alike by the next layer: equal gradients
    batch = torch.randn(64, 16, generator=torch.Generator().manual_seed(4))
    default = audit(model, batch, jacobian=False)
    assert default.layers[2].symmetric_units == 1
    monkeypatch.setattr(capture, "PENDING_BYTES", 0)  # every output finished in its own hook
    assert audit(model, batch, jacobian=False).to_json() == default.to_json()


def norm_and_std_reference(tensor: torch.Tensor) -> tuple[float, float]:
    values = tensor.detach().double().reshape(-1)
    norm = float(torch.linalg.vector_norm(values))
    return norm, (float(values.std()) if values.numel() > 1 else 0.0)


@pytest.mark.parametrize("case", ["contiguous", "transposed", "requires_grad", "float64", "float16", "bfloat16",
                                  "one", "empty", "constant", "large_mean"])
def test_norm_and_std_of_every_layout_and_dtype_matches_float64(case):
    generator = torch.Generator().manual_seed(7)
    base = torch.randn(300, 70, generator=generator)
    tensor = {
        "contiguous": base, "transposed": base.t(), "requires_grad": base.clone().requires_grad_(True),
        "float64": base.double(), "float16": base.half(), "bfloat16": base.bfloat16(),
        "one": torch.tensor([-2.5]), "empty": torch.zeros(0), "constant": torch.full((5000,), 0.1),
        "large_mean": base * 1e-3 + 1e3,  # the double sums cancel: the two-pass std decides
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


def test_histogram_edges_have_exact_ends_and_match_linspace():
    rng = np.random.default_rng(11)
    firsts = rng.uniform(-50, 50, 300).tolist() + [2.5, -1e-30]
    lasts = [first + width for first, width in zip(firsts, rng.uniform(0, 20, 300).tolist() + [0.0, 1e-30])]
    for first, last, edges in zip(firsts, lasts, statistics.histogram_edges(firsts, lasts)):
        assert len(edges) == statistics.HISTOGRAM_BINS + 1
        assert edges[0] == first and edges[-1] == last
        assert all(a <= b for a, b in zip(edges, edges[1:]))
        expected = torch.linspace(first, last, statistics.HISTOGRAM_BINS + 1, dtype=torch.float64).tolist()
        assert edges == pytest.approx(expected, rel=1e-15, abs=4e-16 * max(abs(first), abs(last)))


@pytest.mark.parametrize("tensor", [torch.randn(4, 6).t(), torch.randn(5, dtype=torch.float64), torch.zeros(0)])
def test_float32_pass_names_a_tensor_it_cannot_read(tensor):
    with pytest.raises(InitlabError, match=r"float32_pass: tensor is a torch\.float\w* tensor on cpu \(contiguous: "
                                           r"\w+\); expected a non-empty float32 C-contiguous CPU tensor"):
        statistics.float32_pass(tensor)
    with pytest.raises(InitlabError, match="float32_pass: weight is a torch.float32 tensor on cpu"):
        statistics.float32_pass(torch.randn(3, 4), units=4, weight=torch.randn(4, 6).t())
