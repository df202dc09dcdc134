"""The zoo of issue 16: tiny-config real architectures, their inputs, and the health figures measured on them.

Every entry builds one model (Hugging Face ``transformers`` from a config, plain torch, or test modules
that reproduce timm's patterns) with a batch of random inputs and the loss a user starts from:

* a language model (``task="lm"``): cross-entropy of its logits, to compare with ln V;
* a classifier (``task="classifier"``): cross-entropy of its logits, vs ln C;
* CLIP (``task="contrastive"``): the image-text contrastive loss on a batch of B pairs, vs ln B.

The loss is averaged over every possible target (random labels, in expectation).

:func:`health` runs one forward pass and measures what issue 16 asks: the initial loss, the std of the
attention scores at the softmax input (explicit ``softmax`` over the last axis, or the q k^T * scale
inside ``scaled_dot_product_attention``), and whether every activation is finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

VOCAB, CLASSES, BATCH, LENGTH, IMAGE = 97, 7, 2, 12, 32


@dataclass
class Entry:
    """One zoo model: how to build it, what to feed it, and which loss it starts from."""

    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[], dict[str, Any]]
    task: str  # "lm", "classifier", "contrastive"
    classes: int
    logits: Callable[[Any], torch.Tensor] = field(default=lambda out: out.logits)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tokens(vocab: int = VOCAB, length: int = LENGTH, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (BATCH, length), generator=_generator(seed))


def _images(channels: int = 3, size: int = IMAGE) -> torch.Tensor:
    return torch.randn(BATCH, channels, size, size, generator=_generator(2))


def _text(**extra) -> Callable[[], dict[str, Any]]:
    return lambda: {"input_ids": _tokens(), **extra}


# ------------------------------------------------------------------ transformers


def _hf(config_name: str, model_name: str, **config) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers

        settings = getattr(transformers, config_name)(**config)
        return getattr(transformers, model_name)(settings)

    return build


_DECODER = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
                "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}


def _vision(name: str, config: dict[str, Any]) -> Entry:
    return Entry(name.lower(), _hf(f"{name}Config", f"{name}ForImageClassification", num_labels=CLASSES, **config),
                 lambda: {"pixel_values": _images(config.get("num_channels", 3), config.get("image_size", IMAGE))},
                 "classifier", CLASSES)


def hf_entries() -> list[Entry]:
    """The transformers models of the zoo (tiny configs)."""
    t5 = {"vocab_size": VOCAB, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4,
              "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1}
    whisper = {"vocab_size": VOCAB, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
                   "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_mel_bins": 16,
                   "max_source_positions": 8, "max_target_positions": 32, "decoder_start_token_id": 0, "pad_token_id": 0,
                   "bos_token_id": 0, "eos_token_id": 1, "begin_suppress_tokens": None, "suppress_tokens": None}
    clip = {
        "text_config": {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "max_position_embeddings": LENGTH, "bos_token_id": 0, "eos_token_id": 1,
                         "pad_token_id": 2},
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                           "image_size": IMAGE, "patch_size": 8},
        "projection_dim": 512,
    }
    return [
        Entry("gpt2", _hf("GPT2Config", "GPT2LMHeadModel", vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4,
                          n_positions=64, bos_token_id=0, eos_token_id=1), _text(), "lm", VOCAB),
        Entry("bert", _hf("BertConfig", "BertForMaskedLM", vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64, max_position_embeddings=64),
              _text(), "lm", VOCAB),
        Entry("llama", _hf("LlamaConfig", "LlamaForCausalLM", **_DECODER), _text(), "lm", VOCAB),
        Entry("mistral", _hf("MistralConfig", "MistralForCausalLM", **_DECODER), _text(), "lm", VOCAB),
        Entry("qwen2-tied", _hf("Qwen2Config", "Qwen2ForCausalLM", tie_word_embeddings=True, **_DECODER),
              _text(), "lm", VOCAB),
        Entry("qwen2-untied", _hf("Qwen2Config", "Qwen2ForCausalLM", tie_word_embeddings=False, **_DECODER),
              _text(), "lm", VOCAB),
        Entry("t5", _hf("T5Config", "T5ForConditionalGeneration", **t5),
              lambda: {"input_ids": _tokens(), "decoder_input_ids": _tokens(seed=3)}, "lm", VOCAB),
        Entry("whisper", _hf("WhisperConfig", "WhisperForConditionalGeneration", **whisper),
              lambda: {"input_features": torch.randn(BATCH, 16, 16, generator=_generator(4)),
                       "decoder_input_ids": _tokens(length=8, seed=3)}, "lm", VOCAB),
        Entry("clip", _hf("CLIPConfig", "CLIPModel", **clip),
              lambda: {"input_ids": _tokens(), "pixel_values": _images()}, "contrastive", BATCH,
              logits=lambda out: out.logits_per_image),
        _vision("ViT", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                            "image_size": IMAGE, "patch_size": 8}),
        _vision("ResNet", {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1], "layer_type": "bottleneck"}),
        _vision("ConvNext", {"num_stages": 2, "hidden_sizes": [16, 32], "depths": [1, 1], "image_size": IMAGE}),
        _vision("EfficientNet", {"image_size": IMAGE, "width_coefficient": 0.25, "depth_coefficient": 0.2,
                                     "hidden_dim": 320}),
        _vision("MobileNetV2", {"image_size": IMAGE, "depth_multiplier": 0.25}),
        _vision("RegNet", {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1], "groups_width": 8}),
        _vision("Swin", {"image_size": IMAGE, "patch_size": 4, "embed_dim": 16, "depths": [1, 1], "num_heads": [2, 4],
                             "window_size": 4}),
    ]


# ------------------------------------------------------------------ plain torch


class EncoderClassifier(nn.Module):
    """Token embedding + nn.TransformerEncoder + mean pooling + a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, CLASSES)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(self.embed(input_ids))).mean(dim=1))


