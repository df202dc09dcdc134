"""Find the activation that actually follows each layer of a model.

Two ways to see the computation, both reduced to one small data-flow graph
(:class:`Graph`: nodes in execution order, each with the nodes it reads):

* ``"fx"`` — :mod:`torch.fx` symbolic tracing, without running the model.
  torch.nn modules are leaves, and so is any parameter-free module without
  children (a custom activation module). Fails on data-dependent control
  flow (``nn.TransformerEncoderLayer`` for one).
* ``"trace"`` — run the model once on an ``example_input`` and record what
  runs: forward hooks on every leaf/known module, and a
  :class:`torch.overrides.TorchFunctionMode` for every torch function called
  outside those modules (``F.relu``, ``torch.tanh``, ``x.sigmoid()``,
  ``x + y``...). Tensors are followed by identity, so the graph is the real
  data flow. The run leaves no trace: buffers (BatchNorm running statistics)
  and the CPU random state are restored, and the fused attention fast paths
  are switched off so that every submodule is seen.

The activation after a layer is found by walking forward from the layer's
output through *transparent* nodes — normalisation, dropout, pooling,
reshapes, residual additions, scaling by a constant — to the first
element-wise activation in execution order. A walk that reaches another
weighted layer, the output, or any other operation (a matmul, softmax, a
gating product) before an activation finds none on that path.

What counts as an activation: any torch activation module or function the
registry :func:`initlab.activations.get_activation` knows (with its
parameters: ``negative_slope``, ``alpha``, ``beta``, ``approximate``...),
other element-wise torch activations (``hardswish``, ``celu``...), any
parameter-free custom module that acts element-wise (checked on a probe),
and, under fx, any element-wise Python function marked with ``torch.fx.wrap``
(a plain Python function is otherwise traced through and seen as its torch
operations). The last three are wrapped into numpy callables (custom activations).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.fx
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from initlab.activations import Activation, get_activation, known_activations
from initlab.errors import InitlabError
from initlab.nn.layers import TRANSPARENT_MODULES, WEIGHTED_KINDS, layer_kind

# -------------------------------------------------------------------- vocabulary

_DUNDER = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add",
    "__sub__": "sub", "__rsub__": "sub", "__isub__": "sub",
    "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul",
    "__truediv__": "div", "__itruediv__": "div", "__neg__": "neg",
    "__getitem__": "getitem", "iadd": "add", "isub": "sub", "imul": "mul", "truediv": "div",
}
_TRANSPARENT_OPS = frozenset({
    "add", "sub", "neg", "getitem", "view", "view_as", "reshape", "flatten", "unflatten",
    "permute", "transpose", "t", "contiguous", "squeeze", "unsqueeze", "expand", "expand_as",
    "clone", "to", "float", "double", "half", "bfloat16", "type", "type_as", "detach",
    "cat", "concat", "concatenate", "stack", "chunk", "split", "narrow", "unbind", "movedim",
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "pad", "interpolate", "upsample", "pixel_shuffle", "pixel_unshuffle",
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "identity",
})
# Linear in their one graph input when the other operand is a constant or a parameter.
_SCALING_OPS = frozenset({"mul", "div"})
# Parameters of functional activations, in positional order after the input.
_FUNCTION_PARAMS = {
    "leaky_relu": ("negative_slope",), "elu": ("alpha",), "celu": ("alpha",),
    "softplus": ("beta",), "hardtanh": ("min_val", "max_val"), "gelu": (),
}
_PARAM_KEYWORDS = ("negative_slope", "alpha", "beta", "min_val", "max_val", "approximate")
# Element-wise torch activations the registry does not name: wrapped as custom activations.
_EXTRA_ELEMENTWISE = frozenset({
    "hardswish", "hardsigmoid", "celu", "logsigmoid", "tanhshrink", "softshrink", "hardshrink",
})
_PROBE = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)


@dataclass(frozen=True)
class Found:
    """What the search found after one layer.

    Attributes:
        activation: the activation, or None (no activation follows, or it is unknown).
        method: ``"fx"``, ``"trace"``, ``"unknown"`` (neither could run) or ``"built-in"``.
        detail: how it was found, e.g. ``"relu (function) via bn1"`` or why none was.
    """

    activation: Activation | None
    method: str
    detail: str

    @property
    def known(self) -> bool:
        """False when the computation could not be seen (the choice is a default)."""
        return self.method != "unknown"


@dataclass
class Node:
    """One operation of the data-flow graph (execution order = position in ``Graph.nodes``)."""

    label: str
    role: str  # "input", "layer", "activation", "transparent", "stop", "output"
    inputs: list[int]
    module: str | None = None
    activation: Activation | None = None


@dataclass
class Graph:
    """The data-flow graph one model run (or one fx trace) produced."""

    method: str
    nodes: list[Node] = field(default_factory=list)

    def add(self, node: Node) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1

    def consumers(self) -> list[list[int]]:
        readers: list[list[int]] = [[] for _ in self.nodes]
        for index, node in enumerate(self.nodes):
            for source in dict.fromkeys(node.inputs):
                readers[source].append(index)
        return readers


@dataclass
class Discovery:
    """The activation after every layer of one model (look-ups by module name)."""

    method: str
    note: str
    found: dict[str, Found]

    def get(self, module_name: str) -> Found:
        """The finding for ``module_name``; a layer the graph never reached has none."""
        if module_name in self.found:
            return self.found[module_name]
        if self.method == "unknown":
            return Found(None, "unknown", self.note)
        where = "fx graph" if self.method == "fx" else "traced run"
        return Found(None, self.method, f"not called in the {where}")


# -------------------------------------------------------------------- classification


def _numpy_wrapper(function: Callable[[torch.Tensor], torch.Tensor], name: str) -> Callable | None:
    """A float64 numpy version of a torch callable if it acts element-wise, else None.

    Element-wise means: same shape out as in, and the same values whether the
    13 probe points come as a row, a column or a vector (softmax, reductions
    and reshapes fail this).
    """
    try:
        with torch.no_grad():
            flat = function(_PROBE.clone())
            column = function(_PROBE.reshape(13, 1).clone())
            row = function(_PROBE.reshape(1, 13).clone())
        if not all(isinstance(out, torch.Tensor) for out in (flat, column, row)):
            return None
        if flat.shape != _PROBE.shape or column.shape != (13, 1) or row.shape != (1, 13):
            return None
        if not (torch.allclose(column.reshape(13), flat) and torch.allclose(row.reshape(13), flat)):
            return None
    except Exception:  # a user module may reject a probe in any way: then it is no activation
        return None

    def evaluate(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return function(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()

    evaluate.__qualname__ = name
    return evaluate


def _is_identity(function: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    with torch.no_grad():
        return bool(torch.equal(function(_PROBE.clone()), _PROBE))


def classify_module(module: nn.Module) -> tuple[str, Activation | None]:
    """(role, activation) of a module node; see the module docstring for the roles."""
    kind = layer_kind(module)
    if kind in WEIGHTED_KINDS:
        return "layer", None
    if kind == "prelu":
        return "activation", get_activation("prelu", negative_slope=float(getattr(module, "init", 0.25)))
    if isinstance(module, TRANSPARENT_MODULES):
        return "transparent", None
    try:
        activation = get_activation(module)
        return ("transparent", None) if activation.name == "linear" else ("activation", activation)
    except InitlabError:
        pass
    if any(True for _ in module.parameters()) or any(True for _ in module.children()):
        return "stop", None
    wrapper = _numpy_wrapper(module, type(module).__qualname__)
    if wrapper is None:
        return "stop", None
    if _is_identity(module):
        return "transparent", None
    return _custom(wrapper)


def _custom(wrapper: Callable) -> tuple[str, Activation | None]:
    """An element-wise callable as a custom activation ("stop" if the registry refuses it)."""
    try:
        return "activation", get_activation(wrapper)
    except InitlabError:
        return "stop", None


def module_label(name: str, module: nn.Module) -> str:
    """How a module appears in a finding: ``"act1 (ReLU)"``."""
    return f"{name} ({type(module).__name__})"


def _canonical_op(name: str) -> str:
    name = _DUNDER.get(name, name)
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def classify_function(name: str, constants: tuple, keywords: dict, graph_inputs: int) -> tuple[str, Activation | None]:
    """(role, activation) of a torch function or tensor method applied to graph tensors.

    Args:
        name: the function's or method's name (``relu``, ``relu_``, ``__add__``...).
        constants: its positional arguments after the input that are not graph tensors.
        keywords: its keyword arguments that are not graph tensors.
        graph_inputs: how many of its arguments are graph tensors.
    """
    op = _canonical_op(name)
    if op in _TRANSPARENT_OPS:
        return "transparent", None
    if op in _SCALING_OPS:
        return ("transparent", None) if graph_inputs == 1 else ("stop", None)
    if graph_inputs != 1:
        return "stop", None
    params = dict(zip(_FUNCTION_PARAMS.get(op, ()), constants))
    params.update({key: value for key, value in keywords.items() if key in _PARAM_KEYWORDS})
    params = {key: value for key, value in params.items() if not isinstance(value, torch.Tensor)}
    if op == "relu6":
        return "activation", get_activation("hardtanh", min_val=0.0, max_val=6.0)
    if op in known_activations() and op != "linear":
        if op != "gelu":
            params.pop("approximate", None)
        try:
            return "activation", get_activation(op, **params)
        except InitlabError:  # parameters the registry refuses (e.g. hardtanh with min > max)
            return "stop", None
    if op in _EXTRA_ELEMENTWISE:
        function = functools.partial(getattr(torch.nn.functional, op), **{
            key: value for key, value in params.items() if key != "approximate"
        })
        wrapper = _numpy_wrapper(function, op)
        if wrapper is not None:
            return _custom(wrapper)
    return "stop", None


def _is_user_function(target: Any) -> bool:
    """A plain Python function that is not torch's (under fx: one marked with ``torch.fx.wrap``)."""
    module = getattr(target, "__module__", None) or ""
    return callable(target) and not isinstance(target, str) and not module.startswith(
        ("torch", "_operator", "operator", "builtins", "math"))


