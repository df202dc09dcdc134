"""Counter-based streams: values depend only on (seed, name, element index)."""

import hashlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from initlab import InitlabError
from initlab import random as streams
from initlab.random import CHUNK, Stream, inner_bound, normal_, truncated_normal_, uniform_

KS_P_MIN = 1e-4


W_STREAM = Stream(0, "w")


def filled(shape, stream=W_STREAM, fill=normal_, **kwargs):
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


# Golden values of the streams, recorded with torch 2.13.0 (CPU). Each row: kind, seed, name, the first and
# the last 8 values (float32 bit patterns, hex), the exact float64 sum of all values (math.fsum, float.hex) and
# the SHA-256 of the float32 bytes, of a fill of GOLDEN_LENGTH elements (three chunks, the last one partial).
# A failure means the values of some stream changed: a new torch generator, a changed sampler or CHUNK.
GOLDEN_LENGTH = 2 * CHUNK + 1037
GOLDEN_FILLS = {
    "normal": (normal_, {"mean": 0.25, "std": 1.5}),
    "uniform": (uniform_, {"low": -0.3, "high": 0.7}),
    "truncated rejection": (truncated_normal_, {"mean": 0.1, "std": 0.37, "low": -2.0, "high": 2.0}),
    "truncated rejection narrow": (truncated_normal_, {"mean": -1.0, "std": 3.0, "low": -0.7, "high": 0.7}),
    "truncated inverse cdf": (truncated_normal_, {"mean": 0.5, "std": 2.0, "low": 0.5, "high": 0.6}),
    "truncated inverse cdf tail": (truncated_normal_, {"mean": 0.0, "std": 0.5, "low": 5.0, "high": 6.0}),
}
GOLDEN = [
    ("normal", 0, "w",
     "3f3cf6643f7a9736bf702d1cbf704876bf627bdcbf9c5540c00ba0f53f810e05",
     "39d93d00bf02db083fc50e30bf784c10bf9c1c41be314c88bee226383f254068",
     "0x1.00e704357bb00p+17", "b1ba17b92e35a65ef3d7cde6b33e35122affa69b9e91aeec84128e70bb715ce7"),
    ("normal", 7, "encoder.0.weight",
     "3ed0d25240069340bf62b2c93fd9c88ebec10f26bd1b2ffabee900c8bfe49c60",
     "c007ab353fabbf9d3fad7b783f41bd88bf17019ebf7089743f369858c0282418",
     "0x1.00cb9cf3e6600p+17", "44f3fc10ef3ae4790950ca7007af7e425f8d44639f59a8bd32bf811767dbf84d"),
    ("normal", 2**65, "x",
     "bee1401a3f60f7693fddcfae3f811123bf6d0401bfc81c58c00046b23ead982e",
     "bd88c6453ff375054042603a3f71e5e0bed8b8993fbb5803bf52dfaa3fdae39a",
     "0x1.ffe309a5d2e00p+16", "673dcdb7f4e2e24f30814ad4cb754bf60b193e277098bac4af1a08d3699edf86"),
    ("uniform", 0, "w",
     "bc436740be1dd58cbcea17003e631ea03e036d843e6f13343f2cb3193e02ba1c",
     "3e9880febc59f7403edf4dea3ee49cae3f1b59433f237b613f211b9e3dc1a1e0",
     "0x1.9a5393c6c4000p+16", "97abd51d6d77b5b582bd32b9eac7725acbddba85a5962fa5972dcb1972bf6957"),
    ("uniform", 7, "encoder.0.weight",
     "be6680903f2f68373f1cc8f63f0519a0bc9c0ac03dec9bf0be2909ec3eb5b9a8",
     "3ed78764bd8571303e1c2a44be85b1723f2481353f2434d9be1b4d2c3f1b34eb",
     "0x1.9c25cf5914000p+16", "6086fdab7282fa88494aa036ecd7b3234b1282f1c93d971b70bf4c3917ddb1ce"),
    ("uniform", 2**65, "x",
     "3e9acfaabe5c6e403ef9af603dd657483d460fa03eabd1843f0900cf3c83afe0",
     "be7dc8483e6403dc3f14aa723d4dbea03e9c6fecbddb0aa03edf0a4e3c2614c0",
     "0x1.9aa84e9de8000p+16", "e5efaf1cbed6adaaebd4ebfdc004ae15ca43c33803af5f2201ff3bb702878a4c"),
    ("truncated rejection", 0, "w",
     "3e61b2403e8f405cbe45b874be45d372be3835f2be869f35beffe84b3e92f5f1",
     "3d1d6e96bdb3b70d3ed60e00be4dbbb0be8666f9bb8f5f80bd90a0973e4a4d34",
     "0x1.9a1da3cfa4a00p+15", "3f5b328eb2e08ed564abbfbdfdb914e0a62d239821f642c860618085697d076c"),
    ("truncated rejection", 7, "encoder.0.weight",
     "3e0e45a03f0e981ebe386c243eea819dbd5ff4ee3ced77b0bd9763c3becdef9f",
     "bef817d33ebd15ce3ebecbbe3e666916bddb7aa7be4613923e5b69f1bf1c15f5",
     "0x1.99be848333400p+15", "8bd0f3e4411b4104b91e20ebcb1a3b1d03b37be2a834843c1aadc63e317dcbee"),
    ("truncated rejection", 2**65, "x",
     "bd8fbd893e829c313eee7afe3e92f904be429a24beb1d0e0bee981453df9c95a",
     "3cb3136c3f01eb393f4998f93e8af687bd8753273ecc78f9be28cf083eeb98e3",
     "0x1.98222fc3a6400p+15", "d1cfd62eb4c05933244126885d58312ae9614309c91c9b3d13017b10bb0a158b"),
    ("truncated rejection narrow", 0, "w",
     "bcc267203eea5cd8be466ff4bed34528bfc258643f8a308c3f2827783f043814",
     "bfbfe4d8c0216d84be9082bac03ff96abde14490bfec5322c018898ebe55fcc0",
     "-0x1.00c9b7c4c2600p+19", "a06c5da8c5709218fd1ef524da37b06edf81674cb9351b550e40367e45764bfe"),
    ("truncated rejection narrow", 7, "encoder.0.weight",
     "bf2f2daebf1cce2c3f839b1ebfd17253c01043cabfc9b300c01a4032bfb5018a",
     "bf745529be060128bf3daf2b3c5ec400c02b80cfc0052f22bd967a783f19a39a",
     "-0x1.00fb6c5753400p+19", "e8fb6eeeef8d623e36148fa9afc07032880fad850747cd39ddc971352a7d1be3"),
    ("truncated rejection narrow", 2**65, "x",
     "c01850063e83dda4bfdad1233f04448cc008ca8cc040dcaa3f1c3358bf5267d2",
     "bfd118c8bfdade403e4408603ec79780c0162e26c01c06c4beabb672bfba51bb",
     "-0x1.014f5343d1000p+19", "15084a439e018c3d19c6bb8636cfe01a533f015e129071f443a98860cfa6b7b9"),
    ("truncated inverse cdf", 0, "w",
     "3fd1a6913fd51beb3fce80483fc516f33fcc32853fd661363fd935b13fd4c9ed",
     "3fd70f303fc0b3b43fc2543b3fc0176d3fcead013fc19b623fd1cabc3fc51765",
     "0x1.9a39682917400p+19", "93e92bcb979f51549a21fa7df6724e76a16dbdc0fb58922d6c9c63fabe667615"),
    ("truncated inverse cdf", 7, "encoder.0.weight",
     "3fca17d53fd1c80e3fd3206f3fd783a03fc8a49d3fcb3d3f3fc7d41f3fd07082",
     "3fd868ce3fc4799a3fc8c5bb3fd371f03fd1948a3fd634083fc7a6163fd8a80b",
     "0x1.9a29d7b6f0800p+19", "71bdc10333539aafe7721e200e7e1f6c64d234a1f7df3a23e632a2f4cd41ecab"),
    ("truncated inverse cdf", 2**65, "x",
     "3fc488cc3fd1bc273fc557983fc801e43fcb16f33fc60a083fc730fb3fd555d4",
     "3fd40a4d3fd8d4973fca1b7d3fc8f5203fd4bfc43fc136503fcde0ac3fc486a9",
     "0x1.9a29d32292800p+19", "abd75f8cde6bafc301440045c642787b5a5e578c66cbfd655ecc294e2a181e78"),
    ("truncated inverse cdf tail", 0, "w",
     "40272347402a760d402525d8402163d5402401e4402c5933403725f3402a10d0",
     "402dab9040202ce7402099b8402005c940253e444020689340273e65402163f7",
     "0x1.4c6b20526b400p+20", "4e970d9c0c1d4c4b65318e2ad639402e4141cc56ba9ddb345940ab40479b5970"),
    ("truncated inverse cdf tail", 7, "encoder.0.weight",
     "40231e0f40273c5f40285855402ec10f40229178402396404022476840264bed",
     "4031bec2402134b640229d8b4028a3b2402715ee402c0c564022377c4032f09d",
     "0x1.4c5fb1e5bb800p+20", "9f8303f88600a71605ba695d33c7d50aff530c112549fdd0428d1f3b09065439"),
    ("truncated inverse cdf tail", 2**65, "x",
     "402139344027336840217793402257634023860f4021af4d40220fa6402ac1be",
     "40293b0d4033f61440231f814022aef9402a04b740204e4a4024d18d40213892",
     "0x1.4c5d5b0483c00p+20", "1327a6584d3e3569891b77089945218097dbf583085b85050d07e993ce70bdb4"),
]


