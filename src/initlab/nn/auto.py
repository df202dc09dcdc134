"""The auto plan: which scheme each parameter of a known layer gets.

Weights of Linear (and registered linear layers such as Hugging Face's ``Conv1D``),
Conv1d/2d/3d, ConvTranspose1d/2d/3d and the output projection of
MultiheadAttention, by the activation found after the layer:

=====================================  =========================================
activation after the layer             scheme (gain g; std = g / sqrt(fan))
=====================================  =========================================
relu, leaky_relu, prelu (slope a)      He normal, fan_in: g = sqrt(2 / (1 + a^2))
selu                                   LeCun normal: g = 1 (fan_in)
tanh, sigmoid, softsign, none          Glorot normal: std = sqrt(2 / (fan_in + fan_out))
anything else (gelu, silu, mish, elu,  variance scaling, fan_in, normal, with the
softplus, hardtanh, custom...)         "forward" gain 1 / sqrt(E[phi(z)^2])
=====================================  =========================================

A custom activation that computes a named one gets that one's row (see
:mod:`initlab.nn.discover`). When the computation could not be seen (no
example input, torch.fx fails and no built input runs) every layer gets the
choice for "none" (Glorot normal); the record says "unknown" and a
:class:`~initlab.nn.discover.DiscoveryWarning` is issued.

Structure found in the graph (:mod:`initlab.nn.structure`) refines this:

* **Readout** (the layer whose output is the model's output, i.e. the
  logits): normal with std ``0.5 / sqrt(fan_in)``, so that unit-RMS features
  give logits of std 0.5 and an initial cross-entropy about ``0.5^2 / 2 =
  0.125`` above ln C. A parameter tied to a readout (a tied
  embedding / LM head) gets the same std, ``0.5 / sqrt(d)``: the logits
  decide, not the embedding.
* **Residual branch end**: a norm that ends a residual branch starts with
  gain 0 (zero-init-last), so each block starts as the identity.
* **Attention score scaling**: the query projection of an attention whose
  scores are not scaled by 1/sqrt(d_head) in the forward (T5) is multiplied
  by ``1 / (c sqrt(d_head))``, c the scaling it does apply.
* **Fused projections** (an output split into k equal parts): fans of one part.

Other parameters:

* every bias: zeros;
* norm layers (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm and
  custom norms recognised by what they compute): the values that make them the
  plain normalisation (weight ones — zeros for a ``(1 + w)`` gain — bias
  zeros; running statistics reset to 0 / 1);
* Embedding / EmbeddingBag: N(0, 1), the torch default, so that the first
  layer after it sees unit-variance inputs as every fan_in scheme assumes;
  the ``padding_idx`` row is zeroed as torch does;
* MultiheadAttention ``in_proj_weight``: Glorot normal per E x E block
  (``Layout(blocks=3)``: the attention product follows, no element-wise
  activation); separate ``q/k/v_proj_weight``: Glorot normal each;
  ``bias_k``/``bias_v``: N(0, 1/E) (torch's xavier_normal_ of a (1, 1, E)
  tensor), not zeros: they are keys and values, not biases;
* RNN/LSTM/GRU ``weight_ih``/``weight_hh``: per gate block, He normal for
  ``nonlinearity="relu"``, else Glorot normal (their gates are tanh and
  sigmoid); LSTM ``weight_hr``: Glorot normal;
* PReLU weight: its construction value ``init`` (0.25 by default).

Kept as they are (not written; the record's note says why):

* a parameter with ``requires_grad=False`` (a sinusoidal position table, a
  frozen constant): its values are the model's, not a draw — unless every
  parameter of the model is frozen;
* any other parameter (a custom ``nn.Parameter`` such as a class token, a
  layer-scale gamma or a logit scale, a layer initlab has no rule for): its
  construction value stays. After a meta-device build those values are
  whatever ``to_empty`` left: set them yourself, or give a rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from initlab.activations import Activation, get_activation
from initlab.errors import InitlabError
from initlab.gains import gain
from initlab.nn.discover import Discovery, Found
from initlab.nn.layers import layer_kind, norm_identity, role
from initlab.nn.residual import Scaled
from initlab.schemes import Scheme, constant, glorot_normal, he_normal, lecun_normal, normal, ones, zeros
from initlab.schemes.variance import VarianceScaling

_GLOROT_FAMILY = ("tanh", "sigmoid", "softsign")
READOUT_STD = 0.5
"""Std of the logits a readout gives on unit-RMS features."""


@dataclass(frozen=True)
class Choice:
    """What the auto plan (or a rule) says for one parameter.

    Attributes:
        scheme: the scheme, or None to leave the parameter as it is.
        activation: the activation the choice is based on (None: no activation / not applicable).
        found_by: how the activation was found (``"fx"``, ``"trace"``, ``"unknown"``, ``"built-in"``,
            ``"rule"``) or ``""`` where no activation is involved.
        gain: the gain the scheme applies (None where not a fan-based scheme).
        note: anything the record should say (why a default was used, what was kept and why).
        layout_compat: ``"torch"`` when a rule asks for torch's fan counting.
    """

    scheme: Scheme | None
    activation: Activation | None = None
    found_by: str = ""
    gain: float | None = None
    note: str = ""
    layout_compat: str = "forward"


@dataclass(frozen=True)
class Target:
    """One parameter the auto plan decides for.

    Attributes:
        module_name: the owning module's qualified name.
        module: the owning module.
        local_name: the parameter's name inside the module (``weight``, ``in_proj_weight``...).
        tensor: the parameter.
        tied: the other modules (by qualified name) that hold the same tensor.
        frozen_means_kept: whether ``requires_grad=False`` marks a deliberate constant (False
            when the whole model is frozen).
    """

    module_name: str
    module: nn.Module
    local_name: str
    tensor: torch.Tensor
    tied: tuple[str, ...] = field(default_factory=tuple)
    frozen_means_kept: bool = True


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


def readout_scheme() -> VarianceScaling:
    """Normal with std READOUT_STD / sqrt(fan_in) (see the module docstring)."""
    return VarianceScaling(READOUT_STD**2, "fan_in", "normal", label="readout_normal")


def _from_found(found: Found) -> Choice:
    try:
        scheme, scheme_gain = scheme_for_activation(found.activation)
    except InitlabError as error:  # e.g. a custom activation with E[phi(z)^2] = 0: no forward gain
        scheme, scheme_gain = scheme_for_activation(None)
        return Choice(
            scheme,
            found.activation,
            f"{found.method}: {found.detail}",
            scheme_gain,
            f"no forward gain ({error}): Glorot normal, the default",
        )
    if not found.known:
        return Choice(
            scheme,
            None,
            "unknown",
            scheme_gain,
            "activation not found (see the record's discovery note): Glorot normal, the default",
        )
    return Choice(scheme, found.activation, f"{found.method}: {found.detail}", scheme_gain)


def _attention_parent(module_name: str, modules: dict[str, nn.Module]) -> str | None:
    parent, _, leaf = module_name.rpartition(".")
    if leaf == "out_proj" and isinstance(modules.get(parent), nn.MultiheadAttention):
        return parent
    return None


def _kept(target: Target, modules: dict[str, nn.Module]) -> Choice | None:
    """The reason to keep a parameter as it is, if one applies."""
    if not target.tensor.requires_grad and target.frozen_means_kept:
        return Choice(None, note="kept: requires_grad=False (a frozen table or constant; its values are the model's)")
    owners = [target.module_name, *target.tied]
    if all(layer_kind(modules.get(name, target.module)) is None for name in owners):
        return Choice(
            None, note=f"kept at its construction value: no auto rule for a parameter of {type(target.module).__name__}"
        )
    return None


def _structure(discovery: Callable[[], Discovery]):
    return discovery().structure


def auto_choice(target: Target, modules: dict[str, nn.Module], discovery: Callable[[], Discovery]) -> Choice:
    """The auto plan's choice for one parameter (see the module docstring).

    Args:
        target: the parameter and its module(s).
        modules: every module of the model by qualified name.
        discovery: returns the model's :class:`Discovery` (called only when it is needed).
    """
    kept = _kept(target, modules)
    if kept is not None:
        return kept
    module, local_name = target.module, target.local_name
    kind = layer_kind(module)
    if isinstance(module, nn.MultiheadAttention):
        return _attention_choice(module, local_name)
    if role(local_name) == "bias":
        return Choice(zeros())
    if kind == "norm":
        return _norm_choice(target, discovery)
    if kind == "prelu":
        return Choice(constant(float(getattr(module, "init", 0.25))), note="PReLU construction value")
    if isinstance(module, nn.RNNBase):
        return _recurrent_choice(module, local_name)
    readout = _tied_readout(target, discovery) if target.tied or kind != "embedding" else None
    if readout is not None:
        return readout
    if kind == "embedding":
        note = "N(0, 1), torch's default" + (
            f"; padding row {module.padding_idx} zeroed" if getattr(module, "padding_idx", None) is not None else ""
        )
        return Choice(normal(0.0, 1.0), note=note)
    return _weight_choice(target, modules, discovery)


def _norm_choice(target: Target, discovery: Callable[[], Discovery]) -> Choice:
    identity = (norm_identity(target.module) or {}).get(target.local_name, 1.0)
    structure = _structure(discovery)
    if structure is not None and target.module_name in structure.residual_ends:
        return Choice(zeros(), note=structure.residual_ends[target.module_name])
    if identity == 1.0:
        return Choice(ones())
    return Choice(zeros() if identity == 0.0 else constant(identity), note="gain 1 + w: w = 0 is the plain norm")


def _tied_readout(target: Target, discovery: Callable[[], Discovery]) -> Choice | None:
    """The readout choice when the parameter's module, or a module tied to it, is a readout."""
    structure = _structure(discovery)
    if structure is None:
        return None
    owner = next((name for name in (target.module_name, *target.tied) if name in structure.readouts), None)
    if owner is None:
        return None
    if owner == target.module_name:
        return Choice(
            readout_scheme(),
            None,
            f"{discovery().method}: readout",
            READOUT_STD,
            f"readout: {structure.readouts[owner]}; std {READOUT_STD}/sqrt(fan_in)",
        )
    std = READOUT_STD / math.sqrt(target.tensor.shape[-1])
    return Choice(
        normal(0.0, std),
        None,
        f"{discovery().method}: readout {owner}",
        None,
        f"tied with the readout {owner}: std {READOUT_STD}/sqrt({target.tensor.shape[-1]}), so the logits start small",
    )


