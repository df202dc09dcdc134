"""fans(): forward-correct counting, torch compatibility and Keras/JAX axes.

Reference formulas written out here (not imported from the libraries):

- torch ``_calculate_fan_in_and_fan_out``: weight read as (out, in, *k);
  fan_in = shape[1] * prod(k), fan_out = shape[0] * prod(k).
- Keras 3 / JAX ``_compute_fans`` (kernel (*k, in, out), in_axis=-2,
  out_axis=-1): rf = prod(shape[:-2]); fan_in = shape[-2] * rf, fan_out = shape[-1] * rf.
- forward counting (initlab): conv (out, in/g, *k): fan_in = (in/g) prod(k),
  fan_out = (out/g) prod(k); conv_transpose (in, out/g, *k): fan_in = (in/g) prod(k),
  fan_out = (out/g) prod(k). With strides s, an input position lies in prod(k/s)
  windows: conv fan_out = (out/g) prod(k/s), conv_transpose fan_in = (in/g) prod(k/s).
"""

import math

import pytest
import torch

from initlab import InitlabError
from initlab.fans import Fans, Layout, fans


def torch_reference(shape):
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def keras_reference(shape):
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


# (shape as torch stores it, layout, groups, expected forward (fan_in, fan_out))
CASES = [
    ((64, 32), "linear", 1, (32, 64)),
    ((1, 1), "linear", 1, (1, 1)),
    ((1000, 3), "linear", 1, (3, 1000)),
    ((16, 8, 3), "conv", 1, (24, 48)),
    ((16, 8, 3, 3), "conv", 1, (72, 144)),
    ((16, 8, 3, 3, 3), "conv", 1, (216, 432)),
    ((64, 3, 7, 7), "conv", 1, (147, 3136)),
    ((32, 8, 3, 3), "conv", 2, (72, 144)),
    ((32, 4, 3, 3), "conv", 4, (36, 72)),
    ((32, 1, 3, 3), "conv", 32, (9, 9)),  # depthwise
    ((32, 1, 5), "conv", 32, (5, 5)),  # depthwise 1-D
    ((64, 2, 3, 3), "conv", 8, (18, 72)),
    ((16, 8, 4, 4), "conv_transpose", 1, (256, 128)),
    ((16, 8, 3), "conv_transpose", 1, (48, 24)),
    ((16, 4, 3, 3), "conv_transpose", 2, (72, 36)),
    ((32, 1, 3, 3), "conv_transpose", 32, (9, 9)),  # depthwise transposed
    ((8, 8, 2, 2, 2), "conv_transpose", 1, (64, 64)),
    ((12, 6, 1, 1), "conv", 1, (6, 12)),
    ((10000, 128), "embedding", 1, (10000, 128)),
    ((50, 16), "embedding", 1, (50, 16)),
    ((256, 128, 1), "conv", 1, (128, 256)),
]


@pytest.mark.parametrize("shape, kind, groups, expected", CASES)
def test_forward_counting(shape, kind, groups, expected):
    counted = fans(shape, kind, groups=groups)
    assert (counted.fan_in, counted.fan_out) == expected


@pytest.mark.parametrize("shape, kind, groups, expected", CASES)
def test_torch_compat_reproduces_torch_exactly(shape, kind, groups, expected):
    reference = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert reference == torch_reference(shape)
    counted = fans(shape, kind, groups=groups, layout_compat="torch")
    assert (counted.fan_in, counted.fan_out) == reference


@pytest.mark.parametrize("shape", [(32, 64), (3, 3, 8, 16), (5, 8, 16), (2, 2, 2, 4, 8), (7, 1, 1)])
def test_axes_layout_matches_keras_and_jax(shape):
    counted = fans(shape, "axes", in_axis=-2, out_axis=-1)
    assert (counted.fan_in, counted.fan_out) == keras_reference(shape)


def test_axes_with_batch_axis_ignores_it():
    # JAX: batch axes index independent weights and count in neither fan.
    counted = fans((4, 3, 3, 8, 16), "axes", in_axis=-2, out_axis=-1, batch_axis=(0,))
    assert (counted.fan_in, counted.fan_out, counted.receptive_field) == (72, 144, 9)


def test_torch_over_counts_grouped_fan_out_and_swaps_transposed():
    grouped = (32, 8, 3, 3)
    assert fans(grouped, "conv", groups=4).fan_out * 4 == fans(grouped, layout_compat="torch").fan_out
    transposed = fans((16, 8, 4, 4), "conv_transpose")
    as_torch = fans((16, 8, 4, 4), "conv_transpose", layout_compat="torch")
    assert (transposed.fan_in, transposed.fan_out) == (as_torch.fan_out, as_torch.fan_in)


def test_fused_blocks_count_one_block():
    embed = 64
    assert fans((3 * embed, embed), "linear", blocks=3) == Fans(embed, embed, 1)


def test_inferred_layout_from_shape():
    assert fans((16, 8, 3), None) == fans((16, 8, 3), "conv")
    assert fans((16, 8), None) == fans((16, 8), "linear")


