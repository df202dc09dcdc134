"""init_ on real models: statistics, reproducibility, meta builds, tied weights, verify, errors."""

from __future__ import annotations

import math

import pytest
import torch
from initlab_nn_models import Decoder, MixedMLP, ResidualBlock, SmallCNN, TiedLM
from torch import nn

import initlab
from initlab import InitlabError, glorot_normal, he_normal, normal, orthogonal
from initlab.nn import InitRecord, Plan, Residual, Rule, init_, verify


def transformer_stack() -> nn.Module:
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    return nn.Sequential(nn.Embedding(40, 32), nn.TransformerEncoder(layer, 2, enable_nested_tensor=False))


def std_tolerance(target: float, count: int) -> float:
    """5 standard errors of a sample std: sd(s) ~ sigma / sqrt(2 n) for n normal draws."""
    return 5 * target / math.sqrt(2 * count)


@pytest.mark.parametrize("build, example", [
    (MixedMLP, None),
    (SmallCNN, None),
    (ResidualBlock, None),
    (Decoder, None),
    (lambda: nn.GRU(32, 48, num_layers=2), None),
    (transformer_stack, torch.randint(0, 40, (2, 6))),
], ids=["mlp", "cnn", "residual", "decoder", "gru", "transformer"])
def test_measured_std_is_within_sampling_tolerance_of_target(build, example):
    model = build()
    record = init_(model, seed=11, example_input=example)
    checked = 0
    for row in record.rows:
        count = math.prod(row.shape)
        if row.status == "initialised" and row.target_std and count > 1 and "padding" not in row.note:
            assert abs(row.measured_std - row.target_std) < std_tolerance(row.target_std, count), row.name
            actual = model.get_parameter(row.name).detach().double()
            assert row.measured_std == pytest.approx(float(actual.std()), rel=1e-6)
            assert row.measured_mean == pytest.approx(float(actual.mean()), abs=1e-7 * row.target_std)
            checked += 1
        elif row.status == "initialised" and row.target_std == 0:
            assert row.measured_std == 0, row.name
    assert checked >= 2
    assert not record.untouched


def test_measured_std_of_constant_and_offset_tensors_is_exact():
    from initlab.nn.record import measure

    assert measure(torch.full((3000,), 0.1))[0] == 0.0
    offset = torch.randn(5000, dtype=torch.float64) * 1e-3 + 1.0  # mean >> std: two-pass branch
    std, mean, probes = measure(offset.float())
    assert std == pytest.approx(float(offset.float().double().std()), rel=1e-5)
    assert len(probes) == 8 and probes[0] == float(offset.float()[0])


def test_same_seed_same_state_dict_and_different_seed_different():
    first, second, third = MixedMLP(), MixedMLP(), MixedMLP()
    init_(first, seed=5)
    init_(second, seed=5)
    init_(third, seed=6)
    for (name, a), b, c in zip(first.state_dict().items(), second.state_dict().values(), third.state_dict().values()):
        assert torch.equal(a, b), name
        if name.endswith("weight"):
            assert not torch.equal(a, c), name


def test_values_depend_on_seed_and_name_only():
    model = MixedMLP()
    init_(model, seed=3)
    row_scheme = he_normal()  # fc1 is followed by ReLU
    expected = row_scheme.sample((64, 20), layout="linear", seed=3, name="fc1.weight")
    assert torch.equal(model.fc1.weight.detach(), torch.from_numpy(expected))


@pytest.mark.parametrize("build, example", [
    (SmallCNN, None),
    (transformer_stack, torch.randint(0, 40, (2, 6))),
], ids=["cnn-batchnorm", "transformer"])
def test_meta_build_then_to_empty_is_bit_identical_to_cpu_build(build, example):
    torch.manual_seed(0)
    cpu = build()
    with torch.device("meta"):
        meta = build()
    meta.to_empty(device="cpu")
    init_(cpu, seed=9, example_input=example)
    record = init_(meta, seed=9, example_input=example)
    cpu_state, meta_state = cpu.state_dict(), meta.state_dict()
    assert cpu_state.keys() == meta_state.keys()
    for name, value in cpu_state.items():
        assert torch.equal(value, meta_state[name]), name
    if build is SmallCNN:
        assert "bn1.running_var" in record.buffers_reset


