"""Audit a deep tanh network before training, fix its initialization, and compare with theory.

Run: ``.venv/bin/python examples/audit_and_theory.py`` (writes ``audit-before.html`` and
``audit-after.html`` in the current folder).
"""

import torch
from torch import nn

import initlab


def deep_tanh_mlp(depth: int = 20, width: int = 256) -> nn.Sequential:
    layers = [nn.Linear(40, width), nn.Tanh()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


model = deep_tanh_mlp()
batch = torch.randn(512, 40)

# 1. The classic "small random weights" initialization: the audit finds the signal vanishing.
plan = initlab.Plan([initlab.Rule(match="*", type=nn.Linear, weight=initlab.small_random(), bias=initlab.zeros())])
initlab.init_(model, plan, seed=0)
before = initlab.audit(model, batch)
before.print()
before.to_html("audit-before.html")

# 2. Apply the fix the audit suggests (the auto plan: Glorot before tanh) and audit again.
print(initlab.init_(model, seed=0))
after = initlab.audit(model, batch)
print("after the auto plan:", after.verdict)
after.to_html("audit-after.html")

# 3. What mean-field theory says about tanh nets with Var(W) = sigma_w^2 / fan_in, Var(b) = 0.05.
critical = initlab.critical_sigma_w2("tanh", 0.05)
for sigma_w2 in (1.0, critical, 4.0):
    field = initlab.MeanField("tanh", sigma_w2, 0.05)
    print(f"sigma_w^2 = {sigma_w2:.3f}: q* = {field.q_star:.3f}, chi_1 = {field.chi_1:.3f}, "
          f"phase = {field.phase}, trainable depth ~ {field.trainable_depth():.0f} layers")
