"""Reference architectures at the shapes the benchmarks and tests name.

``resnet18``: a ResNet-18-shaped convnet (He, Zhang, Ren, Sun 2016: stem, four
stages of two basic blocks at widths 64/128/256/512, global pooling, Linear;
11.7M parameters with 1000 classes), written here rather than imported from
torchvision. ``gpt2_small``: the parameter shapes of GPT-2 small (Radford et
al. 2019: vocab 50257, context 1024, width 768, 12 heads, 12 pre-norm blocks,
~124M parameters) as PyTorch's own layers, so that their constructors'
``reset_parameters`` run.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and ReLU; identity or 1x1-conv shortcut."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.relu2 = nn.ReLU()
        self.downsample = None
        if stride != 1 or channels_in != channels_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + identity)


def resnet18(classes: int = 1000) -> nn.Sequential:
    """The ResNet-18 layout: 7x7 stem, max-pool, stages of 2 basic blocks, pooling, Linear."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    channels = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(channels, width, stride), BasicBlock(width, width, 1)]
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
    return nn.Sequential(*layers)


def gpt2_small() -> nn.ModuleDict:
    """GPT-2-small shapes built from PyTorch layers (embeddings, 12 TransformerEncoderLayers, LayerNorm)."""
    return nn.ModuleDict(
        {
            "wte": nn.Embedding(50257, 768),
            "wpe": nn.Embedding(1024, 768),
            "h": nn.ModuleList(
                nn.TransformerEncoderLayer(768, 12, 3072, batch_first=True, norm_first=True) for _ in range(12)
            ),
            "ln_f": nn.LayerNorm(768),
        }
    )
