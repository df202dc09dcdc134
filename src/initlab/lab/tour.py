"""The built-in studies and the tour: every classic claim about initialization, measured.

The ten studies are TOML files shipped in ``initlab/lab/studies/`` (their
``description`` states the claim; their ``claim`` names a check of
:mod:`initlab.lab.study_claims`). Each comes in three sizes:

* ``full``: the file as written (``initlab tour --full``, ``initlab run``);
* ``tour``: three training seeds like the full size (studies 1-8), fewer steps, narrower
  networks or fewer evaluation examples, never fewer claims
  (``initlab tour``, studies 1-8);
* ``tiny``: small enough for the test suite (seconds each), one seed (``min_seeds = 1``):
  a smoke test whose verdicts are not evidence.

A reduced study keeps every grid axis that a claim compares and takes the
name ``<name>.<size>``, so its runs and its verdict are stored apart from the
full study's. Runs are keyed by their resolved config, so a second tour finds
every run in the store and only re-renders.

The studies' groups of small stacked models gain little from torch's
intra-op threads, so ``initlab tour`` runs them in worker processes with one
torch thread each (:class:`initlab.lab.executors.ProcessExecutor`'s
``torch_threads``); nothing here changes the calling process's thread count.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import initlab.lab.study_claims  # noqa: F401  (registers the studies' claims)
from initlab.errors import InitlabError
from initlab.lab.claims import ClaimResult, evaluate_claim
from initlab.lab.config import StudyConfig, expand, load_study

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN_STUDIES = (
    "symmetry",
    "depth-signal",
    "saturation",
    "pairing",
    "regularization",
    "bias",
    "glorot-table",
    "edge-of-chaos",
    "lsuv",
    "orthogonal-depth",
)
"""The built-in studies, in tour order."""

TOUR_STUDIES = BUILTIN_STUDIES[:8]
"""The studies ``initlab tour`` runs (``--full`` runs them all)."""

SIZES = ("full", "tour", "tiny")


def _lsuv_cases(mlp: tuple[int, int], cnn: tuple[int, int]) -> list[dict[str, Any]]:
    """The lsuv study's cases (4 inits x 2 architectures) with (depth, width) per architecture."""
    inits: list[dict[str, Any]] = [
        {"model.weight_init": "glorot_normal"},
        {"model.weight_init": "he_normal"},
        {"model.weight_init": "orthogonal"},
        {"model.weight_init": "orthogonal", "model.lsuv": True},
    ]
    return [
        {"model.kind": kind, "model.depth": depth, "model.width": width, **init}
        for kind, (depth, width) in (("mlp", mlp), ("cnn1d", cnn))
        for init in inits
    ]


_SCALES = [
    {"scheme": "variance_scaling", "scale": scale, "mode": "fan_in", "distribution": "normal"}
    for scale in (1.0, 1.25, 1.76, 2.5, 4.0)
]

REDUCTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "tour": {
        "symmetry": {"training.steps": 300},
        "depth-signal": {
            "model.width": 128,
            "dataset.n_test": 128,
            "training.eval_train_size": 128,
            "training.probe_size": 128,
        },
        "saturation": {
            "model.width": 128,
            "training.steps": 500,
            "grid": {"model.activation": ["tanh"], "training.steps": [0, 500]},
        },
        "pairing": {"training.steps": 400},
        "regularization": {
            "model.width": 128,
            "training.steps": 600,
            "execution.max_batch_runs": 3,
            "grid": {"training.l2": [0.0, 0.01, 0.1]},
        },
        "bias": {"training.steps": 500},
        "glorot-table": {"training.steps": 1000, "model.width": 128},
        "edge-of-chaos": {"model.width": 64, "grid": {"model.depth": [10, 40, 90], "model.weight_init": _SCALES}},
        "lsuv": {"training.steps": 500, "grid": {"training.seed": [0]}},
        "orthogonal-depth": {"training.steps": 400, "grid": {"training.seed": [0]}},
    },
    "tiny": {
        "symmetry": {
            "dataset.n_train": 512,
            "dataset.n_test": 256,
            "model.width": 16,
            "training.steps": 40,
            "training.log_every": 20,
            "training.batch_size": 64,
            "grid": {"training.seed": [0]},
        },
        "depth-signal": {
            "dataset.n_train": 256,
            "dataset.n_test": 64,
            "model.depth": 12,
            "model.width": 64,
            "training.batch_size": 64,
            "training.probe_size": 64,
            "grid": {"training.seed": [0]},
        },
        "saturation": {
            "dataset.n_train": 512,
            "dataset.n_test": 256,
            "model.depth": 3,
            "model.width": 64,
            "training.steps": 60,
            "training.log_every": 20,
            "training.batch_size": 64,
            "training.probe_size": 64,
            "training.target_accuracy": 0.2,
            "grid": {"training.steps": [0, 60], "training.seed": [0]},
        },
        "pairing": {
            "dataset.n_train": 512,
            "dataset.n_test": 256,
            "model.width": 16,
            "training.steps": 40,
            "training.log_every": 20,
            "training.batch_size": 64,
            "training.probe_size": 64,
            "cases": [
                {"model.activation": "relu", "model.depth": 6},
                {"model.activation": "tanh", "model.depth": 3},
            ],
            "grid": {"training.seed": [0]},
            "claim.params.deep": 6,
            "claim.params.tanh_depth": 3,
        },
        "regularization": {
            "model.width": 32,
            "training.steps": 60,
            "training.log_every": 30,
            "grid": {"training.l2": [0.0, 0.1], "training.seed": [0]},
        },
        "bias": {
            "dataset.n_train": 512,
            "dataset.n_test": 256,
            "model.width": 16,
            "training.steps": 40,
            "training.log_every": 20,
            "training.batch_size": 64,
            "grid": {"training.seed": [0]},
        },
        "glorot-table": {
            "dataset.n_train": 512,
            "dataset.n_test": 256,
            "model.depth": 3,
            "model.width": 16,
            "training.steps": 60,
            "training.log_every": 30,
            "grid": {"training.seed": [0]},
        },
        "edge-of-chaos": {
            "dataset.n_train": 512,
            "dataset.n_test": 256,
            "model.width": 16,
            "training.steps": 30,
            "training.log_every": 30,
            "training.batch_size": 64,
            "grid": {"model.depth": [4, 8], "model.weight_init": _SCALES[::2], "training.seed": [0]},
            "claim.params.min_depth": 8,
        },
        "lsuv": {
            "dataset.n_train": 512,
            "dataset.n_test": 256,
            "cases": _lsuv_cases((3, 8), (2, 8)),
            "training.steps": 30,
            "training.log_every": 30,
            "training.batch_size": 64,
            "training.probe_size": 64,
            "grid": {"training.seed": [0]},
        },
        "orthogonal-depth": {
            "dataset.n_train": 512,
            "dataset.n_test": 256,
            "model.width": 16,
            "training.steps": 60,
            "training.log_every": 10,
            "training.batch_size": 64,
            "cases": [{"model.depth": 2, "training.lr": 0.02}, {"model.depth": 8, "training.lr": 0.005}],
            "grid": {"training.seed": [0]},
        },
    },
}
"""Per size, per study: dotted ``SECTION.FIELD`` values to set, ``grid`` axes and ``cases`` to replace."""


# --------------------------------------------------------------- the files
def study_file(name: str) -> Path:
    """The packaged TOML file of the built-in study ``name``."""
    _check_name(name)
    return Path(str(resources.files("initlab.lab").joinpath(f"studies/{name}.toml")))


def _check_name(name: str) -> None:
    if name not in BUILTIN_STUDIES:
        raise InitlabError(f"study={name!r} is invalid; expected one of {', '.join(BUILTIN_STUDIES)}.")


def _check_size(size: str) -> None:
    if size not in SIZES:
        raise InitlabError(f"size={size!r} is invalid; expected one of {', '.join(SIZES)}.")


def stored_name(name: str, size: str) -> str:
    """The name a study of this size is stored under: ``name`` (full) or ``name.size``."""
    _check_name(name)
    _check_size(size)
    return name if size == "full" else f"{name}.{size}"


def base_name(study_name: str) -> str:
    """``"pairing.tour"`` -> ``"pairing"``; the built-in study a stored study comes from."""
    return study_name.split(".", 1)[0]


def study_data(name: str, size: str = "full") -> dict[str, Any]:
    """The raw study mapping of built-in ``name`` at ``size`` (the TOML with the reductions applied)."""
    _check_size(size)
    data = tomllib.loads(study_file(name).read_text(encoding="utf-8"))
    data["name"] = stored_name(name, size)
    if size == "tiny" and name in TOUR_STUDIES:
        data.setdefault("claim", {}).setdefault("params", {})["min_seeds"] = 1
    for key, value in REDUCTIONS.get(size, {}).get(name, {}).items():
        if key == "grid":
            data["grid"] = {**data.get("grid", {}), **copy.deepcopy(value)}
        else:
            _set_dotted(data, key, value)
    return data


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = copy.deepcopy(value)


