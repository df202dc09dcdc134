"""The lab: offline datasets, model builders, the batched trainer, studies, the result store
and the executors. Rendering lives in :mod:`initlab.report`.

Typical use::

    from initlab.lab import Store, load_study, make_executor, run_study

    study = load_study("my-study.toml")
    with Store("initlab-runs.sqlite") as store:
        report = run_study(study, store, make_executor("process", workers=2))
"""

from initlab._extras import require_installed

require_installed(
    ("pydantic", "sklearn", "mnist1d", "platformdirs", "matplotlib"), "lab", "initlab.lab (studies, datasets, the tour)"
)

import initlab.lab.study_claims  # noqa: F401,E402,I001  (registers the built-in studies' claims)
from initlab.lab.claims import ClaimResult, evaluate_claim, known_claims, register_claim
from initlab.lab.config import (
    METRICS,
    Run,
    RunConfig,
    StudyConfig,
    code_version,
    expand,
    group_key,
    load_study,
    run_key,
    study_version,
)
from initlab.lab.datasets import (
    Dataset,
    cache_dir,
    load_cifar10_binary,
    load_dataset,
    load_digits,
    load_gaussian_mixture,
    load_idx,
    load_mnist1d,
    load_mnist_idx,
    load_teacher,
    read_cifar10_batch,
    standardize,
)
from initlab.lab.executors import DaskExecutor, InlineExecutor, ProcessExecutor, make_executor
from initlab.lab.models import ModelSpec, StackedModel, TorchModel
from initlab.lab.runner import StudyReport, estimate, plan_groups, run_study
from initlab.lab.store import Store
from initlab.lab.trainer import BatchSampler, RunResult, train_group

__all__ = [
    "ClaimResult",
    "evaluate_claim",
    "known_claims",
    "register_claim",
    "METRICS",
    "Run",
    "RunConfig",
    "StudyConfig",
    "code_version",
    "expand",
    "group_key",
    "load_study",
    "run_key",
    "study_version",
    "Dataset",
    "cache_dir",
    "load_cifar10_binary",
    "load_dataset",
    "load_digits",
    "load_gaussian_mixture",
    "load_idx",
    "load_mnist1d",
    "load_mnist_idx",
    "load_teacher",
    "read_cifar10_batch",
    "standardize",
    "DaskExecutor",
    "InlineExecutor",
    "ProcessExecutor",
    "make_executor",
    "ModelSpec",
    "StackedModel",
    "TorchModel",
    "StudyReport",
    "estimate",
    "plan_groups",
    "run_study",
    "Store",
    "BatchSampler",
    "RunResult",
    "train_group",
]
