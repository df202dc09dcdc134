"""Real PyTorch models shared by the tests of initlab.nn (init_, plans, LSUV)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MixedMLP(nn.Module):
    """ReLU, Tanh, GELU, SELU modules, a functional F.silu and a functional leaky_relu(0.2)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.fc1, self.act1 = nn.Linear(20, width), nn.ReLU()
        self.fc2, self.act2 = nn.Linear(width, width), nn.Tanh()
        self.fc3, self.act3 = nn.Linear(width, width), nn.GELU()
        self.fc4, self.act4 = nn.Linear(width, width), nn.SELU()
        self.fc5 = nn.Linear(width, width)
        self.fc6 = nn.Linear(width, width)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.fc1(x))
        x = self.act2(self.fc2(x))
        x = self.act3(self.fc3(x))
        x = self.act4(self.fc4(x))
        x = F.silu(self.fc5(x))
        x = F.leaky_relu(self.fc6(x), 0.2)
        return self.head(x)


class SmallCNN(nn.Module):
    """conv -> BatchNorm -> ReLU twice, pooling, flatten, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1, groups=2), nn.BatchNorm2d(32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 2)
        x = self.bn2(self.conv2(x)).relu()
        return self.fc(torch.flatten(self.pool(x), 1))


class ResidualBlock(nn.Module):
    """A ResNet basic block with a projection shortcut: relu(bn2(conv2(relu(bn1(conv1 x)))) + bn(proj x))."""

    def __init__(self, cin: int = 8, cout: int = 16) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.proj(x))


class Decoder(nn.Module):
    """ConvTranspose decoder: convT -> ReLU -> convT -> Sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up2(F.relu(self.up1(z))))


class Swish(nn.Module):
    """A custom activation module: x * sigmoid(x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class TiedLM(nn.Module):
    """Embedding, a GELU MLP block with a residual, and a head tied to the embedding."""

    def __init__(self, vocab: int = 50, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.fc_in, self.fc_out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        x = x + self.fc_out(F.gelu(self.fc_in(x)))
        return self.head(self.norm(x))


def deep_mlp(depth: int = 20, width: int = 256) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers)


def bn_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Dropout(0.5), nn.Flatten(), nn.Linear(16 * 8 * 8, 10),
    )
