"""Counter-based random streams: the one place initlab makes random numbers.

A tensor's values depend only on ``(seed, parameter name, element index)``:
never on the device, ``torch.get_num_threads()``, the number of fill
threads, the order in which tensors are filled, or sharding.

Streams. The flat element range of a tensor is cut into fixed chunks of
``CHUNK`` elements. Chunk ``j`` of stream ``(seed, name)`` owns a private
torch CPU generator (Mersenne Twister) seeded with a 63-bit BLAKE2b hash of
``(seed, name, j)``. Element ``i`` is the ``i % CHUNK``-th value of chunk
``i // CHUNK``. Chunks are filled by a pool of threads (torch and numpy
release the GIL inside their kernels), and each value is a pure function of
its coordinates. A shard (a tuple of slices of the full shape) is filled by
generating only the chunks it touches and picking its elements. The pool is
made on first use and dropped in a child process after ``os.fork()`` (the
child makes its own).

Normal values come from torch's vectorised Box-Muller transform over
24-bit uniforms (blocks of 16 values), which is exact in distribution up
to the 24-bit resolution of the uniforms: ``|z|`` never exceeds
``sqrt(-2 ln 2^-24) ~ 5.77``, an event of probability 8e-9 per draw.
Every generated run has a length that is a multiple of 16, so the value at
a position never depends on how long the generated run was (prefix property).

Truncated normals on an interval holding at least half the mass (e.g. +-2
sigma: 95.4 %) use exact rejection from the normal, in float32: a chunk's
values outside the float32-rounded bounds are replaced, in position order,
by the accepted values of a second per-chunk generator (see
:func:`_rejection_kernel`), so no buffer larger than one chunk is allocated
and no value is clamped. Narrow or far-tail intervals use the inverse CDF in
float64 (log-space in the tails), exact to float64 rounding — unlike the
erfinv-and-clamp method of ``torch.nn.init.trunc_normal_``
(pytorch/pytorch#155588).

The values of every stream are pinned by golden values in the tests, so a
torch release that changes its generator is caught.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from scipy import special

from initlab.errors import InitlabError

CHUNK = 1 << 18
"""Elements per counter chunk (a multiple of 16). Changing it changes every value."""

_BLOCK = 16
_STREAM_VERSION = "initlab-stream-v1"
_REJECTION_MIN_MASS = 0.5

Kernel = Callable[[torch.Tensor, "Stream", int], None]
"""Fills a contiguous float32/float64 CPU vector with the first values of one chunk."""


@dataclass(frozen=True)
class Stream:
    """A named random stream: ``(seed, name)`` identifies every value it yields.

    Args:
        seed: any integer (negative and > 64-bit values are fine; they are hashed).
        name: the parameter name, e.g. ``"encoder.0.weight"``.
    """

    seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise InitlabError(f"Stream: seed={self.seed!r} is invalid; expected an integer.")
        if not isinstance(self.name, str):
            raise InitlabError(f"Stream: name={self.name!r} is invalid; expected a string.")

    def chunk_seed(self, chunk: int, purpose: str = "values") -> int:
        """63-bit seed of chunk ``chunk``'s generator for ``purpose``."""
        text = f"{_STREAM_VERSION}\0{int(self.seed)}\0{self.name}\0{chunk}\0{purpose}"
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") >> 1

    def generator(self, chunk: int, purpose: str = "values") -> torch.Generator:
        """A fresh CPU generator for one chunk and purpose."""
        return torch.Generator(device="cpu").manual_seed(self.chunk_seed(chunk, purpose))

    def child(self, suffix: str) -> Stream:
        """An independent stream derived from this one (e.g. for a sparsity mask)."""
        return Stream(self.seed, f"{self.name}#{suffix}")


# --------------------------------------------------------------------------- pool

_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None
"""The fill pool and its size, made on first use."""


