"""The auto plan on the patterns of real architectures (issue 16, point 1), with plain torch modules.

Each case reproduces what a library does (timm, Hugging Face) without depending on it; the
transformers models themselves are in test_zoo.py.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from zoo_models import BatchNormAct2d, DropPath, PatchEmbedNet, TimmResNet

from initlab.gains import gain
from initlab.nn import init_, preview, register_layer
from initlab.nn.discover import match_named

SQRT2 = math.sqrt(2.0)


def std_tolerance(target: float, count: int) -> float:
    """5 standard errors of a sample std: sd(s) ~ sigma / sqrt(2 n) for n normal draws."""
    return 5 * target / math.sqrt(2 * count)


# ------------------------------------------------------------------ layouts


class TransposedLinear(nn.Module):
    """y = x @ W + b with W stored (in, out), as Hugging Face's Conv1D."""

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fan_in, fan_out))
        self.bias = nn.Parameter(torch.empty(fan_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class FusedQKV(nn.Module):
    """A GPT-2 style attention: one (in, 3E) projection split into q, k, v, then SDPA, ReLU MLP after."""

    def __init__(self, width: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = TransposedLinear(width, 3 * width)
        self.out = TransposedLinear(width, width)
        self.fc = TransposedLinear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, width)
        return torch.relu(self.fc(x + self.out(attended)))


def test_a_registered_in_out_layout_reads_fans_from_the_forward_and_splits_fused_blocks():
    register_layer(TransposedLinear, "linear", "linear_in_out")
    record = preview(FusedQKV(), example_input=torch.randn(2, 5, 32))
    qkv = record.row("qkv.weight")
    assert qkv.layout == {"kind": "linear_in_out", "blocks": 3}
    assert qkv.fans == {"fan_in": 32, "fan_out": 32, "receptive_field": 1}  # one 32-wide block of q, k, v
    assert qkv.target_std == pytest.approx(1 / math.sqrt(32))
    assert "split into 3 equal parts" in qkv.note
    fc = record.row("fc.weight")
    assert (fc.scheme_name, fc.activation, fc.layout) == ("he_normal", "relu", {"kind": "linear_in_out"})
    assert record.row("qkv.bias").scheme == {"scheme": "zeros"}
    assert not record.untouched


def test_registering_needs_a_known_kind():
    from initlab import InitlabError

    with pytest.raises(InitlabError, match=r"register_layer: kind='pooling' is invalid; expected one of linear"):
        register_layer(TransposedLinear, "pooling")
    with pytest.raises(InitlabError, match=r"register_layer: cls='Conv1D' is invalid"):
        register_layer("Conv1D")


def test_patch_embedding_fan_out_follows_the_stride():
    row = preview(PatchEmbedNet(dim=32, patch=8), example_input=torch.randn(2, 3, 32, 32)).row("patch_embed.weight")
    assert row.layout == {"kind": "conv", "stride": [8, 8]}
    assert row.fans == {"fan_in": 3 * 64, "fan_out": 32, "receptive_field": 64}  # not 32 * 64


# ------------------------------------------------------------------ activations


class SigmoidByMethod(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sigmoid()


class LeakyByHand(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, 0.2 * x)


class BentIdentity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.sqrt(x * x + 1) - 1) / 2 + x


@pytest.mark.parametrize("example_input", [None, torch.randn(3, 10)], ids=["fx", "trace"])
def test_a_function_gets_the_same_scheme_whatever_class_wraps_it(example_input):
    rows = {}
    for label, act in [("module", nn.Sigmoid()), ("method", SigmoidByMethod())]:
        model = nn.Sequential(nn.Linear(10, 10), act, nn.Linear(10, 2))
        rows[label] = preview(model, example_input=example_input).row("0.weight")
    assert (rows["module"].scheme, rows["module"].activation) == (rows["method"].scheme, rows["method"].activation)
    assert rows["method"].activation == "sigmoid" and rows["method"].scheme_name == "glorot_normal"
    leaky = preview(nn.Sequential(nn.Linear(10, 10), LeakyByHand(), nn.Linear(10, 2)), example_input=example_input)
    assert leaky.row("0.weight").activation == "leaky_relu(negative_slope=0.2)"
    assert leaky.row("0.weight").gain == pytest.approx(math.sqrt(2 / 1.04))
    custom = preview(nn.Sequential(nn.Linear(10, 10), BentIdentity(), nn.Linear(10, 2)), example_input=example_input)
    assert custom.row("0.weight").activation == "custom:BentIdentity"  # computes no named activation
    assert custom.row("0.weight").gain == pytest.approx(
        gain(lambda x: (np.sqrt(x * x + 1) - 1) / 2 + x, criterion="forward"), rel=1e-6)


def test_matching_named_activations_by_their_values():
    assert match_named(lambda x: x / (1 + np.exp(-x))).name == "silu"
    assert match_named(lambda x: np.clip(x, 0.0, 6.0)).params == {"min_val": 0.0, "max_val": 6.0}
    assert match_named(lambda x: np.maximum(x, 0.0)).name == "relu"
    assert match_named(lambda x: np.where(x > 0, x, 0.3 * x)).params == {"negative_slope": pytest.approx(0.3)}
    assert match_named(lambda x: x + 0.01 * x ** 3) is None


@pytest.mark.parametrize("act, expected", [(nn.SiLU, "silu"), (nn.Hardswish, "custom:hardswish"), (nn.ReLU, "relu")])
@pytest.mark.parametrize("example_input", [None, torch.randn(2, 3, 16, 16)], ids=["fx", "trace"])
def test_activation_inside_a_norm_act_module_is_found(act, expected, example_input):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), BatchNormAct2d(8, act), nn.Conv2d(8, 4, 1))
    record = preview(model, example_input=example_input)
    row = record.row("0.weight")
    assert row.activation.replace("Hardswish", "hardswish") == expected, row.found_by
    assert record.row("1.weight").scheme == {"scheme": "ones"}  # still a norm: the subclass is looked into


