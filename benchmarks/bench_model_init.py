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

Prints, as its last line, the JSON object described in DESIGN.md.
"""

from __future__ import annotations

import time

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
    emit("model_init", figures, {"speedup_vs_torch_normal": target(figures["speedup_vs_torch_normal"], ">=", 1.6)},
         torch_threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
