"""The labelled suite of issue 17: real models with the verdict a person expects of their init.

Healthy: real architectures built from config with tiny sizes (Hugging Face ``transformers``,
plain torch), each with its own reference init (``ref``) and with initlab's auto plan
(``auto``: ``initlab.init_``). Unhealthy: the classic init mistakes, each with its verdict.
Nothing is downloaded. Used by ``tests/audit/test_audit_labelled.py`` and
``benchmarks/bench_audit_accuracy.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import initlab
from initlab.auditing.fixes import apply_fix

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nn"))

import models_for_audit as M  # noqa: E402
import zoo_models as Z  # noqa: E402

VOCAB, BATCH, LENGTH, IMAGE = 97, 8, 12, 32


@dataclass(frozen=True)
class Case:
    """One labelled model: ``build(seed)`` returns ``(model, batch, output_fn)``; the batch
    depends on ``seed`` only (the model is the same for every seed)."""

    name: str
    expected: str
    build: Callable[[int], tuple[nn.Module, Any, Callable | None]]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tokens(seed: int, length: int = LENGTH, vocab: int = VOCAB) -> torch.Tensor:
    return torch.randint(3, vocab, (4, length), generator=_generator(seed))


def _images(seed: int, channels: int = 3, size: int = IMAGE) -> torch.Tensor:
    return torch.randn(BATCH, channels, size, size, generator=_generator(seed))


def _hf_batch(entry: str, seed: int) -> dict[str, torch.Tensor]:
    if entry == "t5":
        return {"input_ids": _tokens(seed), "decoder_input_ids": _tokens(seed + 1000)}
    if entry == "whisper":
        return {"input_features": torch.randn(4, 16, 16, generator=_generator(seed)),
                "decoder_input_ids": _tokens(seed + 1000, length=8)}
    if entry == "clip":
        return {"input_ids": _tokens(seed), "pixel_values": _images(seed + 1000)[:4]}
    if entry in ("vit", "resnet", "convnext", "efficientnet", "mobilenetv2", "swin", "regnet"):
        return {"pixel_values": _images(seed)}
    return {"input_ids": _tokens(seed)}


def _hf_case(entry_name: str, auto: bool, expected: str = "healthy") -> Case:
    entry = next(e for e in Z.hf_entries() if e.name == entry_name)

    def build(seed: int):
        torch.manual_seed(0)
        model = entry.build().train()  # audited in the mode it trains in (BatchNorm on batch statistics)
        batch = _hf_batch(entry_name, seed)
        if auto:
            initlab.init_(model, example_input=_hf_batch(entry_name, 0))
        return model, batch, entry.logits

    return Case(f"{entry_name}-{'auto' if auto else 'ref'}", expected, build)


class SENet(nn.Module):
    """Conv + BatchNorm + ReLU, a squeeze-excitation gate, another conv, global pooling, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.reduce, self.expand = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.conv = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(self.squeeze(x)))))
        x = self.conv(x * gate)
        return self.head(torch.flatten(self.pool(x), 1))


class TiedLM(nn.Module):
    """Embedding -> LayerNorm -> Linear + ReLU -> LayerNorm -> readout tied to the embedding."""

    def __init__(self, width: int = 512) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.norm1 = nn.LayerNorm(width)
        self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.norm2 = nn.LayerNorm(width)
        self.head = nn.Linear(width, VOCAB)
        self.head.weight = self.embed.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm2(self.body(self.norm1(self.embed(input_ids)))))


class PreLNEncoder(nn.Module):
    """Token embedding and a deep pre-LN nn.TransformerEncoder (no residual scaling), mean-pooled head."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 5)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(self.embed(input_ids))).mean(dim=1))


def _conv_stack(depth: int, std: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)]
    model = nn.Sequential(*layers)
    for position, module in enumerate(model):
        if isinstance(module, nn.Conv2d):
            initlab.normal(0.0, std).init_(module.weight, seed=0, name=f"conv{position}")
            nn.init.zeros_(module.bias)
    return model


def _plain(name: str, expected: str, make: Callable[[], nn.Module], batch: Callable[[int], Any],
           auto: bool = False, setup: Callable[[nn.Module], None] | None = None) -> Case:
    def build(seed: int):
        torch.manual_seed(0)
        model = make()
        if auto:
            initlab.init_(model, example_input=batch(0))
        if setup is not None:
            with torch.no_grad():
                setup(model)
        return model, batch(seed), None

    return Case(name, expected, build)


def _rows(seed: int) -> torch.Tensor:
    return M.batch(64, seed=seed + 1)


def _default_init(linear: nn.Linear, _position: int) -> None:
    linear.reset_parameters()  # PyTorch's own default (kaiming_uniform with a = sqrt(5))


def _mlp(depth, width, activation, weight_init, keep_bias=False):
    def make():
        model = M.mlp(depth, width, activation, weight_init)
        if keep_bias:
            for module in model:
                if isinstance(module, nn.Linear):
                    module.reset_parameters()
        return model

    return make


def _scale(name: str, factor: float):
    def setup(model: nn.Module) -> None:
        dict(model.named_parameters())[name].mul_(factor)

    return setup


def _fill(name: str, index: tuple, value: float):
    def setup(model: nn.Module) -> None:
        dict(model.named_parameters())[name][index] = value

    return setup


def healthy_cases() -> list[Case]:
    """Real architectures with their reference init and with initlab's auto plan."""
    cases = [
        _hf_case(name, auto)
        for name in ("gpt2", "bert", "llama", "t5", "whisper", "clip", "vit", "resnet", "convnext",
                     "efficientnet", "mobilenetv2", "swin", "regnet")
        for auto in (False, True)
        if (name, auto) != ("efficientnet", False)  # see unhealthy_cases
    ]
    image16 = lambda seed: torch.randn(BATCH, 3, 16, 16, generator=_generator(seed))  # noqa: E731
    sequence = lambda seed: torch.randn(4, 6, 16, generator=_generator(seed))  # noqa: E731
    for auto in (False, True):
        tag = "auto" if auto else "ref"
        cases += [
            _plain(f"torch-resnet-{tag}", "healthy", M.ResNet, image16, auto),
            _plain(f"torch-transformer-postln-{tag}", "healthy", M.Transformer, sequence, auto),
            _plain(f"torch-transformer-preln-{tag}", "healthy", Z.EncoderClassifier, _tokens, auto),
            _plain(f"torch-lstm-lm-{tag}", "healthy", lambda: Z.RecurrentLM(nn.LSTM), _tokens, auto),
            _plain(f"torch-se-convnet-{tag}", "healthy", SENet, _images, auto),
        ]
    cases += [
        _plain("mlp-relu-he-20", "healthy", _mlp(20, 256, nn.ReLU, M.scheme_init(initlab.he_normal())), _rows),
        _plain("mlp-tanh-glorot-20", "healthy", _mlp(20, 128, nn.Tanh, M.scheme_init(initlab.glorot_normal())), _rows),
    ]
    return cases


