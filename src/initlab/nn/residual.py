"""Residual-aware initialization of the layers that end a residual branch.

In a residual network ``x_{l+1} = x_l + f_l(x_l)`` every branch adds its
variance to the residual stream, so after n branches the stream's variance
has grown ~n-fold. Two remedies, applied only when asked, to the
branch-output layers the user names by glob:

* ``mode="scale"`` (GPT-2): multiply the layer's initial weight by
  ``1 / sqrt(2 * n_branches)``, the stream then grows by O(1) in total.
  Reference: Radford et al. (2019), "Language Models are Unsupervised
  Multitask Learners", sec. 2.3 (nanoGPT: std 0.02 / sqrt(2 * n_layer), one
  attention and one MLP branch per layer). ``n_branches`` defaults to the
  number of layers the glob matches; when it matches both projections of
  each of L transformer blocks, pass ``n_branches=L`` for GPT-2's factor.
* ``mode="zero"`` (Fixup / ReZero style): the layer's weight starts at 0, so
  every block starts as the identity map.
  References: Zhang, Dauphin, Ma (2019), "Fixup Initialization"; Bachlechner
  et al. (2020), "ReZero is All You Need".
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from initlab.errors import InitlabError, bad_value
from initlab.schemes import Scheme
from initlab.schemes.base import check_finite

MODES = ("scale", "zero")


@dataclass(frozen=True)
class Residual:
    """Which layers end a residual branch and what to do with them.

    Args:
        match: glob of the branch-output layers' qualified module names, e.g. ``"blocks.*.fc2"``.
        mode: ``"scale"`` (weight x 1/sqrt(2 n_branches)) or ``"zero"``.
        n_branches: n in the scale factor; None = the number of layers ``match`` selects.
    """

    match: str
    mode: str = "scale"
    n_branches: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.match, str) or not self.match:
            raise bad_value("Residual", "match", self.match, "a non-empty glob of layer names")
        if self.mode not in MODES:
            raise bad_value("Residual", "mode", self.mode, f"one of {', '.join(MODES)}")
        if self.n_branches is not None and (
            isinstance(self.n_branches, bool) or not isinstance(self.n_branches, int) or self.n_branches < 1
        ):
            raise bad_value("Residual", "n_branches", self.n_branches, "a positive integer or None")

    def matches(self, module_name: str) -> bool:
        """Whether the layer called ``module_name`` ends a residual branch."""
        return fnmatch.fnmatchcase(module_name, self.match)

    def branches(self, matched_layers: int) -> int:
        """n_branches: as given, else the number of layers the glob matched."""
        return self.n_branches if self.n_branches is not None else matched_layers

    def factor(self, matched_layers: int) -> float:
        """The weight multiplier: 1/sqrt(2 n_branches) for ``"scale"``, 0 for ``"zero"``."""
        if self.mode == "zero":
            return 0.0
        return 1.0 / math.sqrt(2.0 * self.branches(matched_layers))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"match": self.match, "mode": self.mode}
        if self.n_branches is not None:
            data["n_branches"] = self.n_branches
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Residual:
        if not isinstance(data, Mapping) or "match" not in data:
            raise bad_value("Residual.from_dict", "data", data, "a mapping with a 'match' glob")
        unknown = sorted(set(data) - {"match", "mode", "n_branches"})
        if unknown:
            raise bad_value(
                "Residual.from_dict",
                "data",
                dict(data),
                "keys among match, mode, n_branches",
                f"Unknown: {', '.join(unknown)}.",
            )
        return cls(**dict(data))


@dataclass(frozen=True)
class Scaled(Scheme):
    """Another scheme's values times a constant: W = factor * W_base.

    Its target std is ``factor`` times the base scheme's; the values depend
    on (seed, name, index) exactly as the base scheme's do.
    """

    base: Scheme
    factor: float = 1.0
    kind = "scaled"

    def __post_init__(self) -> None:
        if not isinstance(self.base, Scheme):
            raise bad_value("scaled", "base", self.base, "a Scheme")
        check_finite(self.kind, "factor", self.factor)

    @property
    def name(self) -> str:
        return f"{self.base.name} x{self.factor:.4g}"

    def target_std(self, fans=None, *, shape=None) -> float | None:
        std = self.base.target_std(fans, shape=shape)
        return None if std is None else abs(self.factor) * std

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.kind, "base": self.base.to_dict(), "factor": self.factor}

    @property
    def fan_based(self) -> bool:  # type: ignore[override]  # the base scheme's fans are counted as usual
        return self.base.fan_based

    def _fill(self, out, full_shape, index, layout, fans, stream) -> None:
        self.base._fill(out, full_shape, index, layout, fans, stream)
        out.mul_(self.factor)


def scheme_from_dict(data: Any) -> Scheme:
    """A scheme from its ``to_dict()`` form, including :class:`Scaled`."""
    from initlab.schemes import from_dict

    if isinstance(data, Mapping) and data.get("scheme") == "scaled":
        extra = sorted(set(data) - {"scheme", "base", "factor"})
        if extra or "base" not in data:
            raise InitlabError(
                f"scheme: {dict(data)!r} is invalid; expected {{'scheme': 'scaled', 'base': {{...}}, 'factor': f}}."
            )
        return Scaled(scheme_from_dict(data["base"]), float(data.get("factor", 1.0)))
    return from_dict(data)
