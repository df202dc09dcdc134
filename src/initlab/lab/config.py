"""Studies as TOML, validated with pydantic.

A study names a dataset, a model, training settings, the metrics to keep, a
grid over any run field and an optional claim (see ``docs/studies.md`` for
every field). :func:`load_study` parses and validates it; :func:`expand`
turns it into the list of fully resolved runs (``cases`` x the product of
the grid axes, in file order).

Every validation error is an :class:`~initlab.errors.InitlabError` whose
message names the field path, repeats the value and says what was expected
(unknown keys list the allowed keys).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from initlab.errors import InitlabError
from initlab.lab.models import resolve_activation

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_GRID_RUNS = 100_000
"""Most runs a study may expand to (cases x the product of the grid axis lengths); checked before expanding."""
MNIST1D_SIZES = (4000, 1000)
"""Training and test examples MNIST-1D generates (``get_dataset_args()``: 5000 samples, 80 % train)."""
DIGITS_SIZE = 1797
"""Examples in scikit-learn's 8x8 digits."""

ENGINE_VERSION = "8"
"""Bumped whenever a change to the lab alters the numbers a run produces."""

ScalarMetric = Literal[
    "train_loss", "test_loss", "train_accuracy", "test_accuracy", "train_mse", "test_mse", "weight_norm"
]
LayerMetric = Literal[
    "layer_weight_norm",
    "grad_norm",
    "act_std",
    "preact_std",
    "backprop_norm",
    "saturated_fraction",
    "distinct_units",
]
Metric = Literal[ScalarMetric, LayerMetric]
SCALAR_METRICS: tuple[ScalarMetric, ...] = get_args(ScalarMetric)
LAYER_METRICS: tuple[LayerMetric, ...] = get_args(LayerMetric)
METRICS: tuple[Metric, ...] = SCALAR_METRICS + LAYER_METRICS
RUN_SECTIONS = ("dataset", "model", "training", "metrics")
PER_RUN_FIELDS = {
    "model": ("weight_init", "output_init", "bias_init", "lsuv"),
    "training": ("seed", "lr", "momentum", "betas", "eps", "l2", "weight_decay", "target_accuracy", "target_loss"),
}
"""Fields that may differ between runs trained together in one stacked model."""


def code_version() -> str:
    """The code version that enters every run key."""
    from initlab import __version__

    return f"initlab-{__version__}/lab-{ENGINE_VERSION}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


def nn_entry(name: str):
    """``initlab.nn``'s ``init_`` / ``lsuv_`` (issue 3), or None where it is not installed."""
    try:
        import initlab.nn as initlab_nn
    except ImportError:
        return None
    return getattr(initlab_nn, name, None)


MAX_COUNT = 10_000_000
"""Largest count a study field accepts (examples, widths, steps, sizes)."""
MAX_SEED = 2**63 - 1
"""Largest seed a study field accepts (63 bits, as the command line's --seed)."""
MAX_HIDDEN_WEIGHTS = 2**28
"""Most hidden weights one run may have (depth x width^2 x kernel size; 1 GiB of float32)."""

