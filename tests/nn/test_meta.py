"""Big models from the meta device (issue 16, point 5), on small models: built on ``meta``,
materialised with ``to_empty`` (tied weights tied again), initialised by ``init_`` with the auto
plan: every parameter bit-identical to a CPU build initialised the same way, and the record too.
The >= 1B-parameter run, with its time and peak memory, is in benchmarks/bench_model_init.py.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn
from zoo_models import TimmResNet, hf_entries

from initlab.nn import init_

HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
HF = {entry.name: entry for entry in hf_entries()}


def _build(name: str) -> nn.Module:
    if name == "timm-resnet":
        return TimmResNet()
    return HF[name].build()


def _retie(model: nn.Module) -> None:
    """``to_empty`` gives every module its own new tensor: tie again what the model ties."""
    if hasattr(model, "tie_weights"):
        model.tie_weights()


@pytest.mark.parametrize("name", ["timm-resnet", "gpt2", "llama", "qwen2-tied", "t5"])
def test_meta_build_materialised_and_initialised_equals_a_cpu_build(name):
    if name != "timm-resnet" and not HAVE_TRANSFORMERS:
        pytest.skip("transformers is not installed")
    torch.manual_seed(0)
    cpu = _build(name)
    with torch.device("meta"):
        meta = _build(name)
    meta.to_empty(device="cpu")
    _retie(meta)
    cpu_record = init_(cpu, seed=5)
    meta_record = init_(meta, seed=5)
    assert meta_record.to_dict() == cpu_record.to_dict()
    assert not meta_record.untouched
    cpu_parameters = dict(cpu.named_parameters(remove_duplicate=False))
    for parameter_name, value in meta.named_parameters(remove_duplicate=False):
        assert torch.equal(value, cpu_parameters[parameter_name]), parameter_name
    tied = [row for row in meta_record.rows if row.aliases]
    if name in ("gpt2", "qwen2-tied", "t5"):
        assert tied, "the tied embedding was not tied again"
