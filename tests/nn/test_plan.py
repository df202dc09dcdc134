"""Explicit plans: rule matching, defaults, TOML/JSON round trip, and the 'initlab plan' command."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
from initlab_nn_models import MixedMLP
from torch import nn

from initlab import InitlabError, constant, glorot_uniform, he_normal, lecun_normal, orthogonal, zeros
from initlab.cli import main
from initlab.nn import Plan, Residual, Rule, init_
from initlab.nn.factory import load_factory


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.ModuleList(nn.ModuleDict({"fc1": nn.Linear(8, 8), "fc2": nn.Linear(8, 8),
                                                    "out": nn.Linear(8, 8)}) for _ in range(2))
        self.pos = nn.Parameter(torch.zeros(5, 8))

    def forward(self, x):
        for block in self.encoder:
            x = block["out"](torch.relu(block["fc2"](torch.relu(block["fc1"](x)))))
        return x + self.pos.sum()


def full_plan() -> Plan:
    return Plan(
        [
            Rule(match="encoder.*.fc*", type=nn.Linear, weight=he_normal(), bias=zeros()),
            Rule(type=nn.Linear, weight=glorot_uniform(), bias=constant(0.1)),
            Rule(match="pos", weight=orthogonal(gain=0.5)),
            Rule(match="*.out", params={"weight": "auto"}),
        ],
        default=None,
        strict=False,
        residual=Residual("encoder.*.out", mode="scale", n_branches=2),
    )


def test_first_matching_rule_wins_and_globs_match_modules_or_parameters():
    model = Encoder()
    record = init_(model, full_plan(), seed=0)
    assert record.row("encoder.0.fc1.weight").scheme_name == "he_normal"
    assert record.row("encoder.1.fc2.bias").scheme == {"scheme": "zeros"}
    # encoder.*.out is a Linear: rule 2 (type) comes before rule 4
    assert record.row("encoder.0.out.weight").scheme_name == "glorot_uniform x0.5"
    assert torch.all(model.encoder[0].out.bias == 0.1)
    pos = record.row("pos")
    assert pos.scheme == {"scheme": "orthogonal", "gain": 0.5} and pos.found_by == "rule: Rule(match='pos')"
    q = model.pos.detach()
    assert torch.allclose(q @ q.T, 0.25 * torch.eye(5), atol=1e-6)


def test_default_none_lists_untouched_and_auto_in_a_rule():
    model = MixedMLP()
    before = model.fc2.weight.detach().clone()
    plan = Plan([Rule(match="fc1", weight="auto", bias=zeros())], default=None)
    record = init_(model, plan)
    assert record.row("fc1.weight").scheme_name == "he_normal"  # auto: ReLU follows
    assert "auto via Rule(match='fc1')" in record.row("fc1.weight").note
    assert "fc2.weight" in record.untouched and "head.bias" in record.untouched
    assert torch.equal(model.fc2.weight, before)
    assert "UNTOUCHED" in str(record)


def test_default_rule_catches_the_rest():
    plan = Plan([Rule(match="fc1", weight=lecun_normal())], default=Rule(type=nn.Linear, weight=orthogonal(), bias=zeros()))
    record = init_(MixedMLP(), plan)
    assert record.row("fc1.weight").scheme_name == "lecun_normal"
    assert record.row("fc1.bias").scheme == {"scheme": "zeros"}
    assert record.row("fc3.weight").scheme_name == "orthogonal"
    assert record.row("fc3.weight").found_by.startswith("rule: default Rule(type=Linear)")


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_plans_round_trip_and_give_the_same_values(fmt, tmp_path):
    plan = full_plan()
    text = plan.to_toml() if fmt == "toml" else plan.to_json()
    again = Plan.from_toml(text) if fmt == "toml" else Plan.from_json(text)
    assert again == plan
    path = tmp_path / f"plan.{fmt}"
    plan.save(path)
    assert Plan.load(path) == plan
    first, second = Encoder(), Encoder()
    init_(first, plan, seed=4)
    init_(second, Plan.load(path), seed=4)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_toml_reads_as_written_by_hand():
    plan = Plan.from_toml(textwrap.dedent("""
        default = "auto"
        strict = true

        [[rules]]
        match = "fc*"
        type = ["nn.Linear"]
        weight = { scheme = "he_normal", mode = "fan_out" }
        bias = "auto"
    """))
    assert plan.rules[0].type == (nn.Linear,)
    assert plan.rules[0].weight == he_normal(mode="fan_out") and plan.rules[0].bias == "auto"
    record = init_(MixedMLP(), plan)
    assert record.row("fc2.weight").target_std == pytest.approx(math.sqrt(2 / 64))


def test_bad_plans():
    with pytest.raises(InitlabError, match=r"Rule: type='Linearr' is invalid"):
        Rule(type="Linearr", weight=zeros())
    with pytest.raises(InitlabError, match=r"Rule: type='os.path.Nothing' is invalid"):
        Rule(type="os.path.Nothing", weight=zeros())
    with pytest.raises(InitlabError, match=r"Rule: weight='he' is invalid; expected a Scheme"):
        Rule(match="x", weight="he")
    with pytest.raises(InitlabError, match=r"Rule: match=None is invalid; expected a glob, a module type or kind, or several"):
        Rule(weight=zeros())
    with pytest.raises(InitlabError, match=r"unknown scheme 'he_norml'"):
        Plan.from_dict({"rules": [{"match": "a", "weight": {"scheme": "he_norml"}}]})
    with pytest.raises(InitlabError, match=r"Plan.from_toml: the text is not valid TOML"):
        Plan.from_toml("rules = [")
    with pytest.raises(InitlabError, match=r"Residual: mode='half' is invalid"):
        Residual("x", mode="half")
    with pytest.raises(InitlabError, match=r"residual match='nothing\*' selects no layer"):
        init_(MixedMLP(), residual=Residual("nothing*"))


# ------------------------------------------------------------------ initlab plan


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(textwrap.dedent("""
        import torch.nn as nn

        def make():
            return nn.Sequential(nn.Linear(40, 64), nn.Tanh(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    """))
    return path


def test_cli_plan_prints_the_auto_plan(model_file, capsys):
    assert main(["plan", f"{model_file}:make", "--input-shape", "32,40"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "glorot_normal" in lines["0.weight"] and "tanh" in lines["0.weight"]
    assert "he_normal" in lines["2.weight"] and "trace: 3 (ReLU)" in lines["2.weight"]
    assert "6 parameter(s) planned" in out and "input of shape (32, 40)" in out


def test_cli_plan_toml_is_a_plan_that_reproduces_the_auto_init(model_file, capsys, tmp_path):
    assert main(["plan", f"{model_file}:make", "--format", "plan-toml"]) == 0
    plan = Plan.from_toml(capsys.readouterr().out)
    assert plan.strict and len(plan.rules) == 6
    explicit, auto = load_factory(f"{model_file}:make", "test"), load_factory(f"{model_file}:make", "test")
    init_(explicit, plan, seed=0)
    init_(auto, seed=0)
    for a, b in zip(explicit.state_dict().values(), auto.state_dict().values()):
        assert torch.equal(a, b)
    assert main(["plan", f"{model_file}:make", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["discovery"] == "fx"


def test_cli_plan_errors(model_file, capsys):
    assert main(["plan", f"{model_file}:make", "--input-shape", "32,41"]) == 2
    assert "example_input of shape (32, 41) was rejected" in capsys.readouterr().err
    assert main(["plan", f"{model_file}:build"]) == 2
    assert "factory='build' is invalid; expected a callable defined in" in capsys.readouterr().err
    assert main(["plan", "missing.py:make"]) == 2
    assert "missing.py does not exist" in capsys.readouterr().err
    assert main(["plan", f"{model_file}:make", "--input-shape", "a,b"]) == 2
    assert "--input-shape='a,b' is invalid" in capsys.readouterr().err
    broken = model_file.with_name("broken.py")
    broken.write_text("def make():\n    raise RuntimeError('no model today')\n")
    assert main(["plan", f"{broken}:make"]) == 2
    assert "make() raised RuntimeError: no model today" in capsys.readouterr().err
