"""The fix of every finding, from one source of truth: what ``initlab.init_`` would do.

The audit never derives a std of its own. It asks :func:`initlab.nn.preview` (the auto plan,
with the same discovery, fans, gains, groups, ties and readout rule as ``init_``, run on the
audited batch) what ``init_`` would write into each parameter, and compares it with what the
parameter holds:

* a layer finding (identical, dead or saturated units, a layer that multiplies its input,
  NaN/inf) names the parameters of that layer that differ from the plan;
* a network finding (vanishing or exploding signal or gradient) names every parameter of the
  model that differs from the plan;
* a residual stream that grows names the layers that end its branches and the residual
  scaling of :class:`initlab.Residual` (Radford et al. 2019).

Applying a fix is ``initlab.init_(model, example_input=batch, only=finding.fix_params)`` (with
``residual=Residual(match=glob, n_branches=finding.fix_branches)`` for each glob of
``finding.fix_residual``). When every parameter concerned already holds what ``init_`` would
write, no initialization can fix the finding, and the fix names what would instead (a norm
layer, residual connections, data-dependent scaling with ``initlab.lsuv_``).

Every fix is verified before it is given: the audit applies the init fixes and the residual
scaling to a deep copy of the model and audits the copy (one more forward and backward pass,
only when there is a definite finding). A finding whose kind is still there afterwards gets
the advice of what would fix it instead of a re-initialization that would change nothing.

A parameter "differs" when its RMS is not within :data:`TOLERANCE` of the plan's
(``sqrt(target_std^2 + mean^2)``), or it is not finite.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import fnmatch
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from initlab.auditing.propagation import Propagation
from initlab.auditing.result import Finding, LayerReport
from initlab.errors import InitlabError

TOLERANCE = 1.25
"""Factor within which a parameter's RMS counts as the plan's (sampling spread of a few
hundred values is well inside it; a wrong scheme is a factor sqrt(2) or more off)."""

_VERIFYING = contextvars.ContextVar("initlab_audit_verifying_fix", default=False)
"""Set while the audit of a fixed copy runs: that audit gives no fixes of its own."""

_ARCHITECTURE = (
    "every parameter concerned already holds what initlab.init_ would write, so no initialization fixes this: "
)
_REMEDY = {
    "vanishing": "add a normalization layer (nn.LayerNorm / nn.BatchNorm) every few layers or residual connections, "
    "or scale each layer on data (initlab.lsuv_)",
    "exploding": "add a normalization layer (nn.LayerNorm / nn.BatchNorm) every few layers, "
    "or scale each layer on data (initlab.lsuv_)",
    "saturated": "normalize this layer's input (a norm layer before it) or scale it on data (initlab.lsuv_)",
    "dead": "normalize this layer's input (a norm layer before it) or use a leaky activation (nn.LeakyReLU)",
    "symmetric": "break the symmetry with random weights",
    "non_finite": "check this layer's operation (log/sqrt/division), its input and the dtype",
}


@dataclasses.dataclass(frozen=True)
class Planned:
    """What ``init_`` would write into one parameter, and what it holds now."""

    name: str
    names: tuple[str, ...]
    scheme: str
    target_rms: float
    measured_rms: float

    @property
    def differs(self) -> bool:
        """Not finite, or its RMS is off the plan's by more than :data:`TOLERANCE`."""
        if not math.isfinite(self.measured_rms):
            return True
        if self.target_rms == 0.0:
            return self.measured_rms != 0.0
        return not 1 / TOLERANCE <= self.measured_rms / self.target_rms <= TOLERANCE


def _scheme_mean(scheme: dict[str, Any] | None) -> float:
    if not scheme:
        return 0.0
    kind = scheme.get("scheme")
    if kind == "ones":
        return 1.0
    if kind == "constant":
        return float(scheme.get("value", 0.0))
    return float(scheme.get("mean", 0.0) or 0.0)