class RecurrentLM(nn.Module):
    """Embedding -> 2-layer LSTM or GRU -> linear head over the vocabulary."""

    def __init__(self, cell: type[nn.RNNBase]) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.rnn = cell(32, 48, num_layers=2, batch_first=True)
        self.head = nn.Linear(48, VOCAB)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(input_ids))[0])


class DepthwiseConv1dNet(nn.Module):
    """A 1-D conv net with a grouped and a depthwise separable stage (ReLU), pooling, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv1d(4, 32, 5, padding=2)
        self.grouped = nn.Conv1d(32, 32, 3, padding=1, groups=4)
        self.depthwise = nn.Conv1d(32, 32, 5, padding=2, groups=32)
        self.pointwise = nn.Conv1d(32, 64, 1)
        self.head = nn.Linear(64, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(self.grouped(x))
        x = F.relu(self.pointwise(self.depthwise(x)))
        return self.head(x.mean(dim=-1))


class BiasKVAttention(nn.Module):
    """nn.MultiheadAttention with add_bias_kv over an embedded sequence, pooled into a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.attention = nn.MultiheadAttention(32, 4, add_bias_kv=True, batch_first=True)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, CLASSES)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids)
        x = x + self.attention(x, x, x, need_weights=False)[0]
        return self.head(self.norm(x).mean(dim=1))


# ------------------------------------------------------------------ timm's patterns (timm itself is not installed)


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's norm-act layer: a BatchNorm2d subclass that applies its own activation after normalising."""

    def __init__(self, channels: int, act_layer: type[nn.Module] = nn.ReLU) -> None:
        super().__init__(channels)
        self.drop = nn.Identity()
        self.act = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         self.training, self.momentum, self.eps)
        return self.act(self.drop(x))


class DropPath(nn.Module):
    """timm's stochastic depth: in train mode zero whole samples with probability p (and rescale the rest)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Bottleneck(nn.Module):
    """timm's ResNet bottleneck with zero_init_last: the last BN's gamma starts at zero; DropPath on the branch."""

    def __init__(self, channels: int, act_layer: type[nn.Module]) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels // 2, 1, bias=False), BatchNormAct2d(channels // 2, act_layer)
        self.conv2 = nn.Conv2d(channels // 2, channels // 2, 3, padding=1, bias=False)
        self.bn2 = BatchNormAct2d(channels // 2, act_layer)
        self.conv3, self.bn3 = nn.Conv2d(channels // 2, channels, 1, bias=False), nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn3.weight)
        self.drop_path = DropPath(0.5)
        self.act = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv3(self.bn2(self.conv2(self.bn1(self.conv1(x))))))
        return self.act(x + self.drop_path(out))


class TimmResNet(nn.Module):
    """Stem conv + BatchNormAct2d, two zero-init-last bottlenecks in train mode, pooled linear head."""

    def __init__(self, act_layer: type[nn.Module] = nn.SiLU) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), BatchNormAct2d(32, act_layer)
        self.blocks = nn.Sequential(Bottleneck(32, act_layer), Bottleneck(32, act_layer))
        self.fc = nn.Linear(32, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.bn(self.stem(x))).mean(dim=(2, 3)))


class LayerScaleBlock(nn.Module):
    """A ConvNeXt/ViT-style block: LayerNorm -> Linear -> GELU -> Linear, times a layer-scale gamma of 1e-5."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))
        self.drop_path = DropPath(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.gamma * self.fc2(F.gelu(self.fc1(self.norm(x)))))


