"""The auto plan: which scheme each parameter of a known layer gets.

Weights of Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d and the output
projection of MultiheadAttention, by the activation found after the layer:

=====================================  =========================================
activation after the layer             scheme (gain g; std = g / sqrt(fan))
=====================================  =========================================
relu, leaky_relu, prelu (slope a)      He normal, fan_in: g = sqrt(2 / (1 + a^2))
selu                                   LeCun normal: g = 1 (fan_in)
tanh, sigmoid, softsign, none          Glorot normal: std = sqrt(2 / (fan_in + fan_out))
anything else (gelu, silu, mish, elu,  variance scaling, fan_in, normal, with the
softplus, hardtanh, custom...)         "forward" gain 1 / sqrt(E[phi(z)^2])
=====================================  =========================================

A layer whose activation could not be seen (torch.fx fails and no
``example_input``) gets the choice for "none" (Glorot normal), and its
record row says so. Other parameters:

* every bias: zeros;
* norm layers (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm):
  weight ones, bias zeros (running statistics reset to 0 / 1);
* Embedding / EmbeddingBag: N(0, 1), the torch default, so that the
  first layer after it sees unit-variance inputs as every fan_in scheme
  assumes; the ``padding_idx`` row is zeroed as torch does;
* MultiheadAttention ``in_proj_weight``: Glorot normal per E x E block
  (``Layout(blocks=3)``: the attention product follows, no element-wise
  activation); separate ``q/k/v_proj_weight``: Glorot normal each;
  ``bias_k``/``bias_v``: N(0, 1/E) (torch's xavier_normal_ of a (1, 1, E)
  tensor);
* RNN/LSTM/GRU ``weight_ih``/``weight_hh``: per gate block, He normal for
  ``nonlinearity="relu"``, else Glorot normal (their gates are tanh and
  sigmoid); LSTM ``weight_hr``: Glorot normal;
* PReLU weight: its construction value ``init`` (0.25 by default).

Any other parameter (a custom ``nn.Parameter``, a layer initlab has no rule
for) is left untouched and listed as such in the record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from initlab.activations import Activation, get_activation
from initlab.errors import InitlabError
from initlab.gains import gain
from initlab.nn.discover import Discovery, Found
from initlab.nn.layers import layer_kind, role
from initlab.schemes import Scheme, constant, glorot_normal, he_normal, lecun_normal, normal, ones, zeros
from initlab.schemes.variance import VarianceScaling

_GLOROT_FAMILY = ("tanh", "sigmoid", "softsign")


@dataclass(frozen=True)
class Choice:
    """What the auto plan (or a rule) says for one parameter.

    Attributes:
        scheme: the scheme, or None to leave the parameter untouched.
        activation: the activation the choice is based on (None: no activation / not applicable).
        found_by: how the activation was found (``"fx"``, ``"trace"``, ``"unknown"``, ``"built-in"``,
            ``"rule"``) or ``""`` where no activation is involved.
        gain: the gain the scheme applies (None where not a fan-based scheme).
        note: anything the record should say (why a default was used, what was not covered).
    """

    scheme: Scheme | None
    activation: Activation | None = None
    found_by: str = ""
    gain: float | None = None
    note: str = ""


def scheme_for_activation(activation: Activation | None) -> tuple[Scheme, float]:
    """The weight scheme and gain the auto plan uses before ``activation`` (see the module table)."""
    if activation is None or activation.name == "linear":
        return glorot_normal(), 1.0
    if activation.family == "relu":
        slope = float(activation.params.get("negative_slope", 0.0))
        return he_normal(negative_slope=slope), math.sqrt(2.0 / (1.0 + slope * slope))
    if activation.name == "selu":
        return lecun_normal(), 1.0
    if activation.name in _GLOROT_FAMILY:
        return glorot_normal(), 1.0
    forward = gain(activation, criterion="forward")
    return VarianceScaling(forward * forward, "fan_in", "normal"), forward


def _from_found(found: Found) -> Choice:
    try:
        scheme, scheme_gain = scheme_for_activation(found.activation)
    except InitlabError as error:  # e.g. a custom activation with E[phi(z)^2] = 0: no forward gain
        scheme, scheme_gain = scheme_for_activation(None)
        return Choice(scheme, found.activation, f"{found.method}: {found.detail}", scheme_gain,
                      f"no forward gain ({error}): Glorot normal, the default")
    if not found.known:
        return Choice(scheme, None, "unknown", scheme_gain,
                      "activation not found (see the record's discovery note): Glorot normal, the default")
    return Choice(scheme, found.activation, f"{found.method}: {found.detail}", scheme_gain)


def _attention_parent(module_name: str, modules: dict[str, nn.Module]) -> str | None:
    parent, _, leaf = module_name.rpartition(".")
    if leaf == "out_proj" and isinstance(modules.get(parent), nn.MultiheadAttention):
        return parent
    return None


def auto_choice(
    module_name: str, module: nn.Module, local_name: str, tensor: torch.Tensor,
    modules: dict[str, nn.Module], discovery: Callable[[], Discovery],
) -> Choice:
    """The auto plan's choice for parameter ``local_name`` of ``module`` (see the module docstring).

    Args:
        module_name: the module's qualified name.
        module: the module owning the parameter.
        local_name: the parameter's name inside the module (``weight``, ``in_proj_weight``...).
        tensor: the parameter.
        modules: every module of the model by qualified name.
        discovery: returns the model's :class:`Discovery` (called only when an activation is needed).
    """
    kind = layer_kind(module)
    if kind is None:
        return Choice(None, note=f"no auto rule for a parameter of {type(module).__name__}")
    if role(local_name) == "bias":
        return Choice(zeros())
    if kind == "norm":
        return Choice(ones())
    if kind == "prelu":
        return Choice(constant(float(getattr(module, "init", 0.25))), note="PReLU construction value")
    if kind == "embedding":
        note = "N(0, 1), torch's default" + (f"; padding row {module.padding_idx} zeroed"
                                             if getattr(module, "padding_idx", None) is not None else "")
        return Choice(normal(0.0, 1.0), note=note)
    if kind == "recurrent":
        return _recurrent_choice(module, local_name)
    if kind == "attention":
        return _attention_choice(module, local_name, tensor)
    parent = _attention_parent(module_name, modules)
    found = discovery().get(parent if parent is not None else module_name)
    choice = _from_found(found)
    if parent is not None:
        choice = Choice(choice.scheme, choice.activation, f"{choice.found_by} (after {parent})",
                        choice.gain, choice.note or f"output projection of {parent}")
    return choice


def _recurrent_choice(module: nn.RNNBase, local_name: str) -> Choice:
    internal = "relu" if module.mode == "RNN_RELU" else "tanh"
    if local_name.startswith("weight_hr"):
        return Choice(glorot_normal(), None, "", 1.0, "LSTM projection")
    activation = get_activation(internal)
    scheme, scheme_gain = scheme_for_activation(activation)
    gates = "tanh/sigmoid gates" if module.mode in ("LSTM", "GRU") else f"nonlinearity={internal}"
    return Choice(scheme, activation, f"built-in: {type(module).__name__} ({gates})", scheme_gain,
                  "one block per gate")


def _attention_choice(module: nn.MultiheadAttention, local_name: str, tensor: torch.Tensor) -> Choice:
    if local_name in ("bias_k", "bias_v"):
        return Choice(normal(0.0, 1.0 / math.sqrt(module.embed_dim)), note="torch's xavier_normal_ of (1, 1, E)")
    note = "three E x E blocks" if local_name == "in_proj_weight" else ""
    return Choice(glorot_normal(), None, "built-in: attention product (no element-wise activation)", 1.0, note)
