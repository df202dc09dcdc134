"""Batched sweep vs a plain sequential PyTorch loop, and achieved GFLOP/s vs a torch.mm peak.

32 MLPs (MNIST-1D, depth 10 hidden layers of width 128, tanh, Xavier, SGD
lr 0.05, batch 128, 300 steps, seeds 0..31) are trained (a) together by
``initlab.lab.train_group`` as one stacked model (:mod:`initlab.lab.backprop`:
three ``bmm`` per layer, the SGD update fused into the weight-gradient
product) and (b) one after the other by a plain PyTorch loop (``nn.Module``
+ ``torch.optim.SGD``, the same data order). The batched side keeps only the
train loss, evaluated on 512 examples at steps 0 and 300 (its cost is
included in its time).

Figures: wall and CPU times of each side, ``speedup_vs_sequential`` =
sequential / batched wall time, the training GFLOP/s of each (2 FLOPs per
multiply-add of the products a step needs: the forward one, the
weight-gradient one, and the input-gradient one of every layer but the
first, which neither side computes), the ``torch.mm`` peak measured here
(best of repeated 1024^3 float32 products, before and after the training)
and ``fraction_of_gemm_peak`` = batched GFLOP/s / peak. Target (2 cores):
speed-up >= 3. The last line printed is the JSON object.

``INITLAB_BENCH_THREADS`` sets torch's thread count for every part (default:
torch's). On a shared machine whose other cores are busy, 2 threads can be
several times slower than 1 for these small kernels (each parallel region
waits for a descheduled thread), so the thread count is part of the result.
"""

from __future__ import annotations

import os
import time

import torch
from harness import emit, target

from initlab.lab import RunConfig, TorchModel, train_group
from initlab.lab.models import StackedModel, stack_to_module
from initlab.lab.trainer import BatchSampler, as_tensors, dataset_for, initialise_run, model_spec

RUNS, WIDTH, DEPTH, BATCH, STEPS = 32, 128, 10, 128, 300


def _config(seed: int) -> RunConfig:
    return RunConfig.model_validate({
        "dataset": {"name": "mnist1d"},
        "model": {"kind": "mlp", "depth": DEPTH, "width": WIDTH, "activation": "tanh",
                  "weight_init": "glorot_normal"},
        "training": {"optimizer": "sgd", "lr": 0.05, "batch_size": BATCH, "steps": STEPS,
                     "log_every": STEPS, "seed": seed, "eval_train_size": 512},
        "metrics": {"keep": ["train_loss"]},
    })


def gemm_peak_gflops(size: int = 1024, repeats: int = 5) -> float:
    """Best GFLOP/s of ``torch.mm`` on size^3 float32 products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size ** 3 / (time.perf_counter() - started) / 1e9)
    return best


def sequential_seconds(configs) -> float:
    """Train each run alone with a plain PyTorch loop; wall seconds."""
    dataset = dataset_for(configs[0])
    spec = model_spec(configs[0], dataset)
    x_train, y_train, _, _ = as_tensors(dataset, spec, torch.float32)
    started = time.perf_counter()
    for config in configs:
        stacked = StackedModel.empty(spec, 1, torch.float32)
        initialise_run(stacked, 0, config, x_train[:8])
        module = stack_to_module(stacked, 0, TorchModel(spec))
        optimizer = torch.optim.SGD(module.parameters(), lr=config.training.lr)
        sampler = BatchSampler(config.training.seed, len(x_train), BATCH)
        for _ in range(STEPS):
            indices = sampler.next()
            loss = torch.nn.functional.cross_entropy(module(x_train[indices]), y_train[indices])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    threads = os.environ.get("INITLAB_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    configs = [_config(seed) for seed in range(RUNS)]
    spec = model_spec(configs[0], dataset_for(configs[0]))
    macs = [spec.weight_shape(layer)[0] * spec.weight_shape(layer)[1] for layer in range(spec.num_layers)]
    train_flops = 2.0 * (3 * sum(macs) - macs[0]) * BATCH * STEPS * RUNS
    peak = gemm_peak_gflops()
    train_group([(f"warm{seed}", config.model_copy(update={"training": config.training.model_copy(
        update={"steps": 5})})) for seed, config in enumerate(configs[:2])])
    started, cpu_started = time.perf_counter(), time.process_time()
    results = train_group([(f"run{seed}", config) for seed, config in enumerate(configs)])
    batched, batched_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert all(result.status == "done" for result in results)
    cpu_started = time.process_time()
    sequential = sequential_seconds(configs)
    sequential_cpu = time.process_time() - cpu_started
    peak = max(peak, gemm_peak_gflops())
    batched_gflops = train_flops / batched / 1e9
    speedup = sequential / batched
    fraction = batched_gflops / peak
    figures = {
        "batched_seconds": round(batched, 3), "sequential_seconds": round(sequential, 3),
        "batched_cpu_seconds": round(batched_cpu, 3), "sequential_cpu_seconds": round(sequential_cpu, 3),
        "speedup_vs_sequential": round(speedup, 3), "batched_gflops": round(batched_gflops, 2),
        "sequential_gflops": round(train_flops / sequential / 1e9, 2), "gemm_peak_gflops": round(peak, 2),
        "fraction_of_gemm_peak": round(fraction, 3),
        "final_train_loss_mean": round(sum(r.summary["train_loss"] for r in results) / RUNS, 4),
    }
    emit("sweep", figures, {"speedup_vs_sequential": target(speedup, ">=", 3)}, threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
