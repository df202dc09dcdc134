"""``initlab.audit(model, batch)``: one forward and one backward pass with hooks, then verdicts.

The passes run under :func:`initlab.auditing.state.preserved` (the model and the global random
states are put back bit for bit) with the hooks of :class:`initlab.auditing.capture.Capture`
(removed on every exit path); the layers, verdicts and theory overlay are computed from
the records afterwards. The audit changes no process-wide setting (thread count, garbage
collector). An error raised by the user's code (model, ``loss_fn``, ``output_fn``) is
re-raised as an :class:`~initlab.errors.InitlabError` saying what the audit was doing,
chained to the original (``from error``), so that its traceback is kept; an error of the
audit's own measurements propagates unchanged, with a note saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab.auditing import jacobian as jacobian_module
from initlab.auditing.capture import Capture, Record, first_tensor, rows
from initlab.auditing.fixes import attach_fixes
from initlab.auditing.propagation import Propagation, carries_weights, propagation, resets_reference
from initlab.auditing.result import AuditReport, Finding, LayerReport
from initlab.auditing.state import preserved
from initlab.auditing.statistics import non_finite_count, norm_and_std, vector_norm
from initlab.auditing.theory_overlay import PASS_THROUGH, MLPLayer, plain_mlp_activation, predict
from initlab.auditing.thresholds import Thresholds
from initlab.auditing.verdicts import assess
from initlab.errors import InitlabError
from initlab.random import Stream, normal_


def audit(
    model: nn.Module,
    batch: Any,
    *,
    target: Any = None,
    loss_fn: Callable[[torch.Tensor, Any], torch.Tensor] | None = None,
    jacobian: bool = True,
    output_fn: Callable[[Any], torch.Tensor] | None = None,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    progress: Callable[[str], None] | None = None,
    verify_fixes: bool = True,
) -> AuditReport:
    """Check a model's initialization on a real batch, layer by layer, before training.

    Runs one forward and one backward pass with hooks and returns per-layer statistics
    (output mean/std/min/max/percentiles/histogram, pre-activation std, saturated
    fraction, dead units per unit, identical units, gradient norms and growth, weight
    gradient ratios), the input-output Jacobian spectrum, a mean-field overlay for plain
    MLPs, and verdicts with fixes (rules in :mod:`initlab.auditing.thresholds`).

    The model is left bit-identical: parameters, buffers (BatchNorm running statistics),
    train/eval modes, ``requires_grad`` flags and the global random states (torch, Python's
    ``random``, numpy's global generator) are restored, and every hook is removed, also
    when the model, the loss or the audit itself raises. No process-wide setting (thread
    count, garbage collector) is changed. Works inside ``torch.no_grad()``.

    Args:
        model: any ``nn.Module`` (MLP, CNN with BatchNorm, residual net, Transformer, GRU/LSTM...).
        batch: a tensor (``model(batch)``), a tuple/list of tensors (``model(*batch)``) or
            a dict (``model(**batch)``); finite values only.
        target: with ``loss_fn``: the backward pass uses ``loss_fn(output, target)``.
        loss_fn: a callable returning a scalar tensor. Without ``target``/``loss_fn`` a
            seeded unit-variance random cotangent is back-propagated from the output.
        jacobian: analyse the input-output Jacobian (needs a single floating tensor batch).
        output_fn: picks the tensor to audit from the model's output (needed for dicts;
            tuples/lists default to their first tensor).
        seed: seed of the random cotangent, of dropout during the audit and of the Lanczos vectors.
        thresholds: verdict thresholds (default :class:`~initlab.auditing.thresholds.Thresholds`).
        progress: called with a short description of each step as it starts (the command
            line draws it on a terminal).
        verify_fixes: when there is a definite finding, apply every fix to a deep copy of
            the model and audit the copy (see :mod:`initlab.auditing.fixes`); False gives the
            fixes unverified (for a model too large to hold twice in memory), with a note.

    Cost: two forward passes of the model (statistics, Jacobian) and at most eight backward
    passes (one for the statistics, one building the Jacobian's graph, at most six
    Jacobian-vector products, see :mod:`initlab.auditing.jacobian`), whatever the model's
    size. When there is a definite finding and ``verify_fixes`` is on, the fix check adds
    a deep copy of the model and, on it, two forward passes reading ``init_``'s plan and one
    forward and backward pass auditing it (``benchmarks/bench_audit.py`` gives the times).

    Returns:
        An :class:`~initlab.auditing.result.AuditReport`.

    Raises:
        InitlabError: a model that is not an ``nn.Module``, a batch that is not a tensor
            (or tuple/dict of tensors), an empty, sparse or meta batch, a model with meta
            parameters, a batch with NaN/inf, an output with no values, only one of ``target`` and
            ``loss_fn``, a loss that is not a scalar, an output that is not a floating
            tensor; or the model (the message repeats the batch's shape), ``loss_fn``,
            ``output_fn`` or the backward pass raised: the InitlabError is chained to that
            error (``__cause__``), whose traceback is kept.

    Example:
        >>> report = initlab.audit(model, torch.randn(64, 40))  # doctest: +SKIP
        >>> report.verdict, report.fixes  # doctest: +SKIP
    """
    _check_arguments(model, batch, target, loss_fn, output_fn, jacobian, seed)
    if not isinstance(verify_fixes, bool):
        raise InitlabError(f"audit: verify_fixes={verify_fixes!r} is invalid; expected True or False.")
    if progress is not None and not callable(progress):
        raise InitlabError(f"audit: progress={_short(progress)} is invalid; expected a callable step -> None.")
    limits = thresholds if thresholds is not None else Thresholds()
    if not isinstance(limits, Thresholds):
        raise InitlabError(f"audit: thresholds={thresholds!r} is invalid; expected an initlab.auditing.Thresholds.")
    notes: list[str] = []
    step = progress if progress is not None else _silent
    with preserved(model, seed), torch.inference_mode(False), torch.enable_grad():
        step("forward and backward pass with hooks")
        backward, layers, theory, figures = _statistics(
            model, batch, target, loss_fn, output_fn, seed, limits, notes, verify_fixes
        )
        spectrum = _jacobian(model, batch, output_fn, seed, notes, step) if jacobian else None
    return AuditReport(
        model=type(model).__name__,
        batch_shape=list(_first_shape(batch)),
        backward=backward,
        seed=seed,
        layers=layers,
        jacobian=spectrum,
        theory=theory,
        thresholds=limits.to_dict(),
        notes=notes,
        propagation=figures,
    )


def _silent(_step: str) -> None:
    """No progress display."""


def _statistics(
    model: nn.Module,
    batch: Any,
    target: Any,
    loss_fn: Callable | None,
    output_fn: Callable | None,
    seed: int,
    limits: Thresholds,
    notes: list[str],
    verify_fixes: bool,
) -> tuple[str, list[LayerReport], Any, Propagation]:
    """The forward and backward passes with hooks, then the layers with their verdicts and fixes,
    the theory overlay and the end-to-end figures: ``(backward kind, layers, theory, figures)``."""
    args, kwargs, leaves = _prepare_inputs(batch)
    capture = Capture(model, limits, seed)
    with capture:
        for leaf in leaves:
            capture.note_batch(leaf)
        output = _run_model(model, args, kwargs, capture, batch)
        capture.finish_forward()
        selected = _select_output(output, output_fn)
        gradients = _backward(selected, model, leaves, target, loss_fn, seed, notes, capture)
    layers = _layers(capture.records, leaves, gradients)
    figures = propagation(layers, rows(capture.records), gradients.output_norm)
    assess(layers, limits, figures)
    _check_final_output(selected, layers)

    def reaudit(fixed: nn.Module) -> list:
        return audit(
            fixed,
            batch,
            target=target,
            loss_fn=loss_fn,
            jacobian=False,
            output_fn=output_fn,
            seed=seed,
            thresholds=limits,
        ).findings

    note = attach_fixes(model, batch, layers, figures, reaudit if verify_fixes else None)
    if note is not None:
        notes.append(note)
    theory = _theory(layers, capture.records, batch, notes)
    return gradients.kind, layers, theory, figures


# --------------------------------------------------------------------------- input checks
def _tensors_of(batch: Any) -> list[tuple[str, torch.Tensor]]:
    if isinstance(batch, torch.Tensor):
        return [("batch", batch)]
    if isinstance(batch, (tuple, list)) and batch and all(isinstance(t, torch.Tensor) for t in batch):
        return [(f"batch[{i}]", t) for i, t in enumerate(batch)]
    if isinstance(batch, Mapping) and batch and all(isinstance(t, torch.Tensor) for t in batch.values()):
        return [(f"batch[{key!r}]", t) for key, t in batch.items()]
    raise InitlabError(
        f"audit: batch={_short(batch)} is invalid; expected a torch.Tensor, a non-empty tuple/list of tensors "
        "(passed as model(*batch)) or a dict of tensors (passed as model(**batch))."
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _first_shape(batch: Any) -> tuple[int, ...]:
    return tuple(_tensors_of(batch)[0][1].shape)


def _check_tensors(model: nn.Module, batch: Any) -> None:
    """Dense, non-empty batch tensors with values; a model whose tensors have values."""
    meta = next((name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta), None)
    if meta is not None:
        raise InitlabError(
            f"audit: model parameter or buffer '{meta}' is on the meta device (it has a shape but no values); "
            "expected a model with values to audit: materialise it first (model.to_empty(device='cpu'), "
            "then initialise it, e.g. initlab.init_(model, 'auto'))."
        )
    for name, tensor in _tensors_of(batch):
        if tensor.is_meta:
            raise InitlabError(
                f"audit: {name} (shape {tuple(tensor.shape)}) is on the meta device (no values); expected a batch "
                "with values, e.g. torch.randn(...) on the model's device."
            )
        if tensor.layout != torch.strided:
            raise InitlabError(
                f"audit: {name} (shape {tuple(tensor.shape)}) is a {tensor.layout} tensor; expected a dense tensor "
                f"(the audit measures every value): pass {name}.to_dense()."
            )
        if tensor.ndim == 0 or tensor.shape[0] == 0 or tensor.numel() == 0:
            raise InitlabError(
                f"audit: {name} (shape {tuple(tensor.shape)}) is empty; expected a batch whose first dimension "
                "indexes at least one sample, each with at least one value (e.g. shape (32, 40))."
            )


def _check_arguments(model, batch, target, loss_fn, output_fn, jacobian, seed) -> None:
    if not isinstance(model, nn.Module):
        raise InitlabError(f"audit: model={_short(model)} is invalid; expected a torch.nn.Module.")
    _check_tensors(model, batch)
    for name, tensor in _tensors_of(batch):
        if tensor.is_floating_point() or tensor.is_complex():
            bad = non_finite_count(tensor)
            if bad:
                raise InitlabError(
                    f"audit: {name} (shape {tuple(tensor.shape)}) holds {bad} NaN/inf values; expected finite "
                    "values. Clean or impute the data first: the audit checks the model, not the data."
                )
    if (target is None) != (loss_fn is None):
        given, missing = ("target", "loss_fn") if loss_fn is None else ("loss_fn", "target")
        raise InitlabError(
            f"audit: {given} was given without {missing}; expected both (backward from loss_fn(output, target)) "
            "or neither (backward from a seeded random cotangent)."
        )
    if loss_fn is not None and not callable(loss_fn):
        raise InitlabError(
            f"audit: loss_fn={_short(loss_fn)} is invalid; expected a callable (output, target) -> loss."
        )
    if output_fn is not None and not callable(output_fn):
        raise InitlabError(f"audit: output_fn={_short(output_fn)} is invalid; expected a callable output -> tensor.")
    if not isinstance(jacobian, bool):
        raise InitlabError(f"audit: jacobian={jacobian!r} is invalid; expected True or False.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InitlabError(f"audit: seed={seed!r} is invalid; expected an integer.")


# --------------------------------------------------------------------------- running
def _prepare_inputs(batch: Any) -> tuple[tuple, dict, list[torch.Tensor]]:
    """Detached copies of the batch tensors; floating ones require grad (the first layer's input gradient)."""

    def leaf(tensor: torch.Tensor) -> torch.Tensor:
        copy = tensor.detach().clone()
        return copy.requires_grad_(True) if copy.is_floating_point() else copy

    args: tuple[torch.Tensor, ...] = ()
    kwargs: dict[str, torch.Tensor] = {}
    if isinstance(batch, torch.Tensor):
        args = (leaf(batch),)
    elif isinstance(batch, Mapping):
        kwargs = {key: leaf(value) for key, value in batch.items()}
    else:
        args = tuple(leaf(value) for value in batch)
    leaves = [t for t in (*args, *kwargs.values()) if t.requires_grad]
    return args, kwargs, leaves


def _run_model(model: nn.Module, args: tuple, kwargs: dict, capture: Capture, batch: Any) -> Any:
    """``model(*args, **kwargs)`` with the capture's functional-activation mode; the model's
    own failure becomes an InitlabError naming the module and the batch's shape."""
    try:
        with capture.functional_activations():
            output = model(*args, **kwargs)
    except Exception as error:
        if error is capture.failure:
            raise
        where = capture.stack[-1] if capture.stack else "<model>"
        shapes = ", ".join(f"{name} shape {tuple(t.shape)}" for name, t in _tensors_of(batch))
        raise InitlabError(
            f"audit: the model raised {type(error).__name__} in module '{where}' during the audit's forward pass "
            f"on the batch ({shapes}): {error}. Expected a batch the model accepts: check the batch's shape, "
            "dtype and device."
        ) from error
    if capture.failure is not None:  # the model caught an error of the capture: the records are incomplete
        raise capture.failure
    return output


def _select_output(output: Any, output_fn: Callable | None) -> torch.Tensor:
    if output_fn is not None:
        try:
            selected = output_fn(output)
        except Exception as error:
            raise InitlabError(
                f"audit: output_fn raised {type(error).__name__} on the model's output (a {type(output).__name__}): {error}; "
                "expected a callable returning the tensor to audit."
            ) from error
        hint = "output_fn must return a floating-point tensor of the model's output"
    elif isinstance(output, Mapping):
        raise InitlabError(
            f"audit: the model returned a dict with keys {sorted(map(str, output))}; pass "
            "output_fn=lambda out: out['<key>'] to say which tensor to audit."
        )
    else:
        selected = first_tensor(output)
        hint = "pass output_fn to pick the tensor to audit"
    if not isinstance(selected, torch.Tensor) or not selected.is_floating_point():
        raise InitlabError(
            f"audit: the audited output is {type(selected).__name__} "
            f"{getattr(selected, 'dtype', '')}; expected a floating-point tensor; {hint}."
        )
    if selected.numel() == 0:
        raise InitlabError(
            f"audit: the audited output has shape {tuple(selected.shape)}: no values to audit; expected an output "
            "with at least one value per sample (does a layer have 0 output features?)."
        )
    return selected


@dataclass
class Gradients:
    """What the backward pass measured besides the capture's gradient hooks.

    Attributes:
        kind: ``"loss"`` or ``"random_cotangent"``.
        output_norm: ``||dL/d output||`` (None without a backward pass).
        input_norm: ``||dL/d batch||`` of the first floating batch tensor.
        parameters: ``id(parameter) -> gradient`` (None when unused).
    """

    kind: str
    output_norm: float | None = None
    input_norm: float | None = None
    parameters: dict[int, torch.Tensor | None] = field(default_factory=dict)


def _loss(output: torch.Tensor, target: Any, loss_fn: Callable) -> torch.Tensor:
    """``loss_fn(output, target)`` as a 0-d tensor; the user's failure becomes an InitlabError."""
    try:
        loss = loss_fn(output, target)
    except Exception as error:
        raise InitlabError(
            f"audit: loss_fn raised {type(error).__name__} on the model's output (shape {tuple(output.shape)}) and "
            f"the target: {error}; expected loss_fn(output, target) to return a scalar tensor."
        ) from error
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise InitlabError(f"audit: loss_fn returned {_short(loss)}; expected a scalar tensor (e.g. reduction='mean').")
    return loss.reshape(())


def _random_cotangent(output: torch.Tensor, seed: int) -> torch.Tensor:
    """Unit-variance normal values shaped like ``output``, from initlab's stream ``audit.cotangent``."""
    cotangent = torch.empty(output.numel(), dtype=torch.float64)
    normal_(cotangent, Stream(seed, "audit.cotangent"))
    return cotangent.reshape(output.shape).to(dtype=output.dtype, device=output.device)


def _backward(
    output: torch.Tensor,
    model: nn.Module,
    leaves: list[torch.Tensor],
    target: Any,
    loss_fn: Callable | None,
    seed: int,
    notes: list[str],
    capture: Capture,
) -> Gradients:
    """One backward pass with ``torch.autograd.grad`` (parameters' ``.grad`` stay untouched)
    from ``loss_fn(output, target)`` or, without ``loss_fn``, from a seeded random cotangent."""
    result = Gradients("loss" if loss_fn is not None else "random_cotangent")
    if not output.requires_grad:
        notes.append("no backward pass: the output does not depend on any parameter or floating input")
        return result
    parameters = [p for p in model.parameters() if p.requires_grad]
    inputs = parameters + leaves
    if loss_fn is not None:
        root, cotangent = _loss(output, target, loss_fn), None
    else:
        root, cotangent = output, _random_cotangent(output, seed)
    try:
        output_gradient, *grads = torch.autograd.grad(root, [output, *inputs], cotangent, allow_unused=True)
    except Exception as error:
        if error is capture.failure:
            raise
        raise InitlabError(
            f"audit: the backward pass raised {type(error).__name__}: {error}; expected a differentiable model."
        ) from error
    result.output_norm = None if output_gradient is None else vector_norm(output_gradient)
    result.parameters = {id(parameter): gradient for parameter, gradient in zip(parameters, grads)}
    if leaves and grads[len(parameters)] is not None:
        result.input_norm = vector_norm(grads[len(parameters)])
    return result


def _check_final_output(output: torch.Tensor, layers: list[LayerReport]) -> None:
    """A NaN/inf in the audited output that no layer produced (code after the last recorded
    module, e.g. ``torch.log(self.head(x) - 100)``) is a ``non_finite`` finding at the last layer."""
    count = non_finite_count(output)
    if not count or not layers or any(f.kind == "non_finite" for layer in layers for f in layer.findings):
        return
    last = layers[-1]
    last.findings.append(
        Finding(
            kind="non_finite",
            layer=last.index,
            layer_name=last.name,
            direction="forward",
            rule=f"non_finite_model_output={count} > 0",
            value=float(count),
            threshold=0.0,
            message=f"the model's output holds {count} NaN/inf values of {output.numel()}, produced after the last "
            f"layer ('{last.name}', whose output is finite) by the code of forward",
            fix="check the operations applied after that layer in forward (log/sqrt/division/exp) and the range "
            "of their inputs",
        )
    )


# --------------------------------------------------------------------------- layers
def _own_weights(module: nn.Module | None) -> list[tuple[str, nn.Parameter]]:
    if module is None:
        return []
    return [(name, p) for name, p in module.named_parameters(recurse=False) if "weight" in name]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0 or not math.isfinite(denominator):
        return None
    return numerator / denominator


def _weight_figures(layer: LayerReport, record: Record, gradients: Gradients) -> None:
    """Weight norm (of all the module's own weights) and std (of the first), the same for
    their gradients, and the ratio of the two norms."""
    weights = _own_weights(record.module) if record.first_call else []
    if not weights:
        return
    _, main = weights[0]
    layer.weight_shape = list(main.shape)
    main_norm, layer.weight_std = norm_and_std(main)
    layer.weight_norm = math.sqrt(main_norm**2 + sum(vector_norm(p) ** 2 for _, p in weights[1:]))
    grads = [gradients.parameters.get(id(p)) for _, p in weights]
    if grads[0] is not None:
        main_grad_norm, layer.weight_grad_std = norm_and_std(grads[0])
        others = sum(vector_norm(g) ** 2 for g in grads[1:] if g is not None)
        layer.weight_grad_norm = math.sqrt(main_grad_norm**2 + others)
        layer.grad_to_weight_ratio = _ratio(layer.weight_grad_norm, layer.weight_norm)


_LOST = 1e-30
"""A reference RMS below this has underflowed (float32 subnormals): ratios to it mean nothing."""


def _chains(records: list[Record], leaves: list[torch.Tensor]) -> dict[int, tuple[float, int]]:
    """Per record, the reference of the signal entering it: ``(reference RMS, weight layers since)``.

    The signal is followed along the tensors recorded calls pass to each other: it starts at
    the batch, at every normalization layer and embedding (their output scale is their own)
    and at every call whose input comes from an unrecorded operation (a residual addition,
    an attention product, a gate): there the measured RMS is the new reference.
    """
    batch_rms = vector_norm(leaves[0]) / leaves[0].numel() ** 0.5 if leaves and leaves[0].numel() > 1 else None
    after: dict[int, tuple[float | None, int]] = {-1: (batch_rms, 0)}
    entering: dict[int, tuple[float, int]] = {}
    for record in records:
        reference, count = after.get(record.source, (None, 0)) if record.source is not None else (None, 0)
        if reference is not None and reference > _LOST:
            entering[record.index] = (reference, count)
        if reference is None or resets_reference(record.module):
            after[record.index] = (record.output.rms, 0)
        else:
            after[record.index] = (reference, count + carries_weights(record.module))
    return entering


def _layers(records: list[Record], leaves: list[torch.Tensor], gradients: Gradients) -> list[LayerReport]:
    """One :class:`LayerReport` per row, with gains, reference ratios and gradient growth."""
    entering = _chains(records, leaves)
    grad_norms = {record.index: record.grad_norm for record in records}
    grad_norms[-1] = gradients.input_norm
    layers = []
    for number, row in enumerate(rows(records), start=1):
        base, last = row[0], row[-1]
        reference, count = entering.get(base.index, (None, 0))
        layer = LayerReport(
            index=number,
            name=base.name,
            kind=" → ".join(record.module_type for record in row),
            module_type=base.module_type,
            activation=None if last.activation is None else last.activation.name,
            activation_name=last.name if len(row) == 2 else None,
            output=last.output,
            activation_params={} if last.activation is None else dict(last.activation.params),
            pre_activation=base.output if len(row) == 2 else None,
            input_std=base.input_std,
            input_rms=base.input_rms,
            carries_weights=carries_weights(base.module),
            saturated_fraction=last.saturated_fraction,
            symmetric_units=base.symmetric_units,
            grad_output_norm=last.grad_norm,
            grad_output_std=last.grad_std,
        )
        layer.gain = _ratio(last.output.rms, base.input_rms)
        layer.signal_ratio = _ratio(base.input_rms, reference)
        layer.signal_depth = count if reference is not None else None
        if last.dead is not None:
            layer.dead_units, layer.units = last.dead
        layer.grad_input_norm = None if base.source is None else grad_norms.get(base.source)
        layer.grad_growth = _ratio(layer.grad_input_norm, layer.grad_output_norm)
        layer.grad_ratio = _ratio(layer.grad_input_norm, gradients.output_norm)
        _weight_figures(layer, base, gradients)
        layers.append(layer)
    return layers


# --------------------------------------------------------------------------- theory and Jacobian
def _mlp_chain(layers: list[LayerReport], records: list[Record]) -> list[MLPLayer] | None:
    """The Linear layers of ``layers`` if the model is one chain of Linear (+ activation) layers."""
    grouped = rows(records)
    chain: list[MLPLayer] = []
    expected_source = -1
    for layer, row in zip(layers, grouped):
        base = row[0]
        if base.source != expected_source or not isinstance(base.module, (nn.Linear, *PASS_THROUGH)):
            return None
        if type(base.module) is nn.Linear:
            q = base.output.rms**2
            chain.append(MLPLayer(layer.index, base.module, q, layer.activation))
        expected_source = row[-1].index
    return chain


def _theory(layers: list[LayerReport], records: list[Record], batch: Any, notes: list[str]):
    if not isinstance(batch, torch.Tensor) or not batch.is_floating_point():
        return None
    chain = _mlp_chain(layers, records)
    activation = plain_mlp_activation(chain) if chain else None
    if chain is None or activation is None:
        return None
    q_input = vector_norm(batch) ** 2 / batch.numel() if batch.numel() else math.nan  # mean(x^2)
    try:
        return predict(chain, activation, q_input)
    except ImportError as error:
        notes.append(f"theory overlay skipped: initlab.theory is not available ({error})")
    except InitlabError as error:
        notes.append(f"theory overlay skipped: {error}")
    return None


def _jacobian(
    model: nn.Module, batch: Any, output_fn: Callable | None, seed: int, notes: list[str], step: Callable[[str], None]
):
    if not isinstance(batch, torch.Tensor) or not batch.is_floating_point():
        notes.append("Jacobian skipped: it needs a single floating-point tensor batch")
        return None

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return _select_output(model(inputs), output_fn)

    try:
        return jacobian_module.jacobian_spectrum(forward, batch, seed=seed, progress=step)
    except jacobian_module.NotPerSample as error:
        notes.append(f"Jacobian skipped: {error}")
    except RuntimeError as error:
        notes.append(f"Jacobian skipped: {type(error).__name__}: {error}")
    return None
