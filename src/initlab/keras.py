"""Every initlab scheme as a Keras 3 initializer, with initlab's values.

>>> import initlab.keras
>>> layer = keras.layers.Dense(64, kernel_initializer=initlab.keras.he_normal(seed=0, name="fc1.weight"))

Each scheme has a class (``HeNormal``, ``GlorotNormal``, ``Orthogonal``, ...;
the lower-case names ``he_normal``, ``kaiming_normal``, ... are the same
classes, as in ``keras.initializers``) taking the arguments of the initlab
scheme of that name plus ``seed`` and ``name``; :class:`SchemeInitializer`
wraps any scheme object. They are ``keras.initializers.Initializer``
subclasses with ``get_config`` / ``from_config``, registered with Keras under
``"initlab>HeNormal"`` (and ``"initlab>he_normal"``, ``"initlab>kaiming_normal"``,
...), so ``Dense(kernel_initializer="initlab>he_normal")`` works and a saved
``.keras`` model loads back once ``initlab.keras`` is imported. Keras must run
on a backend that is installed (``KERAS_BACKEND=torch`` or ``jax``).

Layout and values. Keras holds a Dense kernel as (in, out) and a ConvNd
kernel as (*k, in, out); torch holds the same weights as (out, in) and
(out, in, *k). A call with a shape of 2 or more dimensions samples the scheme
on the torch-layout shape (``layout="linear"`` for 2-D, ``"conv"`` above)
with initlab's (seed, name) stream, and returns it transposed to Keras's
layout (``initlab.conventions.channels_last_axes``). So the fans are
Keras's (``compute_fans``: fan_in = in * prod(k), fan_out = out * prod(k)),
and a Keras layer gets exactly the values torch's layer gets from
``initlab.init_`` with the same scheme, seed and name, transposed. A 1-D
shape (a bias, a norm scale) is sampled as it is, with Keras's fans n, n.

Streams: which name a call uses. Keras calls an initializer once per
variable, without saying which. Call k (k = 0, 1, ...) of one instance draws
from the stream (seed, ``name``) for k = 0 and (seed, ``f"{name}#call{k}"``)
after, so one instance shared by two layers gives them different values
(a Keras initializer seeded with an integer returns the same values at every
call, so two layers sharing it get identical weights). Without a name, every
call takes the next process-wide name ``"keras#<j>"`` (j = 0, 1, ... over all
unnamed initlab initializers), so unnamed initializers never repeat each
other within a process, and a model built by the same code in a fresh
process gets the same values. Values are generated in float32 (float64 for a
float64 variable) on the CPU and converted to the backend's tensor.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from initlab.conventions import bind_preset, channels_last_axes, torch_layout_shape
from initlab.errors import InitlabError
from initlab.schemes import ALIASES, Scheme, from_dict, get


def _import_keras() -> Any:
    try:
        import keras
    except ImportError as error:
        raise ImportError(
            f"initlab.keras needs Keras 3 running on an installed backend ({error}). Install it with "
            f"pip install 'initlab[keras]' and set KERAS_BACKEND=torch (or jax) before importing keras."
        ) from error
    if int(keras.__version__.split(".")[0]) < 3:
        raise ImportError(f"initlab.keras needs Keras 3; keras {keras.__version__} is installed.")
    return keras


keras = _import_keras()
_KerasInitializer: Any = keras.initializers.Initializer

PACKAGE = "initlab"
_unnamed_calls = itertools.count()


def keras_sample(scheme: Scheme, shape, *, seed: int = 0, name: str = "", dtype: str = "float32") -> np.ndarray:
    """``scheme``'s values for a Keras-layout ``shape``, as numpy (the rule in the module docstring)."""
    shape = tuple(int(size) for size in shape)
    layout = "conv" if len(shape) > 2 else "linear"
    torch_shape = torch_layout_shape(shape, layout, "keras")
    values = scheme.sample(torch_shape, layout=layout, seed=seed, name=name, dtype=dtype)
    return np.transpose(values, channels_last_axes(len(shape), layout))


