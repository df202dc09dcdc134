"""Every private torch name initlab uses (initlab._compat) still exists and behaves as relied on."""

import torch

from initlab import _compat


def test_disabled_impl_is_what_plain_tensors_opt_out_with():
    class OptedOut(torch.Tensor):
        __torch_function__ = torch._C._disabled_torch_function_impl

    assert OptedOut.__torch_function__ is _compat.disabled_torch_function_impl()
    assert torch.Tensor.__torch_function__ is not _compat.disabled_torch_function_impl()


def test_current_function_modes_lists_the_active_modes():
    assert _compat.current_function_modes() == []
    with torch.device("cpu"):
        modes = _compat.current_function_modes()
    assert modes is not None and len(modes) == 1
    assert type(modes[0]).__name__ == "DeviceContext"
    assert _compat.current_function_modes() == []


def test_torch_function_disabled_switches_handlers_off():
    seen = []

    class Watching(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            seen.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    watched = torch.zeros(2).as_subclass(Watching)
    watched.add(1)
    assert seen
    seen.clear()
    with _compat.torch_function_disabled():
        watched.add(1)
    assert seen == []