def plan_of(model: nn.Module, batch: Any) -> dict[str, Planned]:
    """Every parameter ``init_``'s auto plan would write (by each of its names), from
    :func:`initlab.nn.preview` on ``batch``."""
    from initlab.nn.apply import preview

    parameters = dict(model.named_parameters(remove_duplicate=False))
    planned: dict[str, Planned] = {}
    for row in preview(model, "auto", example_input=batch).rows:
        if row.status != "planned" or row.target_std is None:
            continue
        tensor = parameters[row.name].detach()
        rms = float(torch.linalg.vector_norm(tensor.double())) / math.sqrt(max(tensor.numel(), 1))
        target = math.hypot(row.target_std, _scheme_mean(row.scheme))
        entry = Planned(row.name, (row.name, *row.aliases), row.scheme_name or "", target, rms)
        for name in entry.names:
            planned[name] = entry
    return planned


def _module_name(layer: LayerReport) -> str:
    name = layer.name.partition("#")[0]
    return "" if name == "<model>" else name


def _layer_entries(layer: LayerReport, planned: dict[str, Planned]) -> list[Planned]:
    prefix = _module_name(layer)
    entries = {}
    for name, entry in planned.items():
        owner, _, _ = name.rpartition(".")
        if owner == prefix:
            entries[entry.name] = entry
    return list(entries.values())


def _describe(entries: list[Planned]) -> str:
    shown = entries[:3]
    text = "; ".join(
        f"{entry.name}: {entry.scheme}, RMS {entry.target_rms:.3g} (now {entry.measured_rms:.3g})" for entry in shown
    )
    more = len(entries) - len(shown)
    return text + (f"; and {more} more" if more > 0 else "")


def _init_fix(finding: Finding, entries: list[Planned]) -> Finding:
    differing = [entry for entry in entries if entry.differs]
    if not differing:
        return dataclasses.replace(finding, fix=f"{finding.fix}; {_ARCHITECTURE}{_REMEDY[finding.kind]}")
    names = [entry.name for entry in differing]
    call = (
        f"initlab.init_(model, example_input=batch, only={names!r})"
        if len(names) <= 4
        else (
            f"initlab.init_(model, example_input=batch, only=finding.fix_params) ({len(names)} parameters; "
            "initlab.init_(model) or `initlab audit --init auto` re-initialises every parameter the same way)"
        )
    )
    text = f"{finding.fix}; re-initialise as initlab.init_ does: {call}; it writes {_describe(differing)}"
    return dataclasses.replace(finding, fix=text, fix_params=names)


def _residual_fix(finding: Finding, figures: Propagation, planned: dict[str, Planned]) -> Finding:
    stream = next(s for s in figures.streams if s.layer == finding.layer)
    if not stream.branch_globs:
        return dataclasses.replace(finding, fix=f"{finding.fix}; scale the layers that end each residual branch")
    names = [planned[name].name if name in planned else name for name in stream.branch_params]
    calls = ", ".join(
        f"initlab.init_(model, example_input=batch, only=[...], residual=initlab.Residual(match={glob!r}, "
        f"n_branches={stream.branches}))"
        for glob in stream.branch_globs
    )
    text = (
        f"{finding.fix}; scale the {stream.branches} layers that end a residual branch by 1/sqrt(2 x "
        f"{stream.branches}) as GPT-2 does: {calls}; or add a norm at the end of each branch"
    )
    return dataclasses.replace(
        finding, fix=text, fix_params=names, fix_residual=list(stream.branch_globs), fix_branches=stream.branches
    )


