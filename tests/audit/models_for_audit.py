"""Purpose-built real PyTorch models for the audit tests (no mocks)."""

from __future__ import annotations

import torch
from torch import nn

import initlab

IN_FEATURES = 40


def mlp(depth: int, width: int, activation: type[nn.Module], weight_init, *, out: int = 10,
        dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """``depth`` hidden Linear -> activation layers of ``width``, then a Linear readout; zero biases.

    ``weight_init(linear, position)`` sets each Linear's weight (position 0..depth).
    """
    layers: list[nn.Module] = []
    fan_in = IN_FEATURES
    for position in range(depth + 1):
        linear = nn.Linear(fan_in, width if position < depth else out, dtype=dtype)
        weight_init(linear, position)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if position < depth:
            layers.append(activation())
        fan_in = width
    return nn.Sequential(*layers)


def scheme_init(scheme, seed: int = 0):
    """A ``weight_init`` applying an initlab scheme with a distinct stream per layer."""
    def apply(linear: nn.Linear, position: int) -> None:
        scheme.init_(linear.weight, seed=seed, name=f"layer{position}.weight")
    return apply


def normal_init(std: float):
    """A ``weight_init`` drawing N(0, std^2) from an initlab stream."""
    return scheme_init(initlab.normal(0.0, std))


def batch(rows: int = 64, features: int = IN_FEATURES, seed: int = 1) -> torch.Tensor:
    """A standard-normal batch."""
    return torch.randn(rows, features, generator=torch.Generator().manual_seed(seed))


class ConvNet(nn.Module):
    """Conv2d + BatchNorm + ReLU blocks, pooling and a Linear head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.features(x))


class Conv1dNet(nn.Module):
    """Conv1d + BatchNorm1d + GELU."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(4, 8, 5, padding=2), nn.BatchNorm1d(8), nn.GELU(), nn.Flatten(),
                                  nn.Linear(8 * 16, 5))

    def forward(self, x):
        return self.body(x)


class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn + identity, then relu (one ReLU module called twice)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class ResNet(nn.Module):
    """A small residual network."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(ResidualBlock(8), ResidualBlock(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class Transformer(nn.Module):
    """nn.TransformerEncoder (functional ReLU inside each layer) + a Linear head."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.encoder(x))


class Recurrent(nn.Module):
    """GRU then LSTM; returns a tuple (logits, hidden state)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(6, 12, batch_first=True)
        self.lstm = nn.LSTM(12, 12, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        sequence, _ = self.gru(x)
        sequence, (hidden, _) = self.lstm(sequence)
        return self.head(sequence[:, -1]), hidden


class DictOutput(nn.Module):
    """Returns a dict of tensors."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(IN_FEATURES, 32), nn.Tanh())
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        hidden = self.body(x)
        return {"hidden": hidden, "logits": self.head(hidden)}