def builtin_study(name: str, size: str = "full") -> StudyConfig:
    """The validated built-in study ``name`` at ``size`` (``full``, ``tour`` or ``tiny``)."""
    return load_study(study_data(name, size))


def study_names(size: str) -> tuple[str, ...]:
    """The studies a tour of ``size`` runs: 1-8 at ``tour`` size, all ten otherwise."""
    _check_size(size)
    return TOUR_STUDIES if size == "tour" else BUILTIN_STUDIES


# ------------------------------------------------------------------ running
@dataclass
class StudyOutcome:
    """One study of a tour: its config, the claim computed from the store, and what the run did."""

    study: StudyConfig
    claim: ClaimResult
    runs: int
    trained: int
    seconds: float


def claim_from_store(study: StudyConfig, store) -> ClaimResult:
    """Evaluate the study's claim over its rows in ``store`` (no training)."""
    if study.claim is None:
        raise InitlabError(f"study {study.name!r} has no claim; expected a [claim] table.")
    return evaluate_claim(study.claim.name, study.claim.params, store.study_runs(study))


def missing_runs(study: StudyConfig, store) -> int:
    """How many of the study's runs are not final in the store."""
    keys = [run.key for run in expand(study)]
    return len(keys) - len(store.finished_keys(keys))


def total_runs(studies: Sequence[StudyConfig]) -> int:
    """Runs of all ``studies`` together (the progress bar's total)."""
    return sum(len(expand(study)) for study in studies)


def run_studies(studies: Sequence[StudyConfig], store, executor, progress) -> list[StudyOutcome]:
    """Run each study (skipping stored runs) and compute its claim from the store."""
    from initlab.lab.runner import run_study

    outcomes = []
    for study in studies:
        report = run_study(study, store, executor, progress)
        outcomes.append(
            StudyOutcome(study, claim_from_store(study, store), report.total, report.trained, report.seconds)
        )
    return outcomes


def tour_studies(size: str = "tour") -> list[StudyConfig]:
    """The tour's studies: 1-8 reduced (``tour``), or all ten at ``full`` (or ``tiny``) size."""
    return [builtin_study(name, size) for name in study_names(size)]


def stored_studies(names: Sequence[str], size: str, store) -> list[StudyConfig]:
    """The studies among ``names`` at ``size`` that have runs in ``store``."""
    studies = [builtin_study(name, size) for name in names]
    return [study for study in studies if store.study_runs(study)]


def with_histories(rows: Sequence[Mapping[str, Any]], store) -> list[dict[str, Any]]:
    """Copies of run rows with their logged ``history`` read from the store."""
    import json

    keys = [row["key"] for row in rows]
    histories: dict[str, Any] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for key, text in store.connection.execute(f"SELECT key, history FROM runs WHERE key IN ({marks})", chunk):
            histories[key] = json.loads(text)
    return [{**row, "history": histories.get(row["key"], {})} for row in rows]


# ------------------------------------------------------------- robustness
ROBUSTNESS_SEEDS = (3, 4, 5, 6, 7)
"""Seeds the tour's studies never use: the robustness replay runs each claim on each of them."""


def robustness_study(name: str, seeds: Sequence[int] = ROBUSTNESS_SEEDS) -> StudyConfig:
    """The tour-size study ``name`` on other training ``seeds``, stored as ``<name>.robustness``."""
    data = study_data(name, "tour")
    data["name"] = f"{name}.robustness"
    data.setdefault("grid", {})["training.seed"] = list(seeds)
    return load_study(data)


def claim_per_seed(study: StudyConfig, store) -> dict[int, ClaimResult]:
    """The study's claim evaluated on each seed's runs alone (``min_seeds = 1``; a rule "beyond k
    standard errors" then reads "in the asserted direction in this seed")."""
    if study.claim is None:
        raise InitlabError(f"study {study.name!r} has no claim; expected a [claim] table.")
    rows = store.study_runs(study)
    params = {**study.claim.params, "min_seeds": 1}
    seeds = sorted({row["config"]["training"]["seed"] for row in rows})
    return {
        seed: evaluate_claim(
            study.claim.name, params, [row for row in rows if row["config"]["training"]["seed"] == seed]
        )
        for seed in seeds
    }
