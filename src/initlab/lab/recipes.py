"""The seed-level claims, measured in the frameworks the classic texts use.

Xavier/Glorot: ``Var(W) = 2 / (fan_in + fan_out)``; He/Kaiming: ``Var(W) = 2 / fan_in``
(numpy: ``rng.standard_normal(n) * sqrt(2 / n)``). :func:`seed_level_rows` samples one weight
of the same shape with each form of a scheme — the numpy recipe, ``initlab``'s
``scheme.sample`` (numpy, no torch), ``torch.nn.init``'s ``xavier_normal_`` /
``kaiming_normal_`` and Keras 3's ``GlorotNormal`` / ``HeNormal`` (when Keras is installed) —
and measures each against the formula's normal ``N(0, target_std^2)``: the sample std, the
largest ``|w| / target_std`` and the Kolmogorov-Smirnov statistic. Beside each measurement
stands what :func:`initlab.compare_conventions` says that framework samples (distribution,
std, bounds), so a reader sees the convention and the numbers agree: Keras's "normal" is a
normal truncated at 2 sigma with the 0.8796 correction (the same std, values cut at 2.27
target stds except the torch backend's rare draw past the cut, and a KS statistic far above
sampling error).

Keras runs on whatever backend ``KERAS_BACKEND`` names; nothing here sets it.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SCHEMES = {"glorot_normal": "Xavier/Glorot normal", "he_normal": "He/Kaiming normal"}
"""The two seed-level schemes and their names in the classic texts."""

SHAPE = (256, 512)
"""The weight measured: a torch Linear(512, 256) weight, (fan_out, fan_in); Keras's kernel is its transpose."""


@dataclass(frozen=True)
class RecipeRow:
    """One form of one scheme, sampled at :data:`SHAPE` and measured against the formula."""

    scheme: str
    form: str
    call: str
    expected: str
    target_std: float
    std: float
    max_over_sigma: float
    ks: float
    ks_bound: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def target_std(scheme: str, fan_in: int, fan_out: int) -> float:
    """``sqrt(2 / (fan_in + fan_out))`` (Glorot & Bengio 2010, eq. 16) or ``sqrt(2 / fan_in)``
    (He et al. 2015, eq. 10)."""
    return math.sqrt(2.0 / (fan_in + fan_out)) if scheme == "glorot_normal" else math.sqrt(2.0 / fan_in)


def ks_statistic(values: np.ndarray, std: float) -> float:
    """Kolmogorov-Smirnov distance between the sample and N(0, std^2)."""
    from scipy import stats

    return float(stats.kstest(np.asarray(values, dtype=np.float64).ravel() / std, "norm").statistic)


def keras_available() -> bool:
    """Whether Keras 3 is installed (it is imported only when the rows are measured)."""
    return importlib.util.find_spec("keras") is not None


def _forms(scheme: str, seed: int) -> list[tuple[str, str, Callable[[], np.ndarray]]]:
    """(form, call, sampler) for each framework; every sampler returns a (fan_out, fan_in) array."""
    import torch

    import initlab

    fan_out, fan_in = SHAPE
    sigma = target_std(scheme, fan_in, fan_out)
    numpy_call = (
        f"rng.standard_normal({SHAPE}) * sqrt(2/{fan_in})"
        if scheme == "he_normal"
        else f"rng.standard_normal({SHAPE}) * sqrt(2/({fan_in}+{fan_out}))"
    )
    torch_call = (
        "torch.nn.init.kaiming_normal_(w, nonlinearity='relu')"
        if scheme == "he_normal"
        else "torch.nn.init.xavier_normal_(w)"
    )

    def torch_sample() -> np.ndarray:
        weight = torch.empty(SHAPE)
        generator = torch.Generator().manual_seed(seed)
        if scheme == "he_normal":
            torch.nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)
        else:
            torch.nn.init.xavier_normal_(weight, generator=generator)
        return weight.numpy()

    forms = [
        ("numpy recipe", numpy_call, lambda: np.random.default_rng(seed).standard_normal(SHAPE) * sigma),
        (
            "initlab (numpy)",
            f"initlab.{scheme}().sample({SHAPE}, seed={seed}, name='w')",
            lambda: initlab.get(scheme).sample(SHAPE, seed=seed, name="w"),
        ),
        ("torch", torch_call, torch_sample),
    ]
    if keras_available():
        keras_name = "HeNormal" if scheme == "he_normal" else "GlorotNormal"

        def keras_sample() -> np.ndarray:
            import keras

            kernel = getattr(keras.initializers, keras_name)(seed=seed)((fan_in, fan_out))
            if hasattr(kernel, "detach"):  # a torch tensor (Keras's torch backend)
                return kernel.detach().cpu().numpy().T
            return np.asarray(kernel).T

        forms.append(("keras", f"keras.initializers.{keras_name}(seed={seed})((fan_in, fan_out))", keras_sample))
    return forms


def _expected(scheme: str, form: str) -> str:
    """What :func:`initlab.compare_conventions` says the form samples: distribution, std, bounds."""
    import initlab

    report = initlab.compare_conventions(scheme, SHAPE)
    framework = {"keras": "keras", "torch": "torch"}.get(form, "initlab")
    row = next(row for row in report.rows if row.framework.split(" ")[0] == framework)
    bounds = f", cut at +-{row.bound_sigmas:g} sigma (sigma {row.sigma:.4g})" if row.bound_sigmas else ""
    return f"{row.distribution}, std {row.std:.4g}{bounds}"


def seed_level_rows(seed: int = 0) -> list[RecipeRow]:
    """Every form of Xavier and He normal, sampled at :data:`SHAPE` with ``seed`` and measured.

    ``ks_bound`` is the KS statistic a sample of this size exceeds with probability about 0.001
    when it does come from the formula's normal (``1.95 / sqrt(n)``, Kolmogorov's distribution).
    """
    fan_out, fan_in = SHAPE
    rows = []
    for scheme in SCHEMES:
        sigma = target_std(scheme, fan_in, fan_out)
        for form, call, sample in _forms(scheme, seed):
            values = np.asarray(sample(), dtype=np.float64)
            rows.append(
                RecipeRow(
                    scheme=scheme,
                    form=form,
                    call=call,
                    expected=_expected(scheme, form) if form != "numpy recipe" else f"normal, std {sigma:.4g}",
                    target_std=sigma,
                    std=float(values.std()),
                    max_over_sigma=float(np.abs(values).max() / sigma),
                    ks=ks_statistic(values, sigma),
                    ks_bound=1.95 / math.sqrt(values.size),
                )
            )
    return rows