def unhealthy_cases() -> list[Case]:
    """The classic init mistakes, each with the verdict it must get."""
    zero = lambda linear, _: nn.init.zeros_(linear.weight)  # noqa: E731
    constant = lambda linear, _: nn.init.constant_(linear.weight, 0.05)  # noqa: E731
    he = M.scheme_init(initlab.he_normal())
    return [
        _plain("zero-init-tanh-mlp", "symmetric", _mlp(3, 64, nn.Tanh, zero), _rows),
        _plain("constant-init-relu-mlp", "symmetric", _mlp(3, 64, nn.ReLU, constant), _rows),
        _plain("zero-init-convnet", "symmetric", lambda: _conv_stack(3, 0.0), _images),
        _plain("small-init-tanh-mlp-20", "vanishing", _mlp(20, 128, nn.Tanh, M.normal_init(0.01)), _rows),
        _plain("small-init-convnet-8", "vanishing", lambda: _conv_stack(8, 0.01), _images),
        _plain("large-init-relu-mlp-10", "exploding", _mlp(10, 256, nn.ReLU, M.normal_init(0.5)), _rows),
        _plain("large-init-convnet-6", "exploding", lambda: _conv_stack(6, 1.0), _images),
        _plain("large-init-tanh-mlp-saturated", "saturated", _mlp(5, 256, nn.Tanh, M.normal_init(1.0)), _rows),
        _plain("large-init-sigmoid-mlp-saturated", "saturated", _mlp(5, 256, nn.Sigmoid, M.normal_init(1.0)), _rows),
        _plain("relu-with-glorot-30", "vanishing", _mlp(30, 128, nn.ReLU, M.scheme_init(initlab.glorot_normal())), _rows),
        _plain("linear-with-he-30", "exploding", _mlp(30, 128, nn.Identity, he), _rows),
        _plain("torch-default-tanh-mlp-20", "vanishing", _mlp(20, 128, nn.Tanh, _default_init, keep_bias=True), _rows),
        _plain("torch-default-sigmoid-mlp-20", "vanishing", _mlp(20, 128, nn.Sigmoid, _default_init, keep_bias=True), _rows),
        _plain("deep-preln-transformer-unscaled", "exploding", lambda: PreLNEncoder(100), _tokens, auto=True),
        _plain("dead-relu-layer", "dead", _mlp(6, 128, nn.ReLU, he), _rows, setup=_fill("6.bias", (...,), -10.0)),
        _plain("dead-relu-after-batchnorm", "dead", M.ConvNet, lambda s: _images(s, size=16),
               setup=_fill("features.1.bias", (...,), -5.0)),
        _plain("one-layer-x100", "exploding", _mlp(10, 256, nn.ReLU, he), _rows, setup=_scale("8.weight", 100.0)),
        _plain("nan-weight", "non_finite", _mlp(4, 64, nn.ReLU, he), _rows, setup=_fill("4.weight", (3, 5), float("nan"))),
        _plain("inf-conv-weight", "non_finite", lambda: _conv_stack(3, 0.1), _images,
               setup=_fill("2.weight", (0, 0, 1, 1), float("inf"))),
        _plain("tied-readout-embedding-scale", "exploding", TiedLM, _tokens),
        # transformers' own EfficientNet init draws the BatchNorm weights from N(0, 0.02) (its
        # _init_weights treats them as conv weights): each norm shrinks the signal x0.02
        _hf_case("efficientnet", auto=False, expected="vanishing"),
    ]


def cases() -> list[Case]:
    return healthy_cases() + unhealthy_cases()


def apply_fixes(model: nn.Module, batch: Any, report: Any) -> int:
    """Apply every fix the report gives (its definite findings' ``fix_params`` / ``fix_residual``,
    through ``initlab.init_``); returns the number of findings whose fix is an initialization."""
    given = [finding for finding in report.findings if finding.fix_params]
    with torch.no_grad():
        apply_fix(model, batch, given)
    return len(given)
