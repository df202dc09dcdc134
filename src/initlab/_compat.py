"""The private torch names initlab still needs, each in one place with a test (tests/test_compat.py).

The ``torch.nn.init`` drop-in (:mod:`initlab.nn.init`) must hand a call back to torch
whenever torch's own dispatch would do something initlab's fill does not (tensor
subclasses overriding ``__torch_function__``, TorchFunctionModes other than the device
contexts). Telling those apart needs three names torch does not export publicly.
"""

from __future__ import annotations

from typing import Any

import torch


def disabled_torch_function_impl() -> Any:
    """The ``__torch_function__`` of classes that opt out of it (``torch._C._disabled_torch_function_impl``)."""
    return torch._C._disabled_torch_function_impl


def current_function_modes() -> list[Any] | None:
    """The active TorchFunctionModes, innermost last, or None where torch does not expose them."""
    getter = getattr(torch.overrides, "_get_current_function_mode_stack", None)
    return None if getter is None else list(getter())


def torch_function_disabled() -> Any:
    """A context manager in which ``__torch_function__`` handlers and modes are off."""
    return torch._C.DisableTorchFunction()
