"""Which torch layers initlab knows, how to read their parameters, and what they do to a signal.

``layer_kind`` names the family of a module (``"linear"``, ``"conv"``,
``"conv_transpose"``, ``"embedding"``, ``"attention"``, ``"recurrent"``,
``"norm"``, ``"prelu"``) or returns None for anything else. ``param_layout``
gives the :class:`~initlab.fans.Layout` a parameter is read with: a grouped
convolution's ``groups``, ``nn.MultiheadAttention.in_proj_weight`` as three
stacked E x E blocks, and a recurrent layer's ``weight_ih``/``weight_hh`` as
one block per gate (RNN 1, GRU 3, LSTM 4), so that fans are those of one
block (one gate's matrix), not of the fused tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from initlab.fans import Layout

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = tuple(
    cls for cls in (
        nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
        getattr(nn, "RMSNorm", None),
    ) if cls is not None
)
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}

# Modules that pass a signal on without an element-wise non-linearity of their own:
# the search for "the activation after a layer" looks through them.
TRANSPARENT_MODULES = (
    nn.Identity, nn.modules.dropout._DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.Flatten, nn.Unflatten, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._LPPoolNd, nn.Upsample, nn.modules.padding._ConstantPadNd,
    nn.modules.padding._ReflectionPadNd, nn.modules.padding._ReplicationPadNd,
    nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle, *_NORMS,
)

WEIGHTED_KINDS = ("linear", "conv", "conv_transpose", "embedding", "attention", "recurrent")
"""Kinds whose output is a fresh linear map of their input: the activation search stops at them."""


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
    return None


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer (BatchNorm, LayerNorm, GroupNorm, ...)."""
    return isinstance(module, _NORMS)


def gates(module: nn.RNNBase) -> int:
    """Number of gate blocks stacked in a recurrent layer's ``weight_ih``/``weight_hh``."""
    return _GATES[module.mode]


def role(local_name: str) -> str:
    """``"bias"`` for a parameter whose name contains ``bias``, else ``"weight"``."""
    return "bias" if "bias" in local_name else "weight"


def param_layout(module: nn.Module, local_name: str, tensor: torch.Tensor) -> Layout | None:
    """The layout to read parameter ``local_name`` of ``module`` with; None for a 1-D tensor."""
    if tensor.dim() < 2:
        return None
    kind = layer_kind(module)
    if kind == "conv":
        return Layout("conv", groups=module.groups)
    if kind == "conv_transpose":
        return Layout("conv_transpose", groups=module.groups)
    if kind == "embedding":
        return Layout("embedding")
    if kind == "attention" and local_name == "in_proj_weight":
        return Layout("linear", blocks=3)
    if kind == "recurrent" and local_name.startswith(("weight_ih", "weight_hh")):
        return Layout("linear", blocks=gates(module))
    if tensor.dim() == 2:
        return Layout("linear")
    return Layout("conv")
