"""Which layers initlab knows, how to read their parameters, and what they do to a signal.

``layer_kind`` names the family of a module (``"linear"``, ``"conv"``,
``"conv_transpose"``, ``"embedding"``, ``"attention"``, ``"recurrent"``,
``"norm"``, ``"prelu"``) or returns None for anything else. A module is
known by

* its torch class (``nn.Linear``, ``nn.Conv2d``, ``nn.LayerNorm``...,
  subclasses included);
* a registration (:func:`register_layer`): a class that computes what a
  known layer computes but stores its weight differently. Hugging Face's
  ``transformers.pytorch_utils.Conv1D`` (``y = x @ W + b`` with ``W`` of shape
  ``(in, out)``) is registered by name, without importing transformers, as a
  linear layer with the :class:`~initlab.fans.Layout` ``"linear_in_out"``;
  users register their own the same way;
* what it computes, for a normalisation: a module without children whose
  parameters are all 1-D of one size D is a norm when, with those
  parameters set to their identity values (gains 1, or 0 for a ``(1 + w)``
  gain, and every parameter whose name contains ``bias`` 0), its output
  has unit RMS over the last axis (or over axis 1, channels first) and does
  not change when its input is scaled: Llama's, Mistral's and Qwen2's
  RMSNorm, T5's LayerNorm. The probe runs once per class, on fixed values,
  through ``torch.func.functional_call`` (the module's own tensors are
  neither read nor written).

``param_layout`` gives the Layout a parameter is read with: a (transposed)
convolution's ``groups`` and ``stride``, ``nn.MultiheadAttention.in_proj_weight``
as three stacked E x E blocks, a recurrent layer's ``weight_ih``/``weight_hh``
as one block per gate (RNN 1, GRU 3, LSTM 4), a registered layer's layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.errors import bad_value
from initlab.fans import Layout, as_layout

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = tuple(
    cls
    for cls in (
        nn.modules.batchnorm._NormBase,
        nn.LayerNorm,
        nn.GroupNorm,
        nn.LocalResponseNorm,
        getattr(nn, "RMSNorm", None),
    )
    if cls is not None
)
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}

# Modules that pass a signal on without an element-wise non-linearity of their own:
# the search for "the activation after a layer" looks through them.
TRANSPARENT_MODULES = (
    nn.Identity,
    nn.modules.dropout._DropoutNd,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.Flatten,
    nn.Unflatten,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._LPPoolNd,
    nn.Upsample,
    nn.modules.padding._ConstantPadNd,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.ChannelShuffle,
    *_NORMS,
)

WEIGHTED_KINDS = ("linear", "conv", "conv_transpose", "embedding", "attention", "recurrent")
"""Kinds whose output is a fresh linear map of their input: the activation search stops at them."""

REGISTRABLE_KINDS = ("linear", "conv", "conv_transpose", "embedding", "norm")


@dataclass(frozen=True)
class Registration:
    """What a registered module class computes: its kind and the layout of its weight."""

    kind: str
    layout: Layout | None


_REGISTERED: dict[str, Registration] = {
    "transformers.pytorch_utils.Conv1D": Registration("linear", Layout("linear_in_out")),
}
_BY_TYPE: dict[type, Registration | None] = {}
_NORM_BY_TYPE: dict[type, dict[str, float] | None] = {}


def _class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_layer(cls: type | str, kind: str = "linear", layout: Layout | str | None = "linear_in_out") -> None:
    """Tell initlab that modules of class ``cls`` (and its subclasses) compute a known layer.

    Args:
        cls: the class, or its qualified name ``"package.module.Class"`` (then the package
            need not be imported).
        kind: one of ``linear``, ``conv``, ``conv_transpose``, ``embedding``, ``norm``.
        layout: how the weight's axes are read (a :class:`~initlab.fans.Layout` or a layout
            name); ``"linear_in_out"`` for a weight stored ``(in, out)``.

    Example: ``register_layer("transformers.pytorch_utils.Conv1D", "linear", "linear_in_out")``
    (built in).
    """
    if isinstance(cls, type):
        key = _class_key(cls)
    elif isinstance(cls, str) and "." in cls:
        key = cls
    else:
        raise bad_value("register_layer", "cls", cls, "a module class or its qualified name 'package.module.Class'")
    if kind not in REGISTRABLE_KINDS:
        raise bad_value("register_layer", "kind", kind, f"one of {', '.join(REGISTRABLE_KINDS)}")
    _REGISTERED[key] = Registration(kind, None if layout is None else as_layout(layout))
    _BY_TYPE.clear()


def registration(module: nn.Module) -> Registration | None:
    """The registration that covers ``module``'s class (its own or a base class's), if any."""
    cls = type(module)
    if cls not in _BY_TYPE:
        _BY_TYPE[cls] = next(
            (_REGISTERED[_class_key(base)] for base in cls.__mro__ if _class_key(base) in _REGISTERED), None
        )
    return _BY_TYPE[cls]


def layer_kind(module: nn.Module) -> str | None:
    """The family of ``module`` (see the module docstring), or None if initlab has no rule for it."""
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, _CONV):
        return "conv"
    if isinstance(module, _CONV_TRANSPOSE):
        return "conv_transpose"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding"
    if isinstance(module, nn.RNNBase):
        return "recurrent"
    if isinstance(module, _NORMS):
        return "norm"
    if isinstance(module, nn.PReLU):
        return "prelu"
    registered = registration(module)
    if registered is not None:
        return registered.kind
    if norm_identity(module) is not None:
        return "norm"
    return None


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer (BatchNorm, LayerNorm, GroupNorm, a custom RMSNorm...)."""
    return layer_kind(module) == "norm"


