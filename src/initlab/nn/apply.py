"""``init_``: apply a plan to every parameter of a model, once, and record it.

Every value comes from the scheme's ``init_(tensor, layout=..., seed=seed,
name=<first qualified name>)``, so it depends only on (seed, parameter name,
element index): never on the device, the dtype the model was built in, the
order of initialization or whether the model was built on the meta device
(``to_empty`` then ``init_`` gives bit-identical tensors to a CPU build;
note that ``to_empty`` unties tied parameters: tie them again before ``init_``).
Tied parameters are initialised once, under their first name in
``named_parameters()``. The running statistics of the norm layers the plan
covers (all of them under the auto plan) are reset (mean 0, variance 1, 0
batches) so that the whole ``state_dict`` is defined after a meta build;
other buffers are not touched.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.errors import InitlabError, bad_value
from initlab.fans import Layout, fans
from initlab.nn.auto import Choice, Target, auto_choice
from initlab.nn.discover import Discovery, discover
from initlab.nn.layers import is_norm, layer_kind, param_layout, role
from initlab.nn.partial import Partial, as_partial
from initlab.nn.plan import AUTO, Plan, Rule, as_plan
from initlab.nn.record import InitRecord, Row, measure
from initlab.nn.residual import Residual, Scaled
from initlab.schemes import Scheme, zeros
from initlab.schemes.variance import VarianceScaling


@dataclass
class Assignment:
    """One unique parameter and what will be written into it."""

    name: str
    aliases: list[str]
    module_name: str
    module: nn.Module
    tensor: torch.Tensor
    layout: Layout | None
    choice: Choice


def _unique_parameters(model: nn.Module) -> list[tuple[str, list[str], torch.Tensor]]:
    """(first name, other names, tensor) per parameter object, in named_parameters() order."""
    by_id: dict[int, tuple[str, list[str], torch.Tensor]] = {}
    for name, tensor in model.named_parameters(remove_duplicate=False):
        entry = by_id.setdefault(id(tensor), (name, [], tensor))
        if entry[0] != name:
            entry[1].append(name)
    return list(by_id.values())


def check_model(model: Any, where: str) -> None:
    if not isinstance(model, nn.Module):
        raise bad_value(where, "model", type(model).__name__, "a torch.nn.Module")
    if next(model.parameters(), None) is None:
        raise InitlabError(
            f"{where}: model={type(model).__name__} has no parameters; expected a model with at "
            f"least one parameter to initialise."
        )


class _Resolver:
    """Turns a plan into one :class:`Assignment` per unique parameter."""

    def __init__(self, model: nn.Module, plan: Plan, example_input: Any) -> None:
        self.model, self.plan, self.example_input = model, plan, example_input
        self.modules = dict(model.named_modules(remove_duplicate=False))
        self.rules = list(plan.rules) + ([plan.default] if isinstance(plan.default, Rule) else [])
        self.used: list[int] = [0] * len(plan.rules)
        self.discovery: Discovery | None = None
        self.frozen_means_kept = any(tensor.requires_grad for tensor in model.parameters())

    def discover(self) -> Discovery:
        if self.discovery is None:
            self.discovery = discover(self.model, self.example_input)
        return self.discovery

    def auto(self, target: Target) -> Choice:
        return auto_choice(target, self.modules, self.discover)

    def choose(self, target: Target, name: str) -> Choice:
        module_name, module, local = target.module_name, target.module, target.local_name
        for index, rule in enumerate(self.rules):
            if not rule.selects(module_name, name, module):
                continue
            spec = rule.spec_for(local)
            if spec is None:
                continue
            if index < len(self.used):
                self.used[index] += 1
            label = rule.describe() if index < len(self.plan.rules) else f"default {rule.describe()}"
            if isinstance(spec, str):  # AUTO, the one spec that is a string
                choice = self.auto(target)
                return Choice(
                    choice.scheme,
                    choice.activation,
                    choice.found_by,
                    choice.gain,
                    "; ".join(filter(None, [f"auto via {label}", choice.note])),
                    rule.layout_compat,
                )
            return Choice(spec, None, f"rule: {label}", _scheme_gain(spec), layout_compat=rule.layout_compat)
        if self.plan.default == AUTO:
            return self.auto(target)
        return Choice(None, note="no rule covers it and the plan's default is None")

    def target(self, name: str, aliases: list[str], tensor: torch.Tensor) -> Target:
        """The parameter as seen from its first owner that is a known layer (else its first name)."""
        owners = [name, *aliases]
        first = next(
            (owner for owner in owners if layer_kind(self.modules[owner.rpartition(".")[0]]) is not None), name
        )
        module_name, _, local = first.rpartition(".")
        tied = tuple(dict.fromkeys(owner.rpartition(".")[0] for owner in owners if owner != first))
        return Target(
            module_name,
            self.modules[module_name],
            local,
            tensor,
            tuple(t for t in tied if t != module_name),
            self.frozen_means_kept,
        )

    def layout(self, target: Target, choice: Choice) -> Layout | None:
        structure = None if self.discovery is None else self.discovery.structure
        blocks = structure.blocks.get(target.module_name, (1, ""))[0] if structure is not None else 1
        layout = param_layout(target.module, target.local_name, target.tensor, blocks)
        if layout is not None and choice.layout_compat != layout.compat:
            layout = dataclasses.replace(layout, compat=choice.layout_compat)
        return layout

    def resolve(self) -> list[Assignment]:
        assignments = []
        for name, aliases, tensor in _unique_parameters(self.model):
            target = self.target(name, aliases, tensor)
            choice = self.choose(target, name)
            assignments.append(
                Assignment(
                    name, aliases, target.module_name, target.module, tensor, self.layout(target, choice), choice
                )
            )
        if self.plan.strict:
            unused = [rule.describe() for rule, count in zip(self.plan.rules, self.used) if count == 0]
            if unused:
                raise InitlabError(
                    f"init_: strict plan: {', '.join(unused)} matched no parameter of "
                    f"{type(self.model).__name__}; expected every rule to cover at least one. "
                    f"Check the glob against the names in model.named_parameters()."
                )
        if self.plan.residual is not None:
            _apply_residual(assignments, self.plan.residual)
        return assignments


def _scheme_gain(scheme: Scheme) -> float | None:
    """The gain a scheme applies: sqrt(scale) of variance scaling, ``gain`` of orthogonal/identity."""
    scale = getattr(scheme, "scale", None)
    return scale**0.5 if scale is not None else getattr(scheme, "gain", None)


def _apply_residual(assignments: list[Assignment], residual: Residual) -> None:
    """Scale or zero the weights of the layers that end a residual branch."""
    matched = sorted({a.module_name for a in assignments if residual.matches(a.module_name)})
    if not matched:
        raise InitlabError(
            f"init_: residual match={residual.match!r} selects no layer; expected a glob of the "
            f"branch-output layers' names (e.g. 'blocks.*.fc2')."
        )
    factor, n_branches = residual.factor(len(matched)), residual.branches(len(matched))
    for assignment in assignments:
        local = assignment.name.rpartition(".")[2]
        choice = assignment.choice
        if not residual.matches(assignment.module_name) or role(local) == "bias" or choice.scheme is None:
            continue
        scheme: Scheme
        if residual.mode == "zero":
            scheme, note = zeros(), "residual branch output: zero (Fixup/ReZero)"
        else:
            scheme = Scaled(choice.scheme, factor)
            note = f"residual branch output: x{factor:.4g} = 1/sqrt(2*{n_branches})"
        assignment.choice = Choice(
            scheme, choice.activation, choice.found_by, choice.gain, "; ".join(filter(None, [choice.note, note]))
        )


def _activation_text(choice: Choice) -> str | None:
    activation = choice.activation
    if activation is None:
        return None
    params = ", ".join(
        f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in activation.params.items()
    )
    return f"{activation.name}({params})" if params else activation.name


def _row(assignment: Assignment, seed: int, status: str) -> Row:
    choice, tensor = assignment.choice, assignment.tensor
    shape = tuple(tensor.shape)
    row = Row(
        name=assignment.name,
        shape=shape,
        dtype=str(tensor.dtype).removeprefix("torch."),
        status=status if choice.scheme is not None else "untouched",
        aliases=list(assignment.aliases),
        note=choice.note,
    )
    if choice.scheme is None:
        return row
    scheme, layout = choice.scheme, assignment.layout
    fan_counts = _check_applicable(scheme, assignment.name, shape, layout)
    row.layout = None if layout is None else layout.to_dict()
    row.scheme, row.scheme_name = scheme.to_dict(), _display_name(scheme)
    row.fans = None if fan_counts is None else fan_counts.to_dict()
    row.activation, row.found_by, row.gain = _activation_text(choice), choice.found_by, choice.gain
    row.target_std = scheme.target_std(fan_counts, shape=shape)
    row.seed, row.stream = seed, assignment.name
    return row


def _display_name(scheme: Scheme) -> str:
    """A scheme's name, with the scale of an unlabelled variance scaling (``variance_scaling(2.35)``)."""
    if isinstance(scheme, Scaled):
        return f"{_display_name(scheme.base)} x{scheme.factor:.4g}"
    if isinstance(scheme, VarianceScaling) and not scheme.label:
        return f"variance_scaling({scheme.scale:.4g})"
    return scheme.name


