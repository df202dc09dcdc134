"""Find the activation that actually follows each layer of a model, and the structure around it.

Two ways to see the computation, both reduced to one small data-flow graph
(:class:`Graph`: nodes in execution order, each with the nodes it reads):

* ``"fx"`` — :mod:`torch.fx` symbolic tracing, without running the model.
  torch.nn modules are leaves, and so is any weighted layer, any norm or
  parameter-free module without children (a custom activation module). A
  module with children is traced through, so an activation applied inside
  a norm-act module (a BatchNorm2d subclass that calls its own ``act``) is
  seen. Fails on data-dependent control flow (``nn.TransformerEncoderLayer``,
  Hugging Face models).
* ``"trace"`` — run the model once and record what runs: forward hooks on
  every atomic module (a weighted layer, or a module without children), and
  a :class:`torch.overrides.TorchFunctionMode` for every torch function
  called outside those modules (``F.relu``, ``torch.tanh``, ``x.sigmoid()``,
  ``x + y``...). Tensors are followed by identity, so the graph is the real
  data flow. The run is on ``example_input`` when given; without it, when fx
  fails, on an input built from the model's first layer and its
  conventions (:mod:`initlab.nn.inputs`).

Every run and probe leaves no trace and does not depend on the global random
state: the model runs in eval mode (dropout and stochastic depth off), every
buffer is restored, and the torch (CPU and the model's CUDA devices), numpy
and Python random states are saved, seeded with a fixed value for the run and
restored; the fused attention fast paths are switched off so that every
submodule is seen. When neither way works, :func:`discover` says so in its
note and warns (:class:`DiscoveryWarning`).

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
parameter-free custom module that acts element-wise (checked on a probe, in
eval mode), and, under fx, any element-wise Python function marked with
``torch.fx.wrap``. A custom module or function is identified by what it
computes: when its values on the probe grid are those of a named activation
(``x.sigmoid()`` in a module is ``sigmoid``, Hugging Face's
``NewGELUActivation`` is ``gelu_tanh``, a module computing ``x if x > 0 else
a x`` is ``leaky_relu(a)``), it *is* that activation, so it gets the same
scheme whatever class wraps it; otherwise it becomes a custom activation. A
module whose output changes with the random state (dropout, stochastic
depth in train mode) is never an activation: it is transparent.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import operator
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    "__add__": "add",
    "__radd__": "add",
    "__iadd__": "add",
    "__sub__": "sub",
    "__rsub__": "sub",
    "__isub__": "sub",
    "__mul__": "mul",
    "__rmul__": "mul",
    "__imul__": "mul",
    "__truediv__": "div",
    "__itruediv__": "div",
    "__neg__": "neg",
    "__getitem__": "getitem",
    "iadd": "add",
    "isub": "sub",
    "imul": "mul",
    "truediv": "div",
    "__matmul__": "matmul",
    "__rmatmul__": "matmul",
    "multiply": "mul",
    "divide": "div",
}
STRUCTURAL_OPS = frozenset(
    {
        "getitem",
        "view",
        "view_as",
        "reshape",
        "flatten",
        "unflatten",
        "permute",
        "transpose",
        "t",
        "contiguous",
        "squeeze",
        "unsqueeze",
        "expand",
        "expand_as",
        "clone",
        "to",
        "float",
        "double",
        "half",
        "bfloat16",
        "type",
        "type_as",
        "detach",
        "chunk",
        "split",
        "narrow",
        "unbind",
        "movedim",
        "dropout",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alpha_dropout",
        "feature_alpha_dropout",
        "identity",
    }
)
"""Operations that only move, cast or drop values: a readout's logits may pass through them."""
_TRANSPARENT_OPS = STRUCTURAL_OPS | frozenset(
    {
        "add",
        "sub",
        "neg",
        "cat",
        "concat",
        "concatenate",
        "stack",
        "masked_fill",
        "max_pool1d",
        "max_pool2d",
        "max_pool3d",
        "max_pool1d_with_indices",
        "max_pool2d_with_indices",
        "max_pool3d_with_indices",
        "avg_pool1d",
        "avg_pool2d",
        "avg_pool3d",
        "adaptive_avg_pool1d",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool3d",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
        "adaptive_max_pool3d",
        "pad",
        "interpolate",
        "upsample",
        "pixel_shuffle",
        "pixel_unshuffle",
        "batch_norm",
        "layer_norm",
        "group_norm",
        "instance_norm",
        "rms_norm",
    }
)
# Linear in their one graph input when the other operand is a constant or a parameter.
_SCALING_OPS = frozenset({"mul", "div"})
# Parameters of functional activations, in positional order after the input.
_FUNCTION_PARAMS = {
    "leaky_relu": ("negative_slope",),
    "elu": ("alpha",),
    "celu": ("alpha",),
    "softplus": ("beta",),
    "hardtanh": ("min_val", "max_val"),
    "gelu": (),
}
_PARAM_KEYWORDS = ("negative_slope", "alpha", "beta", "min_val", "max_val", "approximate")
# Element-wise torch activations the registry does not name: wrapped as custom activations.
_EXTRA_ELEMENTWISE = frozenset(
    {
        "hardswish",
        "hardsigmoid",
        "celu",
        "logsigmoid",
        "tanhshrink",
        "softshrink",
        "hardshrink",
    }
)
_PROBE = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)
_MATCH_GRID = np.linspace(-8.0, 8.0, 161)
_SEED = 0
"""The fixed seed every discovery run and probe uses (inside a forked random state)."""