def classify_user_function(function: Callable, constants: tuple, keywords: dict) -> tuple[str, Activation | None]:
    """A user function applied to one graph tensor: a custom activation if it acts element-wise."""
    bound = functools.partial(function, *constants, **keywords) if constants or keywords else function
    wrapper = _numpy_wrapper(bound, getattr(function, "__qualname__", type(function).__name__))
    if wrapper is None:
        return "stop", None
    if _is_identity(bound):
        return "transparent", None
    return _custom(wrapper)


# -------------------------------------------------------------------- fx


class _LeafTracer(torch.fx.Tracer):
    """torch.nn modules and parameter-free childless modules (custom activations) are leaves."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if super().is_leaf_module(module, qualified_name) or layer_kind(module) is not None:
            return True
        return not any(True for _ in module.children()) and not any(True for _ in module.parameters())


def _function_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", type(target).__name__)


def fx_graph(model: nn.Module) -> Graph:
    """The data-flow graph of ``model`` by torch.fx symbolic tracing (raises on failure)."""
    traced = _LeafTracer().trace(model)
    graph = Graph("fx")
    index_of: dict[torch.fx.Node, int] = {}
    for fx_node in traced.nodes:
        leaves, _ = tree_flatten((fx_node.args, fx_node.kwargs))
        inputs = [index_of[arg] for arg in leaves if isinstance(arg, torch.fx.Node) and arg in index_of]
        if fx_node.op == "placeholder":
            index_of[fx_node] = graph.add(Node(fx_node.name, "input", []))
        elif fx_node.op == "output":
            graph.add(Node("output", "output", inputs))
        elif fx_node.op == "call_module":
            module = model.get_submodule(fx_node.target)
            role, activation = classify_module(module)
            label = module_label(fx_node.target, module)
            index_of[fx_node] = graph.add(Node(label, role, inputs, fx_node.target, activation))
        elif fx_node.op in ("call_function", "call_method"):
            name = _function_name(fx_node.target)
            constants = tuple(arg for arg in fx_node.args[1:] if not isinstance(arg, torch.fx.Node))
            keywords = {k: v for k, v in fx_node.kwargs.items() if not isinstance(v, torch.fx.Node)}
            if _is_user_function(fx_node.target) and len(inputs) == 1:
                role, activation = classify_user_function(fx_node.target, constants, keywords)
            else:
                role, activation = classify_function(name, constants, keywords, len(inputs))
            index_of[fx_node] = graph.add(Node(_canonical_op(name), role, inputs, None, activation))
    return graph


# -------------------------------------------------------------------- execution trace


def _is_atomic(module: nn.Module) -> bool:
    return layer_kind(module) is not None or not any(True for _ in module.children())


class _Recorder(TorchFunctionMode):
    """Builds the data-flow graph of one run: module hooks plus torch functions outside modules."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.graph = Graph("trace")
        self.producer: dict[int, int] = {}
        self.alive: list[torch.Tensor] = []  # keeps ids unique for the whole run
        self.depth = 0
        self.pending: list[list[int]] = []
        self.called: dict[int, nn.Module] = {}
        self.names = {id(module): name for name, module in model.named_modules()}

    # tensors ---------------------------------------------------------------
    def sources(self, values: Any) -> list[int]:
        leaves, _ = tree_flatten(values)
        return [self.producer[id(leaf)] for leaf in leaves
                if isinstance(leaf, torch.Tensor) and id(leaf) in self.producer]

    def produce(self, values: Any, node: int) -> None:
        leaves, _ = tree_flatten(values)
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                self.producer[id(leaf)] = node
                self.alive.append(leaf)

    # hooks -----------------------------------------------------------------
    def before(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.depth += 1
        if self.depth == 1:
            self.pending.append(self.sources((args, kwargs)))

    def after(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if self.depth == 1:
            name = self.names.get(id(module), type(module).__name__)
            node = self.graph.add(Node(module_label(name, module), "module", self.pending.pop(), name))
            self.called[node] = module
            self.produce(output, node)
        self.depth -= 1

    def classify_modules(self) -> None:
        """Give every module node its role (after the run: a custom module is probed by calling it)."""
        roles: dict[int, tuple[str, Activation | None]] = {}
        for index, module in self.called.items():
            if id(module) not in roles:
                roles[id(module)] = classify_module(module)
            self.graph.nodes[index].role, self.graph.nodes[index].activation = roles[id(module)]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self.depth:
            return result
        inputs = self.sources((args, kwargs))
        if not inputs or not any(isinstance(leaf, torch.Tensor) for leaf in tree_flatten(result)[0]):
            return result
        name = _function_name(func)
        constants = tuple(arg for arg in args[1:] if not isinstance(arg, torch.Tensor))
        role, activation = classify_function(name, constants, kwargs, len(inputs))
        node = self.graph.add(Node(_canonical_op(name), role, inputs, None, activation))
        self.produce(result, node)
        return result


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[None]:
    """Run code on ``model`` and restore its buffers, the RNG states (CPU and the model's
    CUDA devices) and the MHA fast-path switch."""
    saved = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    fastpath = torch.backends.mha.get_fastpath_enabled() if hasattr(torch.backends, "mha") else None
    try:
        cuda = sorted({tensor.device.index or 0 for tensor in model.parameters() if tensor.device.type == "cuda"})
        with torch.random.fork_rng(devices=cuda):
            if fastpath is not None:
                torch.backends.mha.set_fastpath_enabled(False)
            yield
    finally:
        if fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in saved:
                    buffer.copy_(saved[name])


def describe_input(example_input: Any) -> str:
    """Shapes of an example input, e.g. ``(32, 40)`` or ``((2, 5), (2, 5))``."""
    if isinstance(example_input, torch.Tensor):
        return str(tuple(example_input.shape))
    if isinstance(example_input, (tuple, list)):
        return "(" + ", ".join(describe_input(item) for item in example_input) + ")"
    if isinstance(example_input, dict):
        return "{" + ", ".join(f"{key!r}: {describe_input(value)}" for key, value in example_input.items()) + "}"
    return type(example_input).__name__


def call_model(model: nn.Module, example_input: Any) -> Any:
    """``model(x)`` for a tensor, ``model(*x)`` for a tuple/list, ``model(**x)`` for a dict."""
    if isinstance(example_input, dict):
        return model(**example_input)
    if isinstance(example_input, (tuple, list)):
        return model(*example_input)
    return model(example_input)


def trace_graph(model: nn.Module, example_input: Any) -> Graph:
    """The data-flow graph of one real run of ``model`` on ``example_input``.

    Raises:
        InitlabError: the model rejects the input (the message repeats its shape).
    """
    recorder = _Recorder(model)
    recorder.produce(example_input, recorder.graph.add(Node("input", "input", [])))
    handles = []
    try:
        for module in model.modules():
            if _is_atomic(module):
                handles.append(module.register_forward_pre_hook(recorder.before, with_kwargs=True))
                handles.append(module.register_forward_hook(recorder.after, with_kwargs=True))
        with preserved(model), torch.no_grad(), recorder:
            output = call_model(model, example_input)
    except InitlabError:
        raise
    except Exception as error:
        raise InitlabError(
            f"init_: example_input of shape {describe_input(example_input)} was rejected by the model "
            f"({type(model).__name__}): {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
            f"Expected an input the model's forward accepts (a tensor, a tuple of positional "
            f"arguments or a dict of keyword arguments)."
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    recorder.classify_modules()
    recorder.graph.add(Node("output", "output", recorder.sources(output)))
    return recorder.graph


# -------------------------------------------------------------------- search


def follow(graph: Graph, starts: list[int], readers: list[list[int]]) -> tuple[Activation | None, str]:
    """The first activation (in execution order) reached from ``starts`` through transparent nodes."""
    queue = collections.deque((reader, ()) for start in starts for reader in readers[start])
    seen: set[int] = set()
    reached: list[tuple[int, Activation, tuple[str, ...]]] = []
    stops: list[str] = []
    while queue:
        index, via = queue.popleft()
        if index in seen:
            continue
        seen.add(index)
        node = graph.nodes[index]
        if node.role == "activation":
            reached.append((index, node.activation, via))
        elif node.role == "transparent":
            queue.extend((reader, via + (node.label,)) for reader in readers[index])
        else:
            stops.append(node.label)
    if not reached:
        ends = ", ".join(dict.fromkeys(stops)) or "nothing"
        return None, f"no activation before {_shorten(ends)}"
    index, activation, via = min(reached, key=operator.itemgetter(0))
    node = graph.nodes[index]
    detail = f"{node.label}" + (f" via {_shorten(', '.join(dict.fromkeys(via)))}" if via else "")
    others = sorted({item.name for _, item, _ in reached} - {activation.name})
    if others:
        detail += f" (first of several: also {', '.join(others)})"
    return activation, detail


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def discover(model: nn.Module, example_input: Any = None) -> Discovery:
    """The activation after every layer node of ``model``.

    With ``example_input`` the model is run once and observed (``"trace"``);
    without it torch.fx symbolic tracing is tried (``"fx"``). When fx fails
    and there is no example input, every layer's finding is ``"unknown"``
    and the note says why.
    """
    if example_input is not None:
        graph, note = trace_graph(model, example_input), f"traced a run on an input of shape {describe_input(example_input)}"
    else:
        try:
            graph, note = fx_graph(model), "torch.fx symbolic trace"
        except Exception as error:  # fx raises many error types on untraceable code
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            return Discovery("unknown", f"torch.fx could not trace the model ({_shorten(reason, 120)}); "
                                        f"pass example_input to trace a real run", {})
    readers = graph.consumers()
    calls: dict[str, list[int]] = collections.defaultdict(list)
    for index, node in enumerate(graph.nodes):
        if node.module is not None:
            calls[node.module].append(index)
    found = {}
    for name, indices in calls.items():
        activation, detail = follow(graph, indices, readers)
        if len(indices) > 1:
            detail += f"; called {len(indices)} times"
        found[name] = Found(activation, graph.method, detail)
    return Discovery(graph.method, note, found)
