"""Cost of ``initlab.audit`` against one plain forward+backward pass of the same model on the
same batch, measured in the same process.

Statistics only (``jacobian=False``; on the MLP, whose PyTorch default init makes it vanish,
also ``verify_fixes=False``, with the default fix check on a copy of the model reported beside
it without a target): a ResNet-18-shaped convnet built by hand (BasicBlocks
[2, 2, 2, 2], widths 64-512, BatchNorm, in-place ReLU) on a 32x3x64x64 batch, and a depth-50
width-256 ReLU MLP on a 256x256 batch. The default audit (Jacobian on): transformers'
ResNet-50 (``ResNetModel(ResNetConfig())``, random init, no download; the pooled output) on
an 8x3x64x64 batch, and ``nn.TransformerEncoder`` (6 layers, width 256, 8 heads, batch first)
on a 16x64x256 batch. The baseline back-propagates a random output gradient with
``torch.autograd.grad`` w.r.t. every parameter, as the audit does. Each figure is the
fastest of the timed runs after a warm-up run, the baseline's and the audit's runs
interleaved (so that a machine loaded by other processes slows both alike).

Targets: ``audit_over_fwd_bwd_resnet <= 3`` and ``audit_over_fwd_bwd_mlp <= 4`` (issue 15);
the default audit with the Jacobian costs at most 10 forward+backward passes:
``audit_jacobian_over_fwd_bwd_resnet50 <= 10`` and ``audit_jacobian_over_fwd_bwd_encoder <= 10``
(issue 17).
"""

from __future__ import annotations

import time

import torch
from harness import emit, target
from torch import nn

from initlab.auditing import audit
from initlab.lab.reference import resnet18

REPEATS = 5
JACOBIAN_REPEATS = 2
TARGETS = {
    "audit_over_fwd_bwd_resnet": 3.0,
    "audit_over_fwd_bwd_mlp": 4.0,
    "audit_jacobian_over_fwd_bwd_resnet50": 10.0,
    "audit_jacobian_over_fwd_bwd_encoder": 10.0,
}


def deep_mlp(depth: int = 50, width: int = 256) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def transformers_resnet50() -> nn.Module:
    """transformers' ResNet-50 with random weights, returning its pooled features."""
    from transformers import ResNetConfig, ResNetModel

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.resnet = ResNetModel(ResNetConfig())

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.resnet(pixels).pooler_output

    return Pooled()


def encoder() -> nn.Module:
    layer = nn.TransformerEncoderLayer(256, 8, 1024, batch_first=True)
    return nn.TransformerEncoder(layer, 6, enable_nested_tensor=False)


def forward_backward(model: nn.Module, batch: torch.Tensor) -> None:
    output = model(batch)
    gradient = torch.randn_like(output)
    torch.autograd.grad(output, list(model.parameters()), grad_outputs=gradient)


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(
    model: nn.Module,
    batch: torch.Tensor,
    *,
    jacobian: bool = False,
    verify_fixes: bool = True,
    repeats: int = REPEATS,
):
    """``(fwd+bwd, audit)`` seconds: the fastest of ``repeats`` interleaved runs of each."""
    runs = (
        lambda: forward_backward(model, batch),
        lambda: audit(model, batch, jacobian=jacobian, verify_fixes=verify_fixes),
    )
    for run in runs:  # warm-up
        run()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for run, measured in zip(runs, times):
            measured.append(seconds(run))
    return min(times[0]), min(times[1])


def main() -> None:
    torch.manual_seed(0)
    resnet, images = resnet18().train(), torch.randn(32, 3, 64, 64)
    mlp, rows = deep_mlp(), torch.randn(256, 256)
    resnet_base, resnet_audit = measure(resnet, images)
    mlp_verdict = audit(mlp, rows, jacobian=False).verdict
    mlp_base, mlp_audit = measure(mlp, rows, verify_fixes=False)
    _, mlp_audit_checked = measure(mlp, rows)
    resnet50, small_images = transformers_resnet50().train(), torch.randn(8, 3, 64, 64)
    stack, tokens = encoder().train(), torch.randn(16, 64, 256)
    resnet50_base, resnet50_audit = measure(resnet50, small_images, jacobian=True, repeats=JACOBIAN_REPEATS)
    encoder_base, encoder_audit = measure(stack, tokens, jacobian=True, repeats=JACOBIAN_REPEATS)
    ratios = {
        "audit_over_fwd_bwd_resnet": resnet_audit / resnet_base,
        "audit_over_fwd_bwd_mlp": mlp_audit / mlp_base,
        "audit_jacobian_over_fwd_bwd_resnet50": resnet50_audit / resnet50_base,
        "audit_jacobian_over_fwd_bwd_encoder": encoder_audit / encoder_base,
    }
    print(f"resnet18 32x3x64x64: fwd+bwd {resnet_base:.3f} s, audit {resnet_audit:.3f} s; "
          f"mlp 50x256 on 256x256 ({mlp_verdict}): fwd+bwd {mlp_base:.4f} s, audit {mlp_audit:.4f} s, "
          f"with the fix check on a copy {mlp_audit_checked:.4f} s ({mlp_audit_checked / mlp_base:.1f}x)")
    print(f"with the Jacobian: transformers ResNet-50 8x3x64x64: fwd+bwd {resnet50_base:.3f} s, "
          f"audit {resnet50_audit:.3f} s; TransformerEncoder 16x64x256: fwd+bwd {encoder_base:.3f} s, "
          f"audit {encoder_audit:.3f} s")
    emit("audit", {
        "resnet_fwd_bwd_s": round(resnet_base, 4), "resnet_audit_s": round(resnet_audit, 4),
        "mlp_fwd_bwd_s": round(mlp_base, 5), "mlp_audit_s": round(mlp_audit, 5),
        "mlp_audit_with_fix_check_s": round(mlp_audit_checked, 5),
        "audit_with_fix_check_over_fwd_bwd_mlp": round(mlp_audit_checked / mlp_base, 3),
        "resnet50_fwd_bwd_s": round(resnet50_base, 4), "resnet50_audit_jacobian_s": round(resnet50_audit, 4),
        "encoder_fwd_bwd_s": round(encoder_base, 4), "encoder_audit_jacobian_s": round(encoder_audit, 4),
        **{name: round(value, 3) for name, value in ratios.items()},
    }, {name: target(value, "<=", TARGETS[name]) for name, value in ratios.items()}, threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
