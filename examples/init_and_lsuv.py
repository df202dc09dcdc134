"""Initialise a real model with initlab: the auto plan, an explicit plan, verify, and LSUV.

Run: ``.venv/bin/python examples/init_and_lsuv.py``
"""

import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab import Plan, Residual, Rule


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 8 * 8, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))          # He for conv (ReLU seen through the BatchNorm)
        x = torch.tanh(self.fc1(x.flatten(1)))      # Glorot for fc1
        return self.fc2(x)                          # Glorot (no activation after it)


model = Net()

# 1. The auto plan: the activation after each layer is found by torch.fx (or by a traced run
#    when you pass example_input=...); the record says what was done to every parameter.
record = initlab.init_(model, seed=0)
print(record)

# 2. verify() catches a later silent re-initialisation.
assert initlab.verify(model, record).ok
nn.init.kaiming_uniform_(model.fc2.weight)
print("\n" + str(initlab.verify(model, record)))

# 3. An explicit plan, saved as TOML and read back; the last layer scaled as a residual branch output.
plan = Plan([Rule(match="fc*", type=nn.Linear, weight=initlab.orthogonal(), bias=initlab.zeros())],
            default="auto", residual=Residual("fc2", mode="scale", n_branches=1))
text = plan.to_toml()
print("\n" + text)
record = initlab.init_(model, Plan.from_toml(text), seed=1)
print(record.row("fc2.weight").scheme_name, record.row("fc2.weight").note)

# 4. LSUV on a batch, fitted in flight: 2 forward passes whatever the depth.
lsuv = initlab.lsuv_(model, torch.randn(64, 3, 8, 8), seed=0)
print("\n" + str(lsuv))