def _check_seed(seed: Any, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InitlabError(
            f"{where}: seed={seed!r} is invalid; expected an integer (initlab streams are always seeded)."
        )
    return int(seed)


def _check_name(name: Any, where: str) -> str | None:
    if name is not None and not isinstance(name, str):
        raise InitlabError(f"{where}: name={name!r} is invalid; expected a string or None.")
    return name


def _register(cls: type) -> type:
    """Register ``cls`` with Keras as ``initlab>{snake name}``, aliases, then ``initlab>{ClassName}``."""
    kind = getattr(cls, "kind", "")
    names = [kind, *(alias for alias, target in ALIASES.items() if target == kind)] if kind else []
    for name in names:
        keras.saving.register_keras_serializable(PACKAGE, name)(cls)
    return keras.saving.register_keras_serializable(PACKAGE, cls.__name__)(cls)


@_register
class SchemeInitializer(_KerasInitializer):
    """Any initlab scheme as a Keras initializer (see the module docstring for values and streams).

    Args:
        scheme: an initlab scheme, its ``to_dict()`` form, or a scheme name.
        seed: the stream seed (an integer).
        name: the stream name of the first call (None: process-wide names ``keras#<j>``).
    """

    def __init__(self, scheme: Scheme | Mapping[str, Any] | str, seed: int = 0, name: str | None = None):
        where = f"initlab.keras.{type(self).__name__}"
        if isinstance(scheme, str):
            scheme = get(scheme)
        elif isinstance(scheme, Mapping):
            scheme = from_dict(scheme)
        if not isinstance(scheme, Scheme):
            raise InitlabError(f"{where}: scheme={scheme!r} is invalid; expected an initlab scheme, its dict or name.")
        self.scheme = scheme
        self.seed = _check_seed(seed, where)
        self.name = _check_name(name, where)
        self.calls = 0

    def stream_name(self, call: int) -> str:
        """The stream name of call ``call`` of a named initializer."""
        return str(self.name) if call == 0 else f"{self.name}#call{call}"

    def __call__(self, shape, dtype=None):
        """A tensor of Keras-layout ``shape`` and ``dtype`` (default ``keras.config.floatx()``)."""
        dtype = keras.backend.standardize_dtype(dtype or keras.config.floatx())
        if "float" not in dtype:
            raise InitlabError(
                f"initlab.keras.{type(self).__name__}: dtype={dtype!r} is invalid; expected a floating dtype."
            )
        call, self.calls = self.calls, self.calls + 1
        name = f"keras#{next(_unnamed_calls)}" if self.name is None else self.stream_name(call)
        values = keras_sample(
            self.scheme, shape, seed=self.seed, name=name, dtype="float64" if dtype == "float64" else "float32"
        )
        return keras.ops.convert_to_tensor(values, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"scheme": self.scheme.to_dict(), "seed": self.seed, "name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.scheme!r}, seed={self.seed}, name={self.name!r})"


class _Preset(SchemeInitializer):
    """A named scheme: ``Class(*args, seed=0, name=None, **options)`` with initlab.<kind>'s arguments."""

    kind: ClassVar[str] = ""

    def __init__(self, *args: Any, seed: int = 0, name: str | None = None, **options: Any):
        self.options = bind_preset(self.kind, args, options, f"initlab.keras.{type(self).__name__}")
        super().__init__(get(self.kind, **self.options), seed=seed, name=name)

    def get_config(self) -> dict[str, Any]:
        return {**self.options, "seed": self.seed, "name": self.name}

    def __repr__(self) -> str:
        arguments = [f"{key}={value!r}" for key, value in self.options.items()]
        return f"{type(self).__name__}({', '.join(arguments + [f'seed={self.seed}', f'name={self.name!r}'])})"


@_register
class Zeros(_Preset):
    """initlab.zeros: W = 0."""

    kind = "zeros"


@_register
class Ones(_Preset):
    """initlab.ones: W = 1."""

    kind = "ones"


@_register
class Constant(_Preset):
    """initlab.constant(value): W = value."""

    kind = "constant"


@_register
class SmallRandom(_Preset):
    """initlab.small_random(std=0.01): W ~ N(0, std^2)."""

    kind = "small_random"


@_register
class LargeRandom(_Preset):
    """initlab.large_random(std=1): W ~ N(0, std^2)."""

    kind = "large_random"


@_register
class Normal(_Preset):
    """initlab.normal(mean=0, std=1): W ~ N(mean, std^2)."""

    kind = "normal"


@_register
class Uniform(_Preset):
    """initlab.uniform(low=0, high=1): W ~ U[low, high)."""

    kind = "uniform"


@_register
class TruncatedNormal(_Preset):
    """initlab.truncated_normal(std=1, bound=2, corrected=False, mean=0): bound in units of sigma."""

    kind = "truncated_normal"


@_register
class VarianceScaling(_Preset):
    """initlab.variance_scaling(scale=1, mode="fan_in", distribution="normal").

    ``distribution="normal"`` is a plain normal here (Keras's own
    ``VarianceScaling`` truncates it); use ``"truncated_normal"`` for Keras's.
    """

    kind = "variance_scaling"


@_register
class GlorotNormal(_Preset):
    """initlab.glorot_normal(gain=1, distribution="normal"): N(0, 2 gain^2 / (fan_in + fan_out)).

    A plain normal, as torch's ``xavier_normal_``; Keras's ``GlorotNormal`` is
    ``distribution="truncated_normal"``.
    """

    kind = "glorot_normal"


@_register
class GlorotUniform(_Preset):
    """initlab.glorot_uniform(gain=1): U[-a, a], a = gain sqrt(6 / (fan_in + fan_out))."""

    kind = "glorot_uniform"


@_register
class HeNormal(_Preset):
    """initlab.he_normal(mode="fan_in", activation="relu", negative_slope=0, distribution="normal").

    A plain normal, as torch's ``kaiming_normal_``; Keras's ``HeNormal`` is
    ``distribution="truncated_normal"``.
    """

    kind = "he_normal"


@_register
class HeUniform(_Preset):
    """initlab.he_uniform(mode="fan_in", activation="relu", negative_slope=0)."""

    kind = "he_uniform"


@_register
class LecunNormal(_Preset):
    """initlab.lecun_normal(distribution="normal"): N(0, 1 / fan_in) (Keras's is truncated)."""

    kind = "lecun_normal"


@_register
class LecunUniform(_Preset):
    """initlab.lecun_uniform(): U[-b, b], b = sqrt(3 / fan_in)."""

    kind = "lecun_uniform"


@_register
class Orthogonal(_Preset):
    """initlab.orthogonal(gain=1): the torch-layout weight (out, in * prod(k)) is gain * Q."""

    kind = "orthogonal"


@_register
class Identity(_Preset):
    """initlab.identity(gain=1): gain * I for a Dense kernel, a Dirac kernel for a Conv kernel."""

    kind = "identity"


@_register
class DeltaOrthogonal(_Preset):
    """initlab.delta_orthogonal(gain=1): an orthogonal channel matrix at the kernel centre k // 2."""

    kind = "delta_orthogonal"


@_register
class Sparse(_Preset):
    """initlab.sparse(sparsity=0.9, std=0.01): per input, ceil(sparsity * out) of its out weights are 0."""

    kind = "sparse"


CLASSES: dict[str, type[_Preset]] = {
    cls.kind: cls
    for cls in (
        Zeros,
        Ones,
        Constant,
        SmallRandom,
        LargeRandom,
        Normal,
        Uniform,
        TruncatedNormal,
        VarianceScaling,
        GlorotNormal,
        GlorotUniform,
        HeNormal,
        HeUniform,
        LecunNormal,
        LecunUniform,
        Orthogonal,
        Identity,
        DeltaOrthogonal,
        Sparse,
    )
}
"""initlab scheme name -> its Keras initializer class."""

zeros, ones, constant, small_random, large_random = Zeros, Ones, Constant, SmallRandom, LargeRandom
normal, uniform, truncated_normal, variance_scaling = Normal, Uniform, TruncatedNormal, VarianceScaling
glorot_normal, glorot_uniform, he_normal, he_uniform = GlorotNormal, GlorotUniform, HeNormal, HeUniform
lecun_normal, lecun_uniform, orthogonal, identity = LecunNormal, LecunUniform, Orthogonal, Identity
delta_orthogonal, sparse = DeltaOrthogonal, Sparse
xavier_normal, xavier_uniform, kaiming_normal, kaiming_uniform = GlorotNormal, GlorotUniform, HeNormal, HeUniform
dirac = eye = identity
zero, trunc_normal = zeros, truncated_normal

__all__ = [
    "CLASSES",
    "DeltaOrthogonal",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "LargeRandom",
    "LecunNormal",
    "LecunUniform",
    "Normal",
    "Ones",
    "Orthogonal",
    "SchemeInitializer",
    "SmallRandom",
    "Sparse",
    "TruncatedNormal",
    "Uniform",
    "VarianceScaling",
    "Zeros",
    "constant",
    "delta_orthogonal",
    "dirac",
    "eye",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "identity",
    "kaiming_normal",
    "kaiming_uniform",
    "keras_sample",
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