_MIN_DIMS = {"orthogonal": 2, "identity": 2, "sparse": 2, "delta_orthogonal": 3}


def _check_applicable(scheme: Scheme, name: str, shape: tuple[int, ...], layout: Layout | None):
    """The fans of a fan-based scheme; raises before anything is written if it cannot apply."""
    base = scheme.base if isinstance(scheme, Scaled) else scheme
    where = f"{scheme.name} cannot initialise {name!r} (shape {shape})"
    needed = _MIN_DIMS.get(base.kind, 0)
    if len(shape) < needed:
        raise InitlabError(
            f"{where}: it needs a tensor with {needed} or more dimensions. Use zeros() or "
            f"constant(value) for biases, ones() for norm weights."
        )
    if not base.fan_based:
        return None
    try:
        return fans(shape, layout)
    except InitlabError as error:
        raise InitlabError(f"{where}: " + str(error).removeprefix("fans: ")) from None


def _check_materialised(assignments: list[Assignment]) -> None:
    for assignment in assignments:
        if assignment.choice.scheme is not None and assignment.tensor.device.type == "meta":
            raise InitlabError(
                f"init_: parameter {assignment.name!r} (shape {tuple(assignment.tensor.shape)}) is on the meta "
                f"device and has no storage; call model.to_empty(device=...) before init_."
            )


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise bad_value("init_", "seed", seed, "an integer")
    return int(seed)