def _forget_pool_in_child() -> None:
    """After ``os.fork()``, in the child: drop the parent's pool (its threads do not exist here).

    The next fill starts a new pool. The lock is replaced too: another thread
    of the parent may have held it at the moment of the fork.
    """
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def fill_threads() -> int:
    """Worker threads used to fill: ``INITLAB_FILL_THREADS`` or the core count.

    The values never depend on this number; only the speed does.
    """
    configured = os.environ.get("INITLAB_FILL_THREADS")
    if configured:
        try:
            count = int(configured)
        except ValueError:
            raise InitlabError(
                f"INITLAB_FILL_THREADS={configured!r} is invalid; expected a positive integer."
            ) from None
        if count < 1:
            raise InitlabError(f"INITLAB_FILL_THREADS={configured!r} is invalid; expected a positive integer.")
        return count
    if hasattr(os, "sched_getaffinity"):  # the cores this process may run on (Linux)
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _executor(workers: int) -> ThreadPoolExecutor:
    """The fill pool with ``workers`` threads (a new one when the count changed)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != workers:
            if _pool is not None:
                _pool[1].shutdown(wait=False)
            _pool = (workers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="initlab-fill"))
        return _pool[1]


def _run_parallel(tasks: Sequence[Callable[[], None]]) -> None:
    """Run independent tasks on the fill pool (inline when there is one task or one thread)."""
    workers = fill_threads()
    if len(tasks) <= 1 or workers == 1:
        for task in tasks:
            task()
        return
    groups = [tasks[k::workers] for k in range(min(workers, len(tasks)))]
    futures = [_executor(workers).submit(_run_all, group) for group in groups]
    for future in futures:
        future.result()


def _run_all(tasks: Sequence[Callable[[], None]]) -> None:
    for task in tasks:
        task()


# --------------------------------------------------------------------------- kernels


def _round_up(length: int) -> int:
    return -(-length // _BLOCK) * _BLOCK


def normal_kernel(mean: float = 0.0, std: float = 1.0) -> Kernel:
    """N(mean, std^2) values: torch's Box-Muller with z * std + mean inside the kernel."""

    def kernel(out: torch.Tensor, stream: Stream, chunk: int) -> None:
        out.normal_(mean, std, generator=stream.generator(chunk))

    return kernel


def uniform_kernel(low: float = 0.0, high: float = 1.0) -> Kernel:
    """U[low, high) values: torch's 24-bit (float32) / 53-bit (float64) uniforms, scaled in the kernel."""

    def kernel(out: torch.Tensor, stream: Stream, chunk: int) -> None:
        out.uniform_(low, high, generator=stream.generator(chunk))

    return kernel


_scratch = threading.local()
"""Per-thread work buffers of the rejection sampler, reused from chunk to chunk."""


def _mask_buffers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's two boolean work vectors of ``length``."""
    masks = getattr(_scratch, "masks", None)
    if masks is None or masks.shape[1] < length:
        masks = _scratch.masks = np.empty((2, max(length, CHUNK)), dtype=np.bool_)
    return masks[0, :length], masks[1, :length]


