"""Parsing shared by several sub-commands."""

from __future__ import annotations

import argparse
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


MAX_SEED = 2**63 - 1
"""Largest seed the command accepts (seeds are 63-bit so that torch, numpy and the streams take them)."""

MAX_WORKERS = 256
"""Largest number of worker processes the command starts."""


def seed(text: str) -> int:
    """An argparse type: an integer seed in ``[0, MAX_SEED]``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}; expected an integer in [0, 2**63 - 1]") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}; expected an integer in [0, 2**63 - 1]")
    return value


def workers(text: str) -> int:
    """An argparse type: a number of worker processes in ``[1, MAX_WORKERS]``."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"invalid worker count {text!r}; expected an integer in [1, {MAX_WORKERS}]")
    return value
