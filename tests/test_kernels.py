"""initlab._kernels: the compiled loops of the audit's statistics."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from initlab import _kernels


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# ------------------------------------------------------------------ audit statistics: moments, histogram


def reference_moments(values, units, inner, low, high, step):
    """numpy's figures for moments(): float64 sums, NaN-ignoring range and unit maxima."""
    finite_or_inf = values[~np.isnan(values)]
    wide = values.astype(np.float64)
    by_unit = values.reshape(-1, units, inner).transpose(1, 0, 2).reshape(units, -1)
    unit_maxima = np.array([np.nanmax(row) if not np.all(np.isnan(row)) else -np.inf for row in by_unit],
                           dtype=np.float32) if values.size else np.full(units, -np.inf, dtype=np.float32)
    near = (values <= np.float32(low)) | (values >= np.float32(high))
    with np.errstate(invalid="ignore"):  # inf - inf in the sums of the special cases
        total, squares = wide.sum(), (wide * wide).sum()
    return {
        "nan": int(np.isnan(values).sum()), "inf": int(np.isinf(values).sum()),
        "total": total, "squares": squares,
        "minimum": float(finite_or_inf.min()) if finite_or_inf.size else np.inf,
        "maximum": float(finite_or_inf.max()) if finite_or_inf.size else -np.inf,
        "saturated": int(near.sum()), "unit_maxima": unit_maxima, "subsample": values[::step],
    }


@pytest.mark.parametrize("outer, units, inner", [(0, 3, 1), (1, 1, 1), (3, 5, 1), (256, 37, 1), (7, 3, 50),
                                                 (4, 16, 9), (2, 1, 1029), (300, 256, 1), (9, 16, 1000),
                                                 (1, 1, 70000)])
