"""Named presets (issue 16, point 2): each reproduces its reference init, parameter by parameter.

Against transformers' own ``_init_weights`` (run when a model is constructed) on the same
architecture: for every parameter, the mean and the std agree within 5 standard errors and a
two-sample Kolmogorov-Smirnov test does not reject (p > 1e-4); constant tensors are equal.
Fixup, T-Fixup and DeepNet are checked against the formulas of their papers.
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from scipy import stats
from torch import nn

from initlab import InitlabError, zeros
from initlab.nn import Plan, Rule, init_, presets

HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
needs_transformers = pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="transformers is not installed")


def assert_same_distribution(name: str, ours: torch.Tensor, reference: torch.Tensor) -> None:
    a, b = ours.detach().double().flatten(), reference.detach().double().flatten()
    count = a.numel()
    sigma = float(b.std()) if count > 1 else 0.0
    if sigma == 0.0:
        assert torch.equal(a, b), name
        return
    assert abs(float(a.mean() - b.mean())) < 5 * sigma * math.sqrt(2 / count), name
    assert abs(float(a.std() - b.std())) < 5 * sigma * math.sqrt(1 / count) * 1.5, name  # 1.5: heavier tails
    if count >= 32:
        assert stats.ks_2samp(a.numpy(), b.numpy()).pvalue > 1e-4, name


def build(config_name: str, model_name: str, seed: int, **config) -> nn.Module:
    import transformers

    torch.manual_seed(seed)
    return getattr(transformers, model_name)(getattr(transformers, config_name)(**config))


def compare(config_name: str, model_name: str, preset_name: str, skip: tuple[str, ...] = (), **config):
    """(reference model, our model, record): our model initialised with the preset read from its config."""
    reference = build(config_name, model_name, 0, **config)
    ours = build(config_name, model_name, 1, **config)
    record = init_(ours, presets.preset(preset_name, ours), seed=0)
    assert not record.untouched, record.untouched
    references = dict(reference.named_parameters())
    checked = 0
    for name, tensor in ours.named_parameters():
        if any(name.startswith(prefix) or name.endswith(prefix) for prefix in skip):
            continue
        assert_same_distribution(name, tensor, references[name])
        checked += 1
    assert checked >= 8
    return reference, ours, record


DECODER = {"vocab_size": 500, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "max_position_embeddings": 64, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}


@needs_transformers
def test_gpt2_preset_matches_transformers_init():
    _, _ours, record = compare("GPT2Config", "GPT2LMHeadModel", "gpt2", vocab_size=500, n_embd=64, n_layer=3,
                              n_head=4, n_positions=64, bos_token_id=0, eos_token_id=1)
    row = record.row("transformer.h.2.mlp.c_proj.weight")
    assert row.scheme == {"scheme": "normal", "mean": 0.0, "std": pytest.approx(0.02 / math.sqrt(6))}
    assert record.row("lm_head.weight").name == "transformer.wte.weight"


@needs_transformers
def test_bert_preset_matches_transformers_init():
    compare("BertConfig", "BertForMaskedLM", "bert", vocab_size=500, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=128, max_position_embeddings=64)


@needs_transformers
@pytest.mark.parametrize("family", ["Llama", "Mistral", "Qwen2"])
def test_llama_family_presets_match_transformers_init(family):
    compare(f"{family}Config", f"{family}ForCausalLM", family.lower(), tie_word_embeddings=False, **DECODER)


@needs_transformers
def test_t5_preset_matches_transformers_init():
    _, _, record = compare("T5Config", "T5ForConditionalGeneration", "t5", vocab_size=500, d_model=64, d_kv=16,
                           d_ff=128, num_layers=2, num_heads=4, decoder_start_token_id=0, pad_token_id=0,
                           eos_token_id=1)
    assert record.row("encoder.block.0.layer.0.SelfAttention.q.weight").scheme["std"] == pytest.approx(1 / 32)


@needs_transformers
def test_vit_preset_matches_transformers_init_with_a_zero_head():
    _, ours, _ = compare("ViTConfig", "ViTForImageClassification", "vit", skip=("classifier.",), hidden_size=64,
                         num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
                         patch_size=8, num_labels=10)
    assert not ours.classifier.weight.any() and not ours.classifier.bias.any()


@needs_transformers
def test_convnext_preset_matches_transformers_init():
    _, ours, _ = compare("ConvNextConfig", "ConvNextForImageClassification", "convnext", num_stages=2,
                         hidden_sizes=[32, 64], depths=[2, 2], image_size=32, num_labels=10)
    assert torch.all(ours.convnext.encoder.stages[1].layers[1].layer_scale_parameter == 1e-6)


@needs_transformers
def test_resnet_preset_matches_transformers_init_with_zero_init_last():
    _, ours, record = compare(
        "ResNetConfig", "ResNetForImageClassification", "resnet",
        skip=("layer.2.normalization.weight", "classifier.1.bias"),
        embedding_size=32, hidden_sizes=[32, 64], depths=[2, 1], layer_type="bottleneck", num_labels=10)
    ends = [row.name for row in record.rows if "ends a residual branch" in row.note]
    assert len(ends) == 3 and all(name.endswith("layer.2.normalization.weight") for name in ends)
    for name in ends:
        assert not ours.get_parameter(name).any()
    stem = record.row("resnet.embedder.embedder.convolution.weight")  # 7x7 stride 2: torch's fan_out = 32 * 49
    assert stem.layout == {"kind": "conv", "compat": "torch", "stride": [2, 2]}
    assert stem.target_std == pytest.approx(math.sqrt(2 / (32 * 49)))
    assert not ours.classifier[1].bias.any()


# ------------------------------------------------------------------ from the papers


class Branch(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.bias1, self.scale = nn.Parameter(torch.ones(1)), nn.Parameter(torch.full((1,), 3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.fc2(torch.relu(self.fc1(x + self.bias1)))


def test_fixup_scales_inner_branch_layers_and_zeroes_the_last_and_the_head():
    model = nn.Sequential(nn.Linear(16, 128), *[Branch(128) for _ in range(4)], nn.Linear(128, 10))
    record = init_(model, presets.fixup(n_branches=4, branch_layers=2, inner="*.fc1", last="*.fc2", head="5"), seed=0)
    he = math.sqrt(2 / 128)
    for index in range(1, 5):
        inner = record.row(f"{index}.fc1.weight")
        assert inner.target_std == pytest.approx(he * 4 ** (-1 / 2))  # L^(-1/(2m-2)), L = 4, m = 2
        assert abs(inner.measured_std - inner.target_std) < 5 * inner.target_std / math.sqrt(2 * 128 * 128)
        assert not model[index].fc2.weight.any() and float(model[index].bias1.detach()) == 0.0
        assert float(model[index].scale.detach()) == 1.0
    assert not model[5].weight.any() and not model[5].bias.any()
    assert record.row("0.weight").target_std == pytest.approx(math.sqrt(2 / 16))  # outside the branches: He


class FairseqLayer(nn.Module):
    def __init__(self, width: int, cross: bool = False) -> None:
        super().__init__()
        self.self_attn = nn.ModuleDict({name: nn.Linear(width, width) for name in ("q_proj", "k_proj", "v_proj",
                                                                                   "out_proj")})
        if cross:
            self.encoder_attn = nn.ModuleDict({name: nn.Linear(width, width) for name in ("q_proj", "k_proj",
                                                                                          "v_proj", "out_proj")})
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.norm = nn.LayerNorm(width)


class FairseqSeq2Seq(nn.Module):
    def __init__(self, layers: int, width: int = 64, vocab: int = 300) -> None:
        super().__init__()
        self.encoder = nn.ModuleDict({"embed_tokens": nn.Embedding(vocab, width),
                                      "layers": nn.ModuleList(FairseqLayer(width) for _ in range(layers))})
        self.decoder = nn.ModuleDict({"embed_tokens": nn.Embedding(vocab, width),
                                      "layers": nn.ModuleList(FairseqLayer(width, True) for _ in range(layers))})


def glorot_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2 / (fan_in + fan_out))


def test_t_fixup_scales_follow_the_paper():
    layers = 6
    model = FairseqSeq2Seq(layers)
    record = init_(model, presets.t_fixup(n_layers=layers, d_model=64), seed=0)
    encoder, decoder = 0.67 * layers ** -0.25, (9 * layers) ** -0.25
    assert record.row("encoder.layers.0.self_attn.v_proj.weight").target_std == pytest.approx(
        encoder * glorot_std(64, 64))
    assert record.row("encoder.layers.3.fc1.weight").target_std == pytest.approx(encoder * glorot_std(64, 256))
    assert record.row("decoder.layers.5.encoder_attn.out_proj.weight").target_std == pytest.approx(
        decoder * glorot_std(64, 64))
    assert record.row("decoder.layers.0.self_attn.q_proj.weight").target_std == pytest.approx(glorot_std(64, 64))
    embedding = record.row("encoder.embed_tokens.weight")
    assert embedding.target_std == pytest.approx(64 ** -0.5 * decoder)
    assert abs(embedding.measured_std - embedding.target_std) < 5 * embedding.target_std / math.sqrt(2 * 300 * 64)
    assert record.row("encoder.layers.0.norm.weight").scheme == {"scheme": "ones"}


@pytest.mark.parametrize("encoder_layers, decoder_layers", [(12, 0), (0, 18), (6, 6)])
def test_deepnet_betas_follow_the_paper(encoder_layers, decoder_layers):
    model = FairseqSeq2Seq(max(encoder_layers, decoder_layers))
    record = init_(model, presets.deepnet(n_encoder=encoder_layers, n_decoder=decoder_layers), seed=0)
    if encoder_layers and decoder_layers:
        encoder_beta = 0.87 * (encoder_layers ** 4 * decoder_layers) ** (-1 / 16)
        decoder_beta = (12 * decoder_layers) ** -0.25
    else:
        encoder_beta = decoder_beta = (8 * (encoder_layers or decoder_layers)) ** -0.25
    assert record.row("encoder.layers.0.fc2.weight").target_std == pytest.approx(encoder_beta * glorot_std(256, 64))
    assert record.row("decoder.layers.1.self_attn.v_proj.weight").target_std == pytest.approx(
        decoder_beta * glorot_std(64, 64))
    assert record.row("decoder.layers.1.self_attn.k_proj.weight").target_std == pytest.approx(glorot_std(64, 64))


# ------------------------------------------------------------------ presets are plans


ALL = {
    "gpt2": lambda: presets.gpt2(n_layer=12), "bert": presets.bert, "llama": presets.llama,
    "t5": lambda: presets.t5(512, 64, 8, 2048), "vit": presets.vit, "convnext": presets.convnext,
    "resnet": presets.resnet, "fixup": lambda: presets.fixup(8, 2, "*.conv1", "*.conv2"),
    "t_fixup": lambda: presets.t_fixup(6, 512), "deepnet": lambda: presets.deepnet(n_encoder=100),
}


@pytest.mark.parametrize("name", list(ALL))
def test_presets_print_round_trip_through_toml_and_edit(name, tmp_path):
    plan = ALL[name]()
    assert isinstance(plan, Plan)
    text = str(plan)
    assert "[[rules]]" in text and text == plan.to_toml()
    assert Plan.from_toml(text) == plan
    plan.save(tmp_path / "plan.toml")
    assert Plan.load(tmp_path / "plan.toml") == plan
    edited = Plan([Rule(match="head", weight=zeros()), *plan.rules], plan.default, plan.strict, plan.residual)
    assert edited.rules[1:] == plan.rules


def test_preset_by_name_reads_the_config_or_asks_for_arguments():
    assert presets.preset("nanoGPT", n_layer=4) == presets.gpt2(4)
    assert presets.preset("qwen2") == presets.llama()
    assert "gpt2" in presets.names() and "deepnet" in presets.names()
    with pytest.raises(InitlabError, match=r"preset: name='gpt3' is invalid; expected one of bert, convnext"):
        presets.preset("gpt3")
    with pytest.raises(InitlabError, match=r"preset: arguments=\['std'\] is invalid; expected the arguments of gpt2"):
        presets.preset("gpt2")
