"""Issue 16, point 3: the auto plan gives every zoo model a starting point at least as healthy as its own init.

For each model (tiny configs, built once), ``init_`` with the auto plan and no example input, then one
forward pass in train mode on random inputs:

* nothing is left untouched except what the record explains (a note saying why it was kept);
* the loss (cross-entropy averaged over every target) is within ln(C or V or B) + 0.3 — it is never
  below, since -mean(log_softmax(z)) >= ln C for any logits z;
* every attention score std measured at the softmax input is in [0.3, 3];
* every module's output is finite;
* the computation was seen (fx, or a run on an input built from the model): no "unknown".
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import zoo_models

from initlab.nn import init_

ENTRIES = {entry.name: entry for entry in zoo_models.entries()}
HF = {entry.name for entry in zoo_models.hf_entries()}
HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


@pytest.fixture(scope="module")
def initialised():
    """name -> (entry, model, record, health): each model built and initialised once."""
    results = {}
    for name, entry in ENTRIES.items():
        if name in HF and not HAVE_TRANSFORMERS:
            continue
        torch.manual_seed(0)
        model = entry.build()
        calls = []
        handle = model.register_forward_pre_hook(lambda module, args, calls=calls: calls.append(1))
        record = init_(model, seed=0)
        handle.remove()
        results[name] = (entry, model, record, zoo_models.health(entry, model, entry.inputs()), len(calls))
    return results


@pytest.mark.parametrize("name", list(ENTRIES))
def test_zoo_model_starts_healthy(initialised, name):
    if name in HF:
        pytest.importorskip("transformers")
    _, model, record, health, forward_passes = initialised[name]
    assert record.discovery in ("fx", "trace"), record.discovery_note
    assert forward_passes == (1 if record.discovery == "trace" else 0)  # at most one forward pass
    unexplained = [row.name for row in record.rows if row.status == "untouched" and not row.note.startswith("kept")]
    assert not unexplained
    assert health.finite
    assert health.reference - 1e-6 <= health.loss <= health.reference + 0.3, (health.loss, health.reference)
    assert all(0.3 <= std <= 3.0 for std in health.score_std), health.score_std
    has_attention = any("attention" in type(module).__name__.lower() for module in model.modules())
    assert bool(health.score_std) == has_attention


def test_zoo_records_say_what_was_kept_and_why(initialised):
    notes = {name: {row.name: row.note for row in record.rows if row.status == "untouched"}
             for name, (_, _, record, _, _) in initialised.items()}
    assert notes["timm-patch-layerscale"] == {
        f"blocks.{index}.gamma": "kept at its construction value: no auto rule for a parameter of LayerScaleBlock"
        for index in (0, 1)}
    if HAVE_TRANSFORMERS:
        assert notes["whisper"] == {
            "model.encoder.embed_positions.weight":
                "kept: requires_grad=False (a frozen table or constant; its values are the model's)"}
        assert set(notes["vit"]) == {"vit.embeddings.cls_token", "vit.embeddings.position_embeddings"}


def test_gpt2_conv1d_projections_are_initialised_as_linear_layers(initialised):
    pytest.importorskip("transformers")
    _, _, record, _, _ = initialised["gpt2"]
    attention = record.row("transformer.h.0.attn.c_attn.weight")
    assert attention.layout == {"kind": "linear_in_out", "blocks": 3}
    assert attention.fans == {"fan_in": 32, "fan_out": 32, "receptive_field": 1}
    mlp = record.row("transformer.h.0.mlp.c_fc.weight")
    assert (mlp.activation, mlp.layout) == ("gelu_tanh", {"kind": "linear_in_out"})
    tied = record.row("lm_head.weight")
    assert tied.name == "transformer.wte.weight" and tied.target_std == pytest.approx(0.5 / math.sqrt(32))


def test_t5_query_carries_the_score_scaling(initialised):
    pytest.importorskip("transformers")
    _, _, record, _, _ = initialised["t5"]
    query = record.row("encoder.block.0.layer.0.SelfAttention.q.weight")
    assert query.scheme_name == "glorot_normal x0.3536" and "d_head=8" in query.note
    assert record.row("encoder.block.0.layer.0.SelfAttention.k.weight").scheme_name == "glorot_normal"
    assert record.row("encoder.block.0.layer.0.layer_norm.weight").scheme == {"scheme": "ones"}  # T5LayerNorm


def test_vision_models_zero_the_norm_ending_each_residual_branch(initialised):
    pytest.importorskip("transformers")
    _, _, record, _, _ = initialised["resnet"]
    ends = {row.name for row in record.rows if "ends a residual branch" in row.note}
    assert ends == {"resnet.encoder.stages.0.layers.0.layer.2.normalization.weight",
                    "resnet.encoder.stages.1.layers.0.layer.2.normalization.weight"}
    assert record.row("resnet.encoder.stages.1.layers.0.shortcut.normalization.weight").scheme == {"scheme": "ones"}
