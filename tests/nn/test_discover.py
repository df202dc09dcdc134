"""The auto plan picks the scheme and gain from the activation that actually follows each layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from initlab_nn_models import Decoder, MixedMLP, ResidualBlock, SmallCNN, Swish
from torch import nn

from initlab.activations import get_activation
from initlab.gains import gain
from initlab.nn import preview
from initlab.nn.discover import DiscoveryWarning, discover

SQRT2 = math.sqrt(2.0)


def bent_identity(x: torch.Tensor) -> torch.Tensor:
    """A custom element-wise activation used as a plain function: (sqrt(x^2 + 1) - 1) / 2 + x."""
    return (torch.sqrt(x * x + 1) - 1) / 2 + x


torch.fx.wrap("bent_identity")  # fx records the call instead of tracing through it


def forward_gain(name: str) -> float:
    return gain(name, criterion="forward")


def picks(record, name):
    row = record.row(name)
    return row.scheme_name, row.activation, row.gain


@pytest.mark.parametrize("example_input", [None, torch.randn(4, 20)], ids=["fx", "trace"])
def test_mixed_mlp_gets_the_scheme_of_each_activation(example_input):
    record = preview(MixedMLP(), example_input=example_input)
    assert record.discovery == ("fx" if example_input is None else "trace")
    assert picks(record, "fc1.weight") == ("he_normal", "relu", pytest.approx(SQRT2))
    assert picks(record, "fc2.weight") == ("glorot_normal", "tanh", 1.0)
    assert picks(record, "fc3.weight")[:2] == (f"variance_scaling({forward_gain('gelu') ** 2:.4g})", "gelu")
    assert record.row("fc3.weight").gain == pytest.approx(forward_gain("gelu"))
    assert picks(record, "fc4.weight") == ("lecun_normal", "selu", 1.0)
    assert picks(record, "fc5.weight")[1] == "silu"  # functional F.silu in forward
    assert record.row("fc5.weight").gain == pytest.approx(forward_gain("silu"))
    # F.leaky_relu(x, 0.2): He with the negative slope respected
    assert picks(record, "fc6.weight") == ("he_normal", "leaky_relu(negative_slope=0.2)",
                                           pytest.approx(math.sqrt(2 / 1.04)))
    assert record.row("fc6.weight").scheme["scale"] == pytest.approx(2 / 1.04)
    # the head's output is the model's output: the readout rule (logit std 0.5 on unit features)
    assert picks(record, "head.weight") == ("readout_normal", None, 0.5)
    assert record.row("head.weight").target_std == pytest.approx(0.5 / math.sqrt(64))
    assert "readout" in record.row("head.weight").found_by
    for name in ("fc1.bias", "head.bias"):
        assert record.row(name).scheme == {"scheme": "zeros"}


def test_forward_gain_targets_follow_the_activation_second_moment():
    record = preview(MixedMLP())
    row = record.row("fc3.weight")  # GELU: std = g / sqrt(fan_in), g = 1 / sqrt(E[gelu(z)^2])
    second_moment = get_activation("gelu").second_moment(1.0)
    assert row.target_std == pytest.approx(1 / math.sqrt(second_moment * 64))


@pytest.mark.parametrize("example_input", [None, torch.randn(2, 3, 16, 16)], ids=["fx", "trace"])
def test_cnn_with_batchnorm_sees_relu_through_the_norm(example_input):
    record = preview(SmallCNN(), example_input=example_input)
    assert picks(record, "conv1.weight") == ("he_normal", "relu", pytest.approx(SQRT2))
    assert "bn1" in record.row("conv1.weight").found_by
    conv2 = record.row("conv2.weight")  # grouped conv: fans per group, x.relu() method
    assert (conv2.scheme_name, conv2.activation) == ("he_normal", "relu")
    assert conv2.layout == {"kind": "conv", "groups": 2}
    assert conv2.fans == {"fan_in": 8 * 9, "fan_out": 16 * 9, "receptive_field": 9}
    assert conv2.target_std == pytest.approx(SQRT2 / math.sqrt(72))
    assert (record.row("bn1.weight").scheme, record.row("bn1.bias").scheme) == ({"scheme": "ones"}, {"scheme": "zeros"})
    assert picks(record, "fc.weight")[:2] == ("readout_normal", None)


@pytest.mark.parametrize("example_input", [None, torch.randn(2, 8, 6, 6)], ids=["fx", "trace"])
def test_residual_block_finds_relu_after_the_addition(example_input):
    record = preview(ResidualBlock(), example_input=example_input)
    for name in ("conv1.weight", "conv2.weight", "proj.0.weight"):
        assert picks(record, name)[:2] == ("he_normal", "relu"), name
    assert "add" in record.row("conv2.weight").found_by


def test_transformer_encoder_layer_traced_on_an_example_input():
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    record = preview(layer, example_input=torch.randn(2, 7, 32))
    assert record.discovery == "trace"
    assert picks(record, "linear1.weight") == ("he_normal", "relu", pytest.approx(SQRT2))
    assert picks(record, "linear2.weight")[:2] == ("glorot_normal", None)
    in_proj = record.row("self_attn.in_proj_weight")
    assert in_proj.layout == {"kind": "linear", "blocks": 3}
    assert in_proj.fans == {"fan_in": 32, "fan_out": 32, "receptive_field": 1}
    assert in_proj.target_std == pytest.approx(1 / math.sqrt(32))  # not sqrt(2 / (32 + 96))
    assert picks(record, "self_attn.out_proj.weight")[:2] == ("glorot_normal", None)
    assert record.row("self_attn.out_proj.weight").scheme is not None


def test_transformer_gelu_module_activation_is_found():
    layer = nn.TransformerEncoderLayer(16, 2, 32, activation=nn.GELU(), batch_first=True)
    record = preview(layer, example_input=torch.randn(2, 3, 16))
    assert record.row("linear1.weight").activation == "gelu"


class NeedsLengths(nn.Module):
    """A model fx cannot trace (control flow on a value) whose forward needs two arguments."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x, lengths):
        if int(lengths.max()) > 3:
            x = x[:, :3]
        return torch.relu(self.fc(x))


