"""Inputs built for a model when discovery has no ``example_input`` and torch.fx cannot trace it.

Candidates, tried in order until the model runs on one (at most four forward attempts):

* **Named inputs.** When ``forward`` takes the standard input names of Hugging Face
  models — ``input_ids`` and ``decoder_input_ids`` (tokens), ``pixel_values`` (images),
  ``input_features`` (audio features) — each one it takes is given, sized from the model's
  ``config`` (``vocab_size``, ``num_channels``, ``image_size``, ``num_mel_bins``,
  ``max_source_positions``; sub-configs ``text_config``/``vision_config`` too) or, where
  the config is silent, from the first layer that reads it.
* **From the first layer.** Otherwise one positional input shaped for the first weighted
  layer in registration order: token ids for an ``Embedding``, ``(2, C, S, ...)`` for a
  convolution (S = 32, 64, 224), ``(2, in)`` then ``(2, 8, in)`` for a Linear,
  ``(2, 8, in)`` for a recurrent layer, ``(2, 8, E)`` then three of them (query, key,
  value) for attention.

Values are fixed (a private generator seeded 0; token ids ``arange % vocab``), on the
model's device, floats in its dtype: the run is the same every time and draws nothing
from the global random state.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from initlab.nn.layers import WEIGHTED_KINDS, layer_kind, registration

BATCH, LENGTH = 2, 8
_SIZES = (32, 64, 224)


def _config_value(model: nn.Module, name: str, *subconfigs: str) -> Any:
    config = getattr(model, "config", None)
    for holder in [config] + [getattr(config, sub, None) for sub in subconfigs]:
        value = getattr(holder, name, None) if holder is not None else None
        if value is not None:
            return value
    return None


def _like(model: nn.Module) -> torch.Tensor | None:
    return next((tensor for tensor in model.parameters() if tensor.is_floating_point()), None)


def _floats(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    like = _like(model)
    values = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    return (
        values
        if like is None
        else values.to(device=like.device if like.device.type != "meta" else "cpu", dtype=like.dtype)
    )


def _tokens(model: nn.Module, vocab: int, length: int = LENGTH) -> torch.Tensor:
    like = _like(model)
    device = "cpu" if like is None or like.device.type == "meta" else like.device
    return (torch.arange(BATCH * length, device=device) % max(int(vocab), 1)).reshape(BATCH, length)


def _first_layer(model: nn.Module, kinds: tuple[str, ...] = WEIGHTED_KINDS) -> tuple[str, nn.Module] | None:
    return next(((name, module) for name, module in model.named_modules() if layer_kind(module) in kinds), None)


def _parameters(model: nn.Module) -> list[str]:
    try:
        return list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return []


def _vocab(model: nn.Module) -> int | None:
    vocab = _config_value(model, "vocab_size", "text_config")
    if vocab is None:
        found = _first_layer(model, ("embedding",))
        vocab = found[1].num_embeddings if found is not None else None
    return vocab


def _image_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    channels = _config_value(model, "num_channels", "vision_config")
    if channels is None:
        found = _first_layer(model, ("conv",))
        channels = found[1].in_channels if found is not None else 3
    size = _config_value(model, "image_size", "vision_config")
    sizes = (
        [tuple(size) if isinstance(size, (list, tuple)) else (size, size)]
        if size is not None
        else [(side, side) for side in _SIZES]
    )
    return [(BATCH, channels, *side) for side in sizes]


def _audio_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    bins = _config_value(model, "num_mel_bins", "audio_config")
    if bins is None:
        found = _first_layer(model, ("conv",))
        bins = found[1].in_channels if found is not None else 80
    positions = _config_value(model, "max_source_positions", "audio_config")
    lengths = [2 * positions, positions] if positions else [64, 256]
    return [(BATCH, bins, length) for length in lengths]


def _named(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, Any]]:
    vocab = _vocab(model)
    length = min(LENGTH, _config_value(model, "max_position_embeddings", "text_config") or LENGTH)
    fixed: dict[str, Any] = {
        name: _tokens(model, vocab or 2, length) for name in ("input_ids", "decoder_input_ids") if name in names
    }
    if "input_features" in names:
        for shape in _audio_shapes(model):
            yield {**fixed, "input_features": _floats(model, shape)}
    elif "pixel_values" in names:
        for shape in _image_shapes(model):
            yield {**fixed, "pixel_values": _floats(model, shape)}
    elif fixed:
        yield fixed


def _positional(model: nn.Module, module: Any) -> Iterator[Any]:
    """Inputs for ``module``, the model's first layer; its attributes are read by the layer kind."""
    kind = layer_kind(module)
    if kind == "embedding":
        yield _tokens(model, module.num_embeddings)
    elif kind in ("conv", "conv_transpose"):
        channels = module.in_channels
        dims = len(module.kernel_size)
        for side in _SIZES:
            yield _floats(model, (BATCH, channels) + (side,) * dims)
    elif kind == "linear":
        features = module.weight.shape[-1] if registration_kind(module) == "linear" else module.weight.shape[0]
        yield _floats(model, (BATCH, features))
        yield _floats(model, (BATCH, LENGTH, features))
    elif kind == "recurrent":
        yield _floats(model, (BATCH, LENGTH, module.input_size))
    elif kind == "attention":
        yield _floats(model, (BATCH, LENGTH, module.embed_dim))
        yield tuple(_floats(model, (BATCH, LENGTH, module.embed_dim)) for _ in range(3))


def registration_kind(module: nn.Module) -> str:
    """``"linear"`` for a weight stored (out, in), ``"linear_in_out"`` for one stored (in, out)."""
    registered = registration(module)
    return registered.layout.kind if registered is not None and registered.layout is not None else "linear"


def candidate_inputs(model: nn.Module) -> Iterator[tuple[Any, str]]:
    """Inputs to try, with where each came from (see the module docstring)."""
    parameters = _parameters(model)
    names = [
        name for name in ("input_ids", "decoder_input_ids", "pixel_values", "input_features") if name in parameters
    ]
    count = 0
    if names:
        for candidate in _named(model, names):
            yield candidate, "named inputs sized from the model's config"
            count += 1
            if count == 4:
                return
        return
    first = _first_layer(model)
    if first is None:
        return
    for candidate in _positional(model, first[1]):
        yield candidate, f"shaped for the first layer {first[0]} ({type(first[1]).__name__})"
        count += 1
        if count == 4:
            return