PositiveInt = Annotated[int, Field(ge=1, le=MAX_COUNT, strict=True)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
OptionalCount = Union[PositiveInt, None]  # noqa: UP007  (pydantic reads it at run time)


# ----------------------------------------------------------------- datasets
class Mnist1dConfig(_Strict):
    """MNIST-1D generated offline (4000 train / 1000 test, length 40)."""

    name: Literal["mnist1d"] = "mnist1d"
    standardize: bool = True
    n_train: OptionalCount = None
    n_test: OptionalCount = None


class DigitsConfig(_Strict):
    """scikit-learn's 8x8 digits with a seeded split."""

    name: Literal["digits"]
    standardize: bool = True
    test_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    split_seed: Seed = 0


class TeacherConfig(_Strict):
    """Regression on a random teacher network."""

    name: Literal["teacher"]
    n_train: PositiveInt = 2000
    n_test: PositiveInt = 1000
    input_dim: PositiveInt = 20
    hidden: PositiveInt = 32
    output_dim: PositiveInt = 1
    noise: float = Field(0.1, ge=0.0)
    seed: Seed = 0


class GaussianMixtureConfig(_Strict):
    """Classification of Gaussian clusters."""

    name: Literal["gaussian_mixture"]
    n_train: PositiveInt = 2000
    n_test: PositiveInt = 1000
    input_dim: PositiveInt = 20
    num_classes: int = Field(4, ge=2, le=MAX_COUNT)
    separation: float = Field(1.0, gt=0.0)
    seed: Seed = 0


class IdxConfig(_Strict):
    """MNIST or Fashion-MNIST IDX files (raw or .gz) in the folder ``path``."""

    name: Literal["mnist_idx", "fashion_mnist_idx"]
    path: str
    standardize: bool = True
    n_train: OptionalCount = None
    n_test: OptionalCount = None


class Cifar10Config(_Strict):
    """CIFAR-10 binary batches in the folder ``path``."""

    name: Literal["cifar10_binary"]
    path: str
    standardize: bool = True
    n_train: OptionalCount = None
    n_test: OptionalCount = None


DATASET_CONFIGS = (Mnist1dConfig, DigitsConfig, TeacherConfig, GaussianMixtureConfig, IdxConfig, Cifar10Config)
DatasetConfig = Annotated[
    Union[Mnist1dConfig, DigitsConfig, TeacherConfig, GaussianMixtureConfig, IdxConfig, Cifar10Config],  # noqa: UP007
    Field(discriminator="name"),
]
DATASET_NAMES = tuple(name for cls in DATASET_CONFIGS for name in get_args(cls.model_fields["name"].annotation))


# -------------------------------------------------------------------- model
def scheme_dict(value: Any, *, allow_auto: bool) -> Any:
    """Validate a scheme given as a name or ``{scheme = name, **arguments}``; resolved dict.

    ``"auto"`` (weights only) stays ``"auto"``: ``initlab.init_`` picks the
    scheme from the activation.
    """
    from initlab.schemes import from_dict

    if value == "auto":
        if not allow_auto:
            raise ValueError("'auto' is only accepted for model.weight_init")
        return "auto"
    if isinstance(value, str):
        value = {"scheme": value}
    if not (isinstance(value, Mapping) and isinstance(value.get("scheme"), str)):
        raise ValueError("expected a scheme name or a table {scheme = NAME, ...arguments}")
    name = value["scheme"]
    try:
        return from_dict(value).to_dict()
    except InitlabError as error:
        raise ValueError(str(error)) from None
    except TypeError as error:
        raise ValueError(f"bad arguments for scheme {name!r}: {error}") from None


class ModelConfig(_Strict):
    """Architecture and initialisation (see :mod:`initlab.lab.models`)."""

    kind: Literal["mlp", "resmlp", "cnn1d"] = "mlp"
    depth: PositiveInt = 2
    width: PositiveInt = 100
    activation: str = "relu"
    activation_params: dict[str, float] = Field(default_factory=dict)
    bias: bool = True
    norm: Literal["none", "batch", "layer"] = "none"
    kernel_size: PositiveInt = 5
    residual_scale: float = 1.0
    weight_init: Any = "auto"
    output_init: Any = None
    bias_init: Any = "zeros"
    lsuv: bool = False

    @field_validator("weight_init")
    @classmethod
    def _weight_init(cls, value: Any) -> Any:
        resolved = scheme_dict(value, allow_auto=True)
        if resolved == "auto":
            if nn_entry("init_") is None:
                raise ValueError(
                    "'auto' needs initlab.init_ (initlab.nn), which this installation lacks; name a scheme instead"
                )
        return resolved

    @field_validator("output_init")
    @classmethod
    def _output_init(cls, value: Any) -> Any:
        return None if value is None else scheme_dict(value, allow_auto=False)

    @field_validator("bias_init")
    @classmethod
    def _bias_init(cls, value: Any) -> Any:
        return scheme_dict(value, allow_auto=False)

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("expected an odd kernel size (same padding)")
        return value

    @field_validator("lsuv")
    @classmethod
    def _lsuv_available(cls, value: bool) -> bool:
        if value and nn_entry("lsuv_") is None:
            raise ValueError("lsuv = true needs initlab.lsuv_ (initlab.nn), which this installation lacks")
        return value

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        try:
            resolve_activation(value)
        except InitlabError as error:
            raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _canonical_activation(self) -> ModelConfig:
        try:
            name, params = resolve_activation(self.activation, self.activation_params)
        except InitlabError as error:
            raise ValueError(f"activation={self.activation!r}: {error}") from None
        object.__setattr__(self, "activation", name)
        object.__setattr__(self, "activation_params", params)
        return self


# ----------------------------------------------------------------- training
class TrainingConfig(_Strict):
    """Optimiser, regularisation, schedule and logging."""

    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    l2: float = Field(0.0, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    regularize_biases: bool = False
    batch_size: PositiveInt = 128
    steps: int = Field(500, ge=0, le=MAX_COUNT, strict=True)
    log_every: PositiveInt = 50
    dtype: Literal["float32", "float64"] = "float32"
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True)
    target_accuracy: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    target_loss: Annotated[float, Field(gt=0.0)] | None = None
    probe_size: PositiveInt = 256
    eval_train_size: OptionalCount = None


class MetricsConfig(_Strict):
    """Which metrics each logged step keeps (default: all)."""

    keep: list[Metric] = Field(default_factory=lambda: list(METRICS))

    @field_validator("keep")
    @classmethod
    def _not_empty(cls, value: list) -> list:
        if not value:
            raise ValueError(f"expected at least one of {', '.join(METRICS)}")
        return value


class ClaimConfig(_Strict):
    """A named check over a study's results (see :mod:`initlab.lab.claims`)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> ClaimConfig:
        from initlab.lab.claims import validate_claim

        try:
            validate_claim(self.name, self.params)
        except InitlabError as error:
            raise ValueError(str(error)) from None
        return self


class ExecutionConfig(_Strict):
    """How runs are grouped (does not change any number, so not part of run keys)."""

    max_batch_runs: PositiveInt = 32


class RunConfig(_Strict):
    """One fully resolved run."""

    dataset: DatasetConfig = Field(default_factory=Mnist1dConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=lambda: TrainingConfig.model_validate({}))
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)


class StudyConfig(RunConfig):
    """A study file: the base run, a grid, cases, a claim."""

    name: str
    description: str = ""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    cases: list[dict[str, Any]] = Field(default_factory=list)
    claim: ClaimConfig | None = None
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
            raise ValueError("expected a non-empty name of letters, digits, '_', '.', '-'")
        return value


# ------------------------------------------------------------------- errors
def _field_type(root: type[BaseModel], loc: tuple) -> tuple[type[BaseModel] | None, tuple]:
    """The pydantic model that holds the last element of ``loc``, and ``loc`` without union tags."""
    current: Any = root
    clean: list = []
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            clean.append(part)
            if not parts:
                return current, tuple(clean)
            current = current.model_fields[part].annotation
            continue
        options = _model_options(current)
        tagged = [
            option
            for option in options
            if "name" in option.model_fields and part in get_args(option.model_fields["name"].annotation)
        ]
        if tagged:
            current = tagged[0]
            continue
        if len(options) == 1 and options[0] is not current:
            current = options[0]
            parts.insert(0, part)
            continue
        clean.append(part)
        if not parts:
            return (current if isinstance(current, type) and issubclass(current, BaseModel) else None), tuple(clean)
        current = None
    return (current if isinstance(current, type) and issubclass(current, BaseModel) else None), tuple(clean)


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model found at ``loc`` (the model whose keys an unknown key sits among)."""
    if not loc:
        return root
    holder, _ = _field_type(root, loc)
    last = loc[-1]
    if holder is not None and last in holder.model_fields:
        options = _model_options(holder.model_fields[last].annotation)
        return options[0] if len(options) == 1 else None
    return holder


def _model_options(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes inside an annotation (unions, Annotated, Optional)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, Annotated) or type(annotation).__name__ == "UnionType":
        return [found for arg in get_args(annotation) for found in _model_options(arg)]
    return []


def _describe(error: Any, root: type[BaseModel]) -> str:
    _, loc = _field_type(root, error["loc"])
    path = ".".join(str(part) for part in loc) or "(top level)"
    value = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        holder = _model_at(root, error["loc"][:-1])
        allowed = ", ".join(holder.model_fields) if holder is not None else "none"
        return f"{path}: unknown key (value {value!r}); allowed keys here: {allowed}."
    if error["type"] == "missing":
        return f"{path}: required field is missing."
    return f"{path}={value!r} is invalid; {message.rstrip('.')}."


def validation_error(error: ValidationError, root: type[BaseModel], where: str) -> InitlabError:
    """One InitlabError listing every pydantic error with its field path and value."""
    lines = [_describe(item, root) for item in error.errors()]
    return InitlabError(
        f"{where}: " + " ".join(lines) if len(lines) == 1 else f"{where}: {len(lines)} errors:\n  " + "\n  ".join(lines)
    )


# ------------------------------------------------------------------- loading
def load_study(source: str | Path | Mapping[str, Any]) -> StudyConfig:
    """Parse and validate a study from a TOML file path or an already-parsed mapping.

    Every grid point and case is expanded and validated too, so a study that
    loads runs without configuration errors.

    Raises:
        InitlabError: unreadable TOML or any invalid field (the message names
            the field path, the value and what was expected).
    """
    where = "study"
    if isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        where = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InitlabError(f"{path}: study file not found; expected a TOML file.") from None
        except IsADirectoryError:
            raise InitlabError(f"{path}: is a folder; expected a study TOML file.") from None
        except UnicodeDecodeError as error:
            raise InitlabError(
                f"{path}: not a text file (byte {error.start} is not UTF-8); expected a study TOML file."
            ) from None
        except OSError as error:
            raise InitlabError(
                f"{path}: cannot be read ({error.strerror or error}); expected a readable TOML file."
            ) from None
        except tomllib.TOMLDecodeError as error:
            raise InitlabError(f"{path}: not valid TOML ({error}).") from None
    try:
        study = StudyConfig.model_validate(data)
    except ValidationError as error:
        raise validation_error(error, StudyConfig, where) from None
    _check_grid(study, where)
    expand(study, where=where)
    return study


def grid_runs(study: StudyConfig) -> int:
    """How many runs the study expands to before deduplication: cases x the product of axis lengths."""
    count = max(1, len(study.cases))
    for values in study.grid.values():
        count *= len(values)
    return count


def _check_grid_size(study: StudyConfig, where: str) -> None:
    count = grid_runs(study)
    if count > MAX_GRID_RUNS:
        axes = " x ".join(f"{key}: {len(values)}" for key, values in study.grid.items()) or "no grid"
        raise InitlabError(
            f"{where}: the grid expands to {count} runs ({max(1, len(study.cases))} case(s) x {axes}); "
            f"expected at most {MAX_GRID_RUNS} runs. Split the study into smaller ones."
        )


def dataset_sizes(dataset: Any) -> tuple[int, int] | None:
    """``(n_train, n_test)`` a dataset config yields, or None where only its files tell (IDX, CIFAR-10).

    Raises:
        InitlabError: a requested size is larger than the data, or a split leaves a side empty.
    """
    if isinstance(dataset, Mnist1dConfig):
        for field_name, limit in zip(("n_train", "n_test"), MNIST1D_SIZES):
            requested = getattr(dataset, field_name)
            if requested is not None and requested > limit:
                raise InitlabError(
                    f"dataset.{field_name}={requested} is invalid; expected at most {limit} "
                    f"(MNIST-1D has {MNIST1D_SIZES[0]} training and {MNIST1D_SIZES[1]} test examples)."
                )
        return (dataset.n_train or MNIST1D_SIZES[0], dataset.n_test or MNIST1D_SIZES[1])
    if isinstance(dataset, DigitsConfig):
        n_test = int(round(dataset.test_fraction * DIGITS_SIZE))
        if not 1 <= n_test <= DIGITS_SIZE - 1:
            raise InitlabError(
                f"dataset.test_fraction={dataset.test_fraction!r} is invalid: it leaves {n_test} test and "
                f"{DIGITS_SIZE - n_test} training examples of {DIGITS_SIZE}; expected a fraction that leaves "
                "at least one test and one training example (about 0.0006 to 0.9994)."
            )
        return (DIGITS_SIZE - n_test, n_test)
    if isinstance(dataset, (TeacherConfig, GaussianMixtureConfig)):
        return (dataset.n_train, dataset.n_test)
    return None


def _check_sizes(config: RunConfig, where: str) -> None:
    """Sizes the data cannot give are bad input at load time, not failed runs."""
    try:
        sizes = dataset_sizes(config.dataset)
    except InitlabError as error:
        raise InitlabError(f"{where}: {error}") from None
    model = config.model
    weights = model.depth * model.width * model.width * (model.kernel_size if model.kind == "cnn1d" else 1)
    if weights > MAX_HIDDEN_WEIGHTS:
        raise InitlabError(
            f"{where}: model.depth={model.depth} x model.width={model.width}^2 is {weights:,} hidden weights per "
            f"run; expected at most {MAX_HIDDEN_WEIGHTS:,} (1 GiB of float32)."
        )
    if sizes is not None and config.training.batch_size > sizes[0]:
        raise InitlabError(
            f"{where}: training.batch_size={config.training.batch_size} is invalid; expected at most the "
            f"{sizes[0]} training examples of dataset {config.dataset.name!r}."
        )


def _check_grid(study: StudyConfig, where: str) -> None:
    for key, values in study.grid.items():
        _check_path(key, f"{where}: grid key {key!r}")
        if not values:
            raise InitlabError(f"{where}: grid.{key!r}=[] is invalid; expected a non-empty list of values.")
    for index, case in enumerate(study.cases):
        for key in case:
            _check_path(key, f"{where}: cases[{index}] key {key!r}")


def _check_path(key: str, where: str) -> None:
    parts = key.split(".")
    if parts[0] not in RUN_SECTIONS or len(parts) < 2:
        raise InitlabError(f"{where} is invalid; expected SECTION.FIELD with SECTION one of {', '.join(RUN_SECTIONS)}.")
    if parts[0] == "dataset":
        fields = {name for cls in DATASET_CONFIGS for name in cls.model_fields}
    else:
        section = RunConfig.model_fields[parts[0]].annotation
        fields = set(section.model_fields) if isinstance(section, type) and issubclass(section, BaseModel) else set()
    if parts[1] not in fields:
        raise InitlabError(
            f"{where} is invalid; {parts[0]} has no field {parts[1]!r}; expected one of {', '.join(sorted(fields))}."
        )


def _set_path(data: dict, key: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts; a scheme given by name becomes a table first."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if isinstance(child, str):
            child = {"scheme": child}
        elif not isinstance(child, dict):
            child = {}
        node[part] = child = dict(child)
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _raw_run(study: StudyConfig) -> dict[str, Any]:
    """The study's base run as plain data (grid values are applied on top)."""
    return study.model_dump(mode="json", include=set(RUN_SECTIONS))


@dataclass(frozen=True)
class Run:
    """One resolved run of a study: its key, config, and the grid values that chose it."""

    key: str
    config: RunConfig
    point: dict[str, Any]

    def config_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")


def run_key(config: RunConfig) -> str:
    """SHA-256 (first 20 hex digits) of the resolved config and the code version."""
    payload = json.dumps(
        {"config": config.model_dump(mode="json"), "code": code_version()}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def study_version(study: StudyConfig) -> str:
    """SHA-256 (first 16 hex digits) of the study's normalised content: every field but ``execution``.

    An edited study (its base run, grid, cases, claim, description) is a new
    version; its claim and report read only the runs recorded under it
    (:meth:`initlab.lab.store.Store.study_runs`). ``execution`` only changes
    how runs are grouped, not which runs there are, so it does not enter.
    """
    payload = json.dumps(study.model_dump(mode="json", exclude={"execution"}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def expand(study: StudyConfig, *, where: str = "study") -> list[Run]:
    """Every run of the study: each case (or the base) x every grid point, deduplicated by key.

    Raises:
        InitlabError: the grid has more than :data:`MAX_GRID_RUNS` runs (checked
            before expanding), a grid point is invalid, or asks for more data
            than the dataset has (:func:`dataset_sizes`).
    """
    _check_grid_size(study, where)
    base = _raw_run(study)
    axes = list(study.grid.items())
    runs: dict[str, Run] = {}
    for case_index, case in enumerate(study.cases or [{}]):
        for values in itertools.product(*(values for _, values in axes)):
            data = copy.deepcopy(base)
            point = dict(case)
            for key, value in case.items():
                _set_path(data, key, value)
            for (key, _), value in zip(axes, values):
                _set_path(data, key, value)
                point[key] = value
            origin = f"cases[{case_index}] " if study.cases else ""
            try:
                config = RunConfig.model_validate(data)
            except ValidationError as error:
                raise validation_error(error, RunConfig, f"{where}: {origin}grid point {point}") from None
            _check_sizes(config, f"{where}: {origin}grid point {point}")
            key = run_key(config)
            runs.setdefault(key, Run(key, config, point))
    return list(runs.values())


def group_key(config: RunConfig) -> str:
    """Runs with equal group keys share one stacked model (see :data:`PER_RUN_FIELDS`)."""
    data = config.model_dump(mode="json")
    for section, fields in PER_RUN_FIELDS.items():
        for name in fields:
            data[section].pop(name)
    return json.dumps(data, sort_keys=True)