def test_untraceable_model_without_input_falls_back_says_so_and_warns():
    with pytest.warns(DiscoveryWarning, match=r"could not see the computation of NeedsLengths.*Glorot normal"):
        record = preview(NeedsLengths())
    assert record.discovery == "unknown"
    assert "torch.fx could not trace" in record.discovery_note and "example_input" in record.discovery_note
    assert "no input built from the model's first layer ran ((2, 16), (2, 8, 16))" in record.discovery_note
    row = record.row("fc.weight")
    assert (row.scheme_name, row.found_by) == ("glorot_normal", "unknown")
    assert "activation not found" in row.note


def test_transformer_layer_without_input_is_traced_on_a_built_input():
    record = preview(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True))
    assert record.discovery == "trace"
    assert "built input of shape (2, 8, 16)" in record.discovery_note and "torch.fx could not" in record.discovery_note
    assert picks(record, "linear1.weight") == ("he_normal", "relu", pytest.approx(SQRT2))


def test_gru_uses_one_block_per_gate():
    record = preview(nn.GRU(12, 24, num_layers=2))
    row = record.row("weight_hh_l1")
    assert (row.scheme_name, row.activation, row.layout) == ("glorot_normal", "tanh", {"kind": "linear", "blocks": 3})
    assert row.fans == {"fan_in": 24, "fan_out": 24, "receptive_field": 1}
    assert record.row("weight_ih_l0").fans["fan_in"] == 12
    relu_rnn = preview(nn.RNN(8, 8, nonlinearity="relu"))
    assert picks(relu_rnn, "weight_hh_l0")[:2] == ("he_normal", "relu")
    lstm = preview(nn.LSTM(8, 16))
    assert lstm.row("weight_ih_l0").layout == {"kind": "linear", "blocks": 4}


@pytest.mark.parametrize("example_input", [None, torch.randn(2, 16, 4, 4)], ids=["fx", "trace"])
def test_conv_transpose_decoder(example_input):
    record = preview(Decoder(), example_input=example_input)
    up1 = record.row("up1.weight")  # weight (in=16, out=8, 4, 4), stride 2: an output sums (4/2)^2 taps per input
    assert (up1.scheme_name, up1.activation, up1.layout) == ("he_normal", "relu",
                                                             {"kind": "conv_transpose", "stride": [2, 2]})
    assert up1.fans == {"fan_in": 16 * 4, "fan_out": 8 * 16, "receptive_field": 16}
    assert picks(record, "up2.weight")[:2] == ("glorot_normal", "sigmoid")


@pytest.mark.parametrize("example_input", [None, torch.randn(3, 10)], ids=["fx", "trace"])
def test_custom_module_computing_a_named_activation_is_that_activation(example_input):
    model = nn.Sequential(nn.Linear(10, 10), Swish(), nn.Linear(10, 2))
    record = preview(model, example_input=example_input)
    row = record.row("0.weight")
    assert row.activation == "silu"  # x * sigmoid(x) computes SiLU: it is SiLU, whatever class wraps it
    silu = forward_gain("silu")
    assert row.gain == pytest.approx(silu, rel=1e-12)
    assert row.target_std == pytest.approx(silu / math.sqrt(10), rel=1e-12)


def test_custom_function_marked_for_fx_uses_its_forward_gain():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = nn.Linear(6, 6), nn.Linear(6, 1)

        def forward(self, x):
            return self.out(bent_identity(self.fc(x)))

    row = preview(Model()).row("fc.weight")
    assert row.activation == "custom:bent_identity"
    expected = gain(lambda x: (np.sqrt(x * x + 1) - 1) / 2 + x, criterion="forward")
    assert row.gain == pytest.approx(expected, rel=1e-6)


def test_embedding_prelu_and_custom_parameters():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(30, 8, padding_idx=0)
            self.scale = nn.Parameter(torch.ones(8))
            self.fc = nn.Linear(8, 8)
            self.act = nn.PReLU(init=0.1)

        def forward(self, tokens):
            return self.act(self.fc(self.embed(tokens) * self.scale))

    record = preview(Model())
    assert record.row("embed.weight").scheme == {"scheme": "normal", "mean": 0.0, "std": 1.0}
    assert "padding row 0 zeroed" in record.row("embed.weight").note
    assert record.untouched == ["scale"]
    assert picks(record, "fc.weight") == ("he_normal", "prelu(negative_slope=0.1)",
                                          pytest.approx(math.sqrt(2 / 1.01)))
    assert record.row("act.weight").scheme == {"scheme": "constant", "value": 0.1}


def test_discovery_leaves_no_trace_on_the_model():
    model = SmallCNN().train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    batch = torch.randn(4, 3, 8, 8)
    rng = torch.get_rng_state()
    discover(model, batch)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert model.training
