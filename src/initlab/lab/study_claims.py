"""The claims of the built-in studies: checks computed from stored run rows, never hard-coded.

Each claim is registered with :func:`initlab.lab.claims.register_claim` as a
``validate(params)`` / ``check(params, rows)`` pair; ``rows`` are the store's
run rows of one study (``{"key", "status", "config", "point", "summary"}``).
Every check reads only the *final summaries* the store keeps (a value "at
initialisation" comes from runs with ``training.steps = 0``) and states a rule
over training seeds: a condition holds in every seed (the worst seed decides),
or a mean difference paired by seed is beyond ``k_se`` standard errors
(:class:`Paired`). Each returns a :class:`~initlab.lab.claims.ClaimResult`
whose ``holds`` is the conjunction of named conditions; ``values["conditions"]``
lists each condition with its measured numbers and ``values["observations"]``
what is reported beside the verdict but is not part of it, so a report can show
exactly why a claim holds or fails. The thresholds live in the study files,
each with its reason.

The claims and their sources:

* ``symmetry``: zero / constant weights leave one distinct unit per layer.
* ``depth_signal``: small weights make the forward signal and the
  back-propagated gradient vanish with depth; Xavier + tanh and He + ReLU
  keep both (Glorot & Bengio 2010; He et al. 2015), and the measured
  pre-activation std follows the mean-field prediction
  ``q^{l+1} = sigma_w^2 E[phi(sqrt(q^l) z)^2] + sigma_b^2`` (Poole et al. 2016).
* ``saturation``: large weights saturate tanh and slow learning.
* ``pairing``: He suits ReLU (He, Zhang, Ren & Sun 2015, sec. 2.2 and fig. 3:
  Xavier + 30-layer ReLU learns far slower or not at all); for tanh Xavier is
  the critical choice and He's chaotic phase fails only beyond 6 xi_c
  (Schoenholz et al. 2017), reported as an observation.
* ``regularization``: an L2 penalty shrinks the weights and the train/test gap.
* ``bias``: no constant or random bias beats zero by a margin in any seed.
* ``glorot_table``: Glorot & Bengio (2010), Table 1: normalized init helps tanh;
  every other ordering named as reproduced, reversed or mixed.
* ``edge_of_chaos``: deep tanh nets train only near the critical
  ``sigma_w^2`` (Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017).
* ``lsuv``: LSUV trains as well as the best standard init (Mishkin & Matas 2016).
* ``orthogonal_depth``: with orthogonal init the learning time of a deep
  linear network does not grow with depth (Saxe, McClelland & Ganguli 2014).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from initlab.errors import InitlabError
from initlab.lab.claims import ClaimResult, register_claim

Rows = Sequence[Mapping[str, Any]]

GLOROT_BENGIO_TABLE1: dict[str, Any] = {
    "columns": ("Shapeset", "MNIST", "CIFAR-10", "ImageNet"),
    "rows": {
        ("softsign", "standard"): (16.27, 1.64, 55.78, 69.14),
        ("softsign", "normalized"): (16.06, 1.72, 53.8, 68.13),
        ("tanh", "standard"): (27.15, 1.76, 55.9, 70.58),
        ("tanh", "normalized"): (15.60, 1.64, 52.92, 68.57),
        ("sigmoid", "standard"): (82.61, 2.21, 57.28, 70.66),
    },
}
"""Test error (%) of 5-hidden-layer networks, Glorot & Bengio (2010), Table 1 ("N" = normalized init)."""


# ------------------------------------------------------------------ row access
def config_value(row: Mapping[str, Any], path: str) -> Any:
    """The value at the dotted ``path`` (``"model.depth"``) of a row's resolved config."""
    node: Any = row["config"]
    for part in path.split("."):
        node = node[part]
    return node


def init_label(row: Mapping[str, Any]) -> str:
    """A short name of a run's weight initialisation: ``lsuv``, a preset's label or the scheme name."""
    model = row["config"]["model"]
    if model.get("lsuv"):
        return "lsuv"
    scheme = model["weight_init"]
    if scheme == "auto":
        return "auto"
    return scheme.get("label") or scheme["scheme"]


def bias_label(row: Mapping[str, Any]) -> str:
    """``zeros``, ``constant 0.1``, ``normal std 0.1``: the bias init with its argument."""
    scheme = row["config"]["model"]["bias_init"]
    arguments = " ".join(
        f"{key} {value:g}" if isinstance(value, (int, float)) else f"{key} {value}"
        for key, value in scheme.items()
        if key not in ("scheme", "mean", "label")
    )
    return f"{scheme['scheme']} {arguments}".strip()


def sigma_w2(row: Mapping[str, Any]) -> float:
    """``sigma_w^2 = Var(W) * fan_in`` of a run's hidden-to-hidden weights (square layers)."""
    from initlab.fans import fans
    from initlab.schemes import from_dict

    width = config_value(row, "model.width")
    std = from_dict(row["config"]["model"]["weight_init"]).target_std(fans((width, width)))
    return float(std or 0.0) ** 2 * width


def finished(rows: Rows) -> list[Mapping[str, Any]]:
    """Rows of runs that ended (``done`` or ``diverged``); failed runs carry no numbers."""
    return [row for row in rows if row["status"] in ("done", "diverged")]


def group_by(rows: Rows, *keys: Callable[[Mapping[str, Any]], Any]) -> dict[tuple, list]:
    """Rows grouped by the tuple of ``key(row)`` values (insertion order kept)."""
    groups: dict[tuple, list] = defaultdict(list)
    for row in rows:
        groups[tuple(key(row) for key in keys)].append(row)
    return dict(groups)


