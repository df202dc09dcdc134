"""LSUV: initlab's in-flight fit vs the PyPI package ``lsuv`` 0.3.0, in the same run.

Models: a depth-20, width-256 ReLU MLP on a batch of 256, and a
ResNet-18-shaped convnet (built here: 7x7 stem, basic blocks [2, 2, 2, 2] at
64-128-256-512 channels, BatchNorm, global pooling, 1000-way head) on a
batch of 32 x 3 x 64 x 64. Each library gets a fresh copy of the same
model (same torch seed) and the same batch; each call includes its
orthogonal pre-initialization. Wall time: the best of 3 interleaved rounds
(the figure least distorted by other load on a shared machine).

Figures per model: forward passes (counted by a pre-hook on the model),
wall time, and the final max |Var - 1| over the fitted layers' outputs,
measured afterwards by independent hooks in the mode each library fits in
(lsuv: eval mode, BatchNorm on running statistics; initlab: train mode,
BatchNorm on batch statistics, dropout off). Both use their defaults
(lsuv: std_tol=0.1, max_attempts=10; initlab: tol=0.05 on the variance).

``lsuv`` is installed by ``make bench`` (``pip install --no-deps lsuv==0.3.0``).
When it cannot be imported, the path in ``INITLAB_BENCH_LSUV_PATH`` (e.g. a
``pip install --no-deps --target DIR lsuv==0.3.0``) is tried; without it the
benchmark says so, reports initlab's figures alone and marks the ratio
targets as not met.

Prints, as its last line, the JSON object described in DESIGN.md.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time

import torch
from torch import nn

from initlab.lab.reference import resnet18
from initlab.nn import lsuv_

FITTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def import_lsuv():
    """The lsuv package, or None (after saying why)."""
    try:
        import lsuv
        return lsuv
    except ImportError:
        pass
    extra = os.environ.get("INITLAB_BENCH_LSUV_PATH")
    if extra:
        sys.path.insert(0, extra)
        try:
            import lsuv
            return lsuv
        except ImportError:
            pass
    print("lsuv 0.3.0 is not installed: run `make bench` (it installs it with "
          "`pip install --no-deps lsuv==0.3.0`), or set INITLAB_BENCH_LSUV_PATH to a directory holding it. "
          "Reporting initlab's figures alone; the comparison targets are not met.", file=sys.stderr)
    return None


# ------------------------------------------------------------------ models


def mlp(depth: int = 20, width: int = 256) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers)


# ------------------------------------------------------------------ measuring


def count_forwards(model: nn.Module) -> list[int]:
    count = [0]
    model.register_forward_pre_hook(lambda module, args: count.__setitem__(0, count[0] + 1))
    return count


@torch.no_grad()
def max_variance_error(model: nn.Module, batch: torch.Tensor, train_mode: bool) -> float:
    """max |Var(output) - 1| over the first call of every fitted layer (model state restored)."""
    variances: dict[int, float] = {}

    def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        variances.setdefault(id(module), float(output.float().var()))

    handles = [module.register_forward_hook(record) for module in model.modules() if isinstance(module, FITTED)]
    state = copy.deepcopy(model.state_dict())
    modes = {module: module.training for module in model.modules()}
    model.train(train_mode)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
    model(batch)
    model.load_state_dict(state)
    for module, training in modes.items():
        module.training = training
    for handle in handles:
        handle.remove()
    return max(abs(variance - 1.0) for variance in variances.values())


def run_initlab(model: nn.Module, batch: torch.Tensor) -> dict:
    count = count_forwards(model)
    start = time.perf_counter()
    record = lsuv_(model, batch, seed=0)
    seconds = time.perf_counter() - start
    return {"passes": count[0], "seconds": seconds, "var_error": max_variance_error(model, batch, True),
            "record_passes": record.passes}


def run_lsuv(lsuv, model: nn.Module, batch: torch.Tensor) -> dict:
    count = count_forwards(model)
    start = time.perf_counter()
    lsuv.lsuv_with_singlebatch(model, batch, verbose=False)
    seconds = time.perf_counter() - start
    return {"passes": count[0], "seconds": seconds, "var_error": max_variance_error(model, batch, False)}


def compare(name: str, build, batch: torch.Tensor, lsuv, repeats: int = 3) -> dict:
    """Each library on fresh copies of one model, ``repeats`` interleaved rounds; the best wall time."""
    torch.manual_seed(0)
    prototype = build()
    with torch.no_grad():  # warm-up: first-call costs (allocator, kernels) paid by neither library
        copy.deepcopy(prototype).eval()(batch)
    runs: dict[str, list[dict]] = {"initlab": [], "lsuv": []}
    for _ in range(repeats):
        runs["initlab"].append(run_initlab(copy.deepcopy(prototype), batch))
        if lsuv is not None:
            runs["lsuv"].append(run_lsuv(lsuv, copy.deepcopy(prototype), batch))
    result = {}
    for library, results in runs.items():
        if results:
            result[library] = {**results[-1], "seconds": min(run["seconds"] for run in results)}
    print(f"{name}: " + json.dumps(result), file=sys.stderr)
    return result


def main() -> None:
    lsuv = import_lsuv()
    generator = torch.Generator().manual_seed(1)
    results = {
        "mlp": compare("mlp", mlp, torch.randn(256, 256, generator=generator), lsuv),
        "resnet": compare("resnet", resnet18, torch.randn(32, 3, 64, 64, generator=generator), lsuv),
    }
    figures: dict[str, float | None] = {}
    for model, result in results.items():
        ours, theirs = result["initlab"], result.get("lsuv")
        figures[f"initlab_passes_{model}"] = ours["passes"]
        figures[f"initlab_seconds_{model}"] = round(ours["seconds"], 4)
        figures[f"initlab_var_error_{model}"] = ours["var_error"]
        figures[f"lsuv_passes_{model}"] = None if theirs is None else theirs["passes"]
        figures[f"lsuv_seconds_{model}"] = None if theirs is None else round(theirs["seconds"], 4)
        figures[f"lsuv_var_error_{model}"] = None if theirs is None else theirs["var_error"]
        figures[f"passes_ratio_{model}"] = None if theirs is None else ours["passes"] / theirs["passes"]
        figures[f"wall_ratio_{model}"] = None if theirs is None else ours["seconds"] / theirs["seconds"]
    not_worse = None
    if lsuv is not None:
        not_worse = int(all(result["initlab"]["var_error"] <= result["lsuv"]["var_error"] for result in results.values()))
    figures["var_error_not_worse"] = not_worse

    def target(name: str, op: str, threshold: float) -> dict:
        value = figures[name]
        met = value is not None and (value <= threshold if op == "<=" else value >= threshold)
        return {"value": value, "op": op, "threshold": threshold, "met": met}

    targets = {
        "passes_ratio_mlp": target("passes_ratio_mlp", "<=", 0.1),
        "passes_ratio_resnet": target("passes_ratio_resnet", "<=", 0.1),
        "wall_ratio_mlp": target("wall_ratio_mlp", "<=", 0.33),
        "wall_ratio_resnet": target("wall_ratio_resnet", "<=", 0.33),
        "var_error_not_worse": target("var_error_not_worse", ">=", 1),
    }
    machine = {"cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
               "torch_threads": torch.get_num_threads(), "lsuv": getattr(lsuv, "__version__", "0.3.0") if lsuv else None}
    print(json.dumps({"benchmark": "lsuv", "machine": machine, "figures": figures, "targets": targets}))


if __name__ == "__main__":
    main()
