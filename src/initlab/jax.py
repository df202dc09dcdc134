"""Every initlab scheme as a JAX initializer: ``init(key, shape, dtype) -> Array``.

>>> import initlab.jax
>>> layer = flax.linen.Dense(64, kernel_init=initlab.jax.he_normal())

Each function takes the arguments of the initlab scheme of the same name plus
JAX's ``in_axis`` (default -2), ``out_axis`` (default -1), ``batch_axis``
(default ()) and ``dtype`` (default: JAX's default float), and returns a
``jax.nn.initializers.Initializer``; :func:`initializer` wraps any scheme
object. Values come from ``jax.random`` with the caller's key, traced like any
JAX code (the initializer can be jitted; nothing goes through the host).

Where the values agree with initlab's, and where not. The distribution of
every value is initlab's: the same family (a plain normal for
``he_normal``/``glorot_normal``/``lecun_normal`` and for
``variance_scaling(distribution="normal")``; a normal truncated at +-2 sigma
with sigma = std / 0.87962566 for ``"truncated_normal"``; the uniform of
equal variance), the same fans (JAX's rule: the product of the ``in_axis``
sizes, of the ``out_axis`` sizes, times the receptive field of the other
non-batch axes, as ``jax.nn.initializers.variance_scaling`` counts), the same
target std and the same bounds. The values themselves are NOT initlab's
(seed, name) stream values: JAX's generator (threefry, keyed by ``key``)
draws other numbers, so a Flax layer and a torch layer initialised "with the
same seed" hold different tensors of the same distribution. (For initlab's
exact values, sample on the host: ``initlab.keras.keras_sample`` gives them in
the (in, out) / (*k, in, out) layout Flax shares with Keras.)

Note that JAX's own ``glorot_normal``, ``he_normal`` and ``lecun_normal`` are
truncated normals; initlab's are plain normals of the same std unless
``distribution="truncated_normal"`` is asked for.

Structured schemes read the weight in JAX's layout: ``orthogonal`` makes the
``out_axis`` columns orthonormal against the other axes flattened (JAX's
``column_axis``), per ``batch_axis`` index; ``identity`` puts gain at
[centre..., c, c] (centre k // 2, as torch's ``dirac_``); ``delta_orthogonal``
puts gain * Q, Q an orthogonal (in, out) matrix, at that centre tap;
``sparse`` zeroes ceil(sparsity * out) of the out weights of each input.
These four need a single ``in_axis`` and ``out_axis``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from initlab.conventions import bind_preset
from initlab.errors import InitlabError
from initlab.fans import Layout, fans
from initlab.schemes import Scheme, get
from initlab.schemes.basic import KERAS_TRUNCATION_CORRECTION, Constant, Normal, TruncatedNormal, Uniform
from initlab.schemes.structured import DeltaOrthogonal, Identity, Orthogonal, Sparse
from initlab.schemes.variance import VarianceScaling


def _import_jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as error:
        raise ImportError(f"initlab.jax needs JAX ({error}); install it with pip install 'initlab[jax]'.") from error
    return jax, jnp


jax, jnp = _import_jax()

Axes = int | Sequence[int]
_TRUNCATION_BOUND = 2.0


def _axes_tuple(axes: Axes) -> tuple[int, ...]:
    return (int(axes),) if isinstance(axes, (int, np.integer)) else tuple(int(axis) for axis in axes)


def _axis_or_axes(axes: Axes) -> int | tuple[int, ...]:
    return int(axes) if isinstance(axes, (int, np.integer)) else tuple(int(axis) for axis in axes)


class _Axes:
    """in/out/batch axes of one initializer, normalised against a shape."""

    def __init__(self, in_axis: Axes, out_axis: Axes, batch_axis: Axes):
        self.in_axis, self.out_axis, self.batch_axis = in_axis, out_axis, _axes_tuple(batch_axis)

    def layout(self) -> Layout:
        return Layout(
            "axes",
            in_axis=_axis_or_axes(self.in_axis),
            out_axis=_axis_or_axes(self.out_axis),
            batch_axis=self.batch_axis,
        )

    def canonical_order(self, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
        """Axes order (batch..., receptive..., in, out) for a single in and out axis."""
        if not isinstance(self.in_axis, (int, np.integer)) or not isinstance(self.out_axis, (int, np.integer)):
            raise InitlabError(
                f"{where}: in_axis={self.in_axis!r}, out_axis={self.out_axis!r} are invalid for this scheme; "
                f"expected one axis each."
            )
        ndim = len(shape)
        fans(shape, self.layout())  # checks the axes against the shape
        in_axis, out_axis = int(self.in_axis) % ndim, int(self.out_axis) % ndim
        batch = tuple(axis % ndim for axis in self.batch_axis)
        receptive = tuple(axis for axis in range(ndim) if axis not in (*batch, in_axis, out_axis))
        return batch + receptive + (in_axis, out_axis)


def _float_dtype(dtype, where: str):
    dtype = jnp.dtype(jnp.zeros((), dtype).dtype if dtype is None else dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise InitlabError(f"{where}: dtype={dtype} is invalid; expected a real floating dtype.")
    return dtype


def _orthonormal(key, batch: int, rows: int, cols: int, dtype):
    """``batch`` (rows, cols) matrices with orthonormal rows or columns, Haar-distributed (QR with signs)."""
    tall, short = max(rows, cols), min(rows, cols)
    gaussian = jax.random.normal(key, (batch, tall, short), jnp.float32)
    q, r = jnp.linalg.qr(gaussian)
    q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
    q = q if rows >= cols else jnp.swapaxes(q, -1, -2)
    return q.astype(dtype)


def _from_canonical(values, order: tuple[int, ...]):
    """``values`` laid out in ``order`` (see _Axes.canonical_order) moved back to the weight's axes."""
    return jnp.transpose(values, tuple(int(i) for i in np.argsort(order)))


