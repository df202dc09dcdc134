"""Structured schemes: orthogonal, identity (dirac), delta-orthogonal, sparse."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from initlab import random
from initlab.errors import InitlabError
from initlab.fans import Layout
from initlab.random import Stream, normalize_index
from initlab.schemes.base import Scheme, check_finite
from initlab.schemes.householder import FLOAT64_SLICES, orthonormal_columns


def haar_orthogonal(rows: int, cols: int, stream: Stream, dtype: torch.dtype, batch: int = 1) -> torch.Tensor:
    """``batch`` Haar-distributed float64 matrices of shape (rows, cols) with orthonormal rows or columns.

    The ``(batch, max(rows, cols), min(rows, cols))`` standard normals of
    ``stream`` (float32 values) give the Householder reflectors of Stewart's
    construction, with the sign correction of R's diagonal (Mezzadri 2007);
    see :mod:`initlab.schemes.householder`. The matrix products are exact, so
    the values are the same at any thread count. Orthonormal to float64
    rounding when ``dtype`` (the tensor's) is float64, else to a few 1e-7.

    Reference: Stewart (1980); Mezzadri (2007), "How to generate random
    matrices from the classical compact groups"; Saxe, McClelland, Ganguli (2014).
    """
    gaussian = torch.empty((batch, max(rows, cols), min(rows, cols)), dtype=torch.float32)
    random.normal_(gaussian, stream)
    q = orthonormal_columns(gaussian, slices=FLOAT64_SLICES if dtype == torch.float64 else 1)
    return q if rows >= cols else q.transpose(-2, -1)


def _write_shard(out: torch.Tensor, full: torch.Tensor, full_shape, index) -> None:
    _, slices = normalize_index(full_shape, index)
    out.copy_(full.reshape(full_shape)[slices])


@dataclass(frozen=True)
class Orthogonal(Scheme):
    """Orthogonal: W (trailing dims flattened to shape (rows, cols)) = gain * Q.

    Q has orthonormal rows (rows <= cols) or columns (rows > cols), so
    W W^T = gain^2 I or W^T W = gain^2 I; the element std is
    gain / sqrt(max(rows, cols)). A fused weight (``Layout(blocks=b)``) gets
    an independent Q per block. Q is Haar-distributed (:func:`haar_orthogonal`:
    Householder reflectors of a Gaussian matrix, computed in float64 with exact
    matrix products, so the values do not depend on the thread count).

    Reference: Saxe, McClelland, Ganguli (2014), "Exact solutions to the
    nonlinear dynamics of learning in deep linear neural networks".
    """

    gain: float = 1.0
    kind = "orthogonal"

    def __post_init__(self) -> None:
        check_finite(self.kind, "gain", self.gain, minimum=0.0)

    def target_std(self, fans=None, *, shape=None) -> float | None:
        if shape is None or len(shape) < 2:
            return None
        return self.gain / math.sqrt(max(shape[0], math.prod(shape[1:])))

    def _fill(self, out, full_shape, index, layout: Layout, fans, stream) -> None:
        if len(full_shape) < 2 or 0 in full_shape:
            raise InitlabError(
                f"orthogonal cannot initialise {stream.name or 'a tensor'!r} (shape {tuple(full_shape)}): "
                f"it needs a tensor with 2 or more non-empty dimensions. Use zeros() or constant(value) for biases."
            )
        blocks = layout.blocks
        if full_shape[0] % blocks:
            raise InitlabError(
                f"orthogonal: blocks={blocks} does not divide the first dimension of shape={full_shape}."
            )
        rows, cols = full_shape[0] // blocks, math.prod(full_shape[1:])
        q = haar_orthogonal(rows, cols, stream, out.dtype, batch=blocks)
        _write_shard(out, q.mul_(self.gain), full_shape, index)


@dataclass(frozen=True)
class Identity(Scheme):
    """Identity / Dirac: the layer passes its input through (times ``gain``).

    2-D (out, in): W = gain * I (rectangular: ones on the main diagonal).
    Conv (out, in/groups, *k): within each group g, output channel
    g*out_g + d copies input channel d of its group at the kernel centre
    (k // 2 in each spatial dim), for d < min(out_g, in/groups); every other
    tap is 0. Same as ``torch.nn.init.eye_`` / ``dirac_(groups=...)``.

    Reference: Le, Jaitly, Hinton (2015), "A Simple Way to Initialize
    Recurrent Networks of Rectified Linear Units" (IRNN).
    """

    gain: float = 1.0
    kind = "identity"

    def __post_init__(self) -> None:
        check_finite(self.kind, "gain", self.gain)

    def _fill(self, out, full_shape, index, layout: Layout, fans, stream) -> None:
        if len(full_shape) < 2:
            raise InitlabError(
                f"identity: shape={tuple(full_shape)} has {len(full_shape)} dimension(s); expected 2 "
                f"(a matrix) or 3 to 5 (a convolution). Use ones() for a norm weight."
            )
        full = torch.zeros(full_shape, dtype=out.dtype)
        groups = layout.groups if layout.kind == "conv" else 1
        out_per_group = full_shape[0] // groups
        centre = tuple(size // 2 for size in full_shape[2:])
        for group in range(groups):
            for channel in range(min(out_per_group, full_shape[1])):
                full[(group * out_per_group + channel, channel) + centre] = self.gain
        _write_shard(out, full, full_shape, index)


@dataclass(frozen=True)
class DeltaOrthogonal(Scheme):
    """Delta-orthogonal for 1-D/2-D/3-D convolutions (out, in/groups, *k).

    Every tap is 0 except the kernel centre, which holds gain * Q with Q an
    orthogonal (out_g x in_g) channel matrix per group (orthonormal columns
    when out_g >= in_g, the case of Xiao et al.; rows otherwise), Haar-distributed
    and the same at any thread count (:func:`haar_orthogonal`). A deep CNN
    so initialised is dynamically isometric at initialization.

    Reference: Xiao, Bahri, Sohl-Dickstein, Schoenholz, Pennington (2018),
    "Dynamical Isometry and a Mean Field Theory of CNNs", Algorithm 2.
    """

    gain: float = 1.0
    kind = "delta_orthogonal"

    def __post_init__(self) -> None:
        check_finite(self.kind, "gain", self.gain, minimum=0.0)

    def _fill(self, out, full_shape, index, layout: Layout, fans, stream) -> None:
        if not 3 <= len(full_shape) <= 5:
            raise InitlabError(
                f"delta_orthogonal: shape={tuple(full_shape)} is invalid; expected a 1-D, 2-D or 3-D "
                f"convolution weight (out, in/groups, *kernel) with 3 to 5 dimensions."
            )
        groups = layout.groups if layout.kind == "conv" else 1
        out_per_group, in_per_group = full_shape[0] // groups, full_shape[1]
        q = haar_orthogonal(out_per_group, in_per_group, stream, out.dtype, batch=groups)
        full = torch.zeros(full_shape, dtype=q.dtype)
        centre = tuple(size // 2 for size in full_shape[2:])
        full[(slice(None), slice(None)) + centre] = q.reshape(full_shape[0], in_per_group) * self.gain
        _write_shard(out, full, full_shape, index)


@dataclass(frozen=True)
class Sparse(Scheme):
    """Sparse: in every column, ceil(sparsity * rows) entries are 0, the rest N(0, std^2).

    Trailing dims are flattened: shape (rows, cols). Which entries are zero is
    chosen per column from the stream ``name#mask``, so it depends only on
    (seed, name, index) too. Same semantics as ``torch.nn.init.sparse_``.

    Reference: Martens (2010), "Deep learning via Hessian-free optimization", sec. 5.
    """

    sparsity: float = 0.9
    std: float = 0.01
    kind = "sparse"

    def __post_init__(self) -> None:
        value = check_finite(self.kind, "sparsity", self.sparsity)
        if not 0.0 <= value < 1.0:
            raise InitlabError(f"sparse: sparsity={self.sparsity!r} is invalid; expected 0 <= sparsity < 1.")
        check_finite(self.kind, "std", self.std, minimum=0.0)

    def target_std(self, fans=None, *, shape=None) -> float | None:
        if shape is None or len(shape) < 2:
            return None
        rows = shape[0]
        return self.std * math.sqrt((rows - math.ceil(self.sparsity * rows)) / rows)

    def _fill(self, out, full_shape, index, layout, fans, stream) -> None:
        if len(full_shape) < 2:
            raise InitlabError(
                f"sparse: shape={tuple(full_shape)} has {len(full_shape)} dimension(s); expected 2 or more."
            )
        rows, cols = full_shape[0], math.prod(full_shape[1:])
        values = torch.empty((rows, cols), dtype=torch.float32)
        random.normal_(values, stream, std=self.std)
        zeros_per_column = math.ceil(self.sparsity * rows)
        if zeros_per_column:
            keys = torch.empty((rows, cols), dtype=torch.float32)
            random.uniform_(keys, stream.child("mask"))
            chosen = torch.topk(keys, zeros_per_column, dim=0, largest=False).indices
            values.scatter_(0, chosen, 0.0)
        _write_shard(out, values, full_shape, index)


def orthogonal(gain: float = 1.0) -> Orthogonal:
    """W = gain * Q, Q orthogonal (trailing dims flattened)."""
    return Orthogonal(gain)


def identity(gain: float = 1.0) -> Identity:
    """W = gain * I (2-D) or a Dirac kernel (convs, with groups from the layout)."""
    return Identity(gain)


def delta_orthogonal(gain: float = 1.0) -> DeltaOrthogonal:
    """Conv kernel zero except an orthogonal channel matrix at the centre tap."""
    return DeltaOrthogonal(gain)


def sparse(sparsity: float = 0.9, std: float = 0.01) -> Sparse:
    """Column-sparse N(0, std^2) weights (Martens 2010)."""
    return Sparse(sparsity, std)
