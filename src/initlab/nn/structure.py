"""What a model's data-flow graph says about the roles of its layers, beyond the activation after each.

Four readings of one :class:`~initlab.nn.discover.Graph` (fx or a traced run):

* **Readouts.** A linear or convolutional layer whose output reaches the model's output
  (or a loss) through nothing but reshapes, casts, dropout and (log-)softmax produces the
  logits. Its weight gets the readout rule of :mod:`initlab.nn.auto` (small logits, so
  the initial loss is near ln C), and so does a parameter tied to it (a tied embedding).
* **Residual branch ends.** An addition of two tensors where one side went through more
  weighted layers than the other is a residual merge: the deeper side is the branch. A
  norm whose output reaches that addition through reshapes, dropout or stochastic depth
  only ends the branch; its gain starts at 0, so the block starts as the identity
  (zero-init-last; Goyal et al. 2017, "Accurate, Large Minibatch SGD", sec. 5.1; timm's
  ``zero_init_last``).
* **Attention score scaling** (traced runs only: it needs shapes). For each softmax over
  the last axis fed by a matmul of two graph tensors (q k^T), and for each
  ``scaled_dot_product_attention``, the product ``c`` of the constant factors on the way
  (on q, on k, on the scores, and the SDPA ``scale``; default 1/sqrt(d_head)) is read.
  With unit-variance q and k the score std is ``c sqrt(d_head)``; where it is not within
  10% of 1 (T5 computes unscaled scores and puts 1/sqrt(d_kv) into q's init instead) the
  query projection's weight is multiplied by ``1 / (c sqrt(d_head))``. Not when the query
  is normalised on the way (a q-norm), or when q and k come from one fused layer.
* **Fused projections.** A layer whose output is split into k equal parts along its
  last axis (``chunk(k, -1)``, ``split(size, -1)``) is k stacked blocks: fans are those
  of one block (GPT-2's ``c_attn``: q, k and v).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field

from torch import nn

from initlab.nn.discover import STRUCTURAL_OPS, Graph, Node
from initlab.nn.layers import TRANSPARENT_MODULES, layer_kind, registration

_MATMULS = frozenset({"matmul", "bmm", "einsum"})
_LOGIT_PASSES = frozenset({"softmax", "log_softmax"})
_LOSSES = frozenset({"cross_entropy", "nll_loss", "binary_cross_entropy_with_logits", "mse_loss", "l1_loss", "kl_div"})
_QUERY_PASSES = frozenset({"mul", "add", "sub", "neg", "cat", "div"})
_WEIGHTED_READOUTS = ("linear", "conv", "conv_transpose")
_PASS_MODULES = tuple(cls for cls in TRANSPARENT_MODULES if cls.__module__.startswith("torch.nn.modules.dropout")) + (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
)


@dataclass
class Structure:
    """Roles of layers read from the graph (module name -> detail, or (value, detail))."""

    readouts: dict[str, str] = field(default_factory=dict)
    residual_ends: dict[str, str] = field(default_factory=dict)
    query_scale: dict[str, tuple[float, str]] = field(default_factory=dict)
    blocks: dict[str, tuple[int, str]] = field(default_factory=dict)


def _passes_values(node: Node, modules: dict[str, nn.Module]) -> bool:
    """A node that only moves, casts or drops values (reshape, dropout, identity, stochastic depth)."""
    if node.module is not None:
        module = modules.get(node.module)
        if isinstance(module, _PASS_MODULES):
            return True
        return (
            node.role == "transparent"
            and module is not None
            and layer_kind(module) is None
            and not isinstance(module, TRANSPARENT_MODULES)
            and not any(True for _ in module.parameters())
        )
    return node.op in STRUCTURAL_OPS


def _is_readout(graph: Graph, start: int, readers: list[list[int]], modules: dict[str, nn.Module]) -> bool:
    queue, seen, reached = collections.deque(readers[start]), set(), False
    while queue:
        index = queue.popleft()
        if index in seen:
            continue
        seen.add(index)
        node = graph.nodes[index]
        if node.role == "output" or node.op in _LOSSES:
            reached = True
        elif _passes_values(node, modules) or node.op in _LOGIT_PASSES:
            queue.extend(readers[index])
        else:
            return False
    return reached


def _node_kind(node: Node, modules: dict[str, nn.Module]) -> str | None:
    """The layer kind of the module ``node`` calls (None for a node that calls no known module)."""
    module = modules.get(node.module) if node.module is not None else None
    return layer_kind(module) if module is not None else None


def _readouts(graph: Graph, readers: list[list[int]], modules: dict[str, nn.Module]) -> dict[str, str]:
    calls: dict[str, list[int]] = collections.defaultdict(list)
    for index, node in enumerate(graph.nodes):
        if node.role == "layer" and node.module is not None and _node_kind(node, modules) in _WEIGHTED_READOUTS:
            calls[node.module].append(index)
    return {
        name: "its output is the model's output (logits)"
        for name, indices in calls.items()
        if all(_is_readout(graph, index, readers, modules) for index in indices)
    }


def _layer_ancestry(graph: Graph) -> list[int]:
    """Per node, a bit set of the layer nodes it depends on."""
    ancestry: list[int] = []
    for index, node in enumerate(graph.nodes):
        bits = 0
        for source in node.inputs:
            bits |= ancestry[source]
        if node.role == "layer":
            bits |= 1 << index
        ancestry.append(bits)
    return ancestry


def _back_to_norm(graph: Graph, index: int, modules: dict[str, nn.Module]) -> str | None:
    """The norm module whose output reaches node ``index`` through value-passing nodes only."""
    while True:
        node = graph.nodes[index]
        if node.module is not None and _node_kind(node, modules) == "norm":
            return node.module
        if not _passes_values(node, modules) or len(set(node.inputs)) != 1:
            return None
        index = node.inputs[0]


def _residual_ends(graph: Graph, modules: dict[str, nn.Module]) -> dict[str, str]:
    ancestry = _layer_ancestry(graph)
    ends: dict[str, str] = {}
    for node in graph.nodes:
        sources = [source for source in node.args if source is not None]
        if node.op != "add" or len(sources) != 2 or sources[0] == sources[1]:
            continue
        depths = [ancestry[source].bit_count() for source in sources]
        if depths[0] == depths[1]:
            continue
        branch = sources[0] if depths[0] > depths[1] else sources[1]
        norm = _back_to_norm(graph, branch, modules)
        if norm is not None and getattr(modules[norm], "weight", None) is not None:
            ends[norm] = (
                f"ends a residual branch ({max(depths) - min(depths)} more layer(s) than the skip "
                f"path): gain 0, the block starts as the identity (zero-init-last)"
            )
    return ends


def _scalar_path(
    graph: Graph, index: int, passes: frozenset, modules: dict[str, nn.Module], stop_at
) -> tuple[list[tuple[int, float]], bool]:
    """Walk back from node ``index`` to the nodes ``stop_at`` accepts; (found nodes with the product
    of the constant factors on the way, whether a norm was crossed)."""
    found, normed = [], False
    queue, seen = collections.deque([(index, 1.0)]), set()
    while queue:
        current, factor = queue.popleft()
        if current in seen:
            continue
        seen.add(current)
        node = graph.nodes[current]
        if stop_at(node):
            found.append((current, factor))
            continue
        if _node_kind(node, modules) == "norm" or node.op.endswith("_norm"):
            normed = True
        if node.role in ("transparent", "stop") and (node.role == "transparent" or node.op in passes):
            factor *= node.factor if node.factor is not None else 1.0
            queue.extend((source, factor) for source in dict.fromkeys(node.inputs))
    return found, normed


def _score_nodes(graph: Graph, modules: dict[str, nn.Module]):
    """(query source, key source, scale of the scores, detail) for every attention score computation seen."""
    for node in graph.nodes:
        if node.op == "scaled_dot_product_attention" and len(node.args) >= 2:
            query, key = node.args[0], node.args[1]
            query_shape = graph.nodes[query].shape if query is not None else None
            if key is None or not query_shape:
                continue
            scale = node.keywords.get("scale")
            yield query, key, (scale if scale is not None else query_shape[-1] ** -0.5), query_shape[-1]
        elif node.op == "softmax" and node.inputs and _last_axis(node, graph):
            found, _ = _scalar_path(
                graph, node.inputs[0], frozenset({"add", "sub"}), modules, lambda item: item.op in _MATMULS
            )
            for matmul, factor in found[:1]:
                operands = [source for source in graph.nodes[matmul].args if source is not None]
                shape = graph.nodes[operands[0]].shape if len(operands) == 2 else None
                if shape:
                    yield operands[0], operands[1], factor, shape[-1]


def _last_axis(node: Node, graph: Graph) -> bool:
    dim = node.keywords.get("dim", node.constants[0] if node.constants else None)
    shape = graph.nodes[node.inputs[0]].shape
    return isinstance(dim, int) and shape is not None and dim % len(shape) == len(shape) - 1


def _query_scales(graph: Graph, modules: dict[str, nn.Module]) -> dict[str, tuple[float, str]]:
    if graph.method != "trace":
        return {}

    def is_layer(node: Node) -> bool:
        return node.role == "layer"

    scales: dict[str, tuple[float, str]] = {}
    for query, key, score_scale, head_dim in _score_nodes(graph, modules):
        queries, query_normed = _scalar_path(graph, query, _QUERY_PASSES, modules, is_layer)
        keys, key_normed = _scalar_path(graph, key, _QUERY_PASSES, modules, is_layer)
        query_layers = {graph.nodes[index].module for index, _ in queries}
        key_layers = {graph.nodes[index].module for index, _ in keys}
        if len(query_layers) != 1 or len(key_layers) != 1 or query_layers == key_layers or query_normed or key_normed:
            continue
        total = score_scale * queries[0][1] * keys[0][1]
        factor = 1.0 / (total * math.sqrt(head_dim))
        name = next(iter(query_layers))
        if name is not None and abs(math.log(factor)) > math.log(1.1):
            detail = (
                f"attention scores ({name} x {next(iter(key_layers))}) are scaled by {total:.4g} "
                f"in the forward, not 1/sqrt(d_head={head_dim}): query weight x{factor:.4g}"
            )
            scales[name] = (factor, detail)
    return scales


def _output_size(module: nn.Module) -> int | None:
    weight = getattr(module, "weight", None)
    if weight is None or weight.dim() != 2:
        return None
    registered = registration(module)
    in_out = registered is not None and registered.layout is not None and registered.layout.kind == "linear_in_out"
    return weight.shape[1] if in_out else weight.shape[0]


def _parts(node: Node, size: int, ndim: int | None) -> int | None:
    """How many equal parts a split/chunk node cuts the last axis of a ``size``-wide tensor into."""
    if node.op == "chunk":
        count = node.keywords.get("chunks", node.constants[0] if node.constants else None)
        dim = node.keywords.get("dim", node.constants[1] if len(node.constants) > 1 else 0)
    elif node.op == "split":
        sizes = node.keywords.get(
            "split_size_or_sections", node.keywords.get("split_size", node.constants[0] if node.constants else None)
        )
        dim = node.keywords.get("dim", node.constants[1] if len(node.constants) > 1 else 0)
        if isinstance(sizes, int) and sizes > 0 and size % sizes == 0:
            count = size // sizes
        elif isinstance(sizes, tuple) and len(set(sizes)) == 1:
            count = len(sizes)
        else:
            return None
    else:
        return None
    last = dim == -1 or (ndim is not None and isinstance(dim, int) and dim == ndim - 1)
    return count if last and isinstance(count, int) and count > 1 and size % count == 0 else None


def _fused_blocks(graph: Graph, readers: list[list[int]], modules: dict[str, nn.Module]) -> dict[str, tuple[int, str]]:
    blocks: dict[str, tuple[int, str]] = {}
    for index, node in enumerate(graph.nodes):
        if node.role != "layer" or node.module is None or _node_kind(node, modules) != "linear":
            continue
        size = _output_size(modules[node.module])
        for reader in readers[index]:
            split = graph.nodes[reader]
            parts = _parts(split, size, len(node.shape) if node.shape else None) if size else None
            if parts and size:
                detail = f"output split into {parts} equal parts ({split.op}): fans of one {size // parts}-wide block"
                blocks[node.module] = (parts, detail)
    return blocks


def analyse(graph: Graph, modules: dict[str, nn.Module]) -> Structure:
    """The four readings of the module docstring."""
    readers = graph.consumers()
    return Structure(
        _readouts(graph, readers, modules),
        _residual_ends(graph, modules),
        _query_scales(graph, modules),
        _fused_blocks(graph, readers, modules),
    )
