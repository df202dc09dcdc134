"""Checkpoint-aware partial initialization: initialise exactly what a checkpoint did not provide.

``init_(model, ..., only=...)`` writes only the parameters named by ``only`` and leaves every
other tensor bit-identical. ``only`` is one of

* the result of :func:`load_matching` (a :class:`PartialLoad`): the parameters the checkpoint
  lacked (``missing``) and those whose checkpoint tensor had another shape (``mismatched``:
  a new classification head, a resized embedding), which it skipped;
* the result of ``model.load_state_dict(state, strict=False)`` (torch's ``missing_keys`` and
  ``unexpected_keys``): the missing parameters. torch refuses a checkpoint whose shapes differ
  even with ``strict=False``; drop those keys first, or use :func:`load_matching`;
* a list of parameter names.

Buffers among the names (a norm's ``running_mean``...) are reset when they are a covered norm's
running statistics; other names that are neither a parameter nor a buffer of the model are an
error. A tied parameter is initialised when any of its names is listed. The record keeps the
sets (``InitRecord.partial``: missing, mismatched, unexpected, and how many parameters were left
as loaded); their rows have status ``"loaded"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab.errors import bad_value


@dataclass(frozen=True)
class PartialLoad:
    """What :func:`load_matching` loaded and what it could not.

    Attributes:
        missing: model keys the checkpoint lacks.
        mismatched: ``{key: (checkpoint shape, model shape)}`` for keys it skipped for their shape.
        unexpected: checkpoint keys the model does not have.
    """

    missing: tuple[str, ...] = ()
    mismatched: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    unexpected: tuple[str, ...] = ()

    @property
    def to_initialise(self) -> tuple[str, ...]:
        """The keys left for ``init_``: missing, then mismatched."""
        return self.missing + tuple(self.mismatched)


def load_matching(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> PartialLoad:
    """Load every tensor of ``state_dict`` whose key and shape match the model's; skip the rest.

    Returns:
        A :class:`PartialLoad`; pass it to ``init_(model, ..., only=...)``.
    """
    if not isinstance(state_dict, Mapping):
        raise bad_value("load_matching", "state_dict", type(state_dict).__name__, "a mapping of name -> tensor")
    own = model.state_dict()
    mismatched = {
        key: (tuple(value.shape), tuple(own[key].shape))
        for key, value in state_dict.items()
        if key in own and isinstance(value, torch.Tensor) and tuple(value.shape) != tuple(own[key].shape)
    }
    matching = {key: value for key, value in state_dict.items() if key not in mismatched}
    result = model.load_state_dict(matching, strict=False)
    missing = tuple(key for key in result.missing_keys if key not in mismatched)
    return PartialLoad(missing, mismatched, tuple(result.unexpected_keys))


@dataclass(frozen=True)
class Partial:
    """The resolved ``only=``: the names to initialise and the sets the record keeps."""

    names: frozenset[str]
    missing: tuple[str, ...]
    mismatched: tuple[str, ...]
    unexpected: tuple[str, ...]

    def selects(self, names: Iterable[str]) -> bool:
        """Whether a parameter known by ``names`` (its first name and aliases) is to be initialised."""
        return any(name in self.names for name in names)

    def to_dict(self, loaded: int) -> dict[str, Any]:
        return {
            "missing": list(self.missing),
            "mismatched": list(self.mismatched),
            "unexpected": list(self.unexpected),
            "left_as_loaded": loaded,
        }


def as_partial(model: nn.Module, only: Any) -> Partial | None:
    """A :class:`Partial` from ``only`` (see the module docstring); None for ``only=None``."""
    if only is None:
        return None
    if isinstance(only, PartialLoad):
        missing, mismatched, unexpected = tuple(only.missing), tuple(only.mismatched), tuple(only.unexpected)
    elif hasattr(only, "missing_keys") and hasattr(only, "unexpected_keys"):
        missing, mismatched, unexpected = tuple(only.missing_keys), (), tuple(only.unexpected_keys)
    elif isinstance(only, Iterable) and not isinstance(only, (str, bytes, Mapping)):
        missing, mismatched, unexpected = tuple(only), (), ()
        if not all(isinstance(name, str) for name in missing):
            raise bad_value(
                "init_",
                "only",
                only,
                "a list of parameter names, the result of "
                "load_state_dict(strict=False), or of initlab.nn.load_matching",
            )
    else:
        raise bad_value(
            "init_",
            "only",
            only,
            "a list of parameter names, the result of load_state_dict(strict=False), or of initlab.nn.load_matching",
        )
    known = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    known |= {name for name, _ in model.named_buffers(remove_duplicate=False)}
    unknown = [name for name in missing + mismatched if name not in known]
    if unknown:
        raise bad_value(
            "init_",
            "only",
            unknown[:5],
            f"names of parameters or buffers of {type(model).__name__}",
            "Check them against model.state_dict().keys().",
        )
    return Partial(frozenset(missing + mismatched), missing, mismatched, unexpected)
