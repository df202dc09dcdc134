"""initlab.nn.init (the torch.nn.init drop-in) and use_initlab_init() vs plain PyTorch.

Three workloads, each measured in this one run against torch in the same process:

* building a GPT-2-small-shaped model (token and position embeddings, 12
  pre-norm ``nn.TransformerEncoderLayer(768, 12, 3072)``, final LayerNorm;
  ~124M parameters) with plain PyTorch vs inside ``use_initlab_init()`` —
  allocation and page faults included, as a user sees it;
* ``trunc_normal_(std=1, a=-2, b=2)`` on one 64M-element float32 tensor
  (pages touched beforehand), ``torch.nn.init`` vs ``initlab.nn.init``;
* ``orthogonal_`` on a 2048 x 2048 float32 tensor, torch vs initlab.

Runs of the two sides alternate and the best of several runs is kept (the
machine may be shared; the load average is printed with the figures, and
the builds' CPU time too: initlab spreads about the same CPU work as torch
over every core, so its wall-clock gain needs idle cores). torch's
trunc_normal_ runs once (~8 s). Prints JSON as its last line (format:
DESIGN.md, "Conventions").
"""

from __future__ import annotations

import gc
import os
import resource
import time

import torch
from harness import emit, target

from initlab.lab.reference import gpt2_small
from initlab.nn import init, use_initlab_init

BUILD_REPEATS = 6
TRUNC_REPEATS = 3
ORTHOGONAL_REPEATS = 7
TRUNC_ELEMENTS = 64 * 2**20
ORTHOGONAL_SIZE = 2048


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(function, cpu: list | None = None) -> float:
    """Wall time of one call; its CPU time is appended to ``cpu`` when given."""
    gc.collect()
    cpu_start, start = cpu_seconds(), time.perf_counter()
    function()
    wall = time.perf_counter() - start
    if cpu is not None:
        cpu.append(cpu_seconds() - cpu_start)
    return wall


def build_plain() -> None:
    model = gpt2_small()
    del model


def build_switched() -> None:
    with use_initlab_init():
        model = gpt2_small()
    del model


def alternate(first, second, repeats: int) -> tuple[float, float, float, float]:
    """Best wall and CPU times of two functions run alternately ``repeats`` times each.

    Returns (wall first, wall second, cpu first, cpu second), after one warm-up call each.
    """
    first(), second()
    wall_first, wall_second, cpu_first, cpu_second = [], [], [], []
    for _ in range(repeats):
        wall_first.append(timed(first, cpu_first))
        wall_second.append(timed(second, cpu_second))
    return min(wall_first), min(wall_second), min(cpu_first), min(cpu_second)


def main() -> None:
    load_at_start = round(os.getloadavg()[0], 2)
    torch.manual_seed(0)
    parameters = sum(p.numel() for p in gpt2_small().parameters())
    print(f"GPT-2-small-shaped model: {parameters / 1e6:.1f}M parameters", flush=True)
    build_torch, build_initlab, build_torch_cpu, build_initlab_cpu = alternate(
        build_plain, build_switched, BUILD_REPEATS
    )
    print(f"build: torch {build_torch:.3f} s (CPU {build_torch_cpu:.3f} s), inside use_initlab_init() "
          f"{build_initlab:.3f} s (CPU {build_initlab_cpu:.3f} s)", flush=True)

    matrix = torch.empty(ORTHOGONAL_SIZE, ORTHOGONAL_SIZE)
    orthogonal_torch, orthogonal_initlab, _, _ = alternate(
        lambda: torch.nn.init.orthogonal_(matrix), lambda: init.orthogonal_(matrix), ORTHOGONAL_REPEATS
    )
    print(f"orthogonal_ {ORTHOGONAL_SIZE}^2: torch {orthogonal_torch:.3f} s, initlab {orthogonal_initlab:.3f} s",
          flush=True)

    tensor = torch.empty(TRUNC_ELEMENTS)
    tensor.zero_()  # resident pages: measure the sampler, not the page faults
    trunc_initlab = min(timed(lambda: init.trunc_normal_(tensor, std=1.0, a=-2.0, b=2.0)) for _ in range(TRUNC_REPEATS))
    trunc_torch = timed(lambda: torch.nn.init.trunc_normal_(tensor, std=1.0, a=-2.0, b=2.0))
    print(f"trunc_normal_ 64M: torch {trunc_torch:.3f} s, initlab {trunc_initlab:.3f} s", flush=True)

    figures = {
        "gpt2_parameters": parameters,
        "build_torch_s": build_torch,
        "build_initlab_s": build_initlab,
        "build_speedup": build_torch / build_initlab,
        "build_torch_cpu_s": build_torch_cpu,
        "build_initlab_cpu_s": build_initlab_cpu,
        "trunc_torch_s": trunc_torch,
        "trunc_initlab_s": trunc_initlab,
        "trunc_speedup": trunc_torch / trunc_initlab,
        "orthogonal_torch_s": orthogonal_torch,
        "orthogonal_initlab_s": orthogonal_initlab,
        "orthogonal_speedup": orthogonal_torch / orthogonal_initlab,
    }
    emit(
        "dropin",
        {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
        {
            "build_speedup": target(figures["build_speedup"], ">=", 1.6),
            "trunc_speedup": target(figures["trunc_speedup"], ">=", 10),
            "orthogonal_speedup": target(figures["orthogonal_speedup"], ">=", 1.0),
        },
        load_average_1min_at_start=load_at_start,
        load_average_1min_at_end=round(os.getloadavg()[0], 2),
    )


if __name__ == "__main__":
    main()
