"""Explicit initialization plans: rules that say which scheme each parameter gets.

A :class:`Rule` selects parameters by the qualified-name glob ``match`` (tried
against the owning module's name and against the parameter's own name, so
``"encoder.*.fc*"`` selects modules and ``"*.bias"`` or ``"pos_embedding"``
parameters), by the owning module's ``type`` and/or by its ``kind`` (the
family :func:`initlab.nn.layers.layer_kind` names: ``"linear"`` covers
``nn.Linear`` and registered layers such as Hugging Face's ``Conv1D``,
``"norm"`` every norm including custom RMSNorms); it gives a scheme for
the parameters whose name contains ``bias`` (``bias=``), for the others
(``weight=``), or for exact local names (``params={"in_proj_weight": ...}``).
``"auto"`` in place of a scheme means "what the auto plan would choose".
``layout_compat="torch"`` makes the rule's fan-based schemes count fans as
``torch.nn.init`` does (to reproduce a library that uses it: strided and
grouped convolutions differ).

A :class:`Plan` is an ordered list of rules: for each parameter the first
rule that selects it *and* gives a scheme for it wins; parameters no rule
covers go to ``default`` (``"auto"``: the auto plan; None: left untouched;
or a catch-all :class:`Rule`). With ``strict=True`` a rule that covers no
parameter is an error. ``residual=`` adds the residual-aware treatment of
:mod:`initlab.nn.residual`.

Plans round-trip through ``to_dict``/``from_dict``, JSON and TOML. A rule's
``type`` is written as ``"torch.nn.Linear"`` (or ``"module.Class"``); reading
it back resolves ``torch.nn`` names and classes of modules already imported,
and never imports anything.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from initlab.errors import InitlabError, bad_value
from initlab.nn.layers import REGISTRABLE_KINDS, layer_kind, role
from initlab.nn.residual import Residual, scheme_from_dict
from initlab.schemes import Scheme

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

AUTO = "auto"
SchemeSpec = Scheme | str  # a Scheme or "auto"
KINDS = (*REGISTRABLE_KINDS, "attention", "recurrent", "prelu")


def _check_spec(where: str, argument: str, value: Any) -> None:
    if value is None or value == AUTO or isinstance(value, Scheme):
        return
    raise bad_value(where, argument, value, "a Scheme (e.g. he_normal()), 'auto' or None")


def _type_name(cls: type) -> str:
    if getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _resolve_type(name: Any) -> type:
    """A module class from ``"torch.nn.Linear"``, ``"nn.Linear"``, ``"Linear"`` or ``"pkg.mod.Class"``."""
    if isinstance(name, type):
        return name
    if not isinstance(name, str) or not name:
        raise bad_value("Rule", "type", name, "a module class or its name, e.g. 'torch.nn.Linear'")
    short = name.removeprefix("torch.nn.").removeprefix("nn.")
    if "." not in short and isinstance(getattr(nn, short, None), type):
        return getattr(nn, short)
    module_name, _, class_name = name.rpartition(".")
    module = sys.modules.get(module_name)
    cls = getattr(module, class_name, None) if module is not None else None
    if not isinstance(cls, type):
        raise bad_value(
            "Rule",
            "type",
            name,
            "a torch.nn class name or 'module.Class' of a module already imported",
            "Import the module that defines it before loading the plan.",
        )
    return cls


@dataclass(frozen=True)
class Rule:
    """One rule of a :class:`Plan`.

    Args:
        match: glob of qualified names (module or parameter); None selects by ``type``/``kind`` alone.
        type: a module class (or tuple of classes, or their names); None: any module.
        kind: a layer family or a tuple of them (``linear``, ``conv``, ``conv_transpose``,
            ``embedding``, ``norm``, ``attention``, ``recurrent``, ``prelu``); None: any.
        weight: scheme for the non-bias parameters of the selected modules (or ``"auto"``).
        bias: scheme for the parameters whose name contains ``bias`` (or ``"auto"``).
        params: schemes for exact local parameter names (``{"weight_hh_l0": orthogonal()}``);
            they take precedence over ``weight``/``bias``.
        layout_compat: ``"forward"`` (fans from the forward computation) or ``"torch"`` (fans
            as ``torch.nn.init`` counts them) for this rule's fan-based schemes.
    """

    match: str | None = None
    type: Any = None
    weight: SchemeSpec | None = None
    bias: SchemeSpec | None = None
    params: Mapping[str, SchemeSpec] = field(default_factory=dict)
    kind: Any = None
    layout_compat: str = "forward"

    def __post_init__(self) -> None:
        if self.match is not None and (not isinstance(self.match, str) or not self.match):
            raise bad_value("Rule", "match", self.match, "a non-empty glob string or None")
        types = self.type if isinstance(self.type, (tuple, list)) else (self.type,) if self.type is not None else ()
        object.__setattr__(self, "type", tuple(_resolve_type(item) for item in types) or None)
        kinds = self.kind if isinstance(self.kind, (tuple, list)) else (self.kind,) if self.kind is not None else ()
        for kind in kinds:
            if kind not in KINDS:
                raise bad_value("Rule", "kind", kind, f"one of {', '.join(KINDS)}")
        object.__setattr__(self, "kind", tuple(kinds) or None)
        if self.layout_compat not in ("forward", "torch"):
            raise bad_value("Rule", "layout_compat", self.layout_compat, "'forward' or 'torch'")
        if self.match is None and self.type is None and self.kind is None:
            raise bad_value(
                "Rule",
                "match",
                None,
                "a glob, a module type or kind, or several",
                "A rule with none would select every parameter; use Plan(default=...) for that.",
            )
        _check_spec("Rule", "weight", self.weight)
        _check_spec("Rule", "bias", self.bias)
        if not isinstance(self.params, Mapping):
            raise bad_value("Rule", "params", self.params, "a mapping of parameter name -> scheme")
        for name, spec in self.params.items():
            _check_spec("Rule", f"params[{name!r}]", spec)
        object.__setattr__(self, "params", dict(self.params))
        if self.weight is None and self.bias is None and not self.params:
            raise bad_value("Rule", "weight", None, "at least one of weight=, bias= or params=")

    def selects(self, module_name: str, param_name: str, module: nn.Module) -> bool:
        """Whether the rule's glob and type select this parameter's module."""
        if self.type is not None and not isinstance(module, self.type):
            return False
        if self.kind is not None and layer_kind(module) not in self.kind:
            return False
        if self.match is None:
            return True
        return fnmatch.fnmatchcase(module_name, self.match) or fnmatch.fnmatchcase(param_name, self.match)

    def spec_for(self, local_name: str) -> SchemeSpec | None:
        """The scheme (or ``"auto"``) this rule gives a parameter of that local name, or None."""
        if local_name in self.params:
            return self.params[local_name]
        return self.bias if role(local_name) == "bias" else self.weight

    def describe(self) -> str:
        parts = []
        if self.match is not None:
            parts.append(f"match={self.match!r}")
        if self.type is not None:
            parts.append("type=" + "|".join(cls.__name__ for cls in self.type))
        if self.kind is not None:
            parts.append("kind=" + "|".join(self.kind))
        return f"Rule({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.match is not None:
            data["match"] = self.match
        if self.type is not None:
            data["type"] = [_type_name(cls) for cls in self.type]
        if self.kind is not None:
            data["kind"] = list(self.kind)
        if self.layout_compat != "forward":
            data["layout_compat"] = self.layout_compat
        for name in ("weight", "bias"):
            spec = getattr(self, name)
            if spec is not None:
                data[name] = _spec_to_data(spec)
        if self.params:
            data["params"] = {name: _spec_to_data(spec) for name, spec in self.params.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        if not isinstance(data, Mapping):
            raise bad_value("Rule.from_dict", "data", data, "a mapping")
        unknown = sorted(set(data) - {"match", "type", "kind", "layout_compat", "weight", "bias", "params"})
        if unknown:
            raise bad_value(
                "Rule.from_dict",
                "data",
                dict(data),
                "keys among match, type, kind, layout_compat, weight, bias, params",
                f"Unknown: {', '.join(unknown)}.",
            )
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise bad_value("Rule.from_dict", "params", params, "a mapping of parameter name -> scheme")
        parsed_params: dict[str, Any] = {
            name: _spec_from_data(spec) for name, spec in params.items()
        }  # checked by Rule
        return cls(
            match=data.get("match"),
            type=data.get("type"),
            weight=_spec_from_data(data.get("weight")),
            bias=_spec_from_data(data.get("bias")),
            params=parsed_params,
            kind=data.get("kind"),
            layout_compat=data.get("layout_compat", "forward"),
        )


def _spec_to_data(spec: SchemeSpec) -> Any:
    return AUTO if isinstance(spec, str) else spec.to_dict()


def _spec_from_data(data: Any) -> SchemeSpec | None:
    if data is None or data == AUTO:
        return data
    return scheme_from_dict(data)


@dataclass(frozen=True)
class Plan:
    """An ordered list of rules plus what to do with the parameters they do not cover.

    Args:
        rules: the rules, first match wins.
        default: ``"auto"`` (the auto plan), None (leave untouched) or a catch-all :class:`Rule`.
        strict: a rule that covers no parameter is an error.
        residual: residual-aware treatment of branch-output layers (:class:`Residual`), or None.
    """

    rules: Sequence[Rule] = ()
    default: Rule | str | None = AUTO
    strict: bool = False
    residual: Residual | None = None

    def __post_init__(self) -> None:
        rules = tuple(self.rules) if isinstance(self.rules, (list, tuple)) else None
        if rules is None or not all(isinstance(rule, Rule) for rule in rules):
            raise bad_value("Plan", "rules", self.rules, "a list of Rule objects")
        object.__setattr__(self, "rules", rules)
        if not (self.default is None or self.default == AUTO or isinstance(self.default, Rule)):
            raise bad_value("Plan", "default", self.default, "'auto', None or a Rule")
        if not isinstance(self.strict, bool):
            raise bad_value("Plan", "strict", self.strict, "True or False")
        if self.residual is not None and not isinstance(self.residual, Residual):
            raise bad_value("Plan", "residual", self.residual, "a Residual or None")

    @classmethod
    def auto(cls, residual: Residual | None = None) -> Plan:
        """The auto plan (optionally residual-aware)."""
        return cls((), AUTO, False, residual)

    # ---------------------------------------------------------------- round trip
    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"rules": [...], "default": "auto"|"none"|{rule}, "strict": bool, "residual"?: {...}}``."""
        default = (
            "none"
            if self.default is None
            else self.default
            if isinstance(self.default, str)
            else self.default.to_dict()
        )
        data: dict[str, Any] = {
            "rules": [rule.to_dict() for rule in self.rules],
            "default": default,
            "strict": self.strict,
        }
        if self.residual is not None:
            data["residual"] = self.residual.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        if not isinstance(data, Mapping):
            raise bad_value("Plan.from_dict", "data", data, "a mapping with 'rules'")
        unknown = sorted(set(data) - {"rules", "default", "strict", "residual"})
        if unknown:
            raise bad_value(
                "Plan.from_dict",
                "data",
                sorted(data),
                "keys among rules, default, strict, residual",
                f"Unknown: {', '.join(unknown)}.",
            )
        default = data.get("default", AUTO)
        if default == "none":
            default = None
        elif isinstance(default, Mapping):
            default = Rule.from_dict(default)
        residual = data.get("residual")
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise bad_value("Plan.from_dict", "rules", rules, "a list of rule tables")
        return cls(
            rules=[Rule.from_dict(rule) for rule in rules],
            default=default,
            strict=data.get("strict", False),
            residual=None if residual is None else Residual.from_dict(residual),
        )

    def __str__(self) -> str:
        """The plan as TOML (what :meth:`save` writes)."""
        return self.to_toml()

    def to_json(self, **dumps: Any) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **dumps})

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InitlabError(f"Plan.from_json: the text is not valid JSON ({error}).") from None
        return cls.from_dict(data)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> Plan:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise InitlabError(f"Plan.from_toml: the text is not valid TOML ({error}).") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write the plan as TOML (``.toml``) or JSON (any other suffix)."""
        path = Path(path)
        path.write_text(self.to_toml() if path.suffix == ".toml" else self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan written by :meth:`save` (TOML for ``.toml``, else JSON)."""
        path = Path(path)
        text = path.read_text()
        return cls.from_toml(text) if path.suffix == ".toml" else cls.from_json(text)


def as_plan(plan: Any) -> Plan:
    """A :class:`Plan` from ``"auto"``, a Plan, a list of rules, or a dict/path of a saved plan."""
    if isinstance(plan, Plan):
        return plan
    if plan == AUTO:
        return Plan.auto()
    if isinstance(plan, (list, tuple)) and all(isinstance(rule, Rule) for rule in plan):
        return Plan(plan)
    if isinstance(plan, Mapping):
        return Plan.from_dict(plan)
    if isinstance(plan, Path):
        return Plan.load(plan)
    raise bad_value("init_", "plan", plan, "'auto', a Plan, a list of Rule objects, a plan dict or a Path")