def _variance_scaling(scheme: VarianceScaling, key, shape, dtype, axes: _Axes, where: str):
    try:
        counted = fans(shape, axes.layout())
    except InitlabError as error:
        raise InitlabError(f"{where} (shape {shape}): {str(error).removeprefix('fans: ')}") from None
    sigma = scheme.std_for(counted)
    if scheme.distribution == "normal":
        return sigma * jax.random.normal(key, shape, dtype)
    if scheme.distribution == "uniform":
        limit = math.sqrt(3.0) * sigma
        return jax.random.uniform(key, shape, dtype, -limit, limit)
    corrected = sigma / KERAS_TRUNCATION_CORRECTION
    return corrected * jax.random.truncated_normal(key, -_TRUNCATION_BOUND, _TRUNCATION_BOUND, shape, dtype)


def _orthogonal(scheme: Orthogonal, key, shape, dtype, axes: _Axes, where: str):
    order = axes.canonical_order(shape, where)
    canonical = tuple(shape[axis] for axis in order)
    batch = math.prod(canonical[: len(axes.batch_axis)])
    cols = canonical[-1]
    rows = math.prod(canonical) // max(batch * cols, 1)
    q = _orthonormal(key, batch, rows, cols, dtype) * jnp.asarray(scheme.gain, dtype)
    return _from_canonical(q.reshape(canonical), order)


