"""End-to-end propagation figures: what the whole-network verdicts rest on.

Read from the layers of one audit (execution order) and the capture's records:

* the *signal* entering every weight layer (Linear, Conv, attention, recurrent), as the RMS
  of its input over the RMS where that signal started (the batch, a normalization layer or
  embedding, an unrecorded operation such as a residual addition: see
  ``LayerReport.signal_ratio``): its smallest and largest value over the network, and the
  per-layer trend along the weight layers it crossed;
* the *gradient* at the input of the first weight layer over the gradient at the model's
  output (norms): how much of the output's gradient reaches the first layer;
* the *residual streams*: the RMS of the tensor each block's norm layer reads, from the
  second read of a stack (``encoder.layers.0``, after its first branch) to the last: how
  much the stream grows when every branch adds its variance to it (Radford et al. 2019,
  sec. 2.3).

Each figure names the layer where it was read, so a verdict can say where to look.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from torch import nn

from initlab.nn.layers import is_norm, layer_kind

if TYPE_CHECKING:
    from initlab.auditing.capture import Record
    from initlab.auditing.result import LayerReport

WEIGHT_KINDS = ("linear", "conv", "conv_transpose", "attention", "recurrent")
"""The layer families (:func:`initlab.nn.layers.layer_kind`) whose propagation is judged."""

_BLOCK_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


def carries_weights(module: nn.Module | None) -> bool:
    """Whether ``module`` has a weight matrix that sets the gain of a signal through it."""
    return module is not None and layer_kind(module) in WEIGHT_KINDS


def resets_reference(module: nn.Module | None) -> bool:
    """Norm layers and embeddings: their output scale is set by their own parameters."""
    if module is None:
        return False
    return isinstance(module, (nn.Embedding, nn.EmbeddingBag)) or is_norm(module)


@dataclass
class Stream:
    """One residual stream: a stack of blocks whose norm layers read it.

    Attributes:
        stack: the blocks' common prefix (``"encoder.layers"``).
        blocks: number of blocks read.
        first_rms, last_rms: RMS of the stream at the second norm layer (after the first
            branch: the embedding's own scale does not count) and at the last.
        growth: ``last_rms / first_rms``.
        layer: index of the last norm layer (where the growth is read).
        branch_globs: globs of the layers that end a residual branch in the stack.
        branches: how many such layers.
        branch_params: their weight parameters' names.
    """

    stack: str
    blocks: int
    first_rms: float
    last_rms: float
    growth: float
    layer: int
    branch_globs: list[str] = field(default_factory=list)
    branches: int = 0
    branch_params: list[str] = field(default_factory=list)


@dataclass
class Propagation:
    """The end-to-end figures of one audit (see the module docstring).

    Attributes:
        weight_layers: number of layers that carry a weight matrix.
        signal_min, signal_min_layer: smallest input RMS / reference RMS over the weight
            layers, and the layer (index) where it is read.
        signal_max, signal_max_layer: the largest, and where.
        gradient_ratio: ``||dL/d input of the first weight layer|| / ||dL/d output||``.
        gradient_layer: index of that first weight layer.
        signal_per_layer, gradient_per_layer: the geometric-mean change per weight layer
            (``ratio ** (1 / weight layers crossed)``) of the extreme signal figure and of the
            gradient figure (over every weight layer): the per-depth trend.
        streams: the residual streams found.
    """

    weight_layers: int = 0
    signal_min: float | None = None
    signal_min_layer: int | None = None
    signal_max: float | None = None
    signal_max_layer: int | None = None
    gradient_ratio: float | None = None
    gradient_layer: int | None = None
    signal_per_layer: float | None = None
    gradient_per_layer: float | None = None
    streams: list[Stream] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain-data form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Propagation:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["streams"] = [Stream(**item) for item in data["streams"]]
        return cls(**values)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or not math.isfinite(denominator) or denominator <= 0:
        return None
    if not math.isfinite(numerator):
        return None
    return numerator / denominator


def _per_layer(ratio: float | None, count: int) -> float | None:
    if ratio is None or ratio <= 0 or count < 1:
        return None
    return ratio ** (1.0 / count)


def propagation(
    layers: list[LayerReport], grouped: list[list[Record]], output_gradient_norm: float | None
) -> Propagation:
    """The figures of :class:`Propagation` from the report's layers and their records (one row
    of records per layer)."""
    weighted = [layer for layer in layers if layer.carries_weights]
    result = Propagation(weight_layers=len(weighted))
    signals = [
        (layer.signal_ratio, layer.index, layer.signal_depth or 0)
        for layer in weighted
        if layer.signal_ratio is not None and math.isfinite(layer.signal_ratio) and layer.signal_ratio > 0
    ]
    if signals:
        low, high = min(signals), max(signals)
        result.signal_min, result.signal_min_layer = low[0], low[1]
        result.signal_max, result.signal_max_layer = high[0], high[1]
        extreme = low if abs(math.log(low[0])) > abs(math.log(high[0])) else high
        result.signal_per_layer = _per_layer(extreme[0], max(extreme[2], 1))
    first = next((layer for layer in weighted if layer.grad_input_norm is not None), None)
    if first is not None:
        result.gradient_ratio = _ratio(first.grad_input_norm, output_gradient_norm)
        result.gradient_layer = first.index
        result.gradient_per_layer = _per_layer(result.gradient_ratio, len(weighted))
    result.streams = streams(layers, grouped)
    return result


def _stack_of(name: str) -> tuple[str, str] | None:
    """``("encoder.layers", "3")`` for ``"encoder.layers.3.norm1"``; None outside a numbered stack."""
    match = _BLOCK_INDEX.search(name)
    return None if match is None else (name[: match.start()], match.group(1))


def _glob(name: str) -> str:
    return _BLOCK_INDEX.sub(".*", name)


def streams(layers: list[LayerReport], grouped: list[list[Record]]) -> list[Stream]:
    """The residual streams: per stack of numbered blocks, the RMS of the input of each norm
    layer that does not read a weight layer's output directly (it reads the stream)."""
    by_index = {record.index: record for row in grouped for record in row}
    found: dict[str, list[tuple[LayerReport, Record]]] = {}
    for layer, row in zip(layers, grouped):
        base = row[0]
        if base.module is None or not is_norm(base.module) or base.input_rms is None or not base.input_rms > 0:
            continue
        source = by_index.get(base.source) if base.source is not None and base.source >= 0 else None
        if source is not None and carries_weights(source.module):
            continue
        place = _stack_of(base.name)
        if place is not None:
            found.setdefault(place[0], []).append((layer, base))
    result = []
    for stack, reads in found.items():
        blocks = len({_stack_of(record.name)[1] for _, record in reads})  # type: ignore[index]
        if blocks < 2 or len(reads) < 3:
            continue
        first, last = reads[1][1].input_rms, reads[-1][1].input_rms
        stream = Stream(stack, blocks, first, last, last / first, reads[-1][0].index)  # type: ignore[operator,arg-type]
        _branch_ends(stream, grouped)
        result.append(stream)
    return result