class DiscoveryWarning(UserWarning):
    """Discovery could not see the model's computation: the auto plan's choices are defaults."""


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
    """One operation of the data-flow graph (execution order = position in ``Graph.nodes``).

    ``args`` holds, per positional argument, the node that produced it (None: not a graph
    tensor); ``factor`` the constant of a multiplication/division by a number; ``shape`` the
    shape of the first output (trace only); ``constants``/``keywords`` the non-tensor arguments.
    """

    label: str
    role: str  # "input", "layer", "activation", "transparent", "stop", "output"
    inputs: list[int]
    module: str | None = None
    activation: Activation | None = None
    op: str = ""
    args: tuple[int | None, ...] = ()
    factor: float | None = None
    shape: tuple[int, ...] | None = None
    constants: tuple = ()
    keywords: dict = field(default_factory=dict)


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
    """The activation after every layer of one model (look-ups by module name), and its structure.

    Attributes:
        method: ``"fx"``, ``"trace"`` or ``"unknown"``.
        note: how the graph was obtained, or why it could not be.
        found: the finding per layer.
        structure: what :mod:`initlab.nn.structure` read from the graph (readouts, residual
            branch ends, attention score scaling, fused projections); None when method is unknown.
    """

    method: str
    note: str
    found: dict[str, Found]
    structure: Any = None

    def get(self, module_name: str) -> Found:
        """The finding for ``module_name``; a layer the graph never reached has none."""
        if module_name in self.found:
            return self.found[module_name]
        if self.method == "unknown":
            return Found(None, "unknown", self.note)
        where = "fx graph" if self.method == "fx" else "traced run"
        return Found(None, self.method, f"not called in the {where}")


# -------------------------------------------------------------------- random state


