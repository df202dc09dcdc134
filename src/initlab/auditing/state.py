"""Leave the model exactly as it was: parameters, buffers, modes, flags and the global RNGs.

:func:`preserved` clones every parameter and buffer (BatchNorm running statistics,
``num_batches_tracked``) and records each module's ``training`` flag and each parameter's
``requires_grad``; on exit, also after an exception, it copies back every tensor whose
bits changed (so untouched tensors keep their version counter), restores the flags, and
restores the global random states: torch's (``torch.random.fork_rng``, CPU and the CUDA
devices the model uses), Python's ``random`` and numpy's legacy global generator.
Inside, floating-point parameters require grad (so weight gradients can be measured)
and torch's global generators are seeded with ``seed`` (so dropout masks are reproducible).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

_SAME_SIZE_INTEGER = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def model_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter, then every buffer, of ``model`` once."""
    tensors: list[torch.Tensor] = []
    seen: set[int] = set()
    for tensor in (*model.parameters(), *model.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            tensors.append(tensor)
    return tensors


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` seen as integers of the same width when it holds floating-point (or complex)
    values, so that ``torch.equal`` compares bits: NaN equals NaN, -0.0 differs from 0.0."""
    if tensor.is_complex():
        tensor = torch.view_as_real(tensor)
    if tensor.is_floating_point():
        return tensor.view(_SAME_SIZE_INTEGER[tensor.element_size()])
    return tensor


def bits_equal(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Whether two tensors have the same dtype, shape and bits."""
    if first.dtype != second.dtype or first.shape != second.shape:
        return False
    if first.is_quantized:
        return torch.equal(first, second)
    return torch.equal(_bits(first), _bits(second))


def _cuda_devices(tensors: list[torch.Tensor]) -> list[int]:
    return sorted({tensor.device.index or 0 for tensor in tensors if tensor.device.type == "cuda"})


@contextmanager
def _global_random_states_kept() -> Iterator[None]:
    """Restore Python's ``random`` and numpy's legacy global generator on exit (a model may
    draw from them in ``forward``)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with the global random generators seeded from ``seed`` (torch's CPU and CUDA
    generators, Python's ``random``, numpy's legacy global generator: ``seed mod 2**32``), then
    put their states back: the caller's random streams continue as if the body had not run.
    A model factory called inside builds the same model for the same seed."""
    with _global_random_states_kept(), torch.random.fork_rng(devices=_cuda_devices_available()):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        yield


def _cuda_devices_available() -> list[int]:
    """Every CUDA device when CUDA is initialised (a factory may draw there), else none."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []


@contextmanager
def preserved(model: nn.Module, seed: int) -> Iterator[None]:
    """Run the body, then put ``model`` and the global random states back bit for bit (see
    the module docstring)."""
    tensors = model_tensors(model)
    with torch.no_grad():
        copies = [tensor.detach().clone() for tensor in tensors]
    modes = [(module, module.training) for module in model.modules()]
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    devices = _cuda_devices(tensors)
    with _global_random_states_kept(), torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        for device in devices:  # the generators fork_rng restores, no others
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        try:
            for parameter, requires_grad in flags:
                if not requires_grad and parameter.is_floating_point():
                    parameter.requires_grad_(True)
            yield
        finally:
            with torch.no_grad():
                for tensor, copy in zip(tensors, copies):
                    if not bits_equal(tensor.detach(), copy):
                        tensor.detach().copy_(copy)
            for module, training in modes:
                if module.training != training:
                    module.training = training
            for parameter, requires_grad in flags:
                if parameter.requires_grad != requires_grad:
                    parameter.requires_grad_(requires_grad)
