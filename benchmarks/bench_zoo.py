"""``init_`` (auto plan, no example input) on the zoo of issue 16: health of the start and the cost.

The zoo (tests/nn/zoo_models.py): 16 Hugging Face ``transformers`` models from tiny configs,
plain torch models and modules reproducing timm's patterns. Per model it prints:

* untouched: the fraction of parameter elements ``init_`` left as they were (each such row
  explains why in its note: frozen tables, layer-scale gammas, class tokens...), and how many
  untouched rows have no explanation (target 0);
* loss vs ln(C, V or B): the cross-entropy of the logits averaged over every target, one forward
  pass in train mode on random inputs (target: within ln + 0.3), next to the model's own init;
* attention score std at the softmax input, min..max (target: within [0.3, 3]);
* time: ``init_`` vs the model's own construction (which runs its construction-time init), and
  vs one plain forward pass; ``forward passes``: how many times ``init_`` called the model
  (target: at most 1).

Times are the best of 3; the machine is shared, so they are noisy. The last line is the JSON
object of benchmarks/harness.py.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from harness import emit, target

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "nn"))

import zoo_models

from initlab.nn import init_


def best(function, repeats: int = 3) -> tuple[float, object]:
    result, fastest = None, math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest, result


def measure(entry: zoo_models.Entry) -> dict:
    torch.manual_seed(0)
    build_seconds, model = best(entry.build)
    inputs = entry.inputs()
    own = zoo_models.health(entry, model, inputs)
    model.eval()
    with torch.no_grad():
        forward_seconds, _ = best(lambda: model(**inputs))
    calls = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    init_seconds, record = best(lambda: init_(model, seed=0))
    handle.remove()
    health = zoo_models.health(entry, model, inputs)
    sizes = {name: tensor.numel() for name, tensor in model.named_parameters()}
    untouched = sum(sizes.get(row.name, 0) for row in record.rows if row.status == "untouched")
    unexplained = sum(row.status == "untouched" and not row.note.startswith("kept") for row in record.rows)
    scores = health.score_std
    return {
        "untouched_fraction": untouched / sum(sizes.values()), "unexplained_untouched": unexplained,
        "loss": health.loss, "own_init_loss": own.loss, "ln_classes": health.reference,
        "score_std_min": min(scores) if scores else None, "score_std_max": max(scores) if scores else None,
        "finite": health.finite, "discovery": record.discovery,
        "init_seconds": init_seconds, "construction_seconds": build_seconds, "forward_seconds": forward_seconds,
        "forward_passes": len(calls) // 3,
    }


def main() -> None:
    rows, figures, targets = [], {}, {}
    for entry in zoo_models.entries():
        result = measure(entry)
        loss_ok = result["loss"] <= result["ln_classes"] + 0.3
        scores_ok = result["score_std_min"] is None or (0.3 <= result["score_std_min"] and result["score_std_max"] <= 3)
        rows.append((entry.name, result, loss_ok, scores_ok))
        figures[entry.name] = {key: (round(value, 5) if isinstance(value, float) else value)
                               for key, value in result.items()}
        targets[f"{entry.name}.loss_excess"] = target(result["loss"] - result["ln_classes"], "<=", 0.3)
        if result["score_std_min"] is not None:
            targets[f"{entry.name}.score_std_min"] = target(result["score_std_min"], ">=", 0.3)
            targets[f"{entry.name}.score_std_max"] = target(result["score_std_max"], "<=", 3.0)
        targets[f"{entry.name}.unexplained_untouched"] = target(result["unexplained_untouched"], "<=", 0)
        targets[f"{entry.name}.forward_passes"] = target(result["forward_passes"], "<=", 1)
    header = (f"{'model':22s} {'untouched':>9s} {'loss':>6s} {'own':>6s} {'ln':>6s} {'ok':>3s} {'scores':>11s} "
              f"{'init_ s':>8s} {'own s':>7s} {'x own':>6s} {'x fwd':>6s} {'passes':>6s}")
    print(header)
    for name, r, loss_ok, scores_ok in rows:
        scores = "-" if r["score_std_min"] is None else f"{r['score_std_min']:.2f}..{r['score_std_max']:.2f}"
        print(f"{name:22s} {r['untouched_fraction']:9.4f} {r['loss']:6.3f} {r['own_init_loss']:6.3f} "
              f"{r['ln_classes']:6.3f} {'yes' if loss_ok and scores_ok and r['finite'] else 'NO':>3s} {scores:>11s} "
              f"{r['init_seconds']:8.4f} {r['construction_seconds']:7.4f} "
              f"{r['init_seconds'] / r['construction_seconds']:6.2f} {r['init_seconds'] / r['forward_seconds']:6.1f} "
              f"{r['forward_passes']:6d}")
    emit("zoo", figures, targets, torch_threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