_LOADED = "loaded from the checkpoint: left as is"


def plan_model(
    model: nn.Module, plan: Any = AUTO, *, example_input: Any = None, partial: Partial | None = None
) -> tuple[list[Assignment], Discovery | None]:
    """Resolve ``plan`` for ``model`` without touching it: the assignments and the discovery used.

    With ``partial``, the parameters it does not select get no scheme (they stay as loaded).
    """
    check_model(model, "init_")
    resolver = _Resolver(model, as_plan(plan), example_input)
    assignments = resolver.resolve()
    if partial is not None:
        for assignment in assignments:
            if not partial.selects([assignment.name, *assignment.aliases]):
                assignment.choice = Choice(None, note=_LOADED)
    return assignments, resolver.discovery


def _record(assignments, discovery, seed, status, partial: Partial | None = None) -> InitRecord:
    rows = [_row(assignment, seed, status) for assignment in assignments]
    for row in rows:
        if row.note == _LOADED:
            row.status = "loaded"
    return InitRecord(
        seed=seed,
        discovery="" if discovery is None else discovery.method,
        discovery_note="" if discovery is None else discovery.note,
        rows=rows,
        partial=None if partial is None else partial.to_dict(sum(row.status == "loaded" for row in rows)),
    )


def preview(
    model: nn.Module, plan: Any = AUTO, *, seed: int = 0, example_input: Any = None, only: Any = None
) -> InitRecord:
    """What :func:`init_` would do, without changing the model (rows have status ``"planned"``)."""
    partial = as_partial(model, only)
    assignments, discovery = plan_model(model, plan, example_input=example_input, partial=partial)
    return _record(assignments, discovery, _check_seed(seed), "planned", partial)