def test_large_parameters_filled_in_parallel_chunks():
    model = nn.Sequential(nn.Linear(1024, 300), nn.ReLU())  # 307200 > 2^18 elements: several fill chunks
    assert model[0].weight.requires_grad
    record = init_(model, seed=0)
    row = record.row("0.weight")
    assert abs(row.measured_std - row.target_std) < std_tolerance(row.target_std, 307200)
    expected = he_normal().sample((300, 1024), layout="linear", seed=0, name="0.weight")
    assert torch.equal(model[0].weight.detach(), torch.from_numpy(expected))


def test_meta_tensors_without_to_empty_are_rejected():
    with torch.device("meta"):
        model = nn.Linear(4, 3)
    with pytest.raises(InitlabError, match=r"'weight' \(shape \(3, 4\)\) is on the meta device.*to_empty"):
        init_(model)


def test_tied_weights_are_initialised_once_under_their_first_name():
    model = TiedLM()
    record = init_(model, seed=2)
    names = [row.name for row in record.rows]
    assert names.count("embed.weight") == 1 and "head.weight" not in names
    row = record.row("head.weight")
    assert row.name == "embed.weight" and row.aliases == ["head.weight"]
    # tied to the readout head: the logits decide, std 0.5 / sqrt(d) (issue 16), not N(0, 1)
    expected = normal(0.0, 0.5 / math.sqrt(32)).sample((50, 32), layout="embedding", seed=2, name="embed.weight")
    assert torch.equal(model.head.weight.detach(), torch.from_numpy(expected))
    assert model.head.weight is model.embed.weight
    assert "tied with the readout head" in row.note


def test_verify_passes_then_fails_after_a_manual_reinit_of_one_layer():
    model = SmallCNN()
    record = init_(model, seed=1)
    assert verify(model, record).ok
    assert verify(model, InitRecord.from_dict(record.to_dict())).ok  # survives a JSON round trip
    nn.init.kaiming_normal_(model.conv2.weight)  # same family of distribution, new values
    result = verify(model, record)
    assert not result.ok
    assert len(result.problems) == 1 and result.problems[0].startswith("conv2.weight: changed since init_")
    with pytest.raises(InitlabError, match="conv2.weight"):
        verify(model, record, raise_on_mismatch=True)


def test_record_table_and_dict():
    model = TiedLM()
    record = init_(model, seed=0)
    text = str(record)
    assert "embed.weight (= head.weight)" in text and "target std" in text and "measured std" in text
    data = record.to_dict()
    row = next(item for item in data["rows"] if item["name"] == "fc_in.weight")
    assert row["scheme"]["scheme"] == "variance_scaling" and row["activation"] == "gelu"
    assert row["fans"] == {"fan_in": 32, "fan_out": 128, "receptive_field": 1}
    assert row["seed"] == 0 and row["stream"] == "fc_in.weight"
    assert row["found_by"].startswith("fx: gelu")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_models(dtype):
    model = MixedMLP().to(dtype)
    record = init_(model, seed=4)
    row = record.row("fc2.weight")
    assert model.fc2.weight.dtype == dtype and row.dtype == str(dtype).removeprefix("torch.")
    # sampling error plus the relative rounding of the dtype (< 2^-8) on every value
    tolerance = std_tolerance(row.target_std, 64 * 64) + row.target_std * 2 ** -8
    assert abs(row.measured_std - row.target_std) < tolerance
    reference = MixedMLP()
    init_(reference, seed=4)
    assert torch.equal(model.fc2.weight, reference.fc2.weight.to(dtype))


def test_multihead_attention_in_proj_orthogonal_per_block():
    attention = nn.MultiheadAttention(16, 4)
    plan = Plan([Rule(type=nn.MultiheadAttention, params={"in_proj_weight": orthogonal()})])
    init_(attention, plan, seed=0)
    for block in attention.in_proj_weight.detach().chunk(3):
        assert torch.allclose(block @ block.T, torch.eye(16), atol=1e-5)


