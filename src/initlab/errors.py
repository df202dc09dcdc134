"""The one library error type.

Every error initlab raises on bad input is an :class:`InitlabError` (a
``ValueError``) whose message names the argument or config field, the value
received, what was expected and, where useful, what to do instead.
"""

from __future__ import annotations

from typing import Any


class InitlabError(ValueError):
    """Bad input to initlab: the message says what, where, why and what to do."""


def bad_value(where: str, argument: str, value: Any, expected: str, hint: str = "") -> InitlabError:
    """Build the standard message: ``where: argument=value is invalid; expected ... hint``.

    Args:
        where: the function or config path receiving the value (e.g. ``"normal"``).
        argument: the argument or field name.
        value: the value received (repeated in the message with ``repr``).
        expected: what would have been accepted.
        hint: optional advice on what to do instead.
    """
    message = f"{where}: {argument}={value!r} is invalid; expected {expected}."
    if hint:
        message += f" {hint}"
    return InitlabError(message)
