"""Named presets: plans that reproduce the reference initialization of well-known architectures.

Each function returns a :class:`~initlab.nn.plan.Plan`, so a preset prints (as TOML),
round-trips through ``to_toml``/``from_toml`` and can be edited like any plan (add a rule in
front, change a scheme). :func:`preset` builds one by name, reading the arguments it needs
from a Hugging Face model's ``config`` when a model is given::

    init_(model, preset("gpt2", model))

Rules select layers by *kind* (``"linear"`` covers ``nn.Linear`` and Hugging Face's ``Conv1D``;
``"norm"`` covers every norm, custom RMSNorms included) and by name globs for what only names
say (GPT-2's ``c_proj``, T5's ``q``/``k``/``v``/``o``). Presets for the transformers models
are tested parameter by parameter against ``transformers``' own ``_init_weights`` (same mean
and std within sampling error, and a Kolmogorov-Smirnov test); Fixup, T-Fixup and DeepNet
against the formulas of their papers.

``truncated_normal(std, bound=2/std)``: timm's and torch's ``trunc_normal_(std=.02)`` truncate
at +-2 in absolute value, i.e. at +-100 standard deviations — a normal in all but name; the
presets say so rather than truncate at +-2 sigma, which would shrink the std by 12%.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from initlab.errors import bad_value
from initlab.nn.plan import AUTO, Plan, Rule
from initlab.nn.residual import Scaled
from initlab.schemes import (
    Scheme,
    constant,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    normal,
    ones,
    truncated_normal,
    zeros,
)

_NORMS = Rule(kind="norm", weight=ones(), bias=zeros())


def _weights(std: float) -> Rule:
    return Rule(kind=("linear", "conv", "embedding"), weight=normal(0.0, std), bias=zeros())


def _timm_trunc(std: float) -> Scheme:
    return truncated_normal(std, bound=2.0 / std)


def gpt2(n_layer: int, std: float = 0.02) -> Plan:
    """GPT-2 / nanoGPT: every Linear, ``Conv1D`` and Embedding weight N(0, std^2), the residual
    projections ``c_proj`` (attention and MLP) N(0, (std / sqrt(2 n_layer))^2), biases 0,
    LayerNorms 1 / 0.

    Reference: Radford et al. (2019), "Language Models are Unsupervised Multitask Learners",
    sec. 2.3; transformers ``GPT2PreTrainedModel._init_weights``; nanoGPT ``model.py``.
    """
    _check_count("gpt2", "n_layer", n_layer)
    return Plan(
        [
            Rule(match="*c_proj", weight=normal(0.0, std / math.sqrt(2 * n_layer)), bias=zeros()),
            _NORMS,
            _weights(std),
        ],
        default=None,
    )


def bert(initializer_range: float = 0.02) -> Plan:
    """BERT: Linear and Embedding weights N(0, initializer_range^2) (padding row 0), biases 0
    (the MLM head's own bias too), LayerNorms 1 / 0.

    Reference: Devlin et al. (2019); transformers ``BertPreTrainedModel._init_weights``.
    """
    return Plan([_NORMS, _weights(initializer_range), Rule(match="*.bias", bias=zeros())], default=None)


def llama(initializer_range: float = 0.02) -> Plan:
    """Llama, Mistral, Qwen2: Linear and Embedding weights N(0, initializer_range^2)
    (padding row 0), biases 0, RMSNorm weights 1.

    Reference: transformers ``PreTrainedModel._init_weights`` (used as is by
    ``LlamaPreTrainedModel``, ``MistralPreTrainedModel``, ``Qwen2PreTrainedModel``).
    """
    return Plan([_NORMS, _weights(initializer_range)], default=None)


def t5(d_model: int, d_kv: int, num_heads: int, d_ff: int, factor: float = 1.0) -> Plan:
    """T5 (Mesh TensorFlow's init): q ~ N(0, f^2 / (d_model d_kv)) (the 1/sqrt(d_kv) the
    unscaled attention needs), k, v ~ N(0, f^2 / d_model), o ~ N(0, f^2 / (num_heads d_kv)),
    wi / wi_0 / wi_1 ~ N(0, f^2 / d_model), wo ~ N(0, f^2 / d_ff), relative attention bias
    N(0, f^2 / d_model), shared embedding and untied lm_head N(0, f^2), LayerNorm weight f.

    Reference: Raffel et al. (2020); transformers ``T5PreTrainedModel._init_weights``.
    """
    for argument, value in (("d_model", d_model), ("d_kv", d_kv), ("num_heads", num_heads), ("d_ff", d_ff)):
        _check_count("t5", argument, value)
    model_std = factor * d_model**-0.5
    return Plan(
        [
            Rule(kind="norm", weight=ones() if factor == 1.0 else constant(factor)),
            Rule(match="*.q", kind="linear", weight=normal(0.0, factor * (d_model * d_kv) ** -0.5), bias=zeros()),
            Rule(match="*.k", kind="linear", weight=normal(0.0, model_std), bias=zeros()),
            Rule(match="*.v", kind="linear", weight=normal(0.0, model_std), bias=zeros()),
            Rule(match="*.o", kind="linear", weight=normal(0.0, factor * (num_heads * d_kv) ** -0.5), bias=zeros()),
            Rule(match="*.wi*", kind="linear", weight=normal(0.0, model_std), bias=zeros()),
            Rule(match="*.wo", kind="linear", weight=normal(0.0, factor * d_ff**-0.5), bias=zeros()),
            Rule(match="*relative_attention_bias", weight=normal(0.0, model_std)),
            Rule(kind=("linear", "embedding"), weight=normal(0.0, factor), bias=zeros()),
        ],
        default=None,
    )


def vit(std: float = 0.02, head: Sequence[str] = ("*classifier", "*head")) -> Plan:
    """ViT, timm/JAX style: Linear and conv (patch embedding) weights, position embeddings and
    the class token trunc-normal(std) (timm's ``trunc_normal_``: at +-2 absolute), biases 0,
    LayerNorms 1 / 0, the mask token 0, and the classification head 0 (weight and bias).

    Reference: Dosovitskiy et al. (2021); timm ``vision_transformer.init_weights_vit_jax``
    (zero head) and ``init_weights_vit_timm``; transformers ``ViTPreTrainedModel._init_weights``
    (everything but the zero head).
    """
    return Plan(
        [
            *(Rule(match=glob, kind="linear", weight=zeros(), bias=zeros()) for glob in head),
            _NORMS,
            Rule(kind=("linear", "conv"), weight=_timm_trunc(std), bias=zeros()),
            Rule(match="*position_embeddings", weight=_timm_trunc(std)),
            Rule(match="*pos_embed", weight=_timm_trunc(std)),
            Rule(match="*cls_token", weight=_timm_trunc(std)),
            Rule(match="*mask_token", weight=zeros()),
        ],
        default=None,
    )


def convnext(
    std: float = 0.02,
    layer_scale: float = 1e-6,
    layer_scale_match: Sequence[str] = ("*layer_scale_parameter", "*.gamma"),
) -> Plan:
    """ConvNeXt: Linear and conv weights trunc-normal(std) (at +-2 absolute), biases 0,
    LayerNorms 1 / 0, layer-scale gammas ``layer_scale`` (1e-6).

    Reference: Liu et al. (2022), "A ConvNet for the 2020s", sec. 2 and appendix A; timm
    ``convnext._init_weights``; transformers ``ConvNextPreTrainedModel._init_weights``.
    """
    return Plan(
        [
            *(Rule(match=glob, weight=constant(layer_scale)) for glob in layer_scale_match),
            _NORMS,
            Rule(kind=("linear", "conv"), weight=_timm_trunc(std), bias=zeros()),
        ],
        default=None,
    )


def resnet() -> Plan:
    """ResNet with zero-init-last: conv weights He normal with fan_out (torch's fan counting,
    as torchvision's ``kaiming_normal_(mode="fan_out")``), BatchNorm 1 / 0 except the norm that
    ends each residual branch, whose gain starts at 0 (found from the model's graph: the auto
    rule), the classifier torch's default Linear weight U(+-1/sqrt(fan_in)) and bias 0.

    Reference: He et al. (2016); Goyal et al. (2017), "Accurate, Large Minibatch SGD", sec. 5.1
    (zero gamma); torchvision ``ResNet(zero_init_residual=True)``; timm ``zero_init_last``.
    The classifier bias is 0 here (torch draws it from U(+-1/sqrt(fan_in))).
    """
    return Plan(
        [
            Rule(kind="conv", weight=he_normal(mode="fan_out"), bias=zeros(), layout_compat="torch"),
            Rule(kind="norm", weight=AUTO, bias=zeros()),
            Rule(kind="linear", weight=he_uniform(negative_slope=math.sqrt(5.0)), bias=zeros(), layout_compat="torch"),
        ],
        default=None,
    )


def fixup(
    n_branches: int,
    branch_layers: int,
    inner: str | Sequence[str],
    last: str | Sequence[str],
    head: str | Sequence[str] = ("*fc", "*classifier", "*head"),
) -> Plan:
    """Fixup: the classifier and the last layer of every residual branch start at 0; the other
    layers inside the branches He normal times ``n_branches ** (-1 / (2 branch_layers - 2))``;
    every other layer He normal; biases 0; Fixup's scalar biases 0 and multipliers 1.

    Args:
        n_branches: L, the number of residual branches.
        branch_layers: m, the weighted layers per branch (>= 2).
        inner, last: globs of the branch layers other than the last, and of the last ones.
        head: globs of the classification layer.

    Reference: Zhang, Dauphin, Ma (2019), "Fixup Initialization: Residual Learning Without
    Normalization", sec. 3, rules 1-3.
    """
    _check_count("fixup", "n_branches", n_branches)
    if isinstance(branch_layers, bool) or not isinstance(branch_layers, int) or branch_layers < 2:
        raise bad_value("fixup", "branch_layers", branch_layers, "an integer >= 2")
    factor = n_branches ** (-1.0 / (2 * branch_layers - 2))
    return Plan(
        [
            *(Rule(match=glob, weight=zeros(), bias=zeros()) for glob in _globs(head)),
            *(Rule(match=glob, weight=zeros(), bias=zeros()) for glob in _globs(last)),
            *(Rule(match=glob, weight=Scaled(he_normal(), factor), bias=zeros()) for glob in _globs(inner)),
            Rule(match="*bias*", bias=zeros()),
            Rule(match="*scale*", weight=ones()),
        ],
        default=Rule(kind=("linear", "conv"), weight=he_normal(), bias=zeros()),
    )


_FAIRSEQ_ENCODER = (
    "*encoder.layers.*.self_attn.v_proj",
    "*encoder.layers.*.self_attn.out_proj",
    "*encoder.layers.*.fc1",
    "*encoder.layers.*.fc2",
)
_FAIRSEQ_DECODER = (
    "*decoder.layers.*.self_attn.v_proj",
    "*decoder.layers.*.self_attn.out_proj",
    "*decoder.layers.*.encoder_attn.v_proj",
    "*decoder.layers.*.encoder_attn.out_proj",
    "*decoder.layers.*.fc1",
    "*decoder.layers.*.fc2",
)


def t_fixup(
    n_layers: int,
    d_model: int,
    encoder: Sequence[str] = _FAIRSEQ_ENCODER,
    decoder: Sequence[str] = _FAIRSEQ_DECODER,
    embeddings: Sequence[str] = ("*embed_tokens",),
    has_decoder: bool = True,
) -> Plan:
    """T-Fixup: Xavier uniform for every weight, input embeddings normal with std d^(-1/2), then the encoder's
    attention value/output and MLP weights times 0.67 N^(-1/4) and (with a decoder) the decoder's
    times (9N)^(-1/4), as the input embeddings; biases 0. Norm layers are absent by design (kept 1 / 0).

    Args:
        n_layers: N, the layers of the encoder (and of the decoder).
        d_model: d, the embedding width.
        encoder, decoder, embeddings: globs of the scaled layers (fairseq names by default).
        has_decoder: False for an encoder alone (embeddings scaled by 0.67 N^(-1/4) with it).

    Reference: Huang, Perez, Ba, Volkovs (2020), "Improving Transformer Optimization Through
    Better Initialization", ICML, sec. 3.3 (T-Fixup steps 1-3).
    """
    _check_count("t_fixup", "n_layers", n_layers)
    _check_count("t_fixup", "d_model", d_model)
    encoder_factor, decoder_factor = 0.67 * n_layers**-0.25, (9 * n_layers) ** -0.25
    embedding_factor = decoder_factor if has_decoder else encoder_factor
    embedding = normal(0.0, d_model**-0.5 * embedding_factor)
    rules = [
        *(Rule(match=glob, weight=embedding) for glob in embeddings),
        *(Rule(match=glob, weight=Scaled(glorot_uniform(), encoder_factor), bias=zeros()) for glob in encoder),
    ]
    if has_decoder:
        rules += [Rule(match=glob, weight=Scaled(glorot_uniform(), decoder_factor), bias=zeros()) for glob in decoder]
    return Plan([*rules, _NORMS], default=Rule(kind=("linear", "embedding"), weight=glorot_uniform(), bias=zeros()))


def deepnet(
    n_encoder: int = 0,
    n_decoder: int = 0,
    scaled: Sequence[str] = ("*v_proj", "*out_proj", "*fc1", "*fc2"),
    unscaled: Sequence[str] = ("*q_proj", "*k_proj"),
) -> Plan:
    """DeepNet (DeepNorm's init): the feed-forward, value and output projections Xavier normal
    with gain beta, the query and key projections Xavier normal with gain 1; biases 0, norms 1 / 0.

    beta: encoder only (N layers) (8N)^(-1/4); decoder only (M layers) (8M)^(-1/4); encoder-decoder:
    encoder 0.87 (N^4 M)^(-1/16), decoder (12M)^(-1/4). (The residual weight alpha of DeepNorm is
    part of the forward computation, not of the init.)

    Reference: Wang et al. (2022), "DeepNet: Scaling Transformers to 1,000 Layers", sec. 2.3, fig. 2
    and table 1.
    """
    for argument, value in (("n_encoder", n_encoder), ("n_decoder", n_decoder)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad_value("deepnet", argument, value, "a non-negative integer")
    if n_encoder == 0 and n_decoder == 0:
        raise bad_value("deepnet", "n_encoder", 0, "a positive layer count for the encoder, the decoder or both")
    if n_encoder and n_decoder:
        sides = [
            ("*encoder*", 0.87 * (n_encoder**4 * n_decoder) ** (-1 / 16)),
            ("*decoder*", (12 * n_decoder) ** -0.25),
        ]
    else:
        sides = [("*", (8 * (n_encoder or n_decoder)) ** -0.25)]
    rules = [
        Rule(match=prefix + glob.lstrip("*"), weight=glorot_normal(gain=beta), bias=zeros())
        for prefix, beta in sides
        for glob in scaled
    ]
    rules += [Rule(match=glob, weight=glorot_normal(), bias=zeros()) for glob in unscaled]
    return Plan([*rules, _NORMS], default=AUTO)


def _globs(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _check_count(where: str, argument: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_value(where, argument, value, "a positive integer")


def _config(model: nn.Module | None, *names: str, default: Any = None) -> Any:
    config = getattr(model, "config", None)
    for name in names:
        value = getattr(config, name, None) if config is not None else None
        if value is not None:
            return value
    return default


_FROM_CONFIG: dict[str, Callable[[nn.Module | None], dict[str, Any]]] = {
    "gpt2": lambda model: {
        "n_layer": _config(model, "n_layer", "num_hidden_layers"),
        "std": _config(model, "initializer_range", default=0.02),
    },
    "bert": lambda model: {"initializer_range": _config(model, "initializer_range", default=0.02)},
    "llama": lambda model: {"initializer_range": _config(model, "initializer_range", default=0.02)},
    "t5": lambda model: {
        "d_model": _config(model, "d_model"),
        "d_kv": _config(model, "d_kv"),
        "num_heads": _config(model, "num_heads"),
        "d_ff": _config(model, "d_ff"),
        "factor": _config(model, "initializer_factor", default=1.0),
    },
    "vit": lambda model: {"std": _config(model, "initializer_range", default=0.02)},
    "convnext": lambda model: {
        "std": _config(model, "initializer_range", default=0.02),
        "layer_scale": _config(model, "layer_scale_init_value", default=1e-6),
    },
    "resnet": lambda model: {},
}
_BUILDERS: dict[str, Callable[..., Plan]] = {
    "gpt2": gpt2,
    "nanogpt": gpt2,
    "bert": bert,
    "llama": llama,
    "mistral": llama,
    "qwen2": llama,
    "t5": t5,
    "vit": vit,
    "convnext": convnext,
    "resnet": resnet,
    "fixup": fixup,
    "t_fixup": t_fixup,
    "deepnet": deepnet,
}
_CONFIG_OF = {"nanogpt": "gpt2", "mistral": "llama", "qwen2": "llama"}


def names() -> list[str]:
    """The preset names :func:`preset` knows."""
    return sorted(_BUILDERS)


def preset(name: str, model: nn.Module | None = None, **arguments: Any) -> Plan:
    """The preset ``name`` as a Plan; arguments not given are read from ``model.config``
    (Hugging Face names: ``n_layer``, ``initializer_range``, ``d_model``...) when it has them.

    Raises:
        InitlabError: an unknown name, or a required argument neither given nor in the config.
    """
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
    if key not in _BUILDERS:
        raise bad_value("preset", "name", name, f"one of {', '.join(names())}")
    reader = _FROM_CONFIG.get(_CONFIG_OF.get(key, key))
    found = {argument: value for argument, value in (reader(model) if reader else {}).items() if value is not None}
    try:
        return _BUILDERS[key](**{**found, **arguments})
    except TypeError as error:
        raise bad_value(
            "preset",
            "arguments",
            sorted({**found, **arguments}),
            f"the arguments of {key}()",
            f"({error}); pass them, or a model whose config has them.",
        ) from None