def by(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """A grouping key reading the config value at ``path``."""
    return lambda row: config_value(row, path)


def mean(values: Iterable[Any]) -> float:
    """Mean of the finite numbers among ``values`` (NaN if none)."""
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(numbers) / len(numbers) if numbers else math.nan


def summary_mean(rows: Rows, metric: str) -> float:
    """Mean over runs of a scalar final metric."""
    return mean(row["summary"].get(metric) for row in rows)


def steps_or_never(row: Mapping[str, Any], metric: str) -> float:
    """``summary[metric]`` (a step count), or ``inf`` when the target was never reached."""
    value = row["summary"].get(metric)
    return math.inf if value is None else float(value)


def layer_ratio(values: Sequence[Any], top_over_bottom: bool) -> float:
    """``values[-1] / values[0]`` (or the inverse); ``inf``/``nan`` kept so a blow-up stays visible."""
    first, last = (float("nan") if v is None else float(v) for v in (values[0], values[-1]))
    numerator, denominator = (last, first) if top_over_bottom else (first, last)
    if denominator == 0:
        return math.inf if numerator > 0 else math.nan
    return numerator / denominator


def fmt(value: Any) -> str:
    """A number for a sentence: 3 significant digits, ``never`` for ``inf``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if math.isinf(value):
        return "never"
    if math.isnan(value):
        return "n/a"
    return f"{value:.3g}"


# ---------------------------------------------------------------- seed rules
def seed_of(row: Mapping[str, Any]) -> int:
    """The training seed of a run."""
    return int(config_value(row, "training.seed"))


def seeds_of(rows: Rows) -> list[int]:
    """The distinct training seeds among ``rows``, sorted."""
    return sorted({seed_of(row) for row in rows})


def per_seed(rows: Rows, value: Callable[[Mapping[str, Any]], Any]) -> dict[int, float]:
    """``seed -> value(row)`` (the mean over a seed's rows if it has several; NaN if none is finite)."""
    found: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        found[seed_of(row)].append(value(row))
    return {seed: mean(values) if len(values) > 1 else _number(values[0]) for seed, values in sorted(found.items())}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def metric_per_seed(rows: Rows, metric: str) -> dict[int, float]:
    """``seed -> summary[metric]`` of a group of runs."""
    return per_seed(rows, lambda row: row["summary"].get(metric))


@dataclass(frozen=True)
class Paired:
    """The per-seed differences ``a[seed] - b[seed]`` over the seeds both sides have, their mean and
    the standard error of the mean ``sd / sqrt(n)`` (sample sd, n - 1 in the denominator; NaN for n < 2)."""

    differences: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float:
        return sum(self.differences) / self.n if self.n else math.nan

    @property
    def se(self) -> float:
        if self.n < 2:
            return math.nan
        centre = self.mean
        return math.sqrt(sum((d - centre) ** 2 for d in self.differences) / (self.n - 1) / self.n)

    def beyond(self, k: float) -> bool:
        """The mean difference is positive and more than ``k`` standard errors from 0.

        With one seed there is no standard error: the rule then reads "positive in this seed" (how
        the robustness test replays a claim seed by seed); with none it is False.
        """
        if self.n == 1:
            return self.mean > 0
        return self.n >= 2 and math.isfinite(self.mean) and self.mean > 0 and self.mean > k * self.se

    def text(self) -> str:
        return f"{fmt(self.mean)} +- {fmt(self.se)} (n={self.n})"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "se": self.se, "n": self.n, "differences": list(self.differences)}


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> Paired:
    """The paired differences ``a - b`` over the seeds in both (non-finite differences dropped)."""
    differences = [a[seed] - b[seed] for seed in sorted(set(a) & set(b))]
    return Paired(tuple(d for d in differences if math.isfinite(d)))


def count_true(values: Iterable[bool]) -> tuple[int, int]:
    """(how many are true, how many there are)."""
    flags = [bool(value) for value in values]
    return sum(flags), len(flags)


class Conditions:
    """The named conditions of one claim; the claim holds when every one does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: list[dict[str, Any]] = []
        self.observations: list[dict[str, Any]] = []

    def add(self, text: str, holds: bool, **numbers: Any) -> None:
        """Record one condition, its truth and the numbers behind it."""
        self.items.append({"condition": text, "holds": bool(holds), "numbers": numbers})

    def missing(self, what: str) -> None:
        """A condition that cannot be checked: the study has no runs for ``what``."""
        self.add(f"runs exist for {what}", False)

    def enough_seeds(self, rows: Rows, minimum: int) -> list[int]:
        """The condition that the runs come from at least ``minimum`` training seeds; the seeds."""
        seeds = seeds_of(rows)
        self.add(f"runs from {len(seeds)} training seed(s) >= {minimum}", len(seeds) >= minimum, seeds=seeds)
        return seeds

    def observe(self, text: str, **numbers: Any) -> None:
        """Record an observation: reported beside the verdict, never part of it."""
        self.observations.append({"observation": text, "numbers": numbers})

    def result(self, **values: Any) -> ClaimResult:
        holds = bool(self.items) and all(item["holds"] for item in self.items)
        failed = [item["condition"] for item in self.items if not item["holds"]]
        detail = "; ".join(f"{item['condition']} [{'yes' if item['holds'] else 'NO'}]" for item in self.items)
        if failed:
            detail += f". Fails: {'; '.join(failed)}"
        return ClaimResult(
            self.name, holds, detail, {"conditions": self.items, "observations": self.observations, **values}
        )


# ------------------------------------------------------------------ validation
def _validator(
    name: str, allowed: Mapping[str, type | tuple[type, ...]], required: Sequence[str] = ()
) -> Callable[[Mapping[str, Any]], None]:
    """A ``validate(params)`` accepting only ``allowed`` keys of the given types."""

    def validate(params: Mapping[str, Any]) -> None:
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise InitlabError(
                f"claim.params: unknown key(s) {unknown} for claim {name!r}; expected some of {sorted(allowed)}."
            )
        for key in required:
            if key not in params:
                raise InitlabError(
                    f"claim.params.{key} is missing for claim {name!r}; expected "
                    f"a value of type {_type_name(allowed[key])}."
                )
        for key, value in params.items():
            kind = allowed[key]
            if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
                raise InitlabError(
                    f"claim.params.{key}={value!r} is invalid for claim {name!r}; expected {_type_name(kind)}."
                )
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not value > 0:
                raise InitlabError(
                    f"claim.params.{key}={value!r} is invalid for claim {name!r}; expected a number > 0."
                )

    return validate


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {"str": "a string", "list": "a list of strings", "float": "a number", "int": "an integer"}.get(
            k.__name__, k.__name__
        )
        for k in kinds
    )


NUMBER = (int, float)


# ------------------------------------------------------------------ symmetry
def check_symmetry(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """Zero/constant weights: one distinct unit per hidden layer; random: ``width`` distinct units;
    random beats every symmetric init's test accuracy. Each in every seed.

    A layer whose units start identical gets identical gradients
    (dL/dW_j = delta_j h^T with equal delta_j for equal units), so no
    gradient step can separate them: the count of distinct units stays 1.
    """
    conditions = Conditions("symmetry")
    runs = finished(rows)
    groups = group_by(runs, init_label)
    accuracy = {label[0]: summary_mean(members, "test_accuracy") for label, members in groups.items()}
    units = {label[0]: [row["summary"].get("distinct_units") for row in members] for label, members in groups.items()}
    random_label = params["random"]
    for label in [*params["symmetric"], random_label]:
        if (label,) not in groups:
            conditions.missing(f"weight_init {label}")
    if conditions.items:
        return conditions.result(accuracy=accuracy, distinct_units=units)
    seeds = conditions.enough_seeds(runs, params.get("min_seeds", 3))
    for label in params["symmetric"]:
        counts = units[label]
        ones, total = count_true(count is not None and all(c == 1 for c in count) for count in counts)
        conditions.add(
            f"{label}: 1 distinct unit in every hidden layer after training, in {ones} of {total} seeds",
            ones == total,
            distinct_units=counts[0],
        )
    widths = [config_value(row, "model.width") for row in groups[(random_label,)]]
    distinct, total = count_true(
        count is not None and all(c == width for c in count) for count, width in zip(units[random_label], widths)
    )
    conditions.add(
        f"{random_label}: every unit distinct ({widths[0]} per layer), in {distinct} of {total} seeds",
        distinct == total,
        distinct_units=units[random_label][0],
    )
    random_accuracy = metric_per_seed(groups[(random_label,)], "test_accuracy")
    symmetric = [metric_per_seed(groups[(label,)], "test_accuracy") for label in params["symmetric"]]
    best_symmetric = {seed: max(side.get(seed, math.nan) for side in symmetric) for seed in seeds}
    wins, total = count_true(random_accuracy.get(seed, math.nan) > best_symmetric[seed] for seed in seeds)
    conditions.add(
        f"{random_label} test accuracy {fmt(accuracy[random_label])} > best symmetric init's "
        f"{fmt(max(accuracy[label] for label in params['symmetric']))} (means), in {wins} of {total} seeds",
        wins == total,
        random=accuracy[random_label],
        symmetric=max(accuracy[label] for label in params["symmetric"]),
    )
    return conditions.result(accuracy=accuracy, distinct_units=units, seeds=seeds)


# -------------------------------------------------------------- depth signal
def theory_preact_std(row: Mapping[str, Any], first_preact_std: float) -> list[float] | None:
    """Mean-field prediction of the pre-activation std of every hidden layer of a run.

    Starts from the measured ``q^0`` (the first hidden layer's pre-activation
    variance, fed by the data) and iterates the q-map
    ``q^{l+1} = sigma_w^2 E_z[phi(sqrt(q^l) z)^2] + sigma_b^2``, z ~ N(0, 1)
    (Poole et al. 2016; Schoenholz et al. 2017), with ``sigma_w^2`` of the
    hidden weights and ``sigma_b^2 = 0`` (zero biases). None when the theory
    has no answer (e.g. the variance grows without bound in floating point).
    """
    from initlab.theory import MeanField

    depth = config_value(row, "model.depth")
    if depth < 2 or not (math.isfinite(first_preact_std) and first_preact_std > 0):
        return None
    try:
        field = MeanField(config_value(row, "model.activation"), sigma_w2(row), 0.0)
        q = field.propagate(depth - 1, q0=first_preact_std**2).q
    except (InitlabError, OverflowError, FloatingPointError):
        return None
    return [math.sqrt(value) if math.isfinite(value) and value >= 0 else math.nan for value in q]


def finite_width_band(row: Mapping[str, Any], predicted: Sequence[float], sigmas: float, floor: float) -> list[float]:
    """Allowed ``|log(measured std / predicted std)|`` at each hidden layer of a finite-width net.

    Mean-field theory is exact for infinite width. At width ``N`` each layer
    multiplies the measured second moment by ``1 + eps_k`` with
    ``Var(eps_k) ~ kappa_k / N``, ``kappa_k = E[phi^4] / E[phi^2]^2 - 1`` at
    ``q^k`` (the fluctuation of a mean of ``N`` squared unit outputs; 5 for
    ReLU, 2 for a linear unit), so ``log(std^l)`` drifts with standard
    deviation ``0.5 sqrt(sum_{k<l} kappa_k / N)``. The band is ``sigmas`` such
    deviations, and at least ``log(floor)`` (batch sampling at layer 0).
    """
    from initlab.activations import get_activation
    from initlab.quadrature import expect

    phi = get_activation(config_value(row, "model.activation"))
    width = config_value(row, "model.width")
    band, drift = [], 0.0
    for std in predicted:
        band.append(max(math.log(floor), sigmas * 0.5 * math.sqrt(drift / width)))
        q = std * std
        second = float(expect(lambda x: phi(x) ** 2, q))
        drift += float(expect(lambda x: phi(x) ** 4, q)) / second**2 - 1 if second > 0 else 0.0
    return band


def agrees_with_theory(row: Mapping[str, Any], sigmas: float, floor: float) -> tuple[bool, float]:
    """Whether a run's pre-activation std follows :func:`theory_preact_std` within
    :func:`finite_width_band` at every layer; and the largest deviation factor seen."""
    measured = row["summary"]["preact_std"]
    predicted = theory_preact_std(row, measured[0])
    if predicted is None or any(m is None or not m > 0 or not p > 0 for m, p in zip(measured, predicted)):
        return False, math.inf
    deviations = [abs(math.log(m / p)) for m, p in zip(measured, predicted)]
    band = finite_width_band(row, predicted, sigmas, floor)
    return all(d <= b for d, b in zip(deviations, band)), math.exp(max(deviations))


SATURATED_STD = 0.9
"""A tanh layer whose outputs have std above this sits mostly at +-1 (std of sign(z) is 1)."""


def check_depth_signal(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """Vanishing with small weights; preserved signal for Xavier+tanh and He+ReLU; theory agrees.

    Ratios per run: forward ``act_std[last] / act_std[first]`` and backward
    ``backprop_norm[first] / backprop_norm[last]`` (how much of the gradient
    at the top reaches the first layer). ``vanish_below`` bounds a vanishing
    ratio, ``keep_within`` a preserved one (both ways); the measured
    pre-activation std must stay within ``theory_sigmas`` finite-width
    standard deviations of theory, and within ``theory_factor`` at least
    (:func:`finite_width_band`).
    """
    vanish, keep = params.get("vanish_below", 1e-3), params.get("keep_within", 10.0)
    factor, sigmas = params.get("theory_factor", 1.25), params.get("theory_sigmas", 3.0)
    conditions = Conditions("depth_signal")
    seeds = conditions.enough_seeds(finished(rows), params.get("min_seeds", 3))
    groups = group_by(finished(rows), by("model.activation"), init_label)
    ratios = {
        f"{activation}/{label}": {
            "forward": [layer_ratio(row["summary"]["act_std"], True) for row in members],
            "backward": [layer_ratio(row["summary"]["backprop_norm"], False) for row in members],
        }
        for (activation, label), members in groups.items()
    }

    def need(activation: str, label: str) -> dict | None:
        key = f"{activation}/{label}"
        if key not in ratios:
            conditions.missing(key)
            return None
        return ratios[key]

    def worst(values: list[float], largest: bool) -> float:
        clean = [v if math.isfinite(v) else (math.inf if largest else -math.inf) for v in values]
        return max(clean) if largest else min(clean)

    for activation in ("tanh", "relu"):
        found = need(activation, "small_random")
        if found:
            value = worst(found["forward"], True)
            conditions.add(
                f"small init, {activation}: forward std ratio last/first {fmt(value)} (largest of {len(seeds)} "
                f"seeds) < {vanish:g} (vanishes)",
                value < vanish,
                ratio=value,
            )
    for activation in ("tanh", "sigmoid", "relu"):
        found = need(activation, "small_random")
        if found:
            value = worst(found["backward"], True)
            conditions.add(
                f"small init, {activation}: gradient ratio first/last {fmt(value)} (largest of {len(seeds)} "
                f"seeds) < {vanish:g} (vanishes)",
                value < vanish,
                ratio=value,
            )
    for activation, label in (("tanh", "glorot_normal"), ("relu", "he_normal")):
        found = need(activation, label)
        if found:
            values = found["forward"] + found["backward"]
            low, high = worst(values, False), worst(values, True)
            conditions.add(
                f"{label} + {activation}: forward and gradient ratios of every seed in "
                f"[{fmt(low)}, {fmt(high)}] within a factor {keep:g} (kept)",
                1 / keep <= low and high <= keep,
                low=low,
                high=high,
            )
    found = need("relu", "glorot_normal")
    if found:
        value = worst(found["forward"], True)
        conditions.add(
            f"glorot_normal + relu: forward ratio {fmt(value)} (largest of {len(seeds)} seeds) < {vanish:g} "
            "(Xavier loses a deep ReLU net's signal)",
            value < vanish,
            ratio=value,
        )
    found = need("relu", "large_random")
    if found:
        value = worst(found["forward"], False)
        conditions.add(
            f"large init, relu: forward ratio {fmt(value)} (smallest of {len(seeds)} seeds) > {1 / vanish:g} (explodes)",
            value > 1 / vanish,
            ratio=value,
        )
    if need("tanh", "large_random"):
        last = min(row["summary"]["act_std"][-1] for row in groups[("tanh", "large_random")])
        conditions.add(
            f"large init, tanh: output std at the last layer {fmt(last)} (smallest of {len(seeds)} seeds) > "
            f"{SATURATED_STD:g} (units pinned at +-1)",
            last > SATURATED_STD,
            std=last,
        )
    for activation, label in (("tanh", "glorot_normal"), ("relu", "he_normal")):
        checked = [agrees_with_theory(row, sigmas, factor) for row in groups.get((activation, label), [])]
        if checked:
            worst_factor = max(found for _, found in checked)
            conditions.add(
                f"{label} + {activation}: measured pre-activation std follows mean-field theory "
                f"at every layer in every seed (largest deviation x{fmt(worst_factor)}, within {sigmas:g} "
                f"finite-width standard deviations)",
                all(ok for ok, _ in checked),
                deviation=worst_factor,
            )
    return conditions.result(ratios=ratios, seeds=seeds)


# ---------------------------------------------------------------- saturation
def mean_saturation(row: Mapping[str, Any]) -> float:
    """Mean over hidden layers of the saturated fraction of a run."""
    return mean(row["summary"].get("saturated_fraction") or [])


def check_saturation(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """Large init saturates (at init) and learns slower (steps to the target accuracy) than Xavier.

    Saturated: ``|tanh(z)| > 0.99`` (lab's ``SATURATION_MARGIN``), where
    ``tanh'(z) = 1 - tanh(z)^2 < 0.02``.
    """
    activation, large, reference = params["activation"], params["large"], params["reference"]
    conditions = Conditions("saturation")
    runs = [row for row in finished(rows) if config_value(row, "model.activation") == activation]
    at_init = group_by([row for row in runs if config_value(row, "training.steps") == 0], init_label)
    trained = group_by([row for row in runs if config_value(row, "training.steps") > 0], init_label)
    for label in (large, reference):
        if (label,) not in at_init:
            conditions.missing(f"{activation}/{label} at initialisation (training.steps = 0)")
        if (label,) not in trained:
            conditions.missing(f"{activation}/{label} trained (training.steps > 0)")
    if conditions.items:
        return conditions.result()
    seeds = conditions.enough_seeds(runs, params.get("min_seeds", 3))
    saturation = {label: mean(mean_saturation(row) for row in at_init[(label,)]) for label in (large, reference)}
    per_run = {label: [mean_saturation(row) for row in at_init[(label,)]] for label in (large, reference)}
    conditions.add(
        f"{large}: saturated fraction at init {fmt(min(per_run[large]))} (smallest of {len(per_run[large])} "
        f"seeds) > {params['saturated_above']:g}",
        min(per_run[large]) > params["saturated_above"],
        value=saturation[large],
    )
    conditions.add(
        f"{reference}: saturated fraction at init {fmt(max(per_run[reference]))} (largest of "
        f"{len(per_run[reference])} seeds) < {params['healthy_below']:g}",
        max(per_run[reference]) < params["healthy_below"],
        value=saturation[reference],
    )
    steps = {
        label: [steps_or_never(row, "steps_to_target_accuracy") for row in trained[(label,)]]
        for label in (large, reference)
    }
    target = config_value(trained[(reference,)][0], "training.target_accuracy")
    slowest_reference, fastest_large = max(steps[reference]), min(steps[large])
    conditions.add(
        f"steps to {target:g} test accuracy: {reference} {fmt(slowest_reference)} (slowest of "
        f"{len(steps[reference])} seeds) < {large} {fmt(fastest_large)} (fastest of {len(steps[large])})",
        slowest_reference < fastest_large,
        reference=slowest_reference,
        large=fastest_large,
    )
    return conditions.result(saturation=saturation, steps=steps, target_accuracy=target, seeds=seeds)


# ------------------------------------------------------------------- pairing
def chaos_depth(row: Mapping[str, Any]) -> tuple[float, float]:
    """``(xi_c, 6 xi_c)`` of a run's hidden layers: the correlation depth scale of mean-field theory at
    the run's ``sigma_w^2`` and ``sigma_b^2`` (zero biases: ``sigma_b^2 = 0``; ``normal(std)`` biases:
    ``std^2``), and the trainable depth ``6 xi_c`` (Schoenholz et al. 2017, sec. 5)."""
    from initlab.theory import MeanField

    bias = row["config"]["model"]["bias_init"]
    sigma_b2 = float(bias.get("std", 0.0)) ** 2 if bias.get("scheme") == "normal" else 0.0
    field = MeanField(config_value(row, "model.activation"), sigma_w2(row), sigma_b2)
    return float(field.xi_c), float(field.trainable_depth(6.0))


def check_pairing(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """He suits ReLU; for tanh Xavier is the critical choice and He's chaos costs nothing at these depths.

    ReLU (depth ``deep``): Xavier's sigma_w^2 = 1 halves the signal's variance at every ReLU layer,
    He's sigma_w^2 = 2 keeps it. Checked, in every seed: He + ReLU reaches the train loss
    ``learn_fraction * ln(classes)``, and in fewer steps than Xavier + ReLU (a run that never
    reaches it counts as infinitely slow).

    tanh: with zero biases Xavier's sigma_w^2 = 1 is tanh's critical point; He's sigma_w^2 = 2 is
    chaotic, with mean-field correlation depth xi_c and trainable depth 6 xi_c (Schoenholz et al.
    2017), far beyond the depths measured. Checked: Xavier + tanh learns at every tanh depth in
    every seed. Observations, not part of the verdict: theory's 6 xi_c for He + tanh; how many He +
    tanh runs learn (theory predicts all at depths under 6 xi_c); how many seeds of Xavier + ReLU
    end at chance (final train loss >= ``stall_fraction * ln(classes)``); and the paired test
    accuracy difference Xavier - He with tanh at depth ``tanh_depth``, with its standard error.
    """
    deep, shallow, classes = params["deep"], params["tanh_depth"], params.get("classes", 10)
    chance_loss = math.log(classes)
    stall, learn = params.get("stall_fraction", 0.95) * chance_loss, params.get("learn_fraction", 0.8) * chance_loss
    conditions = Conditions("pairing")
    runs = finished(rows)
    groups = group_by(runs, by("model.activation"), init_label, by("model.depth"))
    loss = {f"{a}/{i}/{d}": summary_mean(m, "train_loss") for (a, i, d), m in groups.items()}
    accuracy = {f"{a}/{i}/{d}": summary_mean(m, "test_accuracy") for (a, i, d), m in groups.items()}
    tanh_depths = sorted({d for (a, _, d) in groups if a == "tanh"})
    needed = [("relu", init, deep) for init in ("glorot_normal", "he_normal")]
    needed += [("tanh", init, shallow) for init in ("glorot_normal", "he_normal")]
    for key in needed:
        if key not in groups:
            conditions.missing("/".join(map(str, key)))
    values: dict[str, Any] = {
        "train_loss": loss,
        "test_accuracy": accuracy,
        "chance_loss": chance_loss,
        "deep": deep,
        "tanh_depth": shallow,
        "tanh_depths": tanh_depths,
    }
    if conditions.items:
        return conditions.result(**values)
    values["seeds"] = conditions.enough_seeds(runs, params.get("min_seeds", 3))

    def steps(init: str) -> dict[int, float]:
        return per_seed(groups[("relu", init, deep)], lambda row: steps_or_never(row, "steps_to_target_loss"))

    he_steps, xavier_steps = steps("he_normal"), steps("glorot_normal")
    learned, total = count_true(math.isfinite(v) for v in he_steps.values())
    conditions.add(
        f"depth {deep}, He + ReLU reaches train loss {fmt(learn)} in {learned} of {total} seeds "
        f"(at step {', '.join(fmt(v) for v in he_steps.values())})",
        learned == total,
        steps=list(he_steps.values()),
    )
    common = sorted(set(he_steps) & set(xavier_steps))
    faster, total = count_true(he_steps[seed] < xavier_steps[seed] for seed in common)
    conditions.add(
        f"depth {deep}, He + ReLU gets there before Xavier + ReLU (at step "
        f"{', '.join(fmt(xavier_steps[seed]) for seed in common)}) in {faster} of {total} seeds",
        faster == total and total > 0,
        he=[he_steps[seed] for seed in common],
        xavier=[xavier_steps[seed] for seed in common],
    )
    xavier_tanh = [
        (depth, value)
        for depth in tanh_depths
        for value in metric_per_seed(groups.get(("tanh", "glorot_normal", depth), []), "train_loss").values()
    ]
    learned, total = count_true(value <= learn for _, value in xavier_tanh)
    conditions.add(
        f"Xavier + tanh learns (train loss <= {fmt(learn)}) at depths {', '.join(map(str, tanh_depths))} "
        f"in {learned} of {total} runs (every seed)",
        learned == total and total > 0,
        losses=[value for _, value in xavier_tanh],
    )

    # observations
    he_rows = groups[("tanh", "he_normal", shallow)]
    he_xi, he_limit = chaos_depth(he_rows[0])
    values.update(he_tanh_xi_c=he_xi, he_tanh_trainable_depth=he_limit)
    he_tanh = [
        value
        for depth in tanh_depths
        for value in metric_per_seed(groups.get(("tanh", "he_normal", depth), []), "train_loss").values()
    ]
    he_learned, he_total = count_true(value <= learn for value in he_tanh)
    conditions.observe(
        f"theory: He + tanh (sigma_w^2 {fmt(sigma_w2(he_rows[0]))}, zero bias) is chaotic with xi_c = "
        f"{fmt(he_xi)}, so it should fail only beyond 6 xi_c = {fmt(he_limit)} layers; measured, He + tanh "
        f"learns in {he_learned} of {he_total} runs at depths {', '.join(map(str, tanh_depths))}",
        xi_c=he_xi,
        trainable_depth=he_limit,
        learned=he_learned,
        runs=he_total,
    )
    stalled, total = count_true(
        v >= stall for v in metric_per_seed(groups[("relu", "glorot_normal", deep)], "train_loss").values()
    )
    conditions.observe(
        f"depth {deep}, Xavier + ReLU ends at chance (train loss >= {fmt(stall)}) in {stalled} of {total} seeds",
        stalled=stalled,
        seeds=total,
    )
    difference = paired(
        metric_per_seed(groups[("tanh", "glorot_normal", shallow)], "test_accuracy"),
        metric_per_seed(he_rows, "test_accuracy"),
    )
    conditions.observe(
        f"depth {shallow}, tanh test accuracy Xavier {fmt(accuracy[f'tanh/glorot_normal/{shallow}'])}, He "
        f"{fmt(accuracy[f'tanh/he_normal/{shallow}'])}: Xavier - He = {difference.text()} over seeds",
        difference=difference.to_dict(),
    )
    values.update(relu_stalled=[stalled, total], tanh_difference=difference.to_dict())
    return conditions.result(**values)


# ------------------------------------------------------------ regularization
def check_regularization(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """The final weight norm falls as lambda grows, in every seed; and the train/test gap at the
    largest lambda is below the gap without penalty, by a paired (per-seed) mean difference beyond
    ``k_se`` standard errors."""
    k = params.get("k_se", 3.0)
    conditions = Conditions("regularization")
    runs = finished(rows)
    groups = group_by(runs, by("training.l2"))
    lambdas = sorted(key[0] for key in groups)
    norm = {l2: summary_mean(groups[(l2,)], "weight_norm") for l2 in lambdas}
    gap = {l2: summary_mean(groups[(l2,)], "train_test_gap") for l2 in lambdas}
    accuracy = {l2: summary_mean(groups[(l2,)], "test_accuracy") for l2 in lambdas}
    if len(lambdas) < 2 or lambdas[0] != 0:
        conditions.missing("lambda = 0 and at least one lambda > 0")
        return conditions.result()
    seeds = conditions.enough_seeds(runs, params.get("min_seeds", 3))
    by_lambda = {l2: metric_per_seed(groups[(l2,)], "weight_norm") for l2 in lambdas}
    falling, total = count_true(
        all(by_lambda[a].get(seed, math.nan) > by_lambda[b].get(seed, math.nan) for a, b in zip(lambdas, lambdas[1:]))
        for seed in seeds
    )
    norms = [norm[l2] for l2 in lambdas]
    conditions.add(
        "weight norm falls as lambda grows: "
        + " > ".join(fmt(v) for v in norms)
        + f" (means), in {falling} of {total} seeds",
        falling == total,
        norms=norms,
    )
    largest = lambdas[-1]
    narrowing = paired(
        metric_per_seed(groups[(0.0,)], "train_test_gap"), metric_per_seed(groups[(largest,)], "train_test_gap")
    )
    conditions.add(
        f"train-test gap without penalty ({fmt(gap[0.0])}) minus the gap at lambda {largest:g} "
        f"({fmt(gap[largest])}) = {narrowing.text()}, beyond {k:g} standard errors",
        narrowing.beyond(k),
        difference=narrowing.to_dict(),
    )
    return conditions.result(lambdas=lambdas, weight_norm=norm, gap=gap, test_accuracy=accuracy, seeds=seeds)


# ---------------------------------------------------------------------- bias
def check_bias(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """Zero biases are a safe default: no other bias init is far better, in any seed.

    For each activation and each other bias init, the per-seed test-accuracy advantage of the
    other init over zero (runs paired by seed) must stay below ``margin`` in every seed. As
    observations, the paired mean advantage with its standard error, and whether it is beyond
    ``k_se`` standard errors: a real, if small, difference that seed noise cannot explain.
    """
    k, margin = params.get("k_se", 3.0), params.get("margin", 0.05)
    conditions = Conditions("bias")
    runs = finished(rows)
    groups = group_by(runs, by("model.activation"), bias_label)
    accuracy = {f"{a}/{b}": summary_mean(m, "test_accuracy") for (a, b), m in groups.items()}
    differences: dict[str, Any] = {}
    if not groups:
        conditions.missing("any bias init")
        return conditions.result(test_accuracy=accuracy)
    seeds = conditions.enough_seeds(runs, params.get("min_seeds", 3))
    for activation in sorted({a for a, _ in groups}):
        labels = [b for a, b in groups if a == activation]
        if "zeros" not in labels or len(labels) < 2:
            conditions.missing(f"{activation} with zero and non-zero biases")
            continue
        zero = metric_per_seed(groups[(activation, "zeros")], "test_accuracy")
        for label in labels:
            if label == "zeros":
                continue
            advantage = paired(metric_per_seed(groups[(activation, label)], "test_accuracy"), zero)
            differences[f"{activation}/{label}"] = advantage.to_dict()
            below, total = count_true(d < margin for d in advantage.differences)
            conditions.add(
                f"{activation}: {label} beats zero bias by less than {margin:g} test accuracy in {below} of "
                f"{total} seeds (largest advantage {fmt(max(advantage.differences, default=math.nan))})",
                below == total and total > 0,
                advantage=advantage.to_dict(),
            )
            detected = advantage.n >= 2 and advantage.beyond(k)
            conditions.observe(
                f"{activation}: {label} minus zero bias, paired over seeds: {advantage.text()}, "
                + (f"beyond {k:g} standard errors: a real difference" if detected else f"within {k:g} standard errors")
                + (", in favour of zero" if detected and advantage.mean < 0 else ""),
                advantage=advantage.to_dict(),
                beyond=detected,
            )
    return conditions.result(test_accuracy=accuracy, paired_advantage=differences, seeds=seeds)


# -------------------------------------------------------------- glorot table
GLOROT_ORDERINGS = (
    ("tanh/normalized", "tanh/standard"),
    ("softsign/normalized", "softsign/standard"),
    ("softsign/standard", "tanh/standard"),
    ("tanh/normalized", "softsign/normalized"),
    ("tanh/standard", "sigmoid/standard"),
    ("softsign/standard", "sigmoid/standard"),
)
"""Pairs ``(lower, higher)`` of Table 1's test errors that the paper reports in its Shapeset column."""

GLOROT_SETTING_DIFFERENCES = (
    "paper: Shapeset-3x2 (also MNIST, CIFAR-10, Small-ImageNet), 5 hidden layers of 1000 units, SGD with "
    "minibatches of 10 and a learning rate chosen on validation data; here: MNIST-1D, 5 hidden layers of "
    "the study's width, plain SGD with one fixed learning rate and batch size, far fewer updates"
)
"""How this study's setting differs from the paper's, printed beside its numbers."""


def check_glorot_table(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """Glorot & Bengio (2010), Table 1, ordering by ordering.

    The verdict: the paper's main finding, normalized init (Var W = 2/(fan_in + fan_out)) gives tanh
    a lower test error than the standard U(+-1/sqrt(fan_in)), in every seed. Every other ordering of
    the paper's Shapeset column (:data:`GLOROT_ORDERINGS`) is reported as an observation: it
    *reproduces* (in every seed), is *reversed* (in none) or is *mixed* (in some), with the paper's
    numbers beside ours; and whether sigmoid stays at chance under both inits (then its being
    "worst" says nothing about the init).
    """
    standard, normalized = params.get("standard", "variance_scaling"), params.get("normalized", "glorot_uniform")
    names = {standard: "standard", normalized: "normalized"}
    conditions = Conditions("glorot_table")
    runs = [row for row in finished(rows) if init_label(row) in names]
    groups = group_by(runs, by("model.activation"), lambda row: names[init_label(row)])
    error = {f"{a}/{i}": 100 * (1 - summary_mean(m, "test_accuracy")) for (a, i), m in groups.items()}
    error_by_seed = {
        f"{a}/{i}": per_seed(m, lambda row: 100 * (1 - _number(row["summary"].get("test_accuracy"))))
        for (a, i), m in groups.items()
    }
    for key in ("tanh/standard", "tanh/normalized"):
        if key not in error:
            conditions.missing(key)
    if conditions.items:
        return conditions.result(test_error=error)
    seeds = conditions.enough_seeds(runs, params.get("min_seeds", 3))
    shapeset = {f"{a}/{i}": v[0] for (a, i), v in GLOROT_BENGIO_TABLE1["rows"].items()}
    orderings: list[dict[str, Any]] = []
    for lower, higher in GLOROT_ORDERINGS:
        if lower not in error_by_seed or higher not in error_by_seed:
            continue
        common = sorted(set(error_by_seed[lower]) & set(error_by_seed[higher]))
        agree, total = count_true(error_by_seed[lower][s] < error_by_seed[higher][s] for s in common)
        status = "reproduces" if agree == total else "reversed" if agree == 0 else "mixed"
        orderings.append(
            {
                "lower": lower,
                "higher": higher,
                "paper": [shapeset[lower], shapeset[higher]],
                "ours": [error[lower], error[higher]],
                "seeds_agreeing": agree,
                "seeds": total,
                "status": status,
            }
        )
    main = orderings[0]
    conditions.add(
        f"tanh: normalized error {fmt(error['tanh/normalized'])}% < standard {fmt(error['tanh/standard'])}% "
        f"(paper, Shapeset: 15.6 < 27.15) in {main['seeds_agreeing']} of {main['seeds']} seeds",
        main["status"] == "reproduces",
    )
    for item in orderings[1:]:
        conditions.observe(
            f"{item['lower']} {fmt(item['ours'][0])}% < {item['higher']} {fmt(item['ours'][1])}% (paper, Shapeset: "
            f"{item['paper'][0]:g} < {item['paper'][1]:g}): {item['status']}, in {item['seeds_agreeing']} of "
            f"{item['seeds']} seeds",
            **item,
        )
    chance = 100 * (1 - 1 / params.get("classes", 10))
    sigmoid = {key: value for key, value in error.items() if key.startswith("sigmoid/")}
    at_chance = bool(sigmoid) and all(value >= chance - params.get("chance_margin", 5.0) for value in sigmoid.values())
    if sigmoid:
        conditions.observe(
            f"sigmoid test error {', '.join(f'{k} {fmt(v)}%' for k, v in sigmoid.items())}: "
            + (
                f"at chance ({fmt(chance)}%) under both inits, so its last place reflects plain SGD with "
                "sigmoid, not the init"
                if at_chance
                else "above chance"
            ),
            at_chance=at_chance,
        )
    conditions.observe(f"setting: {GLOROT_SETTING_DIFFERENCES}")
    return conditions.result(
        test_error=error, paper=_paper_table(), orderings=orderings, sigmoid_at_chance=at_chance, seeds=seeds
    )


def _paper_table() -> dict[str, Any]:
    return {
        "columns": list(GLOROT_BENGIO_TABLE1["columns"]),
        "rows": {f"{a}/{i}": list(v) for (a, i), v in GLOROT_BENGIO_TABLE1["rows"].items()},
    }


# ------------------------------------------------------------- edge of chaos
def trainable_depth(sigma_w2_value: float, sigma_b2: float, activation: str = "tanh") -> float:
    """``6 xi_c``, the depth up to which a network at (sigma_w^2, sigma_b^2) trains
    (Schoenholz et al. 2017, sec. 5)."""
    from initlab.theory import MeanField

    return MeanField(activation, sigma_w2_value, sigma_b2).trainable_depth(6.0)


def check_edge_of_chaos(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """Deep tanh nets train best next to the critical sigma_w^2, and where theory's 6 xi_c says.

    At every depth >= ``min_depth``: the grid sigma_w^2 with the best mean train accuracy over seeds
    is next to the critical one (the grid value nearest it or one of its two neighbours), and its
    paired (per-seed) advantage over the better end of the sweep is at least ``margin`` and beyond
    ``k_se`` standard errors. And a run trains (train accuracy >= chance + ``margin``) exactly where
    its depth is within theory's trainable depth 6 xi_c, in at least the fraction ``agreement`` of
    all runs (every seed of every cell).
    """
    from initlab.theory import critical_sigma_w2

    sigma_b2, min_depth, margin = params["sigma_b2"], params["min_depth"], params.get("margin", 0.05)
    k = params.get("k_se", 3.0)
    conditions = Conditions("edge_of_chaos")
    runs = finished(rows)
    activation = config_value(runs[0], "model.activation") if runs else "tanh"
    critical = critical_sigma_w2(activation, sigma_b2)
    groups = group_by(runs, lambda row: round(sigma_w2(row), 6), by("model.depth"))
    accuracy = {(w, d): summary_mean(m, "train_accuracy") for (w, d), m in groups.items()}
    by_seed = {(w, d): metric_per_seed(m, "train_accuracy") for (w, d), m in groups.items()}
    grid = sorted({w for w, _ in accuracy})
    depths = sorted({d for _, d in accuracy if d >= min_depth})
    if not grid or not depths:
        conditions.missing(f"depths >= {min_depth}")
        return conditions.result(critical=critical)
    seeds = conditions.enough_seeds(runs, params.get("min_seeds", 3))
    nearest = min(range(len(grid)), key=lambda i: abs(math.log(grid[i] / critical)))
    allowed = set(grid[max(0, nearest - 1) : nearest + 2])
    for depth in depths:
        column = {w: accuracy[(w, depth)] for w in grid if (w, depth) in accuracy}
        best = max(column, key=lambda w: column[w])
        ends = {
            seed: max(by_seed[(grid[0], depth)].get(seed, math.nan), by_seed[(grid[-1], depth)].get(seed, math.nan))
            for seed in seeds
        }
        advantage = paired(by_seed[(best, depth)], ends)
        conditions.add(
            f"depth {depth}: best sigma_w^2 = {best:g} (train accuracy {fmt(column[best])}) is next to the "
            f"critical {critical:.3g}, and beats the better end of the sweep by {advantage.text()} >= "
            f"{margin:g} and beyond {k:g} standard errors",
            best in allowed and advantage.mean >= margin and advantage.beyond(k),
            depth=depth,
            best=best,
            accuracy=column[best],
            ends=mean(ends.values()),
            advantage=advantage.to_dict(),
        )
    predicted = {w: trainable_depth(w, sigma_b2, activation) for w in grid}
    chance = 1.0 / params.get("classes", 10)
    agree = [
        (value >= chance + margin) == (d <= predicted[w])
        for (w, d), found in by_seed.items()
        for value in found.values()
    ]
    share = sum(agree) / len(agree)
    conditions.add(
        f"trained (train accuracy >= {chance + margin:.3g}) exactly where depth <= 6 xi_c in "
        f"{sum(agree)} of {len(agree)} runs ({share:.0%} >= {params.get('agreement', 0.8):.0%})",
        share >= params.get("agreement", 0.8),
        share=share,
    )
    return conditions.result(
        critical=critical,
        trainable_depth=predicted,
        accuracy={f"{w:g}/{d}": a for (w, d), a in accuracy.items()},
        seeds=seeds,
    )


# ---------------------------------------------------------------------- lsuv
def check_lsuv(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """For each architecture, LSUV's test accuracy is within ``tolerance`` of the best other init."""
    tolerance = params.get("tolerance", 0.02)
    conditions = Conditions("lsuv")
    groups = group_by(finished(rows), by("model.kind"), init_label)
    accuracy = {f"{k}/{i}": summary_mean(m, "test_accuracy") for (k, i), m in groups.items()}
    for kind in sorted({k for k, _ in groups}):
        scores = {i: accuracy[f"{k}/{i}"] for k, i in groups if k == kind}
        others = {i: v for i, v in scores.items() if i != "lsuv"}
        if "lsuv" not in scores or not others:
            conditions.missing(f"{kind} with LSUV and another init")
            continue
        best = max(others, key=lambda i: others[i])
        conditions.add(
            f"{kind}: LSUV {fmt(scores['lsuv'])} >= best other ({best}) {fmt(others[best])} - {tolerance:g}",
            scores["lsuv"] >= others[best] - tolerance,
            lsuv=scores["lsuv"],
            best=others[best],
        )
    if not groups:
        conditions.missing("any run")
    return conditions.result(test_accuracy=accuracy)


# ---------------------------------------------------------- orthogonal depth
def check_orthogonal_depth(params: Mapping[str, Any], rows: Rows) -> ClaimResult:
    """Orthogonal: steps to the loss threshold vary by at most ``flat_ratio`` over depths;
    Gaussian at the deepest depth needs more than ``flat_ratio`` times orthogonal's steps."""
    flat = params.get("flat_ratio", 2.0)
    orthogonal, gaussian = params.get("orthogonal", "orthogonal"), params.get("gaussian", "lecun_normal")
    conditions = Conditions("orthogonal_depth")
    groups = group_by(finished(rows), init_label, by("model.depth"))
    steps = {
        f"{i}/{d}": mean(steps_or_never(row, "steps_to_target_loss") for row in m)
        if all(steps_or_never(row, "steps_to_target_loss") < math.inf for row in m)
        else math.inf
        for (i, d), m in groups.items()
    }
    depths = sorted({d for i, d in groups if i == orthogonal} & {d for i, d in groups if i == gaussian})
    if len(depths) < 2:
        conditions.missing(f"{orthogonal} and {gaussian} at two or more depths")
        return conditions.result(steps=steps)
    ortho = [steps[f"{orthogonal}/{d}"] for d in depths]
    spread = max(ortho) / min(ortho) if min(ortho) > 0 else math.inf
    conditions.add(
        f"{orthogonal}: steps over depths {', '.join(fmt(v) for v in ortho)} vary by "
        f"{fmt(spread)}x <= {flat:g}x (flat)",
        spread <= flat,
        steps=ortho,
    )
    deepest = depths[-1]
    deep_gauss, deep_ortho = steps[f"{gaussian}/{deepest}"], steps[f"{orthogonal}/{deepest}"]
    conditions.add(
        f"depth {deepest}: {gaussian} needs {fmt(deep_gauss)} steps > {flat:g} x {orthogonal}'s {fmt(deep_ortho)}",
        deep_gauss > flat * deep_ortho,
    )
    return conditions.result(steps=steps, depths=depths)


# ------------------------------------------------------------------ register
CLAIMS: dict[str, tuple[Callable, Callable]] = {
    "symmetry": (
        _validator("symmetry", {"symmetric": list, "random": str, "min_seeds": int}, ("symmetric", "random")),
        check_symmetry,
    ),
    "depth_signal": (
        _validator(
            "depth_signal",
            {
                "vanish_below": NUMBER,
                "keep_within": NUMBER,
                "theory_factor": NUMBER,
                "theory_sigmas": NUMBER,
                "min_seeds": int,
            },
        ),
        check_depth_signal,
    ),
    "saturation": (
        _validator(
            "saturation",
            {
                "activation": str,
                "large": str,
                "reference": str,
                "saturated_above": NUMBER,
                "healthy_below": NUMBER,
                "min_seeds": int,
            },
            ("activation", "large", "reference", "saturated_above", "healthy_below"),
        ),
        check_saturation,
    ),
    "pairing": (
        _validator(
            "pairing",
            {
                "deep": int,
                "tanh_depth": int,
                "classes": int,
                "stall_fraction": NUMBER,
                "learn_fraction": NUMBER,
                "min_seeds": int,
            },
            ("deep", "tanh_depth"),
        ),
        check_pairing,
    ),
    "regularization": (_validator("regularization", {"k_se": NUMBER, "min_seeds": int}), check_regularization),
    "bias": (_validator("bias", {"k_se": NUMBER, "margin": NUMBER, "min_seeds": int}), check_bias),
    "glorot_table": (
        _validator(
            "glorot_table",
            {"standard": str, "normalized": str, "classes": int, "chance_margin": NUMBER, "min_seeds": int},
        ),
        check_glorot_table,
    ),
    "edge_of_chaos": (
        _validator(
            "edge_of_chaos",
            {
                "sigma_b2": NUMBER,
                "min_depth": int,
                "margin": NUMBER,
                "classes": int,
                "agreement": NUMBER,
                "k_se": NUMBER,
                "min_seeds": int,
            },
            ("sigma_b2", "min_depth"),
        ),
        check_edge_of_chaos,
    ),
    "lsuv": (_validator("lsuv", {"tolerance": NUMBER}), check_lsuv),
    "orthogonal_depth": (
        _validator("orthogonal_depth", {"flat_ratio": NUMBER, "orthogonal": str, "gaussian": str}),
        check_orthogonal_depth,
    ),
}
"""claim name -> (validate, check) of every built-in study's claim."""

for _name, (_validate, _check) in CLAIMS.items():
    register_claim(_name, _validate, _check)
