"""Counter-based streams: values depend only on (seed, name, element index)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy import stats

from initlab import InitlabError
from initlab import random as streams
from initlab.random import CHUNK, Stream, inner_bound, normal_, truncated_normal_, uniform_

KS_P_MIN = 1e-4


def filled(shape, stream=Stream(0, "w"), fill=normal_, **kwargs):
    out = torch.empty(shape)
    fill(out, stream, **kwargs)
    return out


def test_same_seed_and_name_are_bit_identical():
    assert torch.equal(filled((300, 700)), filled((300, 700)))


def test_different_names_and_seeds_give_independent_streams():
    first = filled((200_000,), Stream(0, "a")).double().numpy()
    second = filled((200_000,), Stream(0, "b")).double().numpy()
    third = filled((200_000,), Stream(1, "a")).double().numpy()
    # independent standard normals: sample correlation ~ N(0, 1/n); 5 sigma bound
    bound = 5 / math.sqrt(first.size)
    assert abs(np.corrcoef(first, second)[0, 1]) < bound
    assert abs(np.corrcoef(first, third)[0, 1]) < bound


def test_prefix_property_value_does_not_depend_on_tensor_length():
    long = filled((CHUNK + 1037,))
    short = filled((CHUNK - 5,))
    assert torch.equal(short, long[: CHUNK - 5])
    long_trunc = filled((CHUNK + 1037,), fill=truncated_normal_)
    short_trunc = filled((777,), fill=truncated_normal_)
    assert torch.equal(short_trunc, long_trunc[:777])


@settings(max_examples=12, deadline=None)
@given(
    fill_threads=st.integers(1, 4),
    torch_threads=st.integers(1, 2),
    seed=st.integers(-(2**70), 2**70),
)
def test_thread_counts_do_not_change_values(fill_threads, torch_threads, seed):
    reference = filled((3, CHUNK + 100), Stream(seed, "layer"))
    previous = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INITLAB_FILL_THREADS", str(fill_threads))
        torch.set_num_threads(torch_threads)
        try:
            again = filled((3, CHUNK + 100), Stream(seed, "layer"))
        finally:
            torch.set_num_threads(previous)
    assert torch.equal(reference, again)


def test_fill_order_does_not_matter():
    names = ["a", "b", "c"]
    forward = {name: filled((513, 129), Stream(3, name)) for name in names}
    backward = {name: filled((513, 129), Stream(3, name)) for name in reversed(names)}
    assert all(torch.equal(forward[name], backward[name]) for name in names)


@st.composite
def shape_and_index(draw):
    shape = tuple(draw(st.lists(st.integers(1, 40), min_size=1, max_size=4)))
    index = []
    for size in shape:
        start = draw(st.integers(0, size - 1))
        stop = draw(st.integers(start + 1, size))
        step = draw(st.integers(1, 3))
        index.append(slice(start, stop, step))
    return shape, tuple(index)


@settings(max_examples=40, deadline=None)
@given(case=shape_and_index(), kind=st.sampled_from(["normal", "uniform", "truncated"]))
def test_shard_equals_slice_of_full_tensor(case, kind):
    shape, index = case
    fill = {"normal": normal_, "uniform": uniform_, "truncated": truncated_normal_}[kind]
    full = filled(shape, Stream(11, "x"), fill)
    shard = torch.empty(full[index].shape)
    fill(shard, Stream(11, "x"), full_shape=shape, index=index)
    assert torch.equal(shard, full[index])


def test_column_shard_spanning_chunks():
    shape = (CHUNK // 64 + 3, 64)
    full = filled(shape)
    shard = torch.empty(shape[0], 7)
    normal_(shard, Stream(0, "w"), full_shape=shape, index=(slice(None), slice(50, 57)))
    assert torch.equal(shard, full[:, 50:57])


def test_non_contiguous_and_low_precision_targets_receive_the_same_values():
    reference = filled((64, 32))
    transposed = torch.empty(32, 64).t()
    normal_(transposed, Stream(0, "w"))
    assert torch.equal(transposed, reference)
    half = torch.empty(64, 32, dtype=torch.bfloat16)
    normal_(half, Stream(0, "w"))
    assert torch.equal(half, reference.to(torch.bfloat16))


def test_normal_and_uniform_pass_kolmogorov_smirnov():
    values = filled((200_000,), Stream(5, "ks")).double().numpy()
    assert stats.kstest(values, "norm").pvalue > KS_P_MIN
    values = filled((200_000,), Stream(5, "ks"), uniform_, low=-2.0, high=3.0).double().numpy()
    assert stats.kstest(values, stats.uniform(loc=-2.0, scale=5.0).cdf).pvalue > KS_P_MIN


@pytest.mark.parametrize(
    "low, high",
    [(-2.0, 2.0), (-1.0, 3.0), (-0.1, 0.1), (0.5, 0.6), (5.0, 6.0), (-12.0, -11.0), (40.0, 41.0), (-1.0, math.inf)],
)
def test_truncated_normal_is_exact_on_any_interval(low, high):
    values = filled((100_000,), Stream(2, "t"), truncated_normal_, low=low, high=high).double().numpy()
    assert values.min() >= low and values.max() <= high
    reference = stats.truncnorm(low, high)
    assert stats.kstest(values, reference.cdf).pvalue > KS_P_MIN
    # no clamping: the bounds themselves carry (almost) no probability mass
    assert np.mean(values == low) < 1e-3 and np.mean(values == high) < 1e-3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_truncated_normal_stays_inside_bounds_after_scaling_and_casting(dtype):
    out = torch.empty(CHUNK + 50_000, dtype=dtype)
    truncated_normal_(out, Stream(0, "h"), mean=0.1, std=0.37, low=-1.3, high=1.7)
    assert float(out.min()) >= 0.1 - 1.3 * 0.37 and float(out.max()) <= 0.1 + 1.7 * 0.37


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_inner_bound_is_representable_and_inside(dtype):
    for value in (1.999, -1.999, 0.3, 2.0, -7.77e-3):
        lower, upper = inner_bound(value, dtype, up=True), inner_bound(value, dtype, up=False)
        assert lower >= value >= upper
        assert float(torch.tensor(lower, dtype=dtype)) == lower
        assert float(torch.tensor(upper, dtype=dtype)) == upper


@pytest.mark.parametrize(
    "index, message",
    [
        ((slice(0, 5), slice(0, 99)),
         "index=(slice(0, 5, None), slice(0, 99, None)) is outside the full shape (10, 20): slice(0, 99, None) "
         "in dimension 1 (size 20); expected bounds within [0, 20]."),
        ((12,), "index=(12,) is outside the full shape (10, 20): position 12 in dimension 0 (size 10); expected 0 <= position < 10."),
        ((slice(None), slice(None), slice(None)),
         "index=(slice(None, None, None), slice(None, None, None), slice(None, None, None)) has 3 entries but the "
         "full shape (10, 20) has 2 dimensions; expected at most one slice per dimension."),
        ((slice(None, None, -1),), "index=(slice(None, None, -1),) has step -1 in dimension 0; expected a positive step."),
    ],
)
def test_bad_shard_index(index, message):
    with pytest.raises(InitlabError) as caught:
        streams.normalize_index((10, 20), index)
    assert str(caught.value) == message


def test_shard_shape_mismatch_is_an_error():
    with pytest.raises(InitlabError, match=r"the tensor has shape \(4, 4\) but index"):
        normal_(torch.empty(4, 4), Stream(), full_shape=(10, 20), index=(slice(0, 5),))


def test_bad_seed_and_thread_setting():
    with pytest.raises(InitlabError, match=r"Stream: seed=1.5 is invalid; expected an integer."):
        Stream(1.5, "w")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INITLAB_FILL_THREADS", "zero")
        with pytest.raises(InitlabError, match="INITLAB_FILL_THREADS='zero' is invalid"):
            filled((CHUNK * 3,))


def test_parameter_requiring_grad_is_filled_across_threads():
    parameter = torch.nn.Parameter(torch.empty(3 * CHUNK + 5))
    normal_(parameter, Stream(0, "p"))
    assert parameter.requires_grad and torch.equal(parameter.detach(), filled((3 * CHUNK + 5,), Stream(0, "p")))


def test_collected_moments_equal_the_tensor_moments():
    from initlab.random import collect_moments

    tensor = torch.empty(3 * CHUNK + 77)
    with collect_moments(tensor) as moments:
        normal_(tensor, Stream(0, "m"), mean=0.5, std=2.0)
    exact = tensor.double()
    assert moments.complete and moments.count == tensor.numel()
    assert moments.total == pytest.approx(float(exact.sum()), rel=1e-6)
    assert moments.squares == pytest.approx(float((exact * exact).sum()), rel=1e-6)


@pytest.mark.parametrize(
    "case",
    ["bfloat16", "shard", "other tensor", "non-contiguous"],
)
def test_moments_stay_incomplete_when_the_fill_does_not_write_the_whole_tensor(case):
    from initlab.random import collect_moments

    tensor = torch.empty(64, 32, dtype=torch.bfloat16 if case == "bfloat16" else torch.float32)
    target = {"other tensor": torch.empty(64, 32), "non-contiguous": tensor.t()}.get(case, tensor)
    with collect_moments(tensor) as moments:
        if case == "shard":
            normal_(tensor[:32], Stream(), full_shape=(64, 32), index=(slice(0, 32),))
        else:
            normal_(target, Stream())
    assert not moments.complete


def reference_rejection(length, stream, low, high):
    """Stream values [0, length) of N(0, 1) restricted to [low, high], by rejection in plain numpy.

    Per chunk: the chunk's normal draws; the positions outside the bounds
    (compared in float32); those positions, in order, take the accepted draws
    of the chunk's "redraw" generator, drawn _round_up(int(1.25 * missing) + 16)
    at a time (initlab draws other lengths: the values must not depend on it); then the float32 values are limited to the float32 numbers
    inside the bounds (only a bound that float32 rounds outward can matter).
    """
    low32, high32 = np.float32(low), np.float32(high)
    inner_low = low32 if low32 >= low else np.nextafter(low32, np.float32(np.inf))
    inner_high = high32 if high32 <= high else np.nextafter(high32, np.float32(-np.inf))
    pieces = []
    for chunk in range(-(-length // CHUNK)):
        size = min(CHUNK, length - chunk * CHUNK)
        generated = -(-size // 16) * 16
        values_generator = torch.Generator().manual_seed(stream.chunk_seed(chunk))
        values = torch.empty(generated).normal_(generator=values_generator).numpy()
        rejected = np.flatnonzero((values < low32) | (values > high32))
        redraw = torch.Generator().manual_seed(stream.chunk_seed(chunk, "redraw"))
        accepted = np.empty(0, dtype=np.float32)
        while accepted.size < rejected.size:
            missing = rejected.size - accepted.size
            proposal = torch.empty(-(-(int(missing * 1.25) + 16) // 16) * 16).normal_(generator=redraw).numpy()
            inside = proposal[(proposal >= low32) & (proposal <= high32)]
            accepted = np.concatenate([accepted, inside[:missing]])
        values[rejected] = accepted
        pieces.append(np.clip(values[:size], inner_low, inner_high))
    return np.concatenate(pieces)


@pytest.mark.parametrize(
    "seed, name, low, high",
    [(0, "w", -2.0, 2.0), (7, "encoder.0.weight", -1.0, 3.0), (-3, "b", -0.7, 0.7), (2**65, "x", -1.0, math.inf)],
)
@pytest.mark.parametrize("length", [1, 17, 777, CHUNK + 1037, 2 * CHUNK + 5])
def test_rejection_sampler_equals_a_plain_numpy_rejection(seed, name, low, high, length):
    # (-0.7, 0.7) holds 51.6 % of the mass: several proposal rounds, and bounds
    # float32 cannot represent
    stream = Stream(seed, name)
    reference = reference_rejection(length, stream, low, high)
    assert np.array_equal(filled((length,), stream, truncated_normal_, low=low, high=high).numpy(), reference)
    wide = filled((length,), stream, truncated_normal_, low=low, high=high).to(torch.float64)
    double = torch.empty(length, dtype=torch.float64)
    truncated_normal_(double, stream, low=low, high=high)
    assert torch.equal(double, wide) and np.array_equal(double.numpy(), reference.astype(np.float64))


@pytest.mark.parametrize("low, high", [(-2.0, 2.0), (-0.7, 0.7)])
def test_rejection_sampler_values_do_not_depend_on_the_proposal_length(monkeypatch, low, high):
    # initlab draws one round of proposals per chunk almost always; with 16 at a
    # time every chunk takes hundreds of rounds, and the values must not change
    # (the reference draws int(1.25 * missing) + 16 at a time)
    stream = Stream(11, "rounds")
    length = CHUNK + 4099
    rounds = []

    def sixteen(missing, acceptance):
        rounds.append(missing)
        return 16

    monkeypatch.setattr(streams, "_proposal_length", sixteen)
    values = filled((length,), stream, truncated_normal_, low=low, high=high).numpy()
    assert len(rounds) > 100
    assert np.array_equal(values, reference_rejection(length, stream, low, high))


@pytest.mark.parametrize("acceptance", [0.5, 0.8427, 0.9545])
@pytest.mark.parametrize("missing", [1, 3, 40, 1000, 11_916, 126_877])
def test_proposal_length_is_a_block_multiple_that_leaves_six_standard_deviations(missing, acceptance):
    length = streams._proposal_length(missing, acceptance)
    assert length % 16 == 0 and length >= 16
    # accepted count ~ Binomial(length, acceptance); a second round needs it below
    # missing: 6 standard deviations out (normal approximation 1e-9), exactly:
    assert stats.binom.cdf(missing - 1, length, acceptance) < 1e-8
    # and not much more than needed: the 6 sd margin, one block and the rounding
    assert length <= (missing + 6 * math.sqrt(missing * (1 - acceptance))) / acceptance + 32


def test_rejection_sampler_shards_equal_the_numpy_rejection():
    shape = (3, CHUNK // 5 + 3)
    stream = Stream(5, "shard")
    reference = reference_rejection(shape[0] * shape[1], stream, -1.0, 3.0).reshape(shape)
    for index in [(slice(1, 3), slice(None)), (slice(None), slice(7, 9001, 3)), (2, slice(100, 50_000))]:
        shard = torch.empty(streams.normalize_index(shape, index)[0])
        truncated_normal_(shard, stream, low=-1.0, high=3.0, full_shape=shape, index=index)
        assert np.array_equal(shard.numpy().reshape(-1), reference[index].reshape(-1))


def test_missing_compiled_kernels_are_an_error_that_says_how_to_build_them(monkeypatch):
    monkeypatch.setattr(streams, "_kernels", None)
    monkeypatch.setattr(streams, "_KERNELS_IMPORT_ERROR", "No module named 'initlab._kernels'")
    with pytest.raises(InitlabError) as caught:
        truncated_normal_(torch.empty(10), Stream())
    assert str(caught.value) == (
        "initlab.random: the compiled kernels (initlab._kernels, from src/initlab/_kernels.c) are missing "
        "(No module named 'initlab._kernels'); the truncated-normal rejection sampler needs them. Build them by "
        "reinstalling initlab from its source tree with a C compiler available: `pip install -e .` "
        "(or `make install`)."
    )
