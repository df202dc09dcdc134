"""initlab._kernels: the compiled loops of the truncated-normal rejection sampler."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from initlab import _kernels


def reference_outside(values, low, high):
    return np.flatnonzero((values < np.float32(low)) | (values > np.float32(high)))


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 1000, 4099])
@pytest.mark.parametrize("low, high", [(-2.0, 2.0), (-1.0, 3.0), (-np.inf, 0.5), (-0.25, np.inf)])
def test_outside_finds_the_same_positions_as_numpy(length, low, high):
    values = np.random.default_rng(length).standard_normal(length, dtype=np.float32)
    positions = np.full(length + 3, -7, dtype=np.int64)
    count = _kernels.outside(values, low, high, positions)
    np.testing.assert_array_equal(positions[:count], reference_outside(values, low, high))
    assert np.all(positions[length:] == -7)  # nothing written past len(values)


def test_outside_keeps_values_equal_to_a_bound_and_all_positions_of_a_block():
    values = np.array([-2.0, 2.0, -2.0000002, 2.0000002] * 32, dtype=np.float32)
    positions = np.empty(values.size, dtype=np.int64)
    count = _kernels.outside(values, -2.0, 2.0, positions)
    np.testing.assert_array_equal(positions[:count], np.flatnonzero(np.abs(values) > 2.0))
    everything = np.full(130, 9.0, dtype=np.float32)
    assert _kernels.outside(everything, -1.0, 1.0, np.empty(130, dtype=np.int64)) == 130


def test_refill_writes_accepted_proposals_in_order_and_stops_when_full():
    values = np.zeros(10, dtype=np.float32)
    positions = np.array([1, 4, 8], dtype=np.int64)
    proposal = np.array([5.0, 0.5, -3.0, -0.25, 0.75, 0.125], dtype=np.float32)
    assert _kernels.refill(values, positions, 0, proposal[:2], -1.0, 1.0) == 1
    assert _kernels.refill(values, positions, 1, proposal[2:], -1.0, 1.0) == 2
    np.testing.assert_array_equal(values, [0, 0.5, 0, 0, -0.25, 0, 0, 0, 0.75, 0])
    assert _kernels.refill(values, positions, 3, proposal, -1.0, 1.0) == 0


def test_refill_bounds_are_inclusive():
    values = np.zeros(2, dtype=np.float32)
    proposal = np.array([-1.0, 1.0], dtype=np.float32)
    assert _kernels.refill(values, np.array([0, 1], dtype=np.int64), 0, proposal, -1.0, 1.0) == 2
    np.testing.assert_array_equal(values, proposal)


def call_outside(values=None, low=-2.0, high=2.0, positions=None):
    values = np.zeros(8, dtype=np.float32) if values is None else values
    positions = np.empty(8, dtype=np.int64) if positions is None else positions
    return _kernels.outside(values, low, high, positions)


def call_refill(values=None, positions=None, start=0, proposal=None, low=-2.0, high=2.0):
    values = np.zeros(8, dtype=np.float32) if values is None else values
    positions = np.array([0, 3], dtype=np.int64) if positions is None else positions
    proposal = np.zeros(4, dtype=np.float32) if proposal is None else proposal
    return _kernels.refill(values, positions, start, proposal, low, high)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: call_outside(values=np.zeros(8)), TypeError,
         "outside: values must be a one-dimensional float32 buffer, got format 'd'"),
        (lambda: call_outside(values=np.zeros((2, 4), dtype=np.float32)), TypeError,
         "outside: values must be a one-dimensional float32 buffer, got format 'f' (item size 4) with 2 dimension(s)"),
        (lambda: call_outside(values=np.zeros(16, dtype=np.float32)[::2]), TypeError,
         "outside: values must be a readable C-contiguous float32 buffer (e.g. a numpy array), got numpy.ndarray"),
        (lambda: call_outside(values=[0.0] * 8), TypeError,
         "outside: values must be a readable C-contiguous float32 buffer (e.g. a numpy array), got list"),
        (lambda: call_outside(positions=np.empty(8, dtype=np.int32)), TypeError,
         "outside: positions must be a one-dimensional int64 buffer, got format 'i'"),
        (lambda: call_outside(positions=np.empty(7, dtype=np.int64)), ValueError,
         "outside: positions has 7 items but values has 8; expected len(positions) >= len(values)"),
        (lambda: call_outside(low=-1.3), ValueError,
         "outside: low=-1.3 is not a float32 value; expected a bound rounded to float32 first (numpy.float32(low))"),
        (lambda: call_outside(high=float("nan")), ValueError, "outside: high=nan is not a float32 value"),
        (lambda: call_outside(high=1e300), ValueError, "outside: high=1e+300 is not a float32 value"),
        (lambda: call_refill(values=np.zeros(16, dtype=np.float32)[::-2]), TypeError,
         "refill: values must be a writable C-contiguous float32 buffer"),
        (lambda: call_refill(values=np.frombuffer(bytes(32), dtype=np.float32)), TypeError,
         "refill: values must be a writable C-contiguous float32 buffer (e.g. a numpy array), got numpy.ndarray"),
        (lambda: call_refill(proposal=np.zeros(4)), TypeError,
         "refill: proposal must be a one-dimensional float32 buffer, got format 'd'"),
        (lambda: call_refill(start=3), ValueError,
         "refill: start=3 is out of range; expected 0 <= start <= len(positions) = 2"),
        (lambda: call_refill(start=-1), ValueError, "refill: start=-1 is out of range"),
        (lambda: call_refill(positions=np.array([0, 8], dtype=np.int64)), ValueError,
         "refill: positions[1]=8 is outside values (length 8); expected 0 <= position < 8"),
        (lambda: call_refill(positions=np.array([-1], dtype=np.int64)), ValueError,
         "refill: positions[0]=-1 is outside values (length 8); expected 0 <= position < 8"),
    ],
)
def test_bad_buffers_and_bounds_raise_instead_of_touching_memory(call, error, message):
    with pytest.raises(error) as caught:
        call()
    assert str(caught.value).startswith(message)


def test_refill_stops_at_a_bad_position_after_writing_the_ones_before_it():
    values = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValueError, match=r"positions\[1\]=4 is outside values"):
        _kernels.refill(values, np.array([2, 4, 1], dtype=np.int64), 0, np.ones(3, dtype=np.float32), -2.0, 2.0)
    np.testing.assert_array_equal(values, [0, 0, 1, 0])


OUTSIDE_CASES = """
import json, sys
import numpy as np
from initlab import _kernels

