"""Fill speed and memory: initlab's parallel counter-based streams vs torch.nn.init.

Two workloads, each measured in this one run: the parameter tensors of a
GPT-2-small-shaped model (~124M parameters) and one 256M-element float32
tensor. For each: wall time of initlab normal vs ``torch.nn.init.normal_``,
initlab truncated normal (+-2 sigma) vs ``torch.nn.init.trunc_normal_(std=1,
a=-2, b=2)`` (the best of 5 interleaved rounds; torch's truncated normal
once), and the peak extra resident memory of initlab's fills over the
tensors' own size (read from /proc/self/status VmHWM after resetting it).
The 1-minute load average at the end is reported with the figures.

Prints JSON as its last line (format: DESIGN.md, "Conventions").
"""

from __future__ import annotations

import gc
import os
import time

import torch
from harness import emit, target

from initlab.random import Stream, normal_, truncated_normal_


def gpt2_small_shapes() -> list[tuple[int, ...]]:
    """Parameter shapes of GPT-2 small (vocab 50257, context 1024, d 768, 12 layers)."""
    d, shapes = 768, [(50257, 768), (1024, 768)]
    for _ in range(12):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return shapes + [(d,), (d,)]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_bytes(function) -> int:
    """Peak resident memory above the current level while ``function`` runs."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    function()
    return max(0, _status_kib("VmHWM") - before) * 1024


def measure(tensors: list[torch.Tensor]) -> dict[str, float]:
    for tensor in tensors:
        tensor.zero_()  # touch the pages so they are resident before measuring
    streams = [Stream(0, f"p{i}") for i in range(len(tensors))]
    nbytes = sum(t.numel() * t.element_size() for t in tensors)

    def ours_normal():
        for tensor, stream in zip(tensors, streams):
            normal_(tensor, stream, std=0.02)

    def ours_trunc():
        for tensor, stream in zip(tensors, streams):
            truncated_normal_(tensor, stream, std=1.0, low=-2.0, high=2.0)

    def torch_normal():
        for tensor in tensors:
            torch.nn.init.normal_(tensor, std=0.02)

    def torch_trunc():
        for tensor in tensors:
            torch.nn.init.trunc_normal_(tensor, std=1.0, a=-2.0, b=2.0)

    figures = best_interleaved({"initlab_normal_s": ours_normal, "torch_normal_s": torch_normal,
                                "initlab_trunc_s": ours_trunc})
    figures["torch_trunc_s"] = time_once(torch_trunc)  # ~30x slower: one run
    figures["extra_bytes_normal"] = peak_extra_bytes(ours_normal)
    figures["extra_bytes_trunc"] = peak_extra_bytes(ours_trunc)
    figures["tensor_bytes"] = nbytes
    return figures


def best_interleaved(functions: dict, rounds: int = 5) -> dict[str, float]:
    """The best wall time of each function over ``rounds`` rounds that run each once, in turn.

    Interleaving exposes every function to the same drift in machine load.
    """
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(rounds):
        for name, function in functions.items():
            best[name] = min(best[name], time_once(function))
    return best


def time_once(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    gpt2 = [torch.empty(shape) for shape in gpt2_small_shapes()]
    print(f"GPT-2-small tensors: {sum(t.numel() for t in gpt2) / 1e6:.1f}M parameters", flush=True)
    small = measure(gpt2)
    del gpt2
    gc.collect()
    print("one 256M-element tensor", flush=True)
    big = measure([torch.empty(256 * 2**20)])
    figures = {f"gpt2_{k}": v for k, v in small.items()} | {f"big_{k}": v for k, v in big.items()}
    normal_ratio = min(small["torch_normal_s"] / small["initlab_normal_s"], big["torch_normal_s"] / big["initlab_normal_s"])
    trunc_ratio = min(small["torch_trunc_s"] / small["initlab_trunc_s"], big["torch_trunc_s"] / big["initlab_trunc_s"])
    own_ratio = max(small["initlab_trunc_s"] / small["initlab_normal_s"], big["initlab_trunc_s"] / big["initlab_normal_s"])
    memory = max(
        max(run["extra_bytes_normal"], run["extra_bytes_trunc"]) / run["tensor_bytes"] for run in (small, big)
    )
    figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    emit("fill", {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}, {
        "normal_vs_torch": target(normal_ratio, ">=", 1.7),
        "trunc_vs_torch": target(trunc_ratio, ">=", 5),
        "trunc_over_own_normal": target(own_ratio, "<=", 1.6),
        "extra_memory_fraction": target(memory, "<=", 0.05),
    })


if __name__ == "__main__":
    main()