@pytest.mark.parametrize("kind, seed, name, head, tail, total, digest", GOLDEN)
def test_streams_equal_their_golden_values(kind, seed, name, head, tail, total, digest):
    fill, arguments = GOLDEN_FILLS[kind]
    values = filled((GOLDEN_LENGTH,), Stream(seed, name), fill, **arguments).numpy()
    bits = values.view(np.uint32)
    assert "".join(f"{bit:08x}" for bit in bits[:8]) == head
    assert "".join(f"{bit:08x}" for bit in bits[-8:]) == tail
    assert math.fsum(values.astype(np.float64).tolist()).hex() == total
    assert hashlib.sha256(values.tobytes()).hexdigest() == digest


@pytest.mark.parametrize("density", [0.0, 1e-4, 0.02, 0.0455, 0.0999, 0.1, 0.3, 0.97, 1.0])
@pytest.mark.parametrize("length", [1, 8, 15, 64, 4096, CHUNK])
def test_true_positions_equal_numpy_flatnonzero_at_every_density(density, length):
    mask = np.random.default_rng(length).random(length) < density
    assert np.array_equal(streams._true_positions(mask), np.flatnonzero(mask))


def test_outside_compares_in_float32_with_inclusive_bounds_and_keeps_nan():
    low, high = streams._float32_bound(-2.0), streams._float32_bound(1.3)  # 1.3 is not a float32
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -2.0, np.nextafter(np.float32(-2.0), np.float32(-3.0)),
                        high, np.nextafter(high, np.float32(2.0)), 1.3], dtype=np.float32)
    values = np.tile(special, 30)
    expected = np.flatnonzero((values < low) | (values > high))
    assert np.array_equal(streams._outside(values, low, high), expected)
    # -inf, +inf, one ulp below -2 and one ulp above float32(1.3) in each group of ten; NaN stays
    assert np.array_equal(expected[:4], [1, 2, 6, 8])


FORK_CHILD_REFILLS = """
import hashlib, os, sys, time
import torch
from initlab.random import CHUNK, Stream, normal_, truncated_normal_

def digest():
    values = torch.empty(6 * CHUNK + 77)  # seven chunks: the fill pool runs them
    normal_(values, Stream(3, "fork"))
    wide = torch.empty(6 * CHUNK + 77)
    truncated_normal_(wide, Stream(3, "fork"), low=-2.0, high=2.0)
    return hashlib.sha256(values.numpy().tobytes() + wide.numpy().tobytes()).digest()

parent = digest()
pid = os.fork()
if pid == 0:
    os._exit(0 if digest() == parent else 1)
deadline = time.monotonic() + 60
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    if time.monotonic() > deadline:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        sys.exit(3)
    time.sleep(0.02)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_fills_with_a_new_pool_and_gets_the_parents_values():
    # run in a fresh interpreter with two fill threads: exit code 0 = equal values in the child,
    # 1 = different values, 3 = the child hung (the parent's pool threads do not exist after fork)
    environment = {**os.environ, "INITLAB_FILL_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", FORK_CHILD_REFILLS], env=environment, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
