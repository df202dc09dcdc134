"""Cost of ``initlab.audit`` (statistics only, ``jacobian=False``) against one plain
forward+backward pass of the same model on the same batch, measured in the same process.

Models: a ResNet-18-shaped convnet built by hand (BasicBlocks [2, 2, 2, 2], widths
64-512, BatchNorm, in-place ReLU) on a 32x3x64x64 batch, and a depth-50 width-256 ReLU MLP
on a 256x256 batch. The baseline back-propagates a random cotangent with
``torch.autograd.grad`` w.r.t. every parameter, as the audit does. Each figure is the
fastest of ``REPEATS`` timed runs after a warm-up run, the baseline's and the audit's runs
interleaved (so that a machine loaded by other processes slows both alike).

Targets (issue 15): ``audit_over_fwd_bwd_resnet <= 3`` and ``audit_over_fwd_bwd_mlp <= 4``.
"""

from __future__ import annotations

import time

import torch
from harness import emit, target
from torch import nn

from initlab.auditing import audit
from initlab.lab.reference import resnet18

REPEATS = 5
TARGETS = {"audit_over_fwd_bwd_resnet": 3.0, "audit_over_fwd_bwd_mlp": 4.0}


def deep_mlp(depth: int = 50, width: int = 256) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def forward_backward(model: nn.Module, batch: torch.Tensor) -> None:
    output = model(batch)
    cotangent = torch.randn_like(output)
    torch.autograd.grad(output, list(model.parameters()), grad_outputs=cotangent)


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(model: nn.Module, batch: torch.Tensor) -> tuple[float, float]:
    """``(fwd+bwd, audit)`` seconds: the fastest of ``REPEATS`` interleaved runs of each."""
    runs = (lambda: forward_backward(model, batch), lambda: audit(model, batch, jacobian=False))
    for run in runs:  # warm-up
        run()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for run, measured in zip(runs, times):
            measured.append(seconds(run))
    return min(times[0]), min(times[1])


def main() -> None:
    torch.manual_seed(0)
    resnet, images = resnet18().train(), torch.randn(32, 3, 64, 64)
    mlp, rows = deep_mlp(), torch.randn(256, 256)
    resnet_base, resnet_audit = measure(resnet, images)
    mlp_base, mlp_audit = measure(mlp, rows)
    ratios = {"audit_over_fwd_bwd_resnet": resnet_audit / resnet_base, "audit_over_fwd_bwd_mlp": mlp_audit / mlp_base}
    print(f"resnet18 32x3x64x64: fwd+bwd {resnet_base:.3f} s, audit {resnet_audit:.3f} s; "
          f"mlp 50x256 on 256x256: fwd+bwd {mlp_base:.4f} s, audit {mlp_audit:.4f} s")
    emit("audit", {
        "resnet_fwd_bwd_s": round(resnet_base, 4), "resnet_audit_s": round(resnet_audit, 4),
        "mlp_fwd_bwd_s": round(mlp_base, 5), "mlp_audit_s": round(mlp_audit, 5),
        **{name: round(value, 3) for name, value in ratios.items()},
    }, {name: target(value, "<=", TARGETS[name]) for name, value in ratios.items()}, threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