def _random_states():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


@pytest.mark.parametrize("example_input", [None, torch.randn(2, 3, 32, 32)], ids=["fx", "trace"])
def test_discovery_is_deterministic_and_leaves_every_random_state_alone(example_input):
    records = []
    for seed in range(6):
        model = TimmResNet().train()  # DropPath(0.5) active in train mode
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        before = _random_states()
        records.append(preview(model, example_input=example_input, seed=3))
        after = _random_states()
        assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
        assert model.training and model.blocks[0].drop_path.training
    first = records[0].to_dict()
    assert all(record.to_dict() == first for record in records[1:])
    # the stochastic-depth module is transparent, never an activation: conv3's BN output
    # reaches SiLU after the residual addition
    assert records[0].row("blocks.0.conv3.weight").activation == "silu"


def test_a_stochastic_module_alone_is_transparent_not_an_activation():
    model = nn.Sequential(nn.Linear(8, 8), DropPath(0.5), nn.Tanh(), nn.Linear(8, 2)).train()
    for _ in range(5):
        row = preview(model).row("0.weight")
        assert (row.activation, row.scheme_name) == ("tanh", "glorot_normal")


# ------------------------------------------------------------------ deliberate structure


class SinusoidLM(nn.Module):
    """Token embedding plus a frozen sinusoid table, a GELU block and a tied head."""

    def __init__(self, vocab: int = 211, dim: int = 64, length: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        position = torch.arange(length).unsqueeze(1) * torch.exp(-math.log(1e4) * torch.arange(0, dim, 2) / dim)
        self.positions = nn.Parameter(torch.cat([position.sin(), position.cos()], dim=1), requires_grad=False)
        self.norm1, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.positions[: tokens.shape[1]]
        x = x + self.fc2(F.gelu(self.fc1(self.norm1(x))))
        return self.head(self.norm(x))


def test_frozen_table_is_kept_and_a_tied_head_starts_near_ln_v():
    model = SinusoidLM()
    table = model.positions.detach().clone()
    nn.init.normal_(model.embed.weight)  # torch's default N(0, 1): logits std ~ sqrt(64) = 8
    tokens = torch.arange(64).reshape(4, 16) * 7 % 211
    with torch.no_grad():
        before = -torch.log_softmax(model(tokens), dim=-1).mean()
    assert before > math.log(211) + 5
    record = init_(model, seed=0, example_input=tokens)
    assert torch.equal(model.positions, table)
    row = record.row("positions")
    assert row.status == "untouched" and row.note.startswith("kept: requires_grad=False")
    head = record.row("head.weight")
    assert head.name == "embed.weight" and "tied with the readout head" in head.note
    assert head.target_std == pytest.approx(0.5 / 8)
    with torch.no_grad():
        after = -torch.log_softmax(model(tokens), dim=-1).mean()
    assert math.log(211) <= after < math.log(211) + 0.3


def test_a_fully_frozen_model_is_initialised_all_the_same():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).requires_grad_(False)
    record = init_(model, seed=0)
    assert not record.untouched and record.row("0.weight").scheme_name == "he_normal"