# ------------------------------------------------------------------ norms by what they compute


def norm_identity(module: nn.Module) -> dict[str, float] | None:
    """For a norm, the value of each of its own parameters that makes it the plain normalisation
    (torch norms: weight 1, bias 0); None for anything that is not a norm (see the module docstring)."""
    if isinstance(module, _NORMS):
        return {name: 0.0 if "bias" in name else 1.0 for name, _ in module.named_parameters(recurse=False)}
    cls = type(module)
    if cls not in _NORM_BY_TYPE:
        _NORM_BY_TYPE[cls] = _probe_norm(module)
    found = _NORM_BY_TYPE[cls]
    if found is None or set(found) != {name for name, _ in module.named_parameters(recurse=False)}:
        return None
    return found


def _probe_norm(module: nn.Module) -> dict[str, float] | None:
    if any(True for _ in module.children()) or isinstance(module, (nn.Linear, *_CONV, *_CONV_TRANSPOSE)):
        return None
    params = dict(module.named_parameters(recurse=False))
    sizes = {tuple(tensor.shape) for tensor in params.values()}
    if not params or len(sizes) != 1 or len(next(iter(sizes))) != 1:
        return None
    size = next(iter(sizes))[0]
    if size < 2:
        return None
    for gain in (1.0, 0.0):
        values = {name: 0.0 if "bias" in name else gain for name in params}
        if any(_normalises(module, values, size, axis) for axis in (-1, 1)):
            return values
    return None


def _normalises(module: nn.Module, values: dict[str, float], size: int, axis: int) -> bool:
    """Whether ``module`` with these parameter values gives unit RMS over ``axis``, scale-invariantly."""
    shape = (3, 4, size) if axis == -1 else (2, size, 3, 3)
    count = 1
    for extent in shape:
        count *= extent
    base = torch.linspace(-1.7, 2.3, count, dtype=torch.float32).reshape(shape).sin() * 3.0 + 0.5
    params = {name: torch.full((size,), value, dtype=torch.float32) for name, value in values.items()}
    try:
        with torch.no_grad():
            first = torch.func.functional_call(module, params, (base,))
            scaled = torch.func.functional_call(module, params, (base * 7.5,))
    except Exception:  # not callable on a plain tensor of this shape: not a norm on this axis
        return False
    if not (isinstance(first, torch.Tensor) and isinstance(scaled, torch.Tensor)) or first.shape != base.shape:
        return False
    first, scaled = first.float(), scaled.float()
    rms = first.square().mean(dim=axis).sqrt()
    return bool(
        torch.isfinite(first).all()
        and torch.allclose(rms, torch.ones_like(rms), atol=2e-2)
        and torch.allclose(first, scaled, atol=2e-2)
    )


# ------------------------------------------------------------------ layouts


def gates(module: nn.RNNBase) -> int:
    """Number of gate blocks stacked in a recurrent layer's ``weight_ih``/``weight_hh``."""
    return _GATES[module.mode]


def role(local_name: str) -> str:
    """``"bias"`` for a parameter whose name contains ``bias``, else ``"weight"``."""
    return "bias" if "bias" in local_name else "weight"


def _stride(module: Any) -> tuple[int, ...]:
    stride = getattr(module, "stride", ())
    return (stride,) if isinstance(stride, int) else tuple(stride)


def param_layout(module: nn.Module, local_name: str, tensor: torch.Tensor, blocks: int = 1) -> Layout | None:
    """The layout to read parameter ``local_name`` of ``module`` with; None for a 1-D tensor.

    ``blocks``: the number of equal parts a linear layer's output is split into (a fused
    projection, found by discovery).
    """
    if tensor.dim() < 2:
        return None
    kind = layer_kind(module)
    if kind == "conv":
        return Layout("conv", groups=int(getattr(module, "groups", 1)), stride=_stride(module))
    if kind == "conv_transpose":
        return Layout("conv_transpose", groups=int(getattr(module, "groups", 1)), stride=_stride(module))
    if kind == "embedding":
        return Layout("embedding")
    if kind == "attention" and local_name == "in_proj_weight":
        return Layout("linear", blocks=3)
    if isinstance(module, nn.RNNBase) and local_name.startswith(("weight_ih", "weight_hh")):
        return Layout("linear", blocks=gates(module))
    registered = registration(module)
    if registered is not None and registered.layout is not None:
        layout = registered.layout
        return Layout(
            layout.kind,
            layout.groups,
            layout.in_axis,
            layout.out_axis,
            layout.batch_axis,
            blocks if layout.kind in ("linear", "linear_in_out") else layout.blocks,
            layout.compat,
            layout.stride,
        )
    if tensor.dim() == 2:
        return Layout("linear", blocks=blocks)
    return Layout("conv")