@contextlib.contextmanager
def fixed_random_state(devices: Sequence[int] = ()) -> Iterator[None]:
    """Run the body with torch (CPU and ``devices``), numpy and Python random seeded with a fixed
    value, and put every one of those states back afterwards."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=list(devices)):
            torch.manual_seed(_SEED)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


# -------------------------------------------------------------------- classification


def _probe_values(function: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """``function`` on the 13 probe points if it acts element-wise and deterministically, else None.

    Element-wise means: same shape out as in, and the same values whether the probe points
    come as a row, a column or a vector (softmax, reductions and reshapes fail this).
    Deterministic means: the same values under two different random states (dropout and
    stochastic depth fail this).
    """
    try:
        with torch.no_grad(), fixed_random_state():
            flat = function(_PROBE.clone())
            column = function(_PROBE.reshape(13, 1).clone())
            row = function(_PROBE.reshape(1, 13).clone())
            torch.manual_seed(_SEED + 1)
            again = function(_PROBE.clone())
        if not all(isinstance(out, torch.Tensor) for out in (flat, column, row, again)):
            return None
        if flat.shape != _PROBE.shape or column.shape != (13, 1) or row.shape != (1, 13):
            return None
        if not (
            torch.allclose(column.reshape(13), flat)
            and torch.allclose(row.reshape(13), flat)
            and torch.equal(again, flat)
        ):
            return None
    except Exception:  # a user module may reject a probe in any way: then it is no activation
        return None
    return flat


def _numpy_wrapper(function: Callable[[torch.Tensor], torch.Tensor], name: str) -> Callable:
    """A float64 numpy version of a torch callable."""

    def evaluate(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return function(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()

    evaluate.__qualname__ = name
    return evaluate


@functools.lru_cache(maxsize=1)
def _named_on_grid() -> tuple[tuple[Activation, np.ndarray], ...]:
    """Every parameter-free named activation (and relu6) with its values on the match grid."""
    named = [get_activation(name) for name in known_activations() if name not in ("linear", "prelu")]
    named.append(get_activation("hardtanh", min_val=0.0, max_val=6.0))
    return tuple((activation, activation(_MATCH_GRID)) for activation in named)


def match_named(function: Callable[[np.ndarray], np.ndarray]) -> Activation | None:
    """The named activation an element-wise callable computes, if any (its values on a grid of
    161 points in [-8, 8] agree to 1e-5), including ``leaky_relu(a)`` for any slope ``a``."""
    try:
        with np.errstate(all="ignore"):
            values = np.asarray(function(_MATCH_GRID.copy()), dtype=float)
    except Exception:  # a user callable may fail in any way: then it matches nothing
        return None
    if values.shape != _MATCH_GRID.shape or not np.all(np.isfinite(values)):
        return None
    for activation, expected in _named_on_grid():
        if np.allclose(values, expected, rtol=1e-5, atol=1e-6):
            return activation
    positive, negative = _MATCH_GRID > 0, _MATCH_GRID < 0
    slope = values[0] / _MATCH_GRID[0]
    if (
        np.allclose(values[positive], _MATCH_GRID[positive], rtol=1e-6, atol=1e-9)
        and np.allclose(values[negative], slope * _MATCH_GRID[negative], rtol=1e-6, atol=1e-9)
        and 0.0 <= slope < 1.0
    ):
        return get_activation("leaky_relu", negative_slope=float(slope)) if slope else get_activation("relu")
    return None


def _element_wise(function: Callable[[torch.Tensor], torch.Tensor], name: str) -> tuple[str, Activation | None]:
    """(role, activation) of an element-wise candidate: a named or custom activation, the identity
    (transparent), or "stop" when it is not element-wise and deterministic."""
    values = _probe_values(function)
    if values is None:
        return "stop", None
    if torch.equal(values, _PROBE):
        return "transparent", None
    wrapper = _numpy_wrapper(function, name)
    named = match_named(wrapper)
    if named is not None:
        return "activation", named
    try:
        return "activation", get_activation(wrapper)
    except InitlabError:
        return "stop", None


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    modes = [(item, item.training) for item in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for item, training in modes:
            item.training = training


def _is_stochastic(module: nn.Module) -> bool:
    """Whether the module's train-mode output depends on the random state (dropout, drop path)."""
    with torch.no_grad(), fixed_random_state():
        try:
            probe = torch.linspace(-1.0, 1.0, 64, dtype=torch.float64).reshape(4, 16) + 2.0
            first = module(probe.clone())
            torch.manual_seed(_SEED + 1)
            second = module(probe.clone())
        except Exception:  # not callable on a plain tensor: decided by the other checks
            return False
    return isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and not torch.equal(first, second)


