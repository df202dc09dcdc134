"""Initialization schemes: what a weight tensor should look like.

Every scheme is a small frozen object with ``target_std``, ``sample``
(numpy), ``init_`` (a torch tensor in place) and ``to_dict``; look one up
by name with :func:`get` (aliases: ``xavier_*`` = ``glorot_*``,
``kaiming_*`` = ``he_*``) and rebuild one with :func:`from_dict`.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from initlab.errors import InitlabError
from initlab.schemes.base import Scheme
from initlab.schemes.basic import (
    Constant,
    LargeRandom,
    Normal,
    Ones,
    SmallRandom,
    TruncatedNormal,
    Uniform,
    Zeros,
    constant,
    large_random,
    normal,
    ones,
    small_random,
    truncated_normal,
    uniform,
    zeros,
)
from initlab.schemes.structured import (
    DeltaOrthogonal,
    Identity,
    Orthogonal,
    Sparse,
    delta_orthogonal,
    identity,
    orthogonal,
    sparse,
)
from initlab.schemes.variance import (
    VarianceScaling,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    lecun_normal,
    lecun_uniform,
    variance_scaling,
)

FACTORIES: dict[str, Callable[..., Scheme]] = {
    "zeros": zeros,
    "ones": ones,
    "constant": constant,
    "small_random": small_random,
    "large_random": large_random,
    "normal": normal,
    "uniform": uniform,
    "truncated_normal": truncated_normal,
    "variance_scaling": variance_scaling,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "orthogonal": orthogonal,
    "identity": identity,
    "delta_orthogonal": delta_orthogonal,
    "sparse": sparse,
}

ALIASES = {
    "xavier_normal": "glorot_normal",
    "xavier_uniform": "glorot_uniform",
    "kaiming_normal": "he_normal",
    "kaiming_uniform": "he_uniform",
    "dirac": "identity",
    "eye": "identity",
    "zero": "zeros",
    "trunc_normal": "truncated_normal",
}

_CLASSES: dict[str, type[Scheme]] = {
    cls.kind: cls
    for cls in (
        Zeros,
        Ones,
        Constant,
        SmallRandom,
        LargeRandom,
        Normal,
        Uniform,
        TruncatedNormal,
        VarianceScaling,
        Orthogonal,
        Identity,
        DeltaOrthogonal,
        Sparse,
    )
}


def known_schemes() -> list[str]:
    """Canonical scheme names, then aliases."""
    return sorted(FACTORIES) + sorted(ALIASES)


def _canonical(name: Any, where: str) -> str:
    if not isinstance(name, str):
        raise InitlabError(f"{where}: name={name!r} is invalid; expected a scheme name (a string).")
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in FACTORIES:
        close = difflib.get_close_matches(key, known_schemes(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise InitlabError(f"{where}: unknown scheme {name!r}; expected one of: {', '.join(known_schemes())}.{hint}")
    return key


def get(name: str, **kwargs: Any) -> Scheme:
    """The scheme called ``name`` (or an alias) built with ``kwargs``.

    >>> get("kaiming_normal", mode="fan_out").target_std(fans((64, 32)))  # doctest: +SKIP
    """
    key = _canonical(name, "initlab.get")
    factory = FACTORIES[key]
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise InitlabError(
            f"initlab.get({name!r}): unknown argument(s) {', '.join(unknown)}; "
            f"{key} accepts: {', '.join(accepted) or 'no arguments'}."
        )
    return factory(**kwargs)


def from_dict(data: Mapping[str, Any]) -> Scheme:
    """Rebuild a scheme from ``Scheme.to_dict()`` (or ``{"scheme": name, **kwargs}``).

    A dict whose fields are those of the scheme's dataclass is rebuilt
    exactly; otherwise the name and arguments go through :func:`get`.
    """
    if not isinstance(data, Mapping) or "scheme" not in data:
        raise InitlabError(f"schemes.from_dict: data={data!r} is invalid; expected a mapping with a 'scheme' key.")
    params = {key: value for key, value in data.items() if key != "scheme"}
    kind = data["scheme"]
    cls = _CLASSES.get(kind)
    if cls is not None:
        fields = {field.name for field in dataclasses.fields(cls)}
        if set(params) <= fields:
            return cls(**params)
    return get(kind, **params)


__all__ = [
    "Scheme",
    "Constant",
    "Zeros",
    "Ones",
    "Normal",
    "SmallRandom",
    "LargeRandom",
    "Uniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Orthogonal",
    "Identity",
    "DeltaOrthogonal",
    "Sparse",
    "get",
    "from_dict",
    "known_schemes",
    *FACTORIES,
]