def cases():
    rng = np.random.default_rng(7)
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -2.0, 2.0, -2.0000002, 2.0000002], dtype=np.float32)
    for length in [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 4099, 1 << 18]:
        values = rng.standard_normal(length, dtype=np.float32)
        values[rng.integers(0, max(length, 1), size=length // 7)] = rng.choice(special, size=length // 7)
        for low, high in [(-2.0, 2.0), (-1.0, 3.0), (-np.inf, 0.5), (-0.25, np.inf), (-0.0078125, 0.0078125)]:
            yield values, low, high

found = []
for values, low, high in cases():
    positions = np.empty(values.size, dtype=np.int64)
    count = _kernels.outside(values, low, high, positions)
    found.append(positions[:count].tolist())
print(json.dumps({"implementation": _kernels.outside_implementation, "found": found}))
"""


def run_outside_cases(portable: bool) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "INITLAB_KERNELS_PORTABLE"}
    if portable:
        env["INITLAB_KERNELS_PORTABLE"] = "1"
    result = subprocess.run([sys.executable, "-c", OUTSIDE_CASES], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def test_outside_implementation_in_use_equals_the_portable_one():
    # outside() is chosen at import: AVX-512F where the CPU has it (and POPCNT),
    # else SSE2 on x86-64, else plain C; INITLAB_KERNELS_PORTABLE=1 forces the
    # portable one, so both run here on the same inputs (NaN, +-inf, -0, values
    # at and one ulp past the bounds, every block-length remainder).
    dispatched, portable = run_outside_cases(portable=False), run_outside_cases(portable=True)
    assert portable["implementation"] in ("sse2", "portable")
    if {"avx512f", "popcnt"} <= cpu_flags():
        assert dispatched["implementation"] == "avx512f"
    assert dispatched["implementation"] == _kernels.outside_implementation
    assert len(dispatched["found"]) == len(portable["found"]) == 14 * 5
    for index, (ours, theirs) in enumerate(zip(dispatched["found"], portable["found"])):
        assert ours == theirs, f"case {index}"


def test_outside_ignores_nan_like_numpy():
    values = np.array([np.nan, 3.0, -np.inf, np.inf, 0.0] * 20, dtype=np.float32)
    positions = np.empty(values.size, dtype=np.int64)
    count = _kernels.outside(values, -2.0, 2.0, positions)
    np.testing.assert_array_equal(positions[:count], reference_outside(values, -2.0, 2.0))
