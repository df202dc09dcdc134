"""The Scheme protocol: target statistics plus sampling through ``initlab.random``.

A scheme is a small frozen dataclass. Subclasses implement ``_fill`` (write
the values of the shard ``index`` of a virtual tensor of ``full_shape`` into
a float32 CPU tensor) and, where it is defined, ``target_std``.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from initlab.errors import InitlabError
from initlab.fans import Fans, Layout, as_layout, fans
from initlab.random import Stream, normalize_index

_NUMPY_DTYPES = ("float16", "float32", "float64")
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class Scheme(abc.ABC):
    """Base class of every initialization scheme.

    Attributes:
        kind: the registry name used by ``to_dict`` / ``initlab.get``.
        fan_based: whether the scheme needs fan_in/fan_out (2+ dimensions).
    """

    kind: ClassVar[str] = ""
    fan_based: ClassVar[bool] = False

    # ------------------------------------------------------------------ API
    @property
    def name(self) -> str:
        """Display name (a preset's label, else the kind)."""
        return getattr(self, "label", "") or self.kind

    def target_std(self, fans: Fans | None = None, *, shape: Sequence[int] | None = None) -> float | None:
        """Standard deviation the sampled values should have, or None if undefined."""
        return None

    def sample(
        self,
        shape: Sequence[int],
        *,
        layout: str | Layout | None = "linear",
        seed: int = 0,
        name: str = "",
        index: Sequence[slice | int] | None = None,
        dtype: str = "float32",
    ) -> np.ndarray:
        """Sample a full tensor of ``shape`` (or the shard ``index`` of it) as numpy.

        Values are generated in float32 and cast to ``dtype`` (float16/32/64).
        A 1-D ``shape`` ``(n,)`` is one weight vector over n inputs, with
        fan_in = fan_out = n (the rule of Keras's ``compute_fans``), so
        ``he_normal().sample((n,))`` is distributed as the numpy recipe
        ``np.random.randn(n) * np.sqrt(2 / n)``; ``init_`` refuses 1-D
        tensors for fan-based schemes (they are biases there).
        """
        if str(dtype) not in _NUMPY_DTYPES:
            raise InitlabError(
                f"{self.name}.sample: dtype={dtype!r} is invalid; expected one of {', '.join(_NUMPY_DTYPES)}."
            )
        full_shape = _as_shape(shape, f"{self.name}.sample")
        shard_shape, _ = normalize_index(full_shape, index)
        out = torch.empty(shard_shape, dtype=torch.float32)
        self._checked_fill(out, full_shape, index, layout, Stream(seed, name), name, vector_rule=True)
        return out.numpy().astype(str(dtype), copy=False)

    def init_(
        self,
        tensor: torch.Tensor,
        *,
        layout: str | Layout | None = None,
        seed: int = 0,
        name: str = "",
        shard: tuple[Sequence[int], Sequence[slice | int]] | None = None,
    ) -> torch.Tensor:
        """Fill a torch tensor in place, on its own device and dtype; returns it.

        Args:
            tensor: a floating-point tensor (float16, bfloat16, float32, float64).
            layout: how to read the axes (None: linear for 2-D, conv above).
            seed, name: the random stream; values depend only on (seed, name, index).
            shard: ``(full_shape, index)`` when ``tensor`` is the slice ``index``
                of a larger tensor: it receives exactly that slice's values.
        """
        where = f"{self.name} cannot initialise {name or 'the tensor'!r}"
        if not isinstance(tensor, torch.Tensor):
            raise InitlabError(f"{where}: tensor={type(tensor).__name__} is invalid; expected a torch.Tensor.")
        if tensor.device.type == "meta":
            raise InitlabError(
                f"{where} (shape {tuple(tensor.shape)}): the tensor is on the meta device and has no "
                f"storage; call model.to_empty(device=...) first."
            )
        if tensor.dtype not in _FLOAT_DTYPES:
            raise InitlabError(
                f"{where}: dtype={tensor.dtype} is invalid; expected float16, bfloat16, float32 or float64."
            )
        full_shape, index = (tuple(tensor.shape), None) if shard is None else shard
        full_shape = _as_shape(full_shape, where)
        with torch.no_grad():
            self._checked_fill(tensor, full_shape, index, layout, Stream(seed, name), name)
        return tensor

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``initlab.schemes.from_dict`` rebuilds an equal scheme."""
        data: dict[str, Any] = {"scheme": self.kind}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "label" and not value:
                continue
            data[field.name] = value
        return data

    # ------------------------------------------------------------ internals
    def _checked_fill(
        self, out, full_shape, index, layout, stream: Stream, name: str, vector_rule: bool = False
    ) -> None:
        layout_spec = as_layout(layout, full_shape)
        fan_counts = None
        if self.fan_based and vector_rule and len(full_shape) == 1 and full_shape[0] > 0:
            fan_counts = Fans(full_shape[0], full_shape[0])
        elif self.fan_based:
            fan_counts = self._fans(full_shape, layout_spec, name)
        self._fill(out, full_shape, index, layout_spec, fan_counts, stream)

    def _fans(self, shape: tuple[int, ...], layout: Layout, name: str) -> Fans:
        try:
            return fans(shape, layout)
        except InitlabError as error:
            raise InitlabError(
                f"{self.name} cannot initialise {name or 'a tensor'!r} (shape {shape}): "
                + str(error).removeprefix("fans: ")
            ) from None

    @abc.abstractmethod
    def _fill(self, out, full_shape, index, layout: Layout, fans: Fans | None, stream: Stream) -> None:
        """Write the values of the shard ``index`` of a ``full_shape`` tensor into ``out``.

        ``fans`` are the full tensor's fans when the scheme is fan-based, else
        None; ``stream.name`` is the parameter's name (for messages).
        """


def _as_shape(shape, where: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(size) for size in shape)
    except (TypeError, ValueError):
        raise InitlabError(f"{where}: shape={shape!r} is invalid; expected a sequence of integers.") from None
    if any(size < 0 for size in dims):
        raise InitlabError(f"{where}: shape={dims} has a negative dimension; expected sizes >= 0.")
    return dims


def check_finite(where: str, argument: str, value: Any, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number (optionally >= or > ``minimum``), else InitlabError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InitlabError(f"{where}: {argument}={value!r} is invalid; expected a real number.")
    value = float(value)
    if not math.isfinite(value):
        raise InitlabError(f"{where}: {argument}={value!r} is invalid; expected a finite number.")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        relation = ">" if strict else ">="
        raise InitlabError(f"{where}: {argument}={value!r} is invalid; expected a number {relation} {minimum:g}.")
    return value