def _proposal_buffer(length: int) -> torch.Tensor:
    """This thread's float32 work tensor of at least ``length``."""
    if getattr(_scratch, "proposal", None) is None or _scratch.proposal.numel() < length:
        _scratch.proposal = torch.empty(max(_round_up(length), CHUNK // 8), dtype=torch.float32)
    return _scratch.proposal


@functools.lru_cache(maxsize=256)
def _float32_bound(value: float) -> np.float32:
    """``value`` rounded to the nearest float32 (the rejection test compares in float32)."""
    with np.errstate(over="ignore"):
        return np.float32(value)


def _outside(values: np.ndarray, low: np.float32, high: np.float32) -> np.ndarray:
    """Ascending positions ``i`` with ``values[i] < low`` or ``values[i] > high`` (float32; NaN is not outside)."""
    outside, above = _mask_buffers(values.size)
    np.less(values, low, out=outside)
    np.greater(values, high, out=above)
    np.logical_or(outside, above, out=outside)
    return _true_positions(outside)


_SPARSE = 0.1
"""Below this density numpy's nonzero visits set entries one at a time (a slow path); see _true_positions."""


def _true_positions(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(mask)`` for a contiguous boolean vector.

    A sparse mask (fewer than 1 in 10 entries set) is read 8 entries at a
    time: first the 8-byte words that hold a set entry, then the set entries
    within those words (at least 1 in 8 of them), so numpy's nonzero never
    runs at a density where it takes its per-entry path.
    """
    if mask.size % 8 or np.count_nonzero(mask) >= _SPARSE * mask.size:
        return np.flatnonzero(mask)
    words = mask.view(np.uint64)
    busy = np.flatnonzero(words != 0)
    within = np.flatnonzero(words[busy].view(np.bool_))
    return busy[within >> 3] * 8 + (within & 7)


_PROPOSAL_SIGMAS = 6.0


def _proposal_length(missing: int, acceptance: float) -> int:
    """How many proposals to draw for ``missing`` positions, each accepted with probability ``acceptance``.

    The accepted count of n proposals is Binomial(n, p) with p = ``acceptance``:
    mean n p, standard deviation sqrt(n p (1 - p)) ~ sqrt(missing (1 - p)) for
    n ~ missing / p. Drawing n = (missing + 6 sqrt(missing (1 - p))) / p, plus a
    block, rounded up to a multiple of 16, leaves the accepted count short of
    ``missing`` (another round) only 6 standard deviations below its mean
    (normal approximation: ~1e-9), while drawing ~1.2 % more than needed for
    a +-2 sigma chunk (missing ~ 11 900 of 2^18, p = 0.9545). Values do not
    depend on this length: proposals continue one stream.
    """
    return _round_up(int((missing + _PROPOSAL_SIGMAS * math.sqrt(missing * (1.0 - acceptance))) / acceptance) + _BLOCK)


def _redraw_generator(stream: Stream, chunk: int) -> torch.Generator:
    """This thread's reused generator, re-seeded as ``stream.generator(chunk, "redraw")``."""
    generator = getattr(_scratch, "redraw", None)
    if generator is None:
        generator = _scratch.redraw = torch.Generator(device="cpu")
    return generator.manual_seed(stream.chunk_seed(chunk, "redraw"))


def _rejection_kernel(low: float, high: float) -> Kernel:
    """Standard normal restricted to [low, high] by rejection (mass >= 1/2), in float32.

    A chunk's normal values outside the bounds (compared in float32 with the
    bounds rounded to float32: ``x < low`` or ``x > high``) are rejected. The
    rejected positions, in ascending order, take the accepted values (``low <=
    x <= high``, in float32) of the chunk's second generator
    (``stream.generator(chunk, "redraw")``) in the order they are drawn, so a
    position's value depends only on the positions before it (the prefix
    property). While ``missing`` positions remain, ``_proposal_length(missing,
    mass)`` proposals are drawn (almost always one round: the accepted count
    falls short only 6 standard deviations below its mean); the values do not
    depend on that length, since the proposals continue one stream and only
    the last round's surplus is discarded.
    """
    low32, high32 = _float32_bound(low), _float32_bound(high)
    acceptance = _normal_mass(low, high)

    def kernel(out: torch.Tensor, stream: Stream, chunk: int) -> None:
        out.normal_(generator=stream.generator(chunk))
        values = out.numpy()
        positions = _outside(values, low32, high32)
        redraw = _redraw_generator(stream, chunk) if positions.size else None
        filled = 0
        while filled < positions.size:
            size = _proposal_length(positions.size - filled, acceptance)
            proposal = _proposal_buffer(size)[:size]
            drawn = proposal.normal_(generator=redraw).numpy()
            accepted = drawn[(drawn >= low32) & (drawn <= high32)][: positions.size - filled]
            values[positions[filled : filled + accepted.size]] = accepted
            filled += accepted.size

    return kernel


def _inverse_cdf_kernel(low: float, high: float) -> Kernel:
    """Standard normal restricted to [low, high] by the inverse CDF in float64.

    For an interval in the left tail (high <= 0) the CDF is handled in log space
    (``log_ndtr`` / ``ndtri_exp``), exact to float64 rounding however far out;
    an interval on the right is reflected to the left.
    """
    reflect = low > 0.0
    a, b = (-high, -low) if reflect else (low, high)

    def kernel(out: torch.Tensor, stream: Stream, chunk: int) -> None:
        u = out.uniform_(generator=stream.generator(chunk)).numpy()  # out is float64
        if b <= 0.0:
            log_cdf_a, log_cdf_b = special.log_ndtr(a), special.log_ndtr(b)
            log_mass = log_cdf_b + math.log1p(-math.exp(log_cdf_a - log_cdf_b))
            with np.errstate(divide="ignore"):
                log_p = np.logaddexp(log_cdf_a, np.log(u) + log_mass)
            values = special.ndtri_exp(log_p)
        else:
            cdf_a, cdf_b = special.ndtr(a), special.ndtr(b)
            values = special.ndtri(cdf_a + u * (cdf_b - cdf_a))
        np.clip(values, a, b, out=u)
        if reflect:
            np.negative(u, out=u)

    return kernel


@functools.lru_cache(maxsize=256)
def _normal_mass(low: float, high: float) -> float:
    """P(low <= Z <= high) for a standard normal Z."""
    return float(special.ndtr(high) - special.ndtr(low))


def truncated_kernel(low: float, high: float) -> tuple[Kernel, torch.dtype]:
    """The exact sampler for a standard normal restricted to [low, high], and its dtype.

    Rejection from the normal (float32) when the interval holds at least half
    the mass; otherwise the inverse CDF (float64).
    """
    if _normal_mass(low, high) >= _REJECTION_MIN_MASS:
        return _rejection_kernel(low, high), torch.float32
    return _inverse_cdf_kernel(low, high), torch.float64


def affine_kernel(kernel: Kernel, shift: float, scale: float) -> Kernel:
    """A kernel whose values are ``kernel``'s times ``scale`` plus ``shift`` (done per chunk)."""
    if shift == 0.0 and scale == 1.0:
        return kernel

    def scaled(out: torch.Tensor, stream: Stream, chunk: int) -> None:
        kernel(out, stream, chunk)
        values = out.numpy()
        if scale != 1.0:
            np.multiply(values, scale, out=values)
        if shift != 0.0:
            np.add(values, shift, out=values)

    return scaled


# --------------------------------------------------------------------------- filling


def _fill_flat_range(flat: torch.Tensor, start: int, kernel: Kernel, stream: Stream) -> None:
    """Fill contiguous vector ``flat`` with stream elements ``[start, start + len)``."""
    stop = start + flat.numel()
    tasks: list[Callable[[], None]] = []
    for chunk in range(start // CHUNK, -(-stop // CHUNK)):
        chunk_start = chunk * CHUNK
        lo, hi = max(start, chunk_start), min(stop, chunk_start + CHUNK)
        target = flat[lo - start : hi - start]
        tasks.append(_chunk_task(target, lo - chunk_start, kernel, stream, chunk))
    _run_parallel(tasks)


def _chunk_task(target: torch.Tensor, offset: int, kernel: Kernel, stream: Stream, chunk: int) -> Callable[[], None]:
    """A task writing chunk values ``[offset, offset + len(target))`` into ``target``."""
    needed = offset + target.numel()

    def task() -> None:
        if offset == 0 and needed % _BLOCK == 0:
            kernel(target, stream, chunk)
        else:
            scratch = torch.empty(_round_up(needed), dtype=target.dtype)
            kernel(scratch, stream, chunk)
            target.copy_(scratch[offset:needed])

    return task


def _flat_indices(full_shape: tuple[int, ...], index: tuple[slice, ...]) -> torch.Tensor:
    """Flat (row-major) positions in ``full_shape`` of the elements of ``index``."""
    strides = [1] * len(full_shape)
    for dim in range(len(full_shape) - 2, -1, -1):
        strides[dim] = strides[dim + 1] * full_shape[dim + 1]
    flat = torch.zeros((), dtype=torch.int64)
    for dim, (size, part) in enumerate(zip(full_shape, index)):
        positions = torch.arange(size, dtype=torch.int64)[part] * strides[dim]
        flat = flat.unsqueeze(-1) + positions
    return flat.reshape(-1)


def _fill_gather(flat: torch.Tensor, positions: torch.Tensor, kernel: Kernel, stream: Stream) -> None:
    """Fill ``flat`` with the stream elements at ``positions`` (any order)."""
    chunk_of = positions // CHUNK
    chunks = torch.unique(chunk_of)
    tasks = []
    for chunk in chunks.tolist():
        where = (chunk_of == chunk).nonzero().squeeze(1)
        tasks.append(_gather_task(flat, where, positions[where] - chunk * CHUNK, kernel, stream, chunk))
    _run_parallel(tasks)


def _gather_task(flat, where, offsets, kernel, stream, chunk) -> Callable[[], None]:
    def task() -> None:
        scratch = torch.empty(_round_up(int(offsets.max()) + 1), dtype=flat.dtype)
        kernel(scratch, stream, chunk)
        flat[where] = scratch[offsets]

    return task


def normalize_index(
    full_shape: Sequence[int], index: Sequence[slice | int] | None, where: str = "index"
) -> tuple[tuple[int, ...], tuple[slice, ...]]:
    """Check a shard index against the full shape; return (shard shape, slices).

    Integers select one position (kept as a length-1 dimension); slices must
    have a positive step. Raises InitlabError for an index outside the shape.
    """
    full_shape = tuple(int(size) for size in full_shape)
    if index is None:
        return full_shape, tuple(slice(0, size, 1) for size in full_shape)
    given: tuple = tuple(index) if isinstance(index, (tuple, list)) else (index,)
    if len(given) > len(full_shape):
        raise InitlabError(
            f"{where}={given!r} has {len(given)} entries but the full shape {full_shape} "
            f"has {len(full_shape)} dimensions; expected at most one slice per dimension."
        )
    padded = given + tuple(slice(None) for _ in range(len(full_shape) - len(given)))
    # messages below repeat the index as the caller gave it
    slices, shape = [], []
    for dim, (size, part) in enumerate(zip(full_shape, padded)):
        if isinstance(part, (int, np.integer)) and not isinstance(part, bool):
            position = int(part) + size if part < 0 else int(part)
            if not 0 <= position < size:
                raise InitlabError(
                    f"{where}={given!r} is outside the full shape {full_shape}: position {part} "
                    f"in dimension {dim} (size {size}); expected 0 <= position < {size}."
                )
            part = slice(position, position + 1)
        if not isinstance(part, slice):
            raise InitlabError(
                f"{where}={given!r} is invalid in dimension {dim}: {part!r}; expected slices or integers."
            )
        start, stop, step = part.indices(size)
        if step <= 0:
            raise InitlabError(f"{where}={given!r} has step {step} in dimension {dim}; expected a positive step.")
        if (part.start is not None and not -size <= part.start <= size) or (
            part.stop is not None and not -size <= part.stop <= size
        ):
            raise InitlabError(
                f"{where}={given!r} is outside the full shape {full_shape}: {part} in dimension "
                f"{dim} (size {size}); expected bounds within [0, {size}]."
            )
        slices.append(slice(start, stop, step))
        shape.append(len(range(start, stop, step)))
    return tuple(shape), tuple(slices)


def fill_(
    out: torch.Tensor,
    stream: Stream,
    kernel: Kernel,
    *,
    full_shape: Sequence[int] | None = None,
    index: Sequence[slice | int] | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Fill ``out`` (any device/dtype/layout) with the stream values at its position.

    Values are generated in ``dtype`` (float32, or float64 for the inverse CDF)
    on the CPU and cast into ``out``. With ``full_shape`` and ``index`` the
    tensor is the shard ``full[index]`` of a virtual full tensor.
    """
    full_shape = tuple(out.shape) if full_shape is None else tuple(int(s) for s in full_shape)
    shard_shape, slices = normalize_index(full_shape, index)
    if tuple(out.shape) != shard_shape:
        raise InitlabError(
            f"shard: the tensor has shape {tuple(out.shape)} but index {index!r} of the full "
            f"shape {full_shape} selects shape {shard_shape}; expected them to match."
        )
    direct = out.device.type == "cpu" and out.dtype == dtype and out.is_contiguous()
    # detach: the fill threads do not inherit the caller's no_grad mode, and a
    # Parameter that requires grad must be written as plain storage
    buffer = out.detach() if direct else torch.empty(shard_shape, dtype=dtype)
    flat = buffer.view(-1)
    if flat.numel() == 0:
        return out
    start = _contiguous_start(full_shape, slices)
    if start is not None:
        _fill_flat_range(flat, start, kernel, stream)
    else:
        _fill_gather(flat, _flat_indices(full_shape, slices), kernel, stream)
    if not direct:
        with torch.no_grad():
            out.copy_(buffer)
    return out


def _contiguous_start(full_shape: tuple[int, ...], slices: tuple[slice, ...]) -> int | None:
    """Flat start of the shard when it is one contiguous run of the full tensor, else None."""
    start, stride, contiguous_so_far = 0, 1, True
    for dim in range(len(full_shape) - 1, -1, -1):
        size, part = full_shape[dim], slices[dim]
        length = len(range(part.start, part.stop, part.step))
        if not contiguous_so_far and length > 1:
            return None
        if part.step != 1 and length > 1:
            return None
        start += part.start * stride
        if length != size:
            contiguous_so_far = False
        stride *= size
    return start


# --------------------------------------------------------------------------- public fills


def normal_(out, stream, *, mean=0.0, std=1.0, full_shape=None, index=None) -> torch.Tensor:
    """Fill ``out`` with N(mean, std^2) values of ``stream`` (see the module note)."""
    return fill_(out, stream, normal_kernel(float(mean), float(std)), full_shape=full_shape, index=index)


def uniform_(out, stream, *, low=0.0, high=1.0, full_shape=None, index=None) -> torch.Tensor:
    """Fill ``out`` with U[low, high) values of ``stream``."""
    return fill_(out, stream, uniform_kernel(float(low), float(high)), full_shape=full_shape, index=index)


def truncated_normal_(
    out, stream, *, mean=0.0, std=1.0, low=-2.0, high=2.0, full_shape=None, index=None
) -> torch.Tensor:
    """Fill ``out`` with N(mean, std^2) restricted to ``[mean + low*std, mean + high*std]``.

    ``low`` and ``high`` are in units of ``std``. Exact: no value is clamped,
    except that a value that rounding (of ``x * std + mean``, of a bound to
    the generation dtype, or of the cast to ``out``'s dtype) puts past a bound
    is set to the nearest representable value inside the interval — per chunk
    while it is in cache, and once more after a cast. The per-chunk pass is
    skipped when it cannot change anything: ``mean=0``, ``std=1`` and both
    bounds representable in the generation dtype (the sampler's values then
    lie within the bounds already).
    """
    kernel, dtype = truncated_kernel(float(low), float(high))
    lower, upper = float(mean) + float(low) * float(std), float(mean) + float(high) * float(std)
    inner_lower, inner_upper = inner_bound(lower, dtype, up=True), inner_bound(upper, dtype, up=False)
    kernel = affine_kernel(kernel, float(mean), float(std))
    if not (float(mean) == 0.0 and float(std) == 1.0 and inner_lower == lower and inner_upper == upper):
        kernel = _clamped_kernel(kernel, inner_lower, inner_upper)
    fill_(out, stream, kernel, full_shape=full_shape, index=index, dtype=dtype)
    if out.dtype != dtype or out.device.type != "cpu" or not out.is_contiguous():
        with torch.no_grad():
            out.clamp_(inner_bound(lower, out.dtype, up=True), inner_bound(upper, out.dtype, up=False))
    return out


def _clamped_kernel(kernel: Kernel, lower: float, upper: float) -> Kernel:
    """``kernel``'s values limited to [lower, upper] (only rounding can cross them)."""

    def clamped(out: torch.Tensor, chunk_stream: Stream, chunk: int) -> None:
        kernel(out, chunk_stream, chunk)
        values = out.numpy()
        np.clip(values, lower, upper, out=values)

    return clamped


@functools.lru_cache(maxsize=256)
def inner_bound(value: float, dtype: torch.dtype, *, up: bool) -> float:
    """The representable ``dtype`` value nearest to ``value`` on the inner side.

    ``up=True`` gives the smallest representable number >= value (a lower
    bound), ``up=False`` the largest <= value (an upper bound).
    """
    rounded = torch.tensor(value, dtype=torch.float64).to(dtype)
    if up and float(rounded) < value:
        rounded = _next_representable(rounded, towards_positive=True)
    elif not up and float(rounded) > value:
        rounded = _next_representable(rounded, towards_positive=False)
    return float(rounded)


_SAME_WIDTH_INT = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def _next_representable(value: torch.Tensor, *, towards_positive: bool) -> torch.Tensor:
    """The neighbour of a finite float scalar in its own dtype (sign-magnitude bit step)."""
    bits = value.view(_SAME_WIDTH_INT[value.dtype]).item()
    magnitude_up = (float(value) > 0) == towards_positive
    if float(value) == 0.0:
        bits = 1 if towards_positive else -(2 ** (value.element_size() * 8 - 1)) + 1
    else:
        bits += 1 if magnitude_up else -1
    return torch.tensor(bits, dtype=_SAME_WIDTH_INT[value.dtype]).view(value.dtype)