def init_(
    model: nn.Module,
    plan: Any = AUTO,
    *,
    seed: int = 0,
    example_input: Any = None,
    residual: Residual | None = None,
    only: Any = None,
) -> InitRecord:
    """Initialise every parameter of ``model`` by ``plan``; returns the :class:`InitRecord`.

    Args:
        model: any ``nn.Module`` with parameters, on any device and float dtype;
            a meta-built model must be materialised with ``to_empty`` first.
        plan: ``"auto"`` (choose from the activations actually used; see
            :mod:`initlab.nn.auto`), a :class:`Plan`, a list of :class:`Rule`, or
            a plan dict / Path.
        seed: the seed; each parameter's values depend only on (seed, its name, index).
        example_input: an input the model accepts (a tensor, a tuple of
            positional arguments or a dict of keyword arguments). With it the
            model is run once (without lasting effect) to see which activation
            follows each layer; without it torch.fx tracing is tried, then a
            run on an input built from the model (:mod:`initlab.nn.inputs`).
        residual: residual-aware treatment of branch-output layers (overrides ``plan.residual``).
        only: initialise only these parameters and leave every other tensor
            bit-identical: the result of :func:`initlab.nn.load_matching` (missing
            and shape-mismatched keys), of ``model.load_state_dict(state,
            strict=False)`` (missing keys) or a list of names; see
            :mod:`initlab.nn.partial`. The record keeps the sets (``partial``).

    Raises:
        InitlabError: a model without parameters, a strict rule matching
            nothing, a scheme that cannot apply to a parameter (e.g. orthogonal
            on a 1-D bias), an example input the model rejects, meta tensors,
            names in ``only`` that the model does not have.
    """
    plan = as_plan(plan)
    if residual is not None:
        plan = Plan(plan.rules, plan.default, plan.strict, residual)
    return apply_plan(model, plan, seed=seed, example_input=example_input, only=only)


def apply_plan(
    model: nn.Module, plan: Plan, *, seed: int, example_input: Any = None, measure_values: bool = True, only: Any = None
) -> InitRecord:
    """:func:`init_` for a :class:`Plan`; ``measure_values=False`` skips the measured std/mean/probes
    (for weights about to change anyway, as in LSUV's pre-initialization; :func:`verify` skips such rows).
    """
    seed = _check_seed(seed)
    partial = as_partial(model, only)
    assignments, discovery = plan_model(model, plan, example_input=example_input, partial=partial)
    record = _record(assignments, discovery, seed, "initialised", partial)  # checks every scheme before any write
    _check_materialised(assignments)
    todo = [
        (assignment, row) for assignment, row in zip(assignments, record.rows) if assignment.choice.scheme is not None
    ]
    if measure_values:
        _write_and_measure(todo, seed)
    else:
        for assignment, _ in todo:
            _write(assignment, seed)
    touched = {id(a.module) for a in assignments if a.choice.scheme is not None}
    if partial is not None:
        record.buffers_reset = _reset_norm_buffers(model, lambda module: True, partial.names)
    else:
        record.buffers_reset = _reset_norm_buffers(model, lambda module: plan.default == AUTO or id(module) in touched)
    return record


def _write_and_measure(todo: list[tuple[Assignment, Row]], seed: int) -> None:
    """Write every parameter, then record its std, mean and probes (measured from the tensor)."""
    for assignment, row in todo:
        _write(assignment, seed)
        row.measured_std, row.measured_mean, row.probes = measure(assignment.tensor)


def _write(assignment: Assignment, seed: int) -> None:
    """Fill one parameter (and zero an embedding's padding row)."""
    # detach(): the same storage without autograd tracking, so that the fill pool's
    # threads (where grad mode is on by default) may write views of a Parameter.
    tensor, scheme = assignment.tensor.detach(), assignment.choice.scheme
    if scheme is None:
        raise InitlabError(f"init_: {assignment.name!r} has no scheme to write (an error of initlab, not of the model)")
    scheme.init_(tensor, layout=assignment.layout, seed=seed, name=assignment.name)
    module = assignment.module
    padding = getattr(module, "padding_idx", None)
    if (
        isinstance(module, (nn.Embedding, nn.EmbeddingBag))
        and padding is not None
        and assignment.name.endswith("weight")
    ):
        with torch.no_grad():
            assignment.tensor[padding].zero_()


def _reset_norm_buffers(
    model: nn.Module, covered: Callable[[nn.Module], bool], only: frozenset[str] | None = None
) -> list[str]:
    """Reset the running statistics of the norm layers the plan covers; their names.

    A norm layer is covered when the plan initialised one of its parameters, or, for
    the auto plan, always (a BatchNorm without affine parameters too). With ``only``
    (a partial init), exactly the norms whose running statistics are named in it.
    """
    reset: list[str] = []
    for name, module in model.named_modules():
        if only is not None and f"{name}.running_mean".lstrip(".") not in only:
            continue
        if (
            is_norm(module)
            and covered(module)
            and hasattr(module, "reset_running_stats")
            and getattr(module, "track_running_stats", False)
        ):
            if module.running_mean is not None and module.running_mean.device.type != "meta":
                module.reset_running_stats()
                reset.extend(
                    f"{name}.{buffer}" for buffer, value in module.named_buffers(recurse=False) if value is not None
                )
    return reset