def _weight_choice(target: Target, modules: dict[str, nn.Module], discovery: Callable[[], Discovery]) -> Choice:
    parent = _attention_parent(target.module_name, modules)
    found = discovery().get(parent if parent is not None else target.module_name)
    choice = _from_found(found)
    if parent is not None:
        choice = Choice(
            choice.scheme,
            choice.activation,
            f"{choice.found_by} (after {parent})",
            choice.gain,
            choice.note or f"output projection of {parent}",
        )
    structure = _structure(discovery)
    if structure is not None and choice.scheme is not None and target.module_name in structure.query_scale:
        factor, detail = structure.query_scale[target.module_name]
        choice = Choice(
            Scaled(choice.scheme, factor),
            choice.activation,
            choice.found_by,
            choice.gain,
            "; ".join(filter(None, [choice.note, detail])),
        )
    if structure is not None and target.module_name in structure.blocks and target.tensor.dim() == 2:
        choice = Choice(
            choice.scheme,
            choice.activation,
            choice.found_by,
            choice.gain,
            "; ".join(filter(None, [choice.note, structure.blocks[target.module_name][1]])),
        )
    return choice


def _recurrent_choice(module: nn.RNNBase, local_name: str) -> Choice:
    internal = "relu" if module.mode == "RNN_RELU" else "tanh"
    if local_name.startswith("weight_hr"):
        return Choice(glorot_normal(), None, "", 1.0, "LSTM projection")
    activation = get_activation(internal)
    scheme, scheme_gain = scheme_for_activation(activation)
    gates = "tanh/sigmoid gates" if module.mode in ("LSTM", "GRU") else f"nonlinearity={internal}"
    return Choice(scheme, activation, f"built-in: {type(module).__name__} ({gates})", scheme_gain, "one block per gate")


def _attention_choice(module: nn.MultiheadAttention, local_name: str) -> Choice:
    if local_name in ("bias_k", "bias_v"):
        return Choice(
            normal(0.0, 1.0 / math.sqrt(module.embed_dim)),
            note="attention rule: a learned key/value, torch's xavier_normal_ of (1, 1, E)",
        )
    if role(local_name) == "bias":
        return Choice(zeros())
    note = "three E x E blocks" if local_name == "in_proj_weight" else ""
    return Choice(glorot_normal(), None, "built-in: attention product (no element-wise activation)", 1.0, note)