def attach_fixes(
    model: nn.Module,
    batch: Any,
    layers: list[LayerReport],
    figures: Propagation,
    reaudit: Callable[[nn.Module], list[Finding]] | None = None,
) -> str | None:
    """Replace each finding's ``fix`` (its cause) by the cause and what to do (in place), then
    verify the fixes on a copy of the model with ``reaudit`` (which returns the definite
    findings of an audit of the copy; None: the fixes are given unverified, with a note).

    Returns:
        None, or a note on what could not be done (the plan could not be read: the findings
        keep their cause and a generic advice; the model could not be copied, or ``reaudit``
        is None: the fixes are given unverified).
    """
    if _VERIFYING.get() or not any(layer.findings for layer in layers):
        return None
    try:
        planned = plan_of(model, batch)
    except (InitlabError, RuntimeError, TypeError, ValueError) as error:
        for layer in layers:
            layer.findings[:] = [
                dataclasses.replace(
                    f, fix=f"{f.fix}; initlab.init_(model) gives every layer the std its fans and activation call for"
                )
                for f in layer.findings
            ]
        return f"fixes without parameter names: initlab.init_'s plan could not be read ({error})"
    everything = list({entry.name: entry for entry in planned.values()}.values())
    for layer in layers:
        fixed = []
        for finding in layer.findings:
            if finding.rule.startswith("stream_growth"):
                fixed.append(_residual_fix(finding, figures, planned))
            elif finding.rule.startswith(("signal_ratio", "gradient_ratio")):
                fixed.append(_init_fix(finding, everything))
            else:
                fixed.append(_init_fix(finding, _layer_entries(layer, planned)))
        layer.findings[:] = fixed
    if reaudit is None:
        given = any(f.fix_params and not f.borderline for layer in layers for f in layer.findings)
        return "fixes not verified (verify_fixes=False): no copy of the model was re-audited" if given else None
    return _verify(model, batch, layers, reaudit)


def apply_fix(model: nn.Module, batch: Any, findings: list[Finding]) -> None:
    """Apply the fixes of ``findings`` to ``model``: ``initlab.init_`` on their ``fix_params``,
    with the residual scaling of ``fix_residual`` where they give one."""
    from initlab.nn.apply import init_
    from initlab.nn.residual import Residual

    plain: set[str] = set()
    for finding in findings:
        for glob in finding.fix_residual:
            names = [name for name in finding.fix_params if fnmatch.fnmatchcase(name.rpartition(".")[0], glob)]
            init_(model, example_input=batch, only=names, residual=Residual(glob, n_branches=finding.fix_branches))
        if not finding.fix_residual:
            plain.update(finding.fix_params)
    if plain:
        init_(model, example_input=batch, only=sorted(plain))


def _verify(model: nn.Module, batch: Any, layers: list[LayerReport], reaudit: Callable) -> str | None:
    """Audit a copy of the model with every fix applied; a finding whose kind remains is told
    what would fix it instead (see the module docstring)."""
    definite = [f for layer in layers for f in layer.findings if not f.borderline and f.fix_params]
    if not definite:
        return None
    try:
        fixed_copy = copy.deepcopy(model)
    except Exception as error:  # a module that cannot be copied: the fixes stay unverified
        return f"fixes not verified: the model could not be copied ({type(error).__name__}: {error})"
    token = _VERIFYING.set(True)
    try:
        with torch.no_grad():
            apply_fix(fixed_copy, batch, definite)
        remaining = {finding.kind for finding in reaudit(fixed_copy)}
    finally:
        _VERIFYING.reset(token)
    for layer in layers:
        layer.findings[:] = [
            _unfixable(f, len(f.fix_params)) if not f.borderline and f.fix_params and f.kind in remaining else f
            for f in layer.findings
        ]
    return None


def _unfixable(finding: Finding, count: int) -> Finding:
    cause = finding.fix.partition("; ")[0]
    text = (
        f"{cause}; re-initialising as initlab.init_ does ({count} parameters) does not fix it (the audit of the "
        f"re-initialised copy still finds it): {_REMEDY[finding.kind]}"
    )
    return dataclasses.replace(finding, fix=text, fix_params=[], fix_residual=[], fix_branches=None)