def _identity(scheme: Identity, key, shape, dtype, axes: _Axes, where: str):
    order = axes.canonical_order(shape, where)
    canonical = tuple(shape[axis] for axis in order)
    centre = tuple(size // 2 for size in canonical[len(axes.batch_axis) : -2])
    channels = np.arange(min(canonical[-2:]))
    index = (Ellipsis, *centre, channels, channels)
    values = jnp.zeros(canonical, dtype).at[index].set(jnp.asarray(scheme.gain, dtype))
    return _from_canonical(values, order)


def _delta_orthogonal(scheme: DeltaOrthogonal, key, shape, dtype, axes: _Axes, where: str):
    order = axes.canonical_order(shape, where)
    canonical = tuple(shape[axis] for axis in order)
    batch_dims = len(axes.batch_axis)
    spatial = canonical[batch_dims:-2]
    if not 1 <= len(spatial) <= 3:
        raise InitlabError(
            f"{where}: shape={shape} has {len(spatial)} kernel dimension(s); expected a 1-D, 2-D or 3-D "
            f"convolution kernel (*k, in, out)."
        )
    batch = math.prod(canonical[:batch_dims])
    q = _orthonormal(key, batch, canonical[-2], canonical[-1], dtype) * jnp.asarray(scheme.gain, dtype)
    q = q.reshape(canonical[:batch_dims] + canonical[-2:])
    centre = tuple(size // 2 for size in spatial)
    index = (*(slice(None),) * batch_dims, *centre)
    values = jnp.zeros(canonical, dtype).at[index].set(q)
    return _from_canonical(values, order)


def _sparse(scheme: Sparse, key, shape, dtype, axes: _Axes, where: str):
    order = axes.canonical_order(shape, where)
    canonical = tuple(shape[axis] for axis in order)
    values_key, mask_key = jax.random.split(key)
    values = scheme.std * jax.random.normal(values_key, canonical, dtype)
    zeros_per_input = math.ceil(scheme.sparsity * canonical[-1])
    if zeros_per_input:
        ranks = jnp.argsort(jnp.argsort(jax.random.uniform(mask_key, canonical), axis=-1), axis=-1)
        values = jnp.where(ranks < zeros_per_input, jnp.zeros((), dtype), values)
    return _from_canonical(values, order)


def _elementwise(scheme: Scheme, key, shape, dtype):
    if isinstance(scheme, Constant):
        return jnp.full(shape, scheme.value, dtype)
    if isinstance(scheme, Normal):
        return scheme.mean + scheme.std * jax.random.normal(key, shape, dtype)
    if isinstance(scheme, Uniform):
        return jax.random.uniform(key, shape, dtype, scheme.low, scheme.high)
    if not isinstance(scheme, TruncatedNormal):
        raise InitlabError(f"initlab.jax: the scheme {scheme.name} has no JAX form.")
    bound = scheme.bound
    return scheme.mean + scheme.sigma * jax.random.truncated_normal(key, -bound, bound, shape, dtype)


_STRUCTURED: dict[type, Callable[..., Any]] = {
    Orthogonal: _orthogonal,
    Identity: _identity,
    DeltaOrthogonal: _delta_orthogonal,
    Sparse: _sparse,
}


def initializer(
    scheme: Scheme | str, *, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None
) -> Callable[..., Any]:
    """``scheme`` as a JAX initializer ``init(key, shape, dtype=dtype) -> Array`` (see the module docstring).

    Args:
        scheme: an initlab scheme or a scheme name.
        in_axis, out_axis, batch_axis: as in ``jax.nn.initializers.variance_scaling``.
        dtype: the default dtype of the values (None: JAX's default float).
    """
    scheme = get(scheme) if isinstance(scheme, str) else scheme
    if not isinstance(scheme, Scheme):
        raise InitlabError(f"initlab.jax.initializer: scheme={scheme!r} is invalid; expected an initlab scheme.")
    axes = _Axes(in_axis, out_axis, batch_axis)
    where = f"initlab.jax.{scheme.name}"
    structured = next((fill for cls, fill in _STRUCTURED.items() if isinstance(scheme, cls)), None)

    def init(key, shape, dtype=dtype, out_sharding=None):
        if out_sharding is not None:
            raise InitlabError(f"{where}: out_sharding={out_sharding!r} is not supported; expected None.")
        shape = tuple(int(size) for size in shape)
        dtype = _float_dtype(dtype, where)
        if isinstance(scheme, VarianceScaling):
            return _variance_scaling(scheme, key, shape, dtype, axes, where)
        if structured is not None:
            return structured(scheme, key, shape, dtype, axes, where)
        return _elementwise(scheme, key, shape, dtype)

    init.scheme = scheme  # type: ignore[attr-defined]
    return init


def _preset(kind: str, args, options, in_axis, out_axis, batch_axis, dtype):
    arguments = bind_preset(kind, args, options, f"initlab.jax.{kind}")
    return initializer(get(kind, **arguments), in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis, dtype=dtype)


def zeros(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.zeros: W = 0."""
    return _preset("zeros", args, options, in_axis, out_axis, batch_axis, dtype)


def ones(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.ones: W = 1."""
    return _preset("ones", args, options, in_axis, out_axis, batch_axis, dtype)


def constant(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.constant(value): W = value."""
    return _preset("constant", args, options, in_axis, out_axis, batch_axis, dtype)


def small_random(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.small_random(std=0.01): W ~ N(0, std^2)."""
    return _preset("small_random", args, options, in_axis, out_axis, batch_axis, dtype)


def large_random(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.large_random(std=1): W ~ N(0, std^2)."""
    return _preset("large_random", args, options, in_axis, out_axis, batch_axis, dtype)


def normal(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.normal(mean=0, std=1): W ~ N(mean, std^2) (JAX's ``normal(stddev)`` has mean 0, std 0.01)."""
    return _preset("normal", args, options, in_axis, out_axis, batch_axis, dtype)


def uniform(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.uniform(low=0, high=1): W ~ U[low, high) (JAX's ``uniform(scale)`` is U[0, scale))."""
    return _preset("uniform", args, options, in_axis, out_axis, batch_axis, dtype)


def truncated_normal(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.truncated_normal(std=1, bound=2, corrected=False, mean=0): bound in units of sigma."""
    return _preset("truncated_normal", args, options, in_axis, out_axis, batch_axis, dtype)


def variance_scaling(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.variance_scaling(scale=1, mode="fan_in", distribution="normal"), as JAX's of the same name."""
    return _preset("variance_scaling", args, options, in_axis, out_axis, batch_axis, dtype)


def glorot_normal(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.glorot_normal(gain=1, distribution="normal"): a plain normal (JAX's is truncated)."""
    return _preset("glorot_normal", args, options, in_axis, out_axis, batch_axis, dtype)


def glorot_uniform(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.glorot_uniform(gain=1): U[-a, a], a = gain sqrt(6 / (fan_in + fan_out))."""
    return _preset("glorot_uniform", args, options, in_axis, out_axis, batch_axis, dtype)


def he_normal(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.he_normal(mode="fan_in", activation="relu", negative_slope=0, distribution="normal")."""
    return _preset("he_normal", args, options, in_axis, out_axis, batch_axis, dtype)


def he_uniform(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.he_uniform(mode="fan_in", activation="relu", negative_slope=0)."""
    return _preset("he_uniform", args, options, in_axis, out_axis, batch_axis, dtype)


def lecun_normal(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.lecun_normal(distribution="normal"): N(0, 1 / fan_in) (JAX's is truncated)."""
    return _preset("lecun_normal", args, options, in_axis, out_axis, batch_axis, dtype)


def lecun_uniform(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.lecun_uniform(): U[-b, b], b = sqrt(3 / fan_in)."""
    return _preset("lecun_uniform", args, options, in_axis, out_axis, batch_axis, dtype)


def orthogonal(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.orthogonal(gain=1): orthonormal ``out_axis`` columns (JAX's ``column_axis``)."""
    return _preset("orthogonal", args, options, in_axis, out_axis, batch_axis, dtype)


def identity(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.identity(gain=1): gain * I (Dense), a Dirac kernel at k // 2 (Conv)."""
    return _preset("identity", args, options, in_axis, out_axis, batch_axis, dtype)


def delta_orthogonal(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.delta_orthogonal(gain=1): orthogonal (in, out) matrix at the centre tap k // 2."""
    return _preset("delta_orthogonal", args, options, in_axis, out_axis, batch_axis, dtype)


def sparse(*args, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None, **options):
    """initlab.sparse(sparsity=0.9, std=0.01): ceil(sparsity * out) zeros among each input's out weights."""
    return _preset("sparse", args, options, in_axis, out_axis, batch_axis, dtype)


xavier_normal, xavier_uniform, kaiming_normal, kaiming_uniform = glorot_normal, glorot_uniform, he_normal, he_uniform
dirac = eye = identity
zero, trunc_normal = zeros, truncated_normal

__all__ = [
    "constant",
    "delta_orthogonal",
    "dirac",
    "eye",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "identity",
    "initializer",
    "kaiming_normal",
    "kaiming_uniform",
    "large_random",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "orthogonal",
    "small_random",
    "sparse",
    "trunc_normal",
    "truncated_normal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zero",
    "zeros",
]