def test_residual_scale_and_zero():
    model = TiedLM()
    base = init_(TiedLM(), seed=1)
    record = init_(model, seed=1, residual=Residual("fc_out", mode="scale", n_branches=8))
    row = record.row("fc_out.weight")
    factor = 1 / math.sqrt(16)
    assert row.scheme_name == "glorot_normal x0.25" and row.target_std == pytest.approx(base.row("fc_out.weight").target_std * factor)
    reference = TiedLM()
    init_(reference, seed=1)
    assert torch.allclose(model.fc_out.weight, reference.fc_out.weight * factor)
    assert torch.equal(model.fc_in.weight, reference.fc_in.weight)
    init_(model, Plan.auto(residual=Residual("fc_out", mode="zero")), seed=1)
    assert not model.fc_out.weight.any()
    assert "Fixup" in init_(model, seed=1, residual=Residual("fc_*", mode="zero")).row("fc_in.weight").note


def test_residual_default_branch_count_is_the_number_of_matched_layers():
    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(4)])
    record = init_(model, seed=0, residual=Residual("[13]"))
    assert record.row("1.weight").scheme["factor"] == pytest.approx(1 / math.sqrt(2 * 2))
    assert record.row("0.weight").scheme["scheme"] == "variance_scaling"


# ------------------------------------------------------------------ bad input


def test_model_without_parameters_is_an_error():
    with pytest.raises(InitlabError, match=r"init_: model=ReLU has no parameters"):
        init_(nn.ReLU())


def test_strict_rule_matching_nothing_is_an_error():
    plan = Plan([Rule(match="encoder.*.fc*", weight=he_normal()), Rule(type=nn.Linear, weight=glorot_normal())],
                strict=True)
    with pytest.raises(InitlabError, match=r"strict plan: Rule\(match='encoder\.\*\.fc\*'\) matched no parameter"):
        init_(MixedMLP(), plan)


def test_scheme_that_cannot_apply_is_an_error_before_anything_is_written():
    model = MixedMLP()
    before = model.fc1.weight.detach().clone()
    plan = Plan([Rule(type=nn.Linear, weight=he_normal(), bias=orthogonal())])
    with pytest.raises(InitlabError, match=r"orthogonal cannot initialise 'fc1.bias' \(shape \(64,\)\): "
                                           r"it needs a tensor with 2 or more dimensions"):
        init_(model, plan)
    assert torch.equal(model.fc1.weight, before)
    with pytest.raises(InitlabError, match=r"he_normal cannot initialise 'fc1.bias' \(shape \(64,\)\)"):
        init_(model, Plan([Rule(type=nn.Linear, bias=he_normal())]))


def test_example_input_the_model_rejects_repeats_the_shape():
    with pytest.raises(InitlabError, match=r"example_input of shape \(3, 7\) was rejected by the model \(MixedMLP\)"):
        init_(MixedMLP(), example_input=torch.randn(3, 7))


def test_bad_seed_and_plan():
    with pytest.raises(InitlabError, match=r"init_: seed=1.5 is invalid; expected an integer"):
        init_(MixedMLP(), seed=1.5)
    with pytest.raises(InitlabError, match=r"init_: plan='kaiming' is invalid"):
        init_(MixedMLP(), "kaiming")


def test_recorded_std_and_mean_are_the_tensors_own_even_for_post_scaled_schemes():
    # element-wise fills measure themselves while writing; a scheme that changes the
    # values after its fill (residual scaling, orthogonal, embeddings with padding)
    # must be measured afterwards: either way the record holds the tensor's statistics.
    model = nn.Sequential(nn.Embedding(50, 16, padding_idx=0), nn.Linear(16, 32), nn.ReLU(),
                          nn.Linear(32, 32), nn.Linear(32, 4))
    plan = initlab.Plan([initlab.Rule(match="3", weight=initlab.orthogonal())])
    record = initlab.init_(model, plan, seed=3, residual=initlab.Residual(match="4"))
    parameters = dict(model.named_parameters())
    for row in record.rows:
        if row.measured_std is None:
            continue
        values = parameters[row.name].detach().double()
        assert row.measured_std == pytest.approx(float(values.std()), rel=1e-5, abs=1e-9), row.name
        assert row.measured_mean == pytest.approx(float(values.mean()), rel=1e-5, abs=1e-7), row.name