def _branch_ends(stream: Stream, grouped: list[list[Record]]) -> None:
    """The weight layers of the stack whose output reaches no recorded layer (through dropout
    and other weightless pass-throughs): the layers that end a residual branch."""
    records = [record for row in grouped for record in row]
    readers: dict[int, list[Record]] = {}
    for record in records:
        if record.source is not None and record.source >= 0:
            readers.setdefault(record.source, []).append(record)
    counts = Counter(record.name for record in records)
    ends: list[str] = []
    params: list[str] = []
    for record in records:
        if (
            not record.name.startswith(stream.stack + ".")
            or not carries_weights(record.module)
            or counts[record.name] > 1
        ):
            continue
        current = record
        while len(readers.get(current.index, [])) == 1 and _passes_through(readers[current.index][0]):
            current = readers[current.index][0]
        if readers.get(current.index):
            continue
        name, module = record.name, record.module
        if module is None:
            continue
        if isinstance(module, nn.MultiheadAttention):
            name, module = f"{name}.out_proj", module.out_proj
        if name not in ends:
            ends.append(name)
            params.extend(f"{name}.{local}" for local, _ in module.named_parameters(recurse=False) if "weight" in local)
    stream.branches = len(ends)
    stream.branch_globs = list(dict.fromkeys(_glob(name) for name in ends))
    stream.branch_params = params


def _passes_through(record: Record) -> bool:
    """A weightless, non-norm record (dropout, identity, an activation): the signal goes on unchanged in scale."""
    module = record.module
    if module is None or is_norm(module) or carries_weights(module):
        return False
    return next(module.parameters(recurse=False), None) is None
