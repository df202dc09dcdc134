"""``init_`` on a GPT-2-small-shaped model vs a loop of ``torch.nn.init.normal_``.

The model (built here, ~124M parameters): token embedding 50257 x 768 tied
to the head, position embedding 1024 x 768, 12 blocks of LayerNorm, fused
qkv Linear 768 -> 2304, projection 768 -> 768, MLP 768 -> 3072 -> 768 with
GELU, final LayerNorm. It is built on the meta device and materialised with
``to_empty`` once (then the head is tied again: ``to_empty`` unties), so
neither side pays torch's own construction-time init.

Baseline: ``torch.nn.init.normal_(w, 0, 0.02)`` on every weight with 2+
dimensions (what GPT-2's ``_init_weights`` does for Linear and Embedding
weights), biases and LayerNorms left alone. initlab: ``init_`` with the
GPT-2 plan (N(0, 0.02^2) weights, zero biases, unit LayerNorm weights): a
superset of the baseline's work, plus the record (one std/mean pass per
tensor). Best of 5 interleaved timed rounds, after a warm-up. The auto
plan (activations found by torch.fx) is timed too, as a figure.

Then a >= 1B-parameter model from the meta device (issue 16, point 5): a Llama of
TinyLlama's shape (22 layers, width 2048, MLP 5632, 32 heads / 4 KV heads, vocabulary
32000, untied head: 1.10e9 float32 parameters) built from its transformers config on
``meta``, materialised with ``to_empty`` and initialised by ``init_`` with the auto plan
(one traced forward pass on a built input, then the writes). Figures: the time of
``to_empty`` + ``init_``, and the peak resident memory above the level before
``to_empty`` (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) over the
parameters' bytes (target <= 1.15). Three parameters are checked against their values
recomputed from (seed, name, index) alone, which is what a CPU build gets
(tests/nn/test_meta.py shows the two equal on small models). Skipped, and reported as
not met, without transformers or ``/proc``.

Prints, as its last line, the JSON object described in DESIGN.md.
"""

from __future__ import annotations

import gc
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import emit, target
from torch import nn

import initlab
from initlab.nn import Plan, Rule, init_

VOCAB, CONTEXT, WIDTH, DEPTH, HEADS = 50257, 1024, 768, 12, 12


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.c_attn, self.attn_proj = nn.Linear(WIDTH, 3 * WIDTH), nn.Linear(WIDTH, WIDTH)
        self.c_fc, self.mlp_proj = nn.Linear(WIDTH, 4 * WIDTH), nn.Linear(4 * WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(WIDTH, dim=2)
        heads = [t.view(batch, length, HEADS, WIDTH // HEADS).transpose(1, 2) for t in (q, k, v)]
        attended = F.scaled_dot_product_attention(*heads, is_causal=True)
        x = x + self.attn_proj(attended.transpose(1, 2).reshape(batch, length, WIDTH))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, WIDTH), nn.Embedding(CONTEXT, WIDTH)
        self.h = nn.ModuleList(Block() for _ in range(DEPTH))
        self.ln_f = nn.LayerNorm(WIDTH)
        self.lm_head = nn.Linear(WIDTH, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.wte(tokens) + self.wpe(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


GPT2_PLAN = Plan(
    [Rule(type=(nn.Linear, nn.Embedding), weight=initlab.normal(0.0, 0.02), bias=initlab.zeros()),
     Rule(type=nn.LayerNorm, weight=initlab.ones(), bias=initlab.zeros())],
    default=None, strict=True,
)


def torch_loop(model: nn.Module) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                nn.init.normal_(parameter, 0.0, 0.02)


def best_seconds(functions: dict, repeats: int = 5) -> dict:
    """Best (minimum) wall time of each function over ``repeats`` interleaved rounds, after a warm-up.

    The minimum is the figure least distorted by other load on a shared machine; interleaving
    gives every side the same conditions.
    """
    for function in functions.values():
        function()
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _status_kib(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _layout(data: dict | None):
    from initlab.fans import Layout

    if data is None:
        return None
    return Layout(**{key: tuple(value) if isinstance(value, list) else value for key, value in data.items()})


def meta_billion() -> dict:
    """Build a 1.1B Llama on meta, to_empty, init_: seconds, peak memory over parameter bytes, values check."""
    import transformers

    from initlab.nn.residual import scheme_from_dict

    config = transformers.LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                                      num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                                      max_position_embeddings=2048, tie_word_embeddings=False)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    parameter_bytes = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    model.to_empty(device="cpu")
    record = init_(model, "auto", seed=0)
    seconds = time.perf_counter() - start
    peak = (_status_kib("VmHWM") - before) * 1024
    named = dict(model.named_parameters())
    checked = ["model.layers.0.self_attn.q_proj.weight", "model.layers.21.mlp.down_proj.weight", "model.norm.weight"]
    same = all(
        torch.equal(named[name].detach(), torch.from_numpy(scheme_from_dict(record.row(name).scheme).sample(
            tuple(named[name].shape), layout=_layout(record.row(name).layout), seed=0, name=name)))
        for name in checked)
    return {"parameters": parameters, "parameter_bytes": parameter_bytes, "seconds": round(seconds, 2),
            "peak_bytes": peak, "peak_over_parameter_bytes": peak / parameter_bytes, "values_match": same,
            "untouched": len(record.untouched), "discovery": record.discovery}


def main() -> None:
    with torch.device("meta"):
        model = GPT2()
    model.to_empty(device="cpu")
    model.lm_head.weight = model.wte.weight  # to_empty gives each module its own new tensor: tie again
    parameters = sum(parameter.numel() for parameter in model.parameters())
    best = best_seconds({
        "torch": lambda: torch_loop(model),
        "initlab": lambda: init_(model, GPT2_PLAN, seed=0),
        "auto": lambda: init_(model, "auto", seed=0),
    })
    torch_seconds, initlab_seconds, auto_seconds = best["torch"], best["initlab"], best["auto"]
    record = init_(model, GPT2_PLAN, seed=0)
    assert not record.untouched, record.untouched
    figures = {
        "parameters": parameters,
        "torch_normal_loop_seconds": round(torch_seconds, 4),
        "initlab_init_seconds": round(initlab_seconds, 4),
        "initlab_auto_plan_seconds": round(auto_seconds, 4),
        "speedup_vs_torch_normal": torch_seconds / initlab_seconds,
        "auto_plan_speedup_vs_torch_normal": torch_seconds / auto_seconds,
    }
    try:
        billion = meta_billion()
    except (ImportError, OSError) as error:
        billion = {"skipped": f"{type(error).__name__}: {error}"}
    figures["meta_1b"] = billion
    print(f"meta build of {billion.get('parameters', 0) / 1e9:.2f}B parameters: to_empty + init_ "
          f"{billion.get('seconds')} s, peak {billion.get('peak_over_parameter_bytes', float('nan')):.3f}x the "
          f"parameters' bytes, values match: {billion.get('values_match')}")
    emit("model_init", figures, {
        "speedup_vs_torch_normal": target(figures["speedup_vs_torch_normal"], ">=", 1.6),
        "meta_1b_peak_over_parameter_bytes": target(billion.get("peak_over_parameter_bytes"), "<=", 1.15),
        "meta_1b_parameters": target(billion.get("parameters"), ">=", 1e9),
        "meta_1b_values_match": target(float(billion.get("values_match", False)), ">=", 1.0),
    }, torch_threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
