"""Parsing shared by several sub-commands."""

from __future__ import annotations

from collections.abc import Sequence

from initlab.errors import InitlabError


def parse_params(pairs: Sequence[str]) -> dict[str, float | str]:
    """``["negative_slope=0.2", "approximate=tanh"]`` -> ``{"negative_slope": 0.2, "approximate": "tanh"}``."""
    params: dict[str, float | str] = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key:
            raise InitlabError(f"--param={pair!r} is invalid; expected KEY=VALUE, e.g. negative_slope=0.2.")
        try:
            params[key] = float(text)
        except ValueError:
            params[key] = text
    return params