def test_layout_object_round_trips_to_dict():
    layout = Layout("conv", groups=4)
    assert layout.to_dict() == {"kind": "conv", "groups": 4}
    assert Layout(**layout.to_dict()) == layout


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fans((256,), "linear"),
         "fans: shape=(256,) has 1 dimension(s); a fan-based scheme needs a tensor with 2 or more "
         "dimensions. Use zeros() or constant(value) for biases."),
        (lambda: fans((0, 4), "linear"),
         "fans: shape=(0, 4) has a dimension of size 0, so fan_in or fan_out is 0; expected every dimension >= 1."),
        (lambda: fans((30, 4, 3), "conv", groups=4),
         "fans: groups=4 does not divide out_channels (dimension 0) = 30 of shape=(30, 4, 3); expected a divisor of 30."),
        (lambda: fans((8, 4), "dense"),
         "layout: kind='dense' is invalid; expected one of linear, linear_in_out, conv, conv_transpose, embedding, axes."),
        (lambda: fans((8, 4), "linear", groups=0),
         "layout: groups=0 is invalid; expected a positive integer."),
        (lambda: fans((8, 4), "linear", layout_compat="keras"),
         "layout: layout_compat='keras' is invalid; expected one of forward, torch."),
        (lambda: fans((8, 4, 3), "linear"),
         "fans: layout='linear' expects a 2-D weight but shape=(8, 4, 3) has 3 dimensions; use layout='conv' or explicit axes."),
        (lambda: fans((8, 4), "axes", in_axis=0, out_axis=0),
         "fans: in_axis=0, out_axis=0 and batch_axis=() overlap; expected disjoint axes."),
        (lambda: fans((8, 4), "axes", in_axis=5),
         "fans: axis 5 is outside shape=(8, 4); expected -2 <= axis < 2."),
        (lambda: fans((10, 4), "linear", blocks=3),
         "fans: blocks=3 does not divide the first dimension of shape=(10, 4); expected a fused weight of 3 equal stacked blocks."),
    ],
)
def test_bad_input_messages(call, message):
    with pytest.raises(InitlabError) as caught:
        call()
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def _coverage_by_enumeration(kernel: int, stride: int, length: int = 64) -> float:
    """Mean number of windows (kernel, stride, no padding) that cover an input position, away from the edges."""
    counts = [0] * length
    for start in range(0, length - kernel + 1, stride):
        for position in range(start, start + kernel):
            counts[position] += 1
    inner = counts[kernel:length - kernel - (length - kernel) % stride]
    return sum(inner) / len(inner)


@pytest.mark.parametrize("kernel, stride", [(8, 8), (4, 4), (3, 2), (3, 1), (7, 2), (1, 2), (2, 2), (5, 3)])
def test_strided_conv_fan_out_counts_the_windows_covering_one_input(kernel, stride):
    coverage = _coverage_by_enumeration(kernel, stride)
    assert coverage == pytest.approx(kernel / stride, rel=0.05)
    counted = fans((16, 3, kernel, kernel), Layout("conv", stride=(stride, stride)))
    assert counted.fan_in == 3 * kernel * kernel
    assert counted.fan_out == pytest.approx(16 * (kernel / stride) ** 2)
    transposed = fans((16, 3, kernel, kernel), Layout("conv_transpose", stride=(stride, stride)))
    assert transposed.fan_in == pytest.approx(16 * (kernel / stride) ** 2)
    assert transposed.fan_out == 3 * kernel * kernel


def test_patch_embedding_fan_out_is_the_channel_count():
    patch = fans((64, 3, 16, 16), Layout("conv", stride=(16, 16)))
    assert patch == Fans(fan_in=3 * 256, fan_out=64, receptive_field=256)
    assert isinstance(patch.fan_out, int)
    assert fans((64, 3, 16, 16), Layout("conv", stride=16)).fan_out == 64  # one stride for every axis
    assert fans((64, 3, 16, 16), Layout("conv", stride=(16, 16), compat="torch")).fan_out == 64 * 256


def test_transposed_linear_layout_reads_in_then_out():
    assert fans((32, 96), "linear_in_out") == Fans(fan_in=32, fan_out=96)
    assert fans((32, 96), Layout("linear_in_out", blocks=3)) == Fans(fan_in=32, fan_out=32)
    assert fans((96, 32), Layout("linear", blocks=3)) == Fans(fan_in=32, fan_out=32)
    with pytest.raises(InitlabError, match=r"blocks=5 does not divide the second dimension of shape=\(32, 96\)"):
        fans((32, 96), Layout("linear_in_out", blocks=5))


def test_bad_stride():
    with pytest.raises(InitlabError, match=r"layout: stride=\(0, 2\) is invalid; expected a tuple of positive"):
        Layout("conv", stride=(0, 2))
    with pytest.raises(InitlabError, match=r"stride=\(2, 2\) has 2 entries but shape=\(8, 3, 3\) has 1 kernel"):
        fans((8, 3, 3), Layout("conv", stride=(2, 2)))
    assert Layout("conv", stride=(1, 1)).to_dict() == {"kind": "conv"}
    assert Layout("conv", stride=(2, 1)).to_dict() == {"kind": "conv", "stride": [2, 1]}