def test_zero_init_last_and_layer_scale_are_kept_or_set_by_a_stated_rule():
    model = TimmResNet().train()
    record = init_(model, seed=0, example_input=torch.randn(2, 3, 32, 32))
    for block in (0, 1):
        row = record.row(f"blocks.{block}.bn3.weight")
        assert row.scheme == {"scheme": "zeros"} and "ends a residual branch" in row.note
        assert not model.blocks[block].bn3.weight.any()
        assert record.row(f"blocks.{block}.bn1.weight").scheme == {"scheme": "ones"}
    patch = PatchEmbedNet()
    gammas = [block.gamma.detach().clone() for block in patch.blocks]
    record = init_(patch, seed=0)
    for index, gamma in enumerate(gammas):
        row = record.row(f"blocks.{index}.gamma")
        assert row.status == "untouched" and row.note.startswith("kept at its construction value")
        assert torch.equal(patch.blocks[index].gamma, gamma)


class ProjectionBlock(nn.Module):
    """A downsampling residual block: both sides of the addition end in a BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.down, self.down_bn = nn.Conv2d(8, 16, 1, stride=2), nn.BatchNorm2d(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(branch + self.down_bn(self.down(x)))


@pytest.mark.parametrize("example_input", [None, torch.randn(2, 8, 8, 8)], ids=["fx", "trace"])
def test_only_the_deeper_side_of_a_residual_addition_is_its_branch(example_input):
    record = preview(ProjectionBlock(), example_input=example_input)
    assert record.row("bn2.weight").scheme == {"scheme": "zeros"}
    assert record.row("down_bn.weight").scheme == {"scheme": "ones"}
    assert record.row("bn1.weight").scheme == {"scheme": "ones"}


class UnscaledAttention(nn.Module):
    """T5's attention: scores q k^T without 1/sqrt(d_head), relative bias added, softmax."""

    def __init__(self, width: int = 64, heads: int = 4, scaled: bool = False) -> None:
        super().__init__()
        self.heads, self.scaled = heads, scaled
        self.norm = nn.LayerNorm(width)
        self.q, self.k, self.v, self.o = (nn.Linear(width, width, bias=False) for _ in range(4))
        self.scores: list[torch.Tensor] = []

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = self.split(self.q(h)), self.split(self.k(h)), self.split(self.v(h))
        scores = q @ k.transpose(-1, -2)
        if self.scaled:
            scores = scores / math.sqrt(q.shape[-1])
        self.scores.append(scores.detach())
        attended = torch.softmax(scores, dim=-1) @ v
        return x + self.o(attended.transpose(1, 2).reshape(x.shape))


@pytest.mark.parametrize("scaled", [False, True])
def test_attention_score_scaling_keeps_the_score_std_near_one(scaled):
    model = UnscaledAttention(scaled=scaled)
    batch = torch.randn(8, 16, 64, generator=torch.Generator().manual_seed(0))
    record = init_(model, seed=0, example_input=batch)
    row = record.row("q.weight")
    if scaled:
        assert row.scheme_name == "glorot_normal" and "query weight" not in row.note
    else:
        assert row.scheme_name == "glorot_normal x0.25"  # 1 / sqrt(d_head = 16)
        assert "not 1/sqrt(d_head=16): query weight x0.25" in row.note
        assert record.row("k.weight").scheme_name == "glorot_normal"
    model.scores.clear()
    with torch.no_grad():
        model(batch)
    std = float(model.scores[0].std())
    # q, k ~ unit variance (Glorot on unit LayerNorm features); score = sum of 16 products
    # times 1/sqrt(16) either way: std 1, within the spread of 8 x 4 independent heads
    assert 0.7 < std < 1.4


def test_multihead_attention_bias_kv_follow_the_attention_rule():
    attention = nn.MultiheadAttention(64, 4, add_bias_kv=True, batch_first=True)
    record = init_(attention, seed=0)
    for name in ("bias_k", "bias_v"):
        row = record.row(name)
        assert row.scheme == {"scheme": "normal", "mean": 0.0, "std": 0.125} and "attention rule" in row.note
        assert abs(row.measured_std - 0.125) < std_tolerance(0.125, 64)
    assert record.row("in_proj_bias").scheme == {"scheme": "zeros"}


class GemmaStyleNorm(nn.Module):
    """An RMSNorm with gain (1 + w), w starting at 0."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + self.weight)


class PlainRMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class Scale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def test_custom_norms_are_recognised_by_what_they_compute():
    model = nn.Sequential(nn.Linear(16, 16), PlainRMSNorm(16), nn.ReLU(), nn.Linear(16, 16), GemmaStyleNorm(16),
                          Scale(16))
    with torch.no_grad():
        model[1].weight.fill_(3.0)
        model[4].weight.fill_(3.0)
    record = init_(model, seed=0)
    assert record.row("1.weight").scheme == {"scheme": "ones"} and torch.all(model[1].weight == 1)
    assert record.row("4.weight").scheme == {"scheme": "zeros"} and "1 + w" in record.row("4.weight").note
    assert record.row("0.weight").activation == "relu"  # seen through the custom norm
    scale = record.row("5.weight")
    assert scale.status == "untouched" and torch.all(model[5].weight == 0.1)
