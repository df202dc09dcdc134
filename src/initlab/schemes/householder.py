"""Haar-distributed orthogonal matrices whose values do not depend on any thread count.

Construction (Stewart 1980). The Householder QR of a standard normal
``(m, n)`` matrix ``G`` (``m >= n``) takes its ``k``-th reflector from a
standard normal vector of length ``m - k`` that is independent of the earlier
steps (rotational invariance), so the reflectors may be built from the columns
``x_k = G[k:, k]`` directly, without factorizing: with LAPACK's ``larfg``
conventions ``beta_k = -sign(x_k[0]) ||x_k||`` (``sign(0) = 1``),
``tau_k = (beta_k - x_k[0]) / beta_k`` and ``v_k = x_k / (x_k[0] - beta_k)``
(so ``v_k[0] = 1``), ``H_k = I - tau_k v_k v_k^T`` and

    Q = H_0 H_1 ... H_{n-1} [I_n; 0] diag(sign(beta_k)).

The last factor is the sign correction of R's diagonal that makes ``Q``
Haar-distributed (Mezzadri 2007): the same distribution as the Q factor of a
QR of ``G`` with that correction. A zero column (probability 0) gets the
identity reflector and sign ``+1``.

``Q`` is accumulated from the last block of reflectors to the first, as
LAPACK's ``orgqr`` does, with a block written in compact WY form
``H_j ... H_{j+b-1} = I - V T V^T`` (Schreiber & Van Loan 1989), in float64.

Thread invariance. Reductions are numpy's (single-threaded) and every matrix
product goes through :func:`exact_matmul`, whose BLAS call computes an exact
result; the remaining operations are elementwise. So ``Q`` is a function of
``G`` alone: not of ``torch.get_num_threads()``, the BLAS library, its
blocking or its thread count.

References: Stewart (1980), "The efficient generation of random orthogonal
matrices with an application to condition estimators"; Mezzadri (2007), "How
to generate random matrices from the classical compact groups"; Schreiber &
Van Loan (1989), "A storage-efficient WY representation for products of
Householder transformations".
"""

from __future__ import annotations

import numpy as np
import torch

NORM_BITS = 26
"""Each integer operand vector of :func:`exact_matmul` has Euclidean norm below ``2**NORM_BITS``."""

FLOAT64_SLICES = 3
"""Integer parts per operand for float64 results (then float64 rounding dominates the error)."""

BLOCK = 256
"""Reflectors per block of the WY accumulation. Changing it changes the last bits of the values."""


_LARGE = 1 << 17
"""Arrays with at least this many elements take their elementwise steps in torch (speed only)."""


def _rounded_quotient(values: np.ndarray, step: np.ndarray) -> np.ndarray:
    """``values / step`` rounded half to even (the division by a power of two is exact).

    Elementwise IEEE operations give the same bits in numpy and in torch on
    any number of threads; large arrays use torch's threads.
    """
    if values.size < _LARGE:
        quotient = np.divide(values, step)
        return np.rint(quotient, out=quotient)
    return torch.div(torch.from_numpy(values), torch.from_numpy(step)).round_().numpy()


def _scale_(values: np.ndarray, *steps: np.ndarray) -> np.ndarray:
    """``values`` times each of ``steps`` (powers of two, broadcast: exact), in place; see :func:`_rounded_quotient`."""
    if values.size < _LARGE:
        for step in steps:
            values *= step
        return values
    tensor = torch.from_numpy(values)
    for step in steps:
        tensor.mul_(torch.from_numpy(step))
    return values