def classify_module(module: nn.Module) -> tuple[str, Activation | None]:
    """(role, activation) of a module node; see the module docstring for the roles."""
    kind = layer_kind(module)
    if kind in WEIGHTED_KINDS:
        return "layer", None
    if kind == "prelu":
        return "activation", get_activation("prelu", negative_slope=float(getattr(module, "init", 0.25)))
    if kind == "norm" or isinstance(module, TRANSPARENT_MODULES):
        return "transparent", None
    try:
        activation = get_activation(module)
        return ("transparent", None) if activation.name == "linear" else ("activation", activation)
    except InitlabError:
        pass
    if any(True for _ in module.parameters()) or any(True for _ in module.children()):
        return "stop", None
    if module.training and _is_stochastic(module):
        return "transparent", None
    with _eval_mode(module):
        return _element_wise(module, type(module).__qualname__)


def module_label(name: str, module: nn.Module) -> str:
    """How a module appears in a finding: ``"act1 (ReLU)"``."""
    return f"{name} ({type(module).__name__})"


def _canonical_op(name: str) -> str:
    name = _DUNDER.get(name, name)
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def scalar_factor(op: str, constants: tuple, keywords: dict) -> float | None:
    """The constant a mul/div multiplies its graph input by (1/c for a division), if it is a number."""
    if op not in _SCALING_OPS:
        return None
    values = list(constants) + [value for key, value in keywords.items() if key == "other"]
    for value in values:
        if isinstance(value, torch.Tensor):
            if value.numel() != 1 or value.device.type == "meta":
                return None
            value = float(value.detach().reshape(()))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0:
            return float(value) if op == "mul" else 1.0 / float(value)
    return None


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
        function = functools.partial(
            getattr(torch.nn.functional, op), **{key: value for key, value in params.items() if key != "approximate"}
        )
        return _element_wise(function, op)
    return "stop", None


def _is_user_function(target: Any) -> bool:
    """A plain Python function that is not torch's (under fx: one marked with ``torch.fx.wrap``)."""
    module = getattr(target, "__module__", None) or ""
    return (
        callable(target)
        and not isinstance(target, str)
        and not module.startswith(("torch", "_operator", "operator", "builtins", "math"))
    )


def classify_user_function(function: Callable, constants: tuple, keywords: dict) -> tuple[str, Activation | None]:
    """A user function applied to one graph tensor: an activation if it acts element-wise."""
    bound = functools.partial(function, *constants, **keywords) if constants or keywords else function
    return _element_wise(bound, getattr(function, "__qualname__", type(function).__name__))


# -------------------------------------------------------------------- fx


def is_atomic(module: nn.Module) -> bool:
    """A module seen as one node: a weighted layer; a norm, PReLU or parameter-free module
    without children. Anything else is looked into: a norm-act layer holding its activation,
    a custom module computing with its own parameters (``x * self.gamma``)."""
    kind = layer_kind(module)
    if kind in WEIGHTED_KINDS:
        return True
    if any(True for _ in module.children()):
        return False
    return kind is not None or not any(True for _ in module.parameters())


