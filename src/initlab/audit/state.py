"""Leave the model exactly as it was: parameters, buffers, modes, flags and the global RNG.

:func:`preserved` snapshots every parameter and buffer (BatchNorm running statistics,
``num_batches_tracked``), each module's ``training`` flag and each parameter's
``requires_grad``; on exit, also after an exception, it copies back every tensor whose
bits changed (so untouched tensors keep their version counter), restores the flags, and
restores the global torch RNG states (``torch.random.fork_rng``) that dropout may use.
Inside, floating-point parameters require grad (so weight gradients can be measured)
and the torch RNG is seeded with ``seed`` (so dropout masks are reproducible).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from initlab import _kernels
from initlab.audit.statistics import single_threaded


def _tensors(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter, then every buffer, of ``model`` once (what ``named_parameters`` and
    ``named_buffers`` yield, read from one walk over the modules)."""
    modules = list(model.modules())
    tensors: list[torch.Tensor] = []
    seen: set[int] = set()
    for table in ("_parameters", "_buffers"):
        for module in modules:
            for tensor in getattr(module, table).values():
                if tensor is not None and id(tensor) not in seen:
                    seen.add(id(tensor))
                    tensors.append(tensor)
    return tensors


def _bits_equal(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Whether two tensors of one dtype hold the same bits (``torch.equal`` on an integer view
    of floating tensors, so that NaN equals NaN and -0.0 differs from 0.0)."""
    if first.shape != second.shape:
        return False
    if first.dtype.is_floating_point:
        view_dtype = {2: torch.int16, 4: torch.int32, 8: torch.int64}.get(first.element_size())
        if view_dtype is not None:
            return torch.equal(first.view(view_dtype), second.view(view_dtype))
    return torch.equal(first, second)


def _cuda_devices(tensors: list[torch.Tensor]) -> list[int]:
    return sorted({tensor.device.index or 0 for tensor in tensors if tensor.device.type == "cuda"})


_ALIGNMENT = 64
"""Byte alignment of each copy in the snapshot's buffer (a view of any dtype can start there)."""


class _Snapshot:
    """Copies of a model's tensors, to compare with and to restore from.

    The contiguous CPU tensors (every parameter and buffer of a CPU model, any dtype) are
    copied into one byte buffer by one ``_kernels.copy_regions`` call (``memcpy`` pieces on
    torch's threads) and compared with it by one ``_kernels.equal_regions`` call: no view per
    tensor is made unless one must be restored (a 50-layer MLP's 102 parameters: ~0.8 ms
    instead of ~1.5 ms with ``torch.cat`` and a view each). The others (CUDA, strided views)
    are copied by one ``torch.cat`` per dtype and device, quantized ones one by one.
    """

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = tensors
        self.offsets: list[int | None] = [None] * len(tensors)  # into the byte buffer
        self.copies: list[torch.Tensor | None] = [None] * len(tensors)
        groups: dict[tuple, list[int]] = {}
        sources, offsets, sizes, total = [], [], [], 0
        for position, tensor in enumerate(tensors):
            if tensor.is_quantized or tensor.layout != torch.strided:
                self.copies[position] = tensor.detach().clone()
            elif tensor.is_cpu and tensor.is_contiguous():
                self.offsets[position] = total
                size = tensor.numel() * tensor.element_size()
                if size:
                    sources.append(tensor.data_ptr())
                    offsets.append(total)
                    sizes.append(size)
                total += -(-size // _ALIGNMENT) * _ALIGNMENT
            else:
                groups.setdefault((tensor.dtype, tensor.device), []).append(position)
        self.buffer = torch.empty(total, dtype=torch.uint8)
        base = self.buffer.data_ptr()
        _kernels.copy_regions(sources, [base + offset for offset in offsets], sizes)
        for positions in groups.values():
            flat = torch.cat([tensors[position].detach().reshape(-1) for position in positions])
            for position, copy in zip(positions, flat.split([tensors[position].numel() for position in positions])):
                self.copies[position] = copy.view(tensors[position].shape)

    def copy(self, position: int) -> torch.Tensor:
        """The saved copy of ``tensors[position]`` (a view of the byte buffer when there)."""
        offset = self.offsets[position]
        if offset is None:
            return self.copies[position]
        tensor = self.tensors[position]
        size = tensor.numel() * tensor.element_size()
        return self.buffer[offset: offset + size].view(tensor.dtype).view(tensor.shape)

    def unchanged(self) -> list[bool]:
        """Whether each tensor still holds its saved bits: those in the byte buffer, still
        contiguous CPU tensors of their dtype and shape, compared by one
        ``_kernels.equal_regions`` call; the others by :func:`_bits_equal`."""
        equal: list[bool | None] = [None] * len(self.tensors)
        compared, first, second, sizes = [], [], [], []
        base = self.buffer.data_ptr()
        for position, (tensor, offset) in enumerate(zip(self.tensors, self.offsets)):
            if offset is None or not (tensor.is_cpu and tensor.is_contiguous()):
                continue
            size = tensor.numel() * tensor.element_size()
            if size == 0:
                equal[position] = True
            else:
                compared.append(position)
                first.append(tensor.data_ptr())
                second.append(base + offset)
                sizes.append(size)
        for position, same in zip(compared, _kernels.equal_regions(first, second, sizes)):
            equal[position] = same
        return [_bits_equal(tensor.detach(), self.copy(position)) if same is None else same
                for position, (tensor, same) in enumerate(zip(self.tensors, equal))]


@contextmanager
def preserved(model: nn.Module, seed: int) -> Iterator[None]:
    """Run the body, then put ``model`` back bit for bit (see the module docstring)."""
    tensors = _tensors(model)
    snapshot = _Snapshot(tensors)
    modes = [(module, module.training) for module in model.modules()]
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    devices = _cuda_devices(tensors)
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        for device in devices:  # the generators fork_rng restores, no others
            torch.cuda.default_generators[device].manual_seed(seed)
        try:
            for parameter, requires_grad in flags:
                if not requires_grad and parameter.is_floating_point():
                    parameter.requires_grad_(True)
            yield
        finally:
            with torch.no_grad():
                for position, equal in enumerate(snapshot.unchanged()):
                    if not equal:
                        with single_threaded():
                            tensors[position].detach().copy_(snapshot.copy(position))
            for module, training in modes:
                if module.training != training:
                    module.training = training
            for parameter, requires_grad in flags:
                if parameter.requires_grad != requires_grad:
                    parameter.requires_grad_(requires_grad)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with Python's cyclic garbage collector off (as it was before on exit).

    An audit allocates a few thousand objects (records, summaries, hooks), most of them
    freed by reference counting when it returns: with the collector on, they trigger
    young-generation collections that scan them while they are still alive and, now and
    then, a full one (measured on a 50-layer MLP: ~2 ms of a ~58 ms audit, and rare ~80 ms
    pauses). After the body, the next collection scans only what the audit returned (~900
    objects, ~0.2 ms) and the few objects in reference cycles (the Jacobian's, ~100).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