def _integer_split(values: np.ndarray, axis: int, slices: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``values`` as ``sum(integers * step for integers, step in parts)``, one power-of-two step per vector.

    ``values`` is a batch ``(batch, m, n)``; a vector is a row (``axis=-1``)
    or a column (``axis=-2``) of one matrix. Each part holds integers (as float64) whose vectors have a
    Euclidean norm below ``2**NORM_BITS``; the first part is ``values``
    rounded to ``NORM_BITS`` bits relative to each vector's norm, each further
    part the same rounding of what the earlier parts left over (an exact
    difference), so ``slices`` parts carry about ``slices * NORM_BITS`` bits.
    """
    subscripts, spread = (
        ("bij,bij->bi", (slice(None), slice(None), None))
        if axis == -1
        else ("bij,bij->bj", (slice(None), None, slice(None)))
    )
    parts = []
    rest = values
    for level in range(slices):
        _, exponent = np.frexp(np.sqrt(np.einsum(subscripts, rest, rest)))  # norm < 2**exponent (0 for 0)
        step = np.ldexp(1.0, exponent - NORM_BITS)[spread]
        integers = _rounded_quotient(rest, step)
        parts.append((integers, step))
        if level + 1 < slices:
            rest = rest - integers * step
    return parts


_SMALL_PRODUCT = 1 << 21
"""Products with fewer multiply-adds run in numpy's BLAS, larger ones in torch's (speed only)."""


def _integer_product(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right`` of integer-valued float64 arrays (exact: see :func:`exact_matmul`).

    Any BLAS gives the same exact result; small products avoid starting torch's
    thread team, large ones use it (``torch.get_num_threads()`` threads).
    """
    if left.size // left.shape[-1] * right.shape[-1] * left.shape[-1] < _SMALL_PRODUCT:
        return np.matmul(left, right)
    return torch.matmul(torch.from_numpy(left), torch.from_numpy(right)).numpy()


def exact_matmul(left: np.ndarray, right: np.ndarray, slices: int = 1) -> np.ndarray:
    """``left @ right`` for float64 batches ``(batch, m, k) @ (batch, k, n)``, reproducible bit for bit anywhere.

    Each operand is split by :func:`_integer_split` (rows of ``left``, columns
    of ``right``) and the integer parts are multiplied by ``torch.matmul`` in
    float64. For a row ``a`` and a column ``b`` of integers with
    ``||a||, ||b|| < 2**26``, every partial sum of any subset of the products
    ``a_k b_k`` is an integer of magnitude ``<= ||a|| ||b|| < 2**52``
    (Cauchy-Schwarz), which float64 represents exactly: the BLAS result is the
    exact integer product however it blocks, orders, fuses or threads the sum.
    The parts' products (``i + j < slices``) are scaled by their steps (powers
    of two: exact) and added smallest first.

    Accuracy: a vector ``x`` of length ``K`` is represented to within
    ``(sqrt(K) 2**-26)**slices |x|`` (each rounding step is at most twice the
    vector's norm times ``2**-26``), so an entry of the result is within about
    ``(slices + 1) (sqrt(K) 2**-26)**slices |row| |column|`` of the exact
    product (typically ``2**-27`` per slice for one slice, as rounding errors
    are random), plus the float64 rounding of the final sums.
    """
    left_parts, right_parts = _integer_split(left, -1, slices), _integer_split(right, -2, slices)
    terms = []
    for order in reversed(range(slices)):
        for i in range(order + 1):
            (left_integers, left_step), (right_integers, right_step) = left_parts[i], right_parts[order - i]
            terms.append(_scale_(_integer_product(left_integers, right_integers), left_step, right_step))
    result = terms[0]
    for term in terms[1:]:
        result += term
    return result


def _reflectors(gaussian: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V, tau, sign) of Stewart's construction for a batch ``(batch, m, n)`` of standard normal matrices.

    ``V`` is unit lower trapezoidal (column ``k`` is ``v_k`` from row ``k``
    down), ``tau`` the reflector coefficients and ``sign`` the signs
    ``sign(beta_k)`` of R's diagonal (``+1`` for a zero column).
    """
    lower = np.tril(gaussian)  # a new array: ``gaussian`` is not changed
    norms = np.sqrt(np.einsum("bij,bij->bj", lower, lower))
    alpha = np.diagonal(lower, axis1=1, axis2=2)
    alpha_sign = np.where(alpha >= 0, 1.0, -1.0)
    beta = -alpha_sign * norms
    usable = norms > 0
    tau = np.where(usable, (beta - alpha) / np.where(usable, beta, 1.0), 0.0)
    lower *= np.where(usable, 1.0 / np.where(usable, alpha - beta, 1.0), 0.0)[:, None, :]
    diagonal = np.arange(gaussian.shape[2])
    lower[:, diagonal, diagonal] = 1.0
    return lower, tau, np.where(usable, -alpha_sign, 1.0)


_T_LOOP = 32
"""Largest block whose ``T`` is built column by column (larger ones are split in halves)."""


def _block_t(gram: np.ndarray, tau: np.ndarray, slices: int) -> np.ndarray:
    """Upper triangular ``T`` with ``H_0 ... H_{b-1} = I - V T V^T``, from ``gram = V^T V`` and ``tau``.

    Column by column (LAPACK's ``larft``, forward, columnwise): ``T[i, i] =
    tau_i`` and ``T[:i, i] = -tau_i T[:i, :i] gram[:i, i]``; a larger block is
    split in halves, ``T = [[T_1, -T_1 gram_12 T_2], [0, T_2]]`` (the product
    ``(I - V_1 T_1 V_1^T)(I - V_2 T_2 V_2^T)``).
    """
    batch, size = tau.shape
    t = np.zeros((batch, size, size))
    if size > _T_LOOP:
        half = size // 2
        first = _block_t(gram[:, :half, :half], tau[:, :half], slices)
        second = _block_t(gram[:, half:, half:], tau[:, half:], slices)
        t[:, :half, :half], t[:, half:, half:] = first, second
        coupling = exact_matmul(exact_matmul(first, gram[:, :half, half:], slices), second, slices)
        t[:, :half, half:] = -coupling
        return t
    for i in range(size):
        t[:, i, i] = tau[:, i]
        if i:
            t[:, :i, i] = -tau[:, i : i + 1] * np.einsum("bpq,bq->bp", t[:, :i, :i], gram[:, :i, i])
    return t


def orthonormal_columns(gaussian: torch.Tensor, slices: int = 1) -> torch.Tensor:
    """Haar-distributed ``(batch, m, n)`` float64 matrices with orthonormal columns, from standard normals.

    Args:
        gaussian: ``(batch, m, n)`` standard normal values, ``m >= n`` (any float dtype; used in float64).
        slices: integer parts per operand of each product (:func:`exact_matmul`):
            1 gives columns orthonormal to a few 1e-7 at 2048 x 2048 (torch's
            float32 QR: ~1e-6; enough for float32 and narrower results), 3 to
            float64 rounding (~1e-15).

    Returns:
        ``Q`` as in the module docstring, float64, a function of ``gaussian`` only.
    """
    batch, rows, cols = gaussian.shape
    v, tau, sign = _reflectors(gaussian.detach().to(torch.float64).numpy())
    q = np.zeros((batch, rows, cols))
    for start in reversed(range(0, cols, BLOCK)):
        stop = min(start + BLOCK, cols)
        block = v[:, start:, start:stop]
        block_t = block.transpose(0, 2, 1)
        t = _block_t(exact_matmul(block_t, block, slices), tau[:, start:stop], slices)
        if stop < cols:  # apply I - V T V^T to the columns accumulated so far
            trailing = q[:, start:, stop:]
            update = exact_matmul(t, exact_matmul(block_t, trailing, slices), slices)
            torch.from_numpy(trailing).sub_(torch.from_numpy(exact_matmul(block, update, slices)))
        # the block's own columns: (I - V T V^T) [I_b; 0] = [I_b; 0] - V T V[:b]^T
        own = exact_matmul(block, exact_matmul(t, block_t[:, :, : stop - start], slices), slices)
        np.negative(own, out=own)
        diagonal = np.arange(stop - start)
        own[:, diagonal, diagonal] += 1.0
        q[:, start:, start:stop] = own
    q *= sign[:, None, :]
    return torch.from_numpy(q)