@pytest.mark.parametrize("special", [False, True])
def test_moments_match_numpy(outer, units, inner, special):
    rng = np.random.default_rng(outer * 1000 + units + inner)
    values = (rng.standard_normal(outer * units * inner, dtype=np.float32) * 3).astype(np.float32)
    if special and values.size:
        where = rng.integers(0, values.size, size=max(1, values.size // 9))
        values[where] = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.99, -0.99], dtype=np.float32), size=where.size)
    low, high = float(np.float32(-0.99)), float(np.float32(0.99))
    step = max(1, values.size // 11)
    maxima = np.full(units, 7.0, dtype=np.float32)
    subsample = np.full(len(range(0, values.size, step)) + 2, 5.0, dtype=np.float32)
    nans, infs, total, squares, minimum, maximum, near = _kernels.moments(
        values, units, inner, low, high, maxima, step, subsample)
    expected = reference_moments(values, units, inner, low, high, step)
    assert (nans, infs, near) == (expected["nan"], expected["inf"], expected["saturated"])
    assert (minimum, maximum) == (expected["minimum"], expected["maximum"])
    np.testing.assert_array_equal(maxima, expected["unit_maxima"])
    np.testing.assert_array_equal(subsample[:-2], expected["subsample"])
    assert np.all(subsample[-2:] == 5.0)  # nothing written past ceil(len / step)
    if nans == 0 and infs == 0:
        # double sums of float32 values in 32 interleaved partial sums: a few double roundings
        scale = np.abs(values.astype(np.float64)).sum() if values.size else 0.0
        assert abs(total - expected["total"]) <= 1e-13 * scale
        assert abs(squares - expected["squares"]) <= 1e-13 * expected["squares"]
    else:
        assert math.isnan(total) or math.isinf(minimum) or math.isinf(maximum)


def test_moments_and_layer_pass_do_not_depend_on_the_thread_count():
    torch = pytest.importorskip("torch")  # its OpenMP runtime runs the chunks
    rng = np.random.default_rng(3)
    cases = [(300, 256, 1), (9, 16, 1000), (64, 512, 3)]
    before = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert _kernels.pass_threads(4) == threads and _kernels.pass_threads(1) == 1
            found = []
            for outer, units, inner in cases:
                values = rng.standard_normal(outer * units * inner, dtype=np.float32) if threads == 1 else None
                values = results.setdefault(("values", outer), values)
                weight = results.setdefault(("weight", outer), rng.standard_normal(units * 40).astype(np.float32))
                maxima, subsample = np.empty(units, dtype=np.float32), np.empty(values.size // 7 + 1, dtype=np.float32)
                found.append(_kernels.moments(values, units, inner, -1.5, 1.5, maxima, 7, subsample))
                found.append(_kernels.layer_pass(values, units, inner, -1.5, 1.5, maxima, 7, subsample, weight, None,
                                                 1e-4, 3))
                found.append((maxima.tobytes(), subsample.tobytes()))
            results[threads] = found
    finally:
        torch.set_num_threads(before)
    assert results[1] == results[2]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_the_passes_on_one_thread_instead_of_hanging():
    torch = pytest.importorskip("torch")
    matrix = torch.randn(512, 512)
    (matrix @ matrix).sum()  # torch's OpenMP threads are started
    values = np.random.default_rng(2).standard_normal(1 << 20, dtype=np.float32)
    expected = _kernels.moments(values, 1, 1, -np.inf, np.inf, None, 1, None)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: GNU libgomp would wait forever for its parent's threads
        found = _kernels.moments(values, 1, 1, -np.inf, np.inf, None, 1, None) == expected
        os.write(write, f"{_kernels.pass_threads(8)} {found}".encode())
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in a compiled pass")
        time.sleep(0.05)
    with os.fdopen(read) as answer:
        assert answer.read() == "1 True"
    assert _kernels.pass_threads(8) == min(8, torch.get_num_threads())


def test_moments_without_optional_outputs_or_limits_counts_nothing_saturated():
    values = np.array([1.0, -1.0, 2.0, np.inf], dtype=np.float32)
    assert _kernels.moments(values, 1, 1, -np.inf, np.inf, None, 1, None) == (0, 1, np.inf, np.inf, -1.0, np.inf, 0)
    values[3] = 0.5
    result = _kernels.moments(values, 2, 1, -1.0, 2.0, None, 3, None)
    assert result == (0, 0, 2.5, 6.25, -1.0, 2.0, 2)


def test_histogram_equals_torch_histc_on_sorted_values():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    cases = [rng.standard_normal(n, dtype=np.float32) for n in (2, 17, 1000, 16384)]
    cases += [np.floor(rng.random(4000, dtype=np.float32) * 40) / 40 * 7 - 2,  # values on bin edges
              np.maximum(rng.standard_normal(5000, dtype=np.float32), 0) * 3,  # ReLU zeros
              rng.standard_normal(3000, dtype=np.float32) * 1e4 + 3e4]
    for values in cases:
        ordered = np.sort(values.astype(np.float32))
        for bins in (1, 7, 40):
            counts = np.full(bins, -1, dtype=np.int64)
            low, high = _kernels.histogram(ordered, counts)
            assert (low, high) == (float(ordered[0]), float(ordered[-1]))
            expected = torch.histc(torch.from_numpy(ordered), bins=bins, min=low, max=high).long().numpy()
            np.testing.assert_array_equal(counts, expected)


def test_histogram_of_equal_values_leaves_zero_counts():
    counts = np.full(5, 3, dtype=np.int64)
    assert _kernels.histogram(np.full(9, 2.5, dtype=np.float32), counts) == (2.5, 2.5)
    np.testing.assert_array_equal(counts, 0)


def units_apart_reference(values, units, inner, limit, step, weight=None, bias=None, rtol=0.0):
    """The rule of units_apart by brute force: no pair of units within limit at every compared
    position (o, 0), o = 0, step, ..., and (with weight) weight rows and biases within
    2 rtol x their largest magnitude."""
    view = values.reshape(-1, units, inner)[::step, :, 0].astype(np.float64)  # (positions, units)
    if np.isnan(view).any():
        return False
    alike = np.abs(view[:, :, None] - view[:, None, :]).max(axis=0) <= limit
    if weight is not None:
        rows = weight.reshape(units, -1).astype(np.float64)
        if bias is not None:
            rows = np.concatenate([rows, bias.astype(np.float64)[:, None]], axis=1)
        alike &= np.abs(rows[:, None, :] - rows[None, :, :]).max(axis=2) <= 2 * rtol * np.abs(rows).max()
    np.fill_diagonal(alike, False)
    return not alike.any()


def test_units_apart_matches_brute_force():
    rng = np.random.default_rng(12)
    answers = {True: 0, False: 0}
    for trial in range(900):
        units, inner, outer = int(rng.integers(1, 120)), int(rng.integers(1, 4)), int(rng.integers(1, 9))
        values = rng.standard_normal((outer, units, inner)).astype(np.float32)
        if trial % 3 == 0:
            values[..., 0] = np.round(values[..., 0] * 3) / 3  # ties at every position
        if trial % 4 == 0:  # a duplicate unit, sometimes off by a little at the last position
            values[:, -1] = values[:, 0]
            values[-1, -1, 0] += 1e-3 * (trial % 8 == 0)
        if trial % 5 == 0:
            values[0, rng.integers(0, units), 0] = -0.0
        limit, step = float(rng.choice([0.0, 1e-4, 1e-2])), int(rng.integers(1, 4))
        weight = bias = None
        rtol = float(rng.choice([0.0, 1e-5, 1e-3]))
        if trial % 3 != 2:  # with weight rows (some of them alike), and a bias two times in three
            weight = np.round(rng.standard_normal((units, int(rng.integers(1, 6)))) * 2).astype(np.float32) / 2
            bias = rng.standard_normal(units).astype(np.float32) if trial % 3 == 0 else None
            if trial % 2 == 0 and units > 1:
                weight[-1] = weight[0] * (1 + 1e-4 * (trial % 4 == 0))
                if bias is not None:
                    bias[-1] = bias[0]
        expected = units < 2 or units_apart_reference(values.reshape(-1), units, inner, limit, step, weight, bias, rtol)
        arguments = () if weight is None else (weight.reshape(-1), bias, rtol, float(np.abs(weight).max()))
        assert _kernels.units_apart(values.reshape(-1), units, inner, limit, step, *arguments) is expected, trial
        answers[expected] += 1
    assert answers[True] > 100 and answers[False] > 100
    with_nan = np.array([0.0, np.nan, 1.0], dtype=np.float32)
    assert _kernels.units_apart(with_nan, 3, 1, 0.0, 1) is False
    assert _kernels.units_apart(with_nan, 1, 1, 0.0, 1) is True  # one unit: nothing to compare
    # more than 64 units within limit of their neighbours: the full check decides
    assert _kernels.units_apart(np.arange(65, dtype=np.float32), 65, 1, 1.0, 1) is False
    assert _kernels.units_apart(np.arange(65, dtype=np.float32) * 2, 65, 1, 1.0, 1) is True


def test_layer_pass_is_moments_then_the_weight_moments_then_units_apart():
    rng = np.random.default_rng(21)
    answers = {True: 0, False: 0, None: 0}
    for trial in range(400):
        outer, units, inner = (int(rng.integers(1, 9)), int(rng.integers(1, 40)), int(rng.integers(1, 4)))
        values = rng.standard_normal(outer * units * inner).astype(np.float32)
        weight = rng.standard_normal(units * int(rng.integers(1, 5))).astype(np.float32)
        bias = rng.standard_normal(units).astype(np.float32) if trial % 2 else None
        if trial % 3 == 0:  # every unit alike at the first position; weights alike or not
            values.reshape(outer, units, inner)[:, :, 0] = values[0]
            weight[:] = 0.5 * (trial % 6 == 0) + weight * (trial % 6 != 0)
            bias = None if bias is None else np.zeros_like(bias)
        if trial % 7 == 0:
            values[int(rng.integers(0, values.size))] = np.nan
        low, high = (-np.inf, np.inf) if trial % 4 else (np.float32(-0.5), np.float32(0.5))
        step, symmetry_step, rtol = int(rng.integers(1, 4)), int(rng.integers(0, 3)), float(rng.choice([0.0, 1e-3]))
        maxima, subsample = np.empty(units, dtype=np.float32), np.empty(values.size, dtype=np.float32)
        expected_maxima, expected_subsample = maxima.copy(), subsample.copy()
        expected = _kernels.moments(values, units, inner, low, high, expected_maxima, step, expected_subsample)
        result = _kernels.layer_pass(values, units, inner, low, high, maxima, step, subsample, weight, bias, rtol,
                                     symmetry_step)
        np.testing.assert_array_equal(np.array(result[:7], dtype=float), np.array(expected, dtype=float))  # NaN too
        np.testing.assert_array_equal(maxima, expected_maxima)
        np.testing.assert_array_equal(subsample, expected_subsample)
        assert result[7] == int((expected_maxima <= 0).sum())
        assert result[8] == _kernels.moments(weight, 1, 1, -np.inf, np.inf, None, 1, None)[:6]
        apart = None
        if symmetry_step and not np.isnan(values).any():
            limit = 2 * rtol * float(np.abs(values).max())
            apart = _kernels.units_apart(values, units, inner, limit, symmetry_step, weight, bias, rtol,
                                         float(np.abs(weight).max()))
        assert result[9] is apart, trial
        answers[apart] += 1
    assert min(answers.values()) > 20
    plain = _kernels.layer_pass(np.arange(6, dtype=np.float32), 3, 1, -np.inf, np.inf, None, 2, None, None, None,
                                0.0, 1)
    assert plain == (*_kernels.moments(np.arange(6, dtype=np.float32), 3, 1, -np.inf, np.inf, None, 2, None), 0,
                     None, None)


def test_equal_regions_finds_a_changed_byte_anywhere():
    rng = np.random.default_rng(4)
    piece = 1 << 20
    regions = [rng.integers(0, 256, size=size, dtype=np.uint8) for size in (1, 7, piece - 1, piece, 3 * piece + 5)]
    for region in regions:
        for where in sorted({0, region.size // 2, region.size - 1, min(piece, region.size - 1)}):
            copies = [other.copy() for other in regions]
            target = next(k for k, other in enumerate(regions) if other is region)
            copies[target][where] ^= 1
            found = _kernels.equal_regions([r.ctypes.data for r in regions], [c.ctypes.data for c in copies],
                                           [r.size for r in regions])
            assert found == [k != target for k in range(len(regions))], (region.size, where)
    assert _kernels.equal_regions([regions[0].ctypes.data], [regions[1].ctypes.data], [0]) == [True]
    assert _kernels.equal_regions((), (), ()) == []


def test_copy_regions_copies_every_byte_and_nothing_else():
    rng = np.random.default_rng(6)
    piece = 1 << 20
    sources = [rng.integers(0, 256, size=size, dtype=np.uint8) for size in (1, 9, piece, 2 * piece + 3)]
    target = np.full(sum(source.size for source in sources) + 4 * 8, 7, dtype=np.uint8)
    offsets = np.cumsum([0] + [source.size + 8 for source in sources[:-1]])
    _kernels.copy_regions([source.ctypes.data for source in sources],
                          [target.ctypes.data + int(offset) for offset in offsets], [source.size for source in sources])
    for source, offset in zip(sources, offsets):
        np.testing.assert_array_equal(target[offset: offset + source.size], source)
        assert (target[offset + source.size: offset + source.size + 8] == 7).all()  # the gaps are untouched
    assert _kernels.copy_regions([], [], []) is None


def call_moments(values=None, units=1, inner=1, low=-np.inf, high=np.inf, maxima=None, step=1, subsample=None):
    values = np.zeros(8, dtype=np.float32) if values is None else values
    return _kernels.moments(values, units, inner, low, high, maxima, step, subsample)


def test_moments_and_layer_pass_read_an_address_as_they_read_a_buffer():
    rng = np.random.default_rng(8)
    values = rng.standard_normal(300 * 64, dtype=np.float32)
    weight, bias = rng.standard_normal(64 * 5).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    results = []
    for as_address in (False, True):
        source = (lambda array: (array.ctypes.data, array.size)) if as_address else (lambda array: array)
        maxima, subsample = np.empty(64, dtype=np.float32), np.empty(300 * 64 // 5, dtype=np.float32)
        results.append((_kernels.layer_pass(source(values), 64, 1, -0.5, 0.5, maxima, 5, subsample, source(weight),
                                            source(bias), 1e-3, 2), maxima.tobytes(), subsample.tobytes()))
        results[-1] += (_kernels.moments(source(values), 64, 1, -0.5, 0.5, maxima, 5, subsample), maxima.tobytes(),
                        subsample.tobytes())
    assert results[0] == results[1]


def call_layer_pass(values=None, units=2, inner=1, low=-np.inf, high=np.inf, maxima=None, step=1, subsample=None,
                    weight=np.zeros(4, dtype=np.float32), bias=None, rtol=0.0, symmetry_step=1):
    values = np.zeros(8, dtype=np.float32) if values is None else values
    return _kernels.layer_pass(values, units, inner, low, high, maxima, step, subsample, weight, bias, rtol,
                               symmetry_step)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: call_moments(values=(8, -2)), ValueError,
         "moments: values=(8, -2); expected a float32 buffer or an (address, length) tuple with a non-null address "
         "aligned to 4 bytes and a length >= 0"),
        (lambda: _kernels.copy_regions([8], [0], [4]), ValueError,
         "copy_regions: targets[0]=0; expected a non-null address"),
        (lambda: _kernels.copy_regions([8], [8, 16], [4]), ValueError,
         "copy_regions: sources, targets and sizes have 1, 2 and 1 items; expected one length"),
        (lambda: _kernels.copy_regions([8], [16], 4), TypeError,
         "copy_regions: sizes must be a list or tuple of ints, got int"),
        (lambda: call_moments(values=np.zeros(8)), TypeError,
         "moments: values must be a one-dimensional float32 buffer, got format 'd'"),
        (lambda: call_moments(values=np.zeros((2, 4), dtype=np.float32)), TypeError,
         "moments: values must be a one-dimensional float32 buffer, got format 'f' (item size 4) with 2 dimension(s)"),
        (lambda: call_moments(values=np.zeros(16, dtype=np.float32)[::2]), TypeError,
         "moments: values must be a readable C-contiguous float32 buffer (e.g. a numpy array), got numpy.ndarray"),
        (lambda: call_moments(maxima=np.zeros(1)), TypeError,
         "moments: unit_maxima must be a one-dimensional float32 buffer, got format 'd'"),
        (lambda: call_moments(maxima=np.frombuffer(bytes(4), dtype=np.float32)), TypeError,
         "moments: unit_maxima must be a writable C-contiguous float32 buffer"),
        (lambda: call_moments(subsample=[0.0] * 8), TypeError,
         "moments: subsample must be a writable C-contiguous float32 buffer (e.g. a numpy array), got list"),
        (lambda: call_moments(units=3), ValueError,
         "moments: values has 8 items, not a multiple of units * inner = 3 * 1"),
        (lambda: call_moments(units=2, inner=3), ValueError,
         "moments: values has 8 items, not a multiple of units * inner = 2 * 3"),
        (lambda: call_moments(inner=0), ValueError, "moments: units=1, inner=0, step=1; expected each >= 1"),
        (lambda: call_moments(step=0), ValueError, "moments: units=1, inner=1, step=0; expected each >= 1"),
        (lambda: call_moments(units=2, maxima=np.zeros(3, dtype=np.float32)), ValueError,
         "moments: unit_maxima has 3 items; expected units = 2"),
        (lambda: call_moments(step=3, subsample=np.zeros(2, dtype=np.float32)), ValueError,
         "moments: subsample has 2 items; expected at least ceil(8 / step=3) = 3"),
        (lambda: call_moments(low=0.1), ValueError,
         "moments: low=0.1 is not a float32 value; expected a bound rounded to float32 first (numpy.float32(low))"),
        (lambda: call_moments(high=float("nan")), ValueError, "moments: high=nan is not a float32 value"),
        (lambda: _kernels.units_apart(np.zeros(4), 2, 1, 0.0, 1), TypeError,
         "units_apart: values must be a one-dimensional float32 buffer, got format 'd'"),
        (lambda: _kernels.units_apart(np.zeros(4, dtype=np.float32), 3, 1, 0.0, 1), ValueError,
         "units_apart: units=3, inner=1, step=1 for 4 values; expected each >= 1 and len(values) a non-zero "
         "multiple of units * inner"),
        (lambda: _kernels.units_apart(np.zeros(4, dtype=np.float32), 2, 1, 0.0, 0), ValueError,
         "units_apart: units=2, inner=1, step=0 for 4 values"),
        (lambda: _kernels.units_apart(np.zeros(4, dtype=np.float32), 2, 1, -1.0, 1), ValueError,
         "units_apart: limit=-1.0; expected a number >= 0"),
        (lambda: _kernels.units_apart(np.zeros(4, dtype=np.float32), 2, 1, float("nan"), 1), ValueError,
         "units_apart: limit=nan; expected a number >= 0"),
        (lambda: _kernels.units_apart(np.zeros(4, dtype=np.float32), 2, 1, 0.0, 1, np.zeros(4, dtype=np.float32),
                                      None, -1e-5), ValueError, "units_apart: rtol=-1e-05; expected a number >= 0"),
        (lambda: _kernels.units_apart(np.zeros(4, dtype=np.float32), 2, 1, 0.0, 1, np.zeros(4, dtype=np.float32),
                                      None, 1e-5, float("nan")), ValueError,
         "units_apart: weight_scale=nan; expected a number >= 0"),
        (lambda: _kernels.units_apart(np.zeros(4, dtype=np.float32), 2, 1, 0.0, 1, np.zeros(3, dtype=np.float32)),
         ValueError, "units_apart: weight has 3 items and bias -1 for 2 units; expected weight rows (a multiple "
         "of units) and, with weight only, one bias per unit"),
        (lambda: _kernels.units_apart(np.zeros(4, dtype=np.float32), 2, 1, 0.0, 1, None,
                                      np.zeros(2, dtype=np.float32)), ValueError,
         "units_apart: weight has -1 items and bias 2 for 2 units"),
        (lambda: _kernels.units_apart(np.zeros(4, dtype=np.float32), 2, 1, 0.0, 1, np.zeros(4)), TypeError,
         "units_apart: weight must be a one-dimensional float32 buffer, got format 'd'"),
        (lambda: call_layer_pass(values=np.zeros(8)), TypeError,
         "layer_pass: values must be a one-dimensional float32 buffer, got format 'd'"),
        (lambda: call_layer_pass(weight=np.zeros(8)), TypeError,
         "layer_pass: weight must be a one-dimensional float32 buffer, got format 'd'"),
        (lambda: call_layer_pass(units=3), ValueError,
         "layer_pass: values has 8 items, not a multiple of units * inner = 3 * 1"),
        (lambda: call_layer_pass(symmetry_step=-1), ValueError,
         "layer_pass: units=2, inner=1, step=1, symmetry_step=-1, rtol=0.0; expected units, inner and step >= 1, "
         "symmetry_step >= 0 and rtol >= 0"),
        (lambda: call_layer_pass(rtol=float("nan")), ValueError, "layer_pass: units=2, inner=1, step=1, "
         "symmetry_step=1, rtol=nan"),
        (lambda: call_layer_pass(maxima=np.zeros(3, dtype=np.float32)), ValueError,
         "layer_pass: unit_maxima has 3 items and subsample -1; expected units = 2 and at least ceil(8 / step=1) = 8"),
        (lambda: call_layer_pass(weight=np.zeros(3, dtype=np.float32)), ValueError,
         "layer_pass: weight has 3 items and bias -1 for 2 units; expected weight rows (a non-zero multiple of "
         "units) and, with weight only, one bias per unit"),
        (lambda: call_layer_pass(weight=None, bias=np.zeros(2, dtype=np.float32)), ValueError,
         "layer_pass: weight has -1 items and bias 2 for 2 units"),
        (lambda: call_layer_pass(low=0.1), ValueError, "layer_pass: low=0.1 is not a float32 value"),
        (lambda: call_layer_pass(values=(0, 8)), ValueError,
         "layer_pass: values=(0, 8); expected a float32 buffer or an (address, length) tuple with a non-null "
         "address aligned to 4 bytes and a length >= 0"),
        (lambda: call_layer_pass(values=(4098, 8)), ValueError, "layer_pass: values=(4098, 8); expected"),
        (lambda: call_layer_pass(weight=(4096, -1)), ValueError, "layer_pass: weight=(4096, -1); expected"),
        (lambda: call_layer_pass(weight=(4096,)), ValueError, "layer_pass: weight=(4096,); expected"),
        (lambda: _kernels.equal_regions([0], [8], [4]), ValueError,
         "equal_regions: first[0]=0; expected a non-null address"),
        (lambda: _kernels.equal_regions([8], [8], [-4]), ValueError,
         "equal_regions: sizes[0]=-4; expected a byte count >= 0"),
        (lambda: _kernels.equal_regions([8], [8, 16], [4]), ValueError,
         "equal_regions: first, second and sizes have 1, 2 and 1 items; expected one length"),
        (lambda: _kernels.equal_regions(8, [8], [4]), TypeError,
         "equal_regions: first must be a list or tuple of ints, got int"),
        (lambda: _kernels.histogram(np.zeros(4), np.zeros(2, dtype=np.int64)), TypeError,
         "histogram: values must be a one-dimensional float32 buffer, got format 'd'"),
        (lambda: _kernels.histogram(np.zeros(4, dtype=np.float32), np.zeros(2, dtype=np.int32)), TypeError,
         "histogram: counts must be a one-dimensional int64 buffer, got format 'i'"),
        (lambda: _kernels.histogram(np.zeros(0, dtype=np.float32), np.zeros(2, dtype=np.int64)), ValueError,
         "histogram: values has 0 items and counts 2; expected at least one of each"),
        (lambda: _kernels.histogram(np.zeros(3, dtype=np.float32), np.zeros(0, dtype=np.int64)), ValueError,
         "histogram: values has 3 items and counts 0; expected at least one of each"),
        (lambda: _kernels.histogram(np.array([1, 0, 2, 1], dtype=np.float32), np.zeros(2, dtype=np.int64)),
         ValueError, "histogram: values are not sorted ascending (2 neighbour pairs out of order or NaN)"),
        (lambda: _kernels.histogram(np.array([0, np.nan, 1], dtype=np.float32), np.zeros(2, dtype=np.int64)),
         ValueError, "histogram: values are not sorted ascending (2 neighbour pairs out of order or NaN)"),
        (lambda: _kernels.histogram(np.array([0, 1, np.inf], dtype=np.float32), np.zeros(2, dtype=np.int64)),
         ValueError, "histogram: values run from a finite value to inf; expected finite values"),
    ],
)
def test_bad_moments_and_histogram_arguments_raise(call, error, message):
    with pytest.raises(error) as caught:
        call()
    assert str(caught.value).startswith(message)


MOMENTS_CASES = """
import json
import math
import numpy as np
from initlab import _kernels

rng = np.random.default_rng(5)
special = np.array([np.nan, np.inf, -np.inf, -0.0, 1e30, -1e-30], dtype=np.float32)
found = []
for outer, units, inner in [(1, 1, 1), (1, 7, 1), (9, 8, 1), (5, 3, 17), (64, 33, 1), (3, 2, 4099), (40, 8, 300)]:
    for with_special in (False, True):
        values = rng.standard_normal(outer * units * inner, dtype=np.float32)
        if with_special:
            values[rng.integers(0, values.size, size=max(1, values.size // 7))] = rng.choice(special)
        maxima = np.empty(units, dtype=np.float32)
        result = _kernels.moments(values, units, inner, -1.5, 1.5, maxima, 3, np.empty(values.size, dtype=np.float32))
        found.append([repr(item) for item in result] + [maxima.tobytes().hex()])
print(json.dumps({"implementation": _kernels.moments_implementation, "found": found}))
"""


def test_moments_implementation_in_use_equals_the_portable_one():
    # The AVX-512F blocks keep the same 32 lanes as the SSE2 / plain C ones and sum them in the
    # same order (a float32 value's square is exact in double, so FMA changes nothing): equal bits.
    env = {key: value for key, value in os.environ.items() if key != "INITLAB_KERNELS_PORTABLE"}
    runs = []
    for portable in (False, True):
        if portable:
            env["INITLAB_KERNELS_PORTABLE"] = "1"
        result = subprocess.run([sys.executable, "-c", MOMENTS_CASES], env=dict(env), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout.splitlines()[-1]))
    dispatched, portable_run = runs
    assert portable_run["implementation"] in ("sse2", "portable")
    if "avx512f" in cpu_flags():
        assert dispatched["implementation"] == "avx512f"
    assert dispatched["implementation"] == _kernels.moments_implementation
    assert len(dispatched["found"]) == 14
    assert dispatched["found"] == portable_run["found"]
