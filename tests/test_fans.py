"""fans(): forward-correct counting, torch compatibility and Keras/JAX axes.

Reference formulas written out here (not imported from the libraries):

- torch ``_calculate_fan_in_and_fan_out``: weight read as (out, in, *k);
  fan_in = shape[1] * prod(k), fan_out = shape[0] * prod(k).
- Keras 3 / JAX ``_compute_fans`` (kernel (*k, in, out), in_axis=-2,
  out_axis=-1): rf = prod(shape[:-2]); fan_in = shape[-2] * rf, fan_out = shape[-1] * rf.
- forward counting (initlab): conv (out, in/g, *k): fan_in = (in/g) prod(k),
  fan_out = (out/g) prod(k); conv_transpose (in, out/g, *k): fan_in = (in/g) prod(k),
  fan_out = (out/g) prod(k).
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
         "layout: kind='dense' is invalid; expected one of linear, conv, conv_transpose, embedding, axes."),
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