class _LeafTracer(torch.fx.Tracer):
    """Atomic modules are leaves (see :func:`is_atomic`), and so are the other torch.nn modules."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return is_atomic(module) or (layer_kind(module) is None and super().is_leaf_module(module, qualified_name))


def _function_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", type(target).__name__)


def fx_graph(model: nn.Module) -> Graph:
    """The data-flow graph of ``model`` by torch.fx symbolic tracing (raises on failure)."""
    for module in model.modules():  # probe custom norms now: fx patches module calls while tracing
        layer_kind(module)
    with fixed_random_state():
        traced = _LeafTracer().trace(model)
    graph = Graph("fx")
    index_of: dict[torch.fx.Node, int] = {}
    for fx_node in traced.nodes:
        leaves, _ = tree_flatten((fx_node.args, fx_node.kwargs))
        inputs = [index_of[arg] for arg in leaves if isinstance(arg, torch.fx.Node) and arg in index_of]
        args = tuple(index_of.get(arg) if isinstance(arg, torch.fx.Node) else None for arg in fx_node.args)
        if fx_node.op == "placeholder":
            index_of[fx_node] = graph.add(Node(fx_node.name, "input", []))
        elif fx_node.op == "output":
            graph.add(Node("output", "output", inputs))
        elif fx_node.op == "call_module":
            module = model.get_submodule(fx_node.target)
            role, activation = classify_module(module)
            label = module_label(fx_node.target, module)
            index_of[fx_node] = graph.add(Node(label, role, inputs, fx_node.target, activation, args=args))
        elif fx_node.op in ("call_function", "call_method"):
            name = _function_name(fx_node.target)
            constants = tuple(arg for arg in fx_node.args[1:] if not isinstance(arg, torch.fx.Node))
            keywords = {k: v for k, v in fx_node.kwargs.items() if not isinstance(v, torch.fx.Node)}
            if _is_user_function(fx_node.target) and len(inputs) == 1:
                role, activation = classify_user_function(fx_node.target, constants, keywords)
            else:
                role, activation = classify_function(name, constants, keywords, len(inputs))
            op = _canonical_op(name)
            factor = scalar_factor(op, constants, keywords) if len(inputs) == 1 else None
            index_of[fx_node] = graph.add(
                Node(op, role, inputs, None, activation, op, args, factor, None, constants, keywords)
            )
    return graph


# -------------------------------------------------------------------- execution trace


def _first_shape(values: Any) -> tuple[int, ...] | None:
    for leaf in tree_flatten(values)[0]:
        if isinstance(leaf, torch.Tensor):
            return tuple(leaf.shape)
    return None


class _Recorder(TorchFunctionMode):
    """Builds the data-flow graph of one run: module hooks plus torch functions outside modules."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.graph = Graph("trace")
        self.producer: dict[int, int] = {}
        self.alive: list[torch.Tensor] = []  # keeps ids unique for the whole run
        self.depth = 0
        self.pending: list[tuple[list[int], tuple]] = []
        self.called: dict[int, nn.Module] = {}
        self.names = {id(module): name for name, module in model.named_modules()}

    # tensors ---------------------------------------------------------------
    def sources(self, values: Any) -> list[int]:
        leaves, _ = tree_flatten(values)
        return [
            self.producer[id(leaf)] for leaf in leaves if isinstance(leaf, torch.Tensor) and id(leaf) in self.producer
        ]

    def source(self, value: Any) -> int | None:
        return self.producer.get(id(value)) if isinstance(value, torch.Tensor) else None

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
            self.pending.append((self.sources((args, kwargs)), tuple(self.source(arg) for arg in args)))

    def after(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if self.depth == 1:
            name = self.names.get(id(module), type(module).__name__)
            inputs, positions = self.pending.pop()
            node = self.graph.add(
                Node(module_label(name, module), "module", inputs, name, args=positions, shape=_first_shape(output))
            )
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
        op = _canonical_op(name)
        constants = tuple(arg for arg in args[1:] if self.source(arg) is None)
        keywords = {key: value for key, value in kwargs.items() if self.source(value) is None}
        role, activation = classify_function(name, constants, keywords, len(inputs))
        factor = scalar_factor(op, constants, keywords) if len(inputs) == 1 else None
        node = self.graph.add(
            Node(
                op,
                role,
                inputs,
                None,
                activation,
                op,
                tuple(self.source(arg) for arg in args),
                factor,
                _first_shape(result),
                _plain(constants),
                _plain(keywords),
            )
        )
        self.produce(result, node)
        return result


def _plain(values: Any) -> Any:
    """Constants as kept in a node: numbers, strings and sizes as they are; tensors by shape only."""
    if isinstance(values, dict):
        return {key: _plain(value) for key, value in values.items()}
    if isinstance(values, (tuple, list)):
        return tuple(_plain(value) for value in values)
    if isinstance(values, torch.Tensor):
        return float(values.detach().reshape(())) if values.numel() == 1 and values.device.type != "meta" else None
    return values if isinstance(values, (int, float, str, bool, type(None), torch.dtype)) else None


def _cuda_devices(model: nn.Module) -> list[int]:
    return sorted({tensor.device.index or 0 for tensor in model.parameters() if tensor.device.type == "cuda"})


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[None]:
    """Run code on ``model`` and restore its buffers and the random states (torch on the CPU and
    the model's CUDA devices, numpy, Python), seeded with a fixed value meanwhile; the MHA fast
    path is switched off."""
    saved = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    fastpath = torch.backends.mha.get_fastpath_enabled() if hasattr(torch.backends, "mha") else None
    try:
        with fixed_random_state(_cuda_devices(model)):
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
    """The data-flow graph of one real run of ``model`` (in eval mode) on ``example_input``.

    Raises:
        InitlabError: the model rejects the input (the message repeats its shape).
    """
    recorder = _Recorder(model)
    recorder.produce(example_input, recorder.graph.add(Node("input", "input", [])))
    handles = []
    try:
        for module in model.modules():
            if is_atomic(module):
                handles.append(module.register_forward_pre_hook(recorder.before, with_kwargs=True))
                handles.append(module.register_forward_hook(recorder.after, with_kwargs=True))
        with preserved(model), _eval_mode(model), torch.no_grad(), recorder:
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
    queue: collections.deque[tuple[int, tuple[str, ...]]] = collections.deque(
        (reader, ()) for start in starts for reader in readers[start]
    )
    seen: set[int] = set()
    reached: list[tuple[int, Activation, tuple[str, ...]]] = []
    stops: list[str] = []
    while queue:
        index, via = queue.popleft()
        if index in seen:
            continue
        seen.add(index)
        node = graph.nodes[index]
        if node.role == "activation" and node.activation is not None:
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


def _reason(error: Exception) -> str:
    return _shorten(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", 120)


def _graph_without_input(model: nn.Module) -> tuple[Graph | None, str]:
    """fx, else a run on a built input; (None, why) when neither works."""
    from initlab.nn.inputs import candidate_inputs

    try:
        return fx_graph(model), "torch.fx symbolic trace"
    except Exception as error:  # fx raises many error types on untraceable code
        fx_failure = f"torch.fx could not trace the model ({_reason(error)})"
    tried = []
    for candidate, origin in candidate_inputs(model):
        try:
            graph = trace_graph(model, candidate)
        except InitlabError:
            tried.append(describe_input(candidate))
            continue
        return graph, (f"traced a run on a built input of shape {describe_input(candidate)} ({origin}); {fx_failure}")
    built = (
        f"no input built from the model's first layer ran ({', '.join(tried)})"
        if tried
        else "no input could be built from the model's first layer"
    )
    return None, f"{fx_failure}; {built}; pass example_input to trace a real run"


def discover(model: nn.Module, example_input: Any = None) -> Discovery:
    """The activation after every layer node of ``model``, and the structure around the layers.

    With ``example_input`` the model is run once on it and observed (``"trace"``);
    without it torch.fx symbolic tracing is tried (``"fx"``), then a run on an input
    built from the model (``"trace"``, see :mod:`initlab.nn.inputs`). When all fail,
    every layer's finding is ``"unknown"``, the note says why and a
    :class:`DiscoveryWarning` is issued.
    """
    from initlab.nn.structure import analyse

    graph: Graph | None
    if example_input is not None:
        graph, note = (
            trace_graph(model, example_input),
            f"traced a run on an input of shape {describe_input(example_input)}",
        )
    else:
        graph, note = _graph_without_input(model)
        if graph is None:
            warnings.warn(
                f"initlab could not see the computation of {type(model).__name__}: {note}. Every layer "
                f"gets the auto plan's default (Glorot normal) and the record says 'unknown'.",
                DiscoveryWarning,
                stacklevel=3,
            )
            return Discovery("unknown", note, {})
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
    modules = dict(model.named_modules())
    return Discovery(graph.method, note, found, analyse(graph, modules))