class PatchEmbedNet(nn.Module):
    """timm's patch embedding (a conv with kernel = stride), layer-scale blocks, a class head (train mode)."""

    def __init__(self, dim: int = 32, patch: int = 8) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.blocks = nn.Sequential(LayerScaleBlock(dim), LayerScaleBlock(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(dim=1))


def _plain(name: str, build: Callable[[], nn.Module], inputs: Callable[[], dict[str, Any]], task: str = "classifier",
           classes: int = CLASSES) -> Entry:
    return Entry(name, build, inputs, task, classes, logits=lambda out: out)


def torch_entries() -> list[Entry]:
    """Plain torch models and the timm-pattern test modules (the timm ones are left in train mode)."""
    return [
        _plain("transformer-encoder", EncoderClassifier, _text()),
        _plain("lstm-lm", lambda: RecurrentLM(nn.LSTM), _text(), "lm", VOCAB),
        _plain("gru-lm", lambda: RecurrentLM(nn.GRU), _text(), "lm", VOCAB),
        _plain("conv1d-depthwise", DepthwiseConv1dNet, lambda: {"x": torch.randn(BATCH, 4, 64, generator=_generator(5))}),
        _plain("mha-bias-kv", BiasKVAttention, _text()),
        _plain("timm-resnet", lambda: TimmResNet().train(), lambda: {"x": _images()}),
        _plain("timm-patch-layerscale", lambda: PatchEmbedNet().train(), lambda: {"x": _images()}),
    ]


def entries() -> list[Entry]:
    return hf_entries() + torch_entries()


# ------------------------------------------------------------------ measuring


class _ScoreProbe(TorchFunctionMode):
    """Collects the std of attention scores at the softmax input, and whether every module's output is finite."""

    def __init__(self) -> None:
        super().__init__()
        self.score_stds: list[float] = []
        self.finite = True

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "softmax" and _last_axis(args, kwargs):
            self.score_stds.append(_finite_std(args[0]))
        elif name == "scaled_dot_product_attention":
            query, key = args[0], args[1]
            scale = kwargs.get("scale") or 1.0 / math.sqrt(query.shape[-1])
            if key.shape[-3] != query.shape[-3]:  # grouped-query attention: repeat the key heads
                key = key.repeat_interleave(query.shape[-3] // key.shape[-3], dim=-3)
            self.score_stds.append(_finite_std(query @ key.transpose(-2, -1) * scale))
        return func(*args, **kwargs)

    def check(self, module: nn.Module, args: Any, output: Any) -> None:
        for leaf in tree_flatten(output)[0]:
            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point() and not bool(torch.isfinite(leaf).all()):
                self.finite = False


def _last_axis(args: tuple, kwargs: dict) -> bool:
    dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    tensor = args[0]
    return isinstance(tensor, torch.Tensor) and tensor.dim() >= 3 and dim is not None and dim % tensor.dim() == tensor.dim() - 1


def _finite_std(scores: torch.Tensor) -> float:
    """Std over the entries that a mask did not set to -inf or to the dtype's minimum."""
    values = scores.detach().double().reshape(-1)
    values = values[torch.isfinite(values) & (values > torch.finfo(scores.dtype).min / 2)]
    return float(values.std())


@dataclass
class Health:
    """What one forward pass of a freshly initialised model shows."""

    loss: float
    reference: float  # ln C, ln V or ln B
    score_std: list[float]
    finite: bool


def _loss(entry: Entry, output: Any) -> torch.Tensor:
    """Cross-entropy averaged over every possible target: -mean(log_softmax(logits)).

    For targets drawn uniformly at random this is the expected loss, without the noise of a
    few drawn labels; it is ln C for constant logits and grows with their spread.
    """
    logits = entry.logits(output).float()
    return -torch.log_softmax(logits, dim=-1).mean()


def _attention_scores(probe: _ScoreProbe):
    """A pre-hook for nn.MultiheadAttention: the std of its q k^T / sqrt(d_head) (with bias_k appended)."""

    def hook(module: nn.MultiheadAttention, args: tuple, kwargs: dict) -> None:
        query = args[0] if args else kwargs["query"]
        key = args[1] if len(args) > 1 else kwargs["key"]
        if not module.batch_first:
            query, key = query.transpose(0, 1), key.transpose(0, 1)
        weight_q, weight_k, _ = module.in_proj_weight.chunk(3)
        bias_q, bias_k, _ = module.in_proj_bias.chunk(3) if module.in_proj_bias is not None else (None,) * 3
        q, k = F.linear(query, weight_q, bias_q), F.linear(key, weight_k, bias_k)
        if module.bias_k is not None:
            k = torch.cat([k, module.bias_k.expand(k.shape[0], 1, -1)], dim=1)
        heads, width = module.num_heads, module.head_dim
        q = q.reshape(q.shape[0], q.shape[1], heads, width).transpose(1, 2)
        k = k.reshape(k.shape[0], k.shape[1], heads, width).transpose(1, 2)
        probe.score_stds.append(_finite_std(q @ k.transpose(-2, -1) / math.sqrt(width)))

    return hook


@torch.no_grad()
def health(entry: Entry, model: nn.Module, inputs: dict[str, Any]) -> Health:
    """One forward pass in train mode (the mode training starts in: BatchNorm on batch statistics)."""
    probe = _ScoreProbe()
    handles = [module.register_forward_hook(probe.check) for module in model.modules()]
    handles += [module.register_forward_pre_hook(_attention_scores(probe), with_kwargs=True)
                for module in model.modules() if isinstance(module, nn.MultiheadAttention)]
    modes = [(module, module.training) for module in model.modules()]
    model.train()
    try:
        with probe:
            output = model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return Health(float(_loss(entry, output)), math.log(entry.classes), probe.score_stds, probe.finite)
