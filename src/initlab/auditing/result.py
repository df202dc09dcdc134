"""The audit's result: plain data (dataclasses with ``to_dict`` / ``from_dict``), no rendering.

The JSON form is :mod:`initlab.auditing.json_form`. Rendering lives in :mod:`initlab.report`
(terminal table, self-contained HTML); the methods here that render import it lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initlab._io import write_atomically
from initlab.auditing.jacobian import JacobianStats
from initlab.auditing.json_form import SCHEMA_VERSION, from_json_text, to_json_text
from initlab.auditing.propagation import Propagation
from initlab.auditing.statistics import Summary
from initlab.auditing.theory_overlay import TheoryOverlay
from initlab.auditing.thresholds import BORDERLINE, HEALTHY, VERDICTS


def _verdict(findings: list[Finding]) -> str:
    """The most specific definite kind, else ``"borderline"`` if any finding is borderline, else ``"healthy"``."""
    kinds = {finding.kind for finding in findings if not finding.borderline}
    definite = next((kind for kind in VERDICTS if kind in kinds), None)
    if definite is not None:
        return definite
    return BORDERLINE if findings else HEALTHY


@dataclass(frozen=True)
class Finding:
    """One unhealthy (or borderline) verdict at one layer.

    Attributes:
        kind: one of :data:`initlab.auditing.thresholds.VERDICTS`.
        layer: index of the layer (1-based, execution order).
        layer_name: its qualified module name.
        direction: ``"forward"`` or ``"backward"``.
        rule: the rule that fired, with the measured value and the threshold.
        value: the measured value the rule compared.
        threshold: the threshold it was compared with.
        message: what is wrong, in plain words.
        fix: what to change, in plain words.
        borderline: the figure is within the borderline band of the threshold (a warning,
            not a verdict: see :mod:`initlab.auditing.thresholds`).
        fix_params: the parameters the fix re-initialises, with exactly what ``initlab.init_``
            does for them: ``initlab.init_(model, example_input=batch, only=fix_params)``
            (empty when no initialization can fix the finding).
        fix_residual: globs of the residual-branch output layers to scale
            (``initlab.init_(..., residual=Residual(match=glob, n_branches=fix_branches))``
            for each glob), empty otherwise.
        fix_branches: the number of residual branches of that scaling (None without one).
    """

    kind: str
    layer: int
    layer_name: str
    direction: str
    rule: str
    value: float
    threshold: float
    message: str
    fix: str
    borderline: bool = False
    fix_params: list[str] = field(default_factory=list)
    fix_residual: list[str] = field(default_factory=list)
    fix_branches: int | None = None

    def to_dict(self) -> dict:
        """Plain-data form."""
        data = dict(self.__dict__)
        data["fix_params"] = list(self.fix_params)
        data["fix_residual"] = list(self.fix_residual)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass
class LayerReport:
    """Everything measured for one layer (a module call, merged with the activation right after it).

    Attributes:
        index: 1-based position in execution order.
        name: qualified module name (``name#k`` for the k-th call of a reused module;
            ``parent.<relu>`` for a functional activation).
        kind: ``"Linear → ReLU"``, ``"Conv2d"``, ``"F.gelu"``...
        module_type: class name of the (first) module.
        activation: canonical activation name ending the layer, if any.
        activation_params: its parameters (e.g. ``{"negative_slope": 0.2}``).
        activation_name: module name of that activation.
        output: distribution of the layer's output (after the activation).
        pre_activation: distribution before the activation (None without one).
        input_std: std of the layer's input (None for non-float inputs).
        input_rms: ``sqrt(mean(x^2))`` of the layer's input (None for non-float inputs).
        carries_weights: the layer has a weight matrix (Linear, Conv, attention,
            recurrent): the layers whose propagation the verdicts judge.
        gain: ``rms(output) / rms(input)``.
        signal_ratio: ``rms(input) / reference RMS``, the reference being the RMS where the
            signal entering this layer started (the batch, a norm layer or embedding, an
            unrecorded operation such as a residual addition); None when unknown.
        signal_depth: weight layers between that reference and this layer.
        saturated_fraction: for bounded activations.
        dead_units, units: for ReLU/ReLU6: units <= 0 on the whole batch, and units.
        symmetric_units: units of a Linear/Conv that duplicate another unit.
        grad_output_norm, grad_output_std: of dL/d output.
        grad_input_norm: of dL/d input (the gradient at the producer of the input).
        grad_growth: ``grad_input_norm / grad_output_norm``.
        grad_ratio: ``grad_input_norm / ||dL/d model output||``.
        weight_shape, weight_std, weight_norm, weight_grad_norm, weight_grad_std: of the
            module's own weight tensors (parameters named ``*weight*``), first call only.
        grad_to_weight_ratio: ``weight_grad_norm / weight_norm``.
        findings: the unhealthy (and borderline) verdicts that fired here.
    """

    index: int
    name: str
    kind: str
    module_type: str
    activation: str | None
    activation_name: str | None
    output: Summary
    activation_params: dict[str, float] = field(default_factory=dict)
    pre_activation: Summary | None = None
    input_std: float | None = None
    input_rms: float | None = None
    carries_weights: bool = False
    gain: float | None = None
    signal_ratio: float | None = None
    signal_depth: int | None = None
    saturated_fraction: float | None = None
    dead_units: int | None = None
    units: int | None = None
    symmetric_units: int | None = None
    grad_output_norm: float | None = None
    grad_output_std: float | None = None
    grad_input_norm: float | None = None
    grad_growth: float | None = None
    grad_ratio: float | None = None
    weight_shape: list[int] | None = None
    weight_std: float | None = None
    weight_norm: float | None = None
    weight_grad_norm: float | None = None
    weight_grad_std: float | None = None
    grad_to_weight_ratio: float | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """The most specific definite kind found here, else ``"borderline"`` or ``"healthy"``."""
        return _verdict(self.findings)

    @property
    def dead_fraction(self) -> float | None:
        """``dead_units / units``."""
        return None if not self.units or self.dead_units is None else self.dead_units / self.units

    def to_dict(self) -> dict:
        """Plain-data form (adds ``verdict``)."""
        data = {
            key: value for key, value in self.__dict__.items() if key not in ("output", "pre_activation", "findings")
        }
        data["output"] = self.output.to_dict()
        data["pre_activation"] = None if self.pre_activation is None else self.pre_activation.to_dict()
        data["findings"] = [finding.to_dict() for finding in self.findings]
        data["verdict"] = self.verdict
        return data

    @classmethod
    def from_dict(cls, data: dict) -> LayerReport:
        """Inverse of :meth:`to_dict`."""
        values = {key: value for key, value in data.items() if key != "verdict"}
        values["output"] = Summary.from_dict(data["output"])
        values["pre_activation"] = None if data["pre_activation"] is None else Summary.from_dict(data["pre_activation"])
        values["findings"] = [Finding.from_dict(item) for item in data["findings"]]
        return cls(**values)


@dataclass
class AuditReport:
    """Result of :func:`initlab.audit`.

    Attributes:
        model: class name of the audited model.
        batch_shape: shape of the batch (of its first tensor for tuple/dict batches).
        backward: ``"loss"`` (``loss_fn(output, target)``) or ``"random_cotangent"``.
        seed: the audit's seed.
        layers: per layer, in execution order.
        jacobian: input-output Jacobian spectrum, or None (see ``notes``).
        theory: mean-field overlay for a plain MLP, or None.
        propagation: the end-to-end figures the whole-network verdicts rest on.
        thresholds: the thresholds used (see :mod:`initlab.auditing.thresholds`).
        notes: what was skipped and why, and other remarks.
        init: what initialised the model before the audit, when known: the command's
            ``--init`` (``"auto"``, a scheme such as ``"he_normal"``) or ``"model's own"``;
            None when not recorded (the Python API).
        schema_version: version of the JSON form.
    """

    model: str
    batch_shape: list[int]
    backward: str
    seed: int
    layers: list[LayerReport]
    jacobian: JacobianStats | None
    theory: TheoryOverlay | None
    thresholds: dict[str, float]
    notes: list[str] = field(default_factory=list)
    propagation: Propagation | None = None
    init: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def findings(self) -> list[Finding]:
        """Every definite (not borderline) finding, layer by layer."""
        return [finding for layer in self.layers for finding in layer.findings if not finding.borderline]

    @property
    def borderline(self) -> list[Finding]:
        """Every borderline finding (a warning: the figure is near its threshold), layer by layer."""
        return [finding for layer in self.layers for finding in layer.findings if finding.borderline]

    @property
    def healthy(self) -> bool:
        """True when no layer has a definite finding (borderline ones are warnings)."""
        return not self.findings

    @property
    def verdict(self) -> str:
        """Overall verdict: the most specific definite kind found anywhere, else ``"borderline"``
        when some figure is near its threshold, else ``"healthy"``."""
        return _verdict([finding for layer in self.layers for finding in layer.findings])

    def first(self, kind: str) -> Finding | None:
        """The first definite finding of ``kind`` in execution order, or None."""
        return next((finding for finding in self.findings if finding.kind == kind), None)

    @property
    def fixes(self) -> list[str]:
        """One sentence per kind found: the first layer where it fired and what to do; then one
        warning line (``"borderline: ..."``) per kind found only near its threshold."""
        sentences = []
        for kind in VERDICTS:
            finding = self.first(kind)
            if finding is not None:
                sentences.append(f"{finding.message}: {finding.fix}")
        definite = {finding.kind for finding in self.findings}
        for kind in VERDICTS:
            near = next((f for f in self.borderline if f.kind == kind and kind not in definite), None)
            if near is not None:
                sentences.append(f"borderline {kind} ({near.rule}): {near.message}: {near.fix}")
        return sentences

    def layer(self, name: str) -> LayerReport:
        """The layer called ``name`` (its module or activation name); KeyError if absent."""
        for layer in self.layers:
            if name in (layer.name, layer.activation_name):
                return layer
        raise KeyError(f"no layer named {name!r}; layers: {', '.join(layer.name for layer in self.layers)}")

    def to_dict(self) -> dict:
        """Plain-data form; its JSON schema is documented in :mod:`initlab.auditing.json_form`."""
        return {
            "schema_version": self.schema_version,
            "model": self.model,
            "batch_shape": list(self.batch_shape),
            "backward": self.backward,
            "seed": self.seed,
            "init": self.init,
            "verdict": self.verdict,
            "healthy": self.healthy,
            "fixes": self.fixes,
            "thresholds": dict(self.thresholds),
            "notes": list(self.notes),
            "layers": [layer.to_dict() for layer in self.layers],
            "jacobian": None if self.jacobian is None else self.jacobian.to_dict(),
            "theory": None if self.theory is None else self.theory.to_dict(),
            "propagation": None if self.propagation is None else self.propagation.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> AuditReport:
        """Inverse of :meth:`to_dict` (derived fields are recomputed, not read)."""
        return cls(
            model=data["model"],
            batch_shape=list(data["batch_shape"]),
            backward=data["backward"],
            seed=data["seed"],
            layers=[LayerReport.from_dict(item) for item in data["layers"]],
            jacobian=None if data["jacobian"] is None else JacobianStats.from_dict(data["jacobian"]),
            theory=None if data["theory"] is None else TheoryOverlay.from_dict(data["theory"]),
            thresholds=dict(data["thresholds"]),
            notes=list(data["notes"]),
            propagation=None if data["propagation"] is None else Propagation.from_dict(data["propagation"]),
            init=data["init"],
            schema_version=data["schema_version"],
        )

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON form (schema in :mod:`initlab.auditing.json_form`); also written to ``path``
        (UTF-8, with a final newline) if given."""
        text = to_json_text(self.to_dict())
        if path is not None:
            write_atomically(path, text + "\n", "audit report", "path")
        return text

    @classmethod
    def from_json(cls, text: str) -> AuditReport:
        """Inverse of :meth:`to_json`.

        Raises:
            InitlabError: not JSON, or a ``schema_version`` this version cannot read.
        """
        return cls.from_dict(from_json_text(text))

    # ---------------------------------------------------------------- rendering

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page (figures inline); also written to ``path`` if given."""
        from initlab.report.audit_html import write_audit_html

        return write_audit_html(self, path)

    def _repr_html_(self) -> str:
        from initlab.report.audit_html import audit_html_fragment

        return audit_html_fragment(self)

    def print(self, file: Any = None) -> None:
        """Print the terminal table (rich), then the overall verdict and fixes."""
        from initlab.report.audit_terminal import print_audit

        print_audit(self, file=file)

    def __repr__(self) -> str:
        return (
            f"AuditReport(model={self.model!r}, layers={len(self.layers)}, verdict={self.verdict!r}, "
            f"findings={len(self.findings)})"
        )
