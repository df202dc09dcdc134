"""The words of the study reports: titles, one-line claims, learner explanations, compact evidence.

Every number in a sentence here comes from a :class:`~initlab.lab.claims.ClaimResult`
computed from stored runs; the static text explains *why* the effect happens and
cites where the claim comes from. Sentences that depend on the outcome (e.g. "the
statement ... is backwards") are only written when the measurement supports them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from initlab.lab.claims import ClaimResult
from initlab.lab.study_claims import fmt

TITLES = {
    "symmetry": "1. Symmetry: zero and constant weights",
    "depth-signal": "2. Signal and gradients over depth at initialisation",
    "saturation": "3. Large weights saturate tanh and sigmoid",
    "pairing": "4. Pairing: He for ReLU, Xavier for tanh",
    "regularization": "5. L2 regularization keeps weights small",
    "bias": "6. Bias initialisation",
    "glorot-table": "7. Glorot & Bengio (2010), Table 1",
    "edge-of-chaos": "8. The edge of chaos",
    "lsuv": "9. LSUV: data-dependent initialisation",
    "orthogonal-depth": "10. Orthogonal initialisation of deep linear networks",
}

SHORT_CLAIMS = {
    "symmetry": "zero/constant weights never break symmetry",
    "depth-signal": "small weights: signal and gradients vanish with depth",
    "saturation": "large weights saturate tanh and slow learning",
    "pairing": "He suits ReLU (Xavier fails deep ReLU); for tanh Xavier is critical, He merely chaotic",
    "regularization": "an L2 penalty keeps weights small, narrows the gap",
    "bias": "zero bias is a safe default (no bias init far better in any seed)",
    "glorot-table": "Glorot & Bengio Table 1: normalized init helps tanh; other orderings named",
    "edge-of-chaos": "deep tanh nets train only near sigma_w^2 = 1.76",
    "lsuv": "LSUV trains as well as the best standard init",
    "orthogonal-depth": "orthogonal init: learning time flat in depth",
}

EXPLANATIONS = {
    "symmetry": (
        "If every weight of a layer starts equal (all zero, or all 0.5), every unit of that layer "
        "computes the same function of its input. Back-propagation then hands every unit the same "
        "gradient, so after each update the units are still equal: the layer behaves like a single "
        "unit however wide it is. With all-zero weights it is worse still: the output layer's zero "
        "weights send no gradient back at all. Random weights make every unit different from the "
        "start, and training can use all of them."
    ),
    "depth-signal": (
        "Each layer multiplies the signal's variance by about sigma_w^2 times the average squared "
        "slope of the activation (Var(W) * fan_in = sigma_w^2). With N(0, 0.01^2) weights and "
        "256 inputs per unit that factor is 0.0256 for tanh and half that for ReLU, so after 50 "
        "layers almost nothing is left, and the gradient shrinks the same way on its way back "
        "(the computation runs in float64: in float32 these numbers underflow to 0). Near zero "
        "the sigmoid is almost linear, so a network with tiny weights also loses its "
        "non-linearity; its output std does not shrink with depth only because sigmoid(0) = 0.5 "
        "feeds the same constant into every layer, while its gradient still vanishes. "
        "Xavier (Var W = 2/(fan_in + fan_out), Glorot & Bengio "
        "2010) keeps tanh's factor near 1; He (Var W = 2/fan_in, He et al. 2015) compensates for "
        "ReLU zeroing half its inputs. The dashed curves are mean-field theory's prediction "
        "q^{l+1} = sigma_w^2 E[phi(sqrt(q^l) z)^2] (Poole et al. 2016), started from the measured "
        "first layer. Beware the weight-gradient norms ||dL/dW_l||: for ReLU they stay similar "
        "across layers at any weight scale (the vanishing activations and the exploding "
        "back-propagated gradients cancel), so they hide the problem the two panels above show."
    ),
    "saturation": (
        "With N(0, 1) weights a unit fed by 256 inputs has a pre-activation of std about 16, so "
        "tanh(z) sits at +-1 where its slope 1 - tanh(z)^2 is essentially zero: almost no "
        "gradient gets through and the network learns slowly or not at all. Xavier's variance "
        "keeps pre-activations of order 1, in tanh's sensitive range. The sigmoid is shown for "
        "completeness, not to carry the claim: with plain SGD a deep sigmoid network learns "
        "slowly under either initialisation because its outputs are not centred at zero "
        "(Glorot & Bengio 2010, sec. 4.2); compare its numbers in the table."
    ),
    "pairing": (
        "He initialisation sets Var(W) = 2/fan_in because a ReLU zeroes half of its inputs, "
        "halving the signal's second moment at every layer; the factor 2 restores it. Xavier's "
        "Var(W) = 2/(fan_in + fan_out) = 1/fan_in for square layers is right for tanh, which is "
        "linear with slope 1 near zero, but with ReLU it halves the signal's second moment at every "
        "layer: after 30 layers its std is 2^-15 ~ 3e-5 of the input's, the output is nearly "
        "constant and the loss "
        "stays near chance, ln 10 = 2.303, for a long time; some seeds eventually escape through "
        "the top layers, so the verdict compares how fast each init reaches a loss line, seed by "
        "seed (He et al. 2015, fig. 3 shows the same for their 30-layer net). For tanh, theory says "
        "how much the pairing matters: with zero biases Xavier's sigma_w^2 = 1 is tanh's critical "
        "point, while He's sigma_w^2 = 2 is chaotic with a correlation depth xi_c of about 22 "
        "layers, so He + tanh should stop training only beyond about 6 xi_c = 130 layers "
        "(Schoenholz et al. 2017). At the depths measured here both train; which generalises "
        "better at depth 10 is reported with its seed-to-seed error, as an observation."
    ),
    "regularization": (
        "The L2 penalty (lambda/2) sum ||W||^2 adds lambda W to every weight gradient, a constant "
        "pull towards zero. Started from large N(0, 1) weights, the unpenalised network keeps "
        "enormous weights and fits its training set (almost) perfectly, noise included, but not "
        "the test set; the penalty shrinks the weights by orders of magnitude and with them the "
        "train/test gap. A large enough lambda also stops the network from fitting every training "
        "example (its train accuracy drops): the trade-off between fitting and generalising."
    ),
    "bias": (
        "Symmetry is broken by the random weights, so biases do not need to be random. A zero "
        "bias puts every unit at the centre of its activation, where tanh is most sensitive; "
        "a small positive constant (0.01-0.1, sometimes suggested for ReLU so that units start "
        "active) or small random biases are the alternatives measured here. Zero is the common "
        "default (Keras' Dense layers, most hand-written PyTorch init code). Safe, not best: the "
        "check requires that no alternative beats zero by 5 points or more in any seed, and reports "
        "each alternative's mean advantage over zero, paired by seed, with its standard error; a "
        "difference beyond 3 standard errors is real, not seed noise. With tanh a small non-zero "
        "bias is often about a point better here, which is why the claim is stated as a margin."
    ),
    "glorot-table": (
        "Glorot & Bengio (2010) compared the then-standard U(-1/sqrt(fan_in), 1/sqrt(fan_in)) "
        "initialisation, whose variance 1/(3 fan_in) shrinks the signal by a factor 3 per layer, "
        "with their normalized initialization U(-sqrt(6/(fan_in + fan_out)), +sqrt(...)), which "
        "keeps forward and backward variances balanced. Their Table 1 reports test errors of "
        "5-hidden-layer networks; our numbers come from MNIST-1D on a CPU in a different setting "
        "(listed below), so only orderings, not values, can be compared, and each ordering is "
        "named: it reproduces (in every seed), is reversed (in none) or is mixed."
    ),
    "edge-of-chaos": (
        "For tanh with bias variance sigma_b^2 = 0.05, mean-field theory (Schoenholz et al. 2017) "
        "splits the weight variance sigma_w^2 into an ordered phase (inputs' correlations converge "
        "to 1: the deep network forgets its input) and a chaotic phase (correlations decay: tiny "
        "input changes explode). At the border, sigma_w^2 = 1.76, the depth scale xi_c diverges, "
        "and a network of depth L trains only if L is below about 6 xi_c. The heat map shows the "
        "measured train accuracy; the curve is theory's 6 xi_c and the dotted line the critical "
        "sigma_w^2."
    ),
    "lsuv": (
        "LSUV (Mishkin & Matas 2016) starts from orthogonal weights and then, layer by layer on a "
        "real batch, divides each layer's weights by the std of its outputs until that std is 1. "
        "It needs no formula for the activation's gain, and it adapts to the data and to the "
        "architecture (here an MLP and a 1-D convolutional network)."
    ),
    "orthogonal-depth": (
        "A deep linear network computes a product of matrices. With scaled Gaussian weights the "
        "product's singular values spread out more with every layer, so some directions of the "
        "input are amplified and others almost lost, and learning slows down as depth grows. "
        "Orthogonal matrices keep every singular value at exactly 1 (dynamical isometry), and "
        "Saxe, McClelland & Ganguli (2014) showed that learning time then does not depend on depth."
    ),
}


def title(name: str) -> str:
    """The report title of built-in study ``name``."""
    return TITLES[name]


def short_claim(name: str) -> str:
    """A one-line statement of the study's claim for the claim table."""
    return SHORT_CLAIMS[name]


def explanation(name: str) -> str:
    """A short explanation a learner understands."""
    return EXPLANATIONS[name]


def _get(values: dict, *keys: str, default: Any = math.nan) -> Any:
    node: Any = values
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def _evidence_symmetry(values: dict) -> str:
    units, accuracy = values.get("distinct_units", {}), values.get("accuracy", {})
    parts = []
    for label, counts in units.items():
        first = counts[0] if counts and counts[0] else []
        parts.append(f"{label}: {'/'.join(str(c) for c in first)} units, acc {fmt(accuracy.get(label))}")
    return "; ".join(parts)


def _evidence_depth_signal(values: dict) -> str:
    ratios = values.get("ratios", {})

    def forward(key: str) -> str:
        found = ratios.get(key, {}).get("forward", [])
        return fmt(found[0]) if found else "n/a"

    return (
        f"std last/first layer: small+tanh {forward('tanh/small_random')}, small+relu "
        f"{forward('relu/small_random')}, Xavier+tanh {forward('tanh/glorot_normal')}, "
        f"He+relu {forward('relu/he_normal')}, Xavier+relu {forward('relu/glorot_normal')}"
    )


def _evidence_saturation(values: dict) -> str:
    saturation, steps = values.get("saturation", {}), values.get("steps", {})
    parts = [
        f"saturated at init: N(0,1) {fmt(saturation.get('large_random'))} vs Xavier "
        f"{fmt(saturation.get('glorot_normal'))}"
    ]
    if steps:
        parts.append(
            f"steps to {fmt(values.get('target_accuracy'))} test acc: "
            + ", ".join(
                f"{'N(0,1)' if label == 'large_random' else 'Xavier'} {fmt(max(found))}"
                for label, found in steps.items()
            )
        )
    return "; ".join(parts)


def _evidence_pairing(values: dict) -> str:
    loss, accuracy = values.get("train_loss", {}), values.get("test_accuracy", {})
    deep, shallow = values.get("deep", 0), values.get("tanh_depth", 0)
    stalled = values.get("relu_stalled", [0, 0])
    difference = values.get("tanh_difference", {})
    return (
        f"depth {deep} ReLU train loss: Xavier {fmt(loss.get(f'relu/glorot_normal/{deep}'))} (at chance in "
        f"{stalled[0]} of {stalled[1]} seeds), He {fmt(loss.get(f'relu/he_normal/{deep}'))}; He + tanh 6 xi_c = "
        f"{fmt(values.get('he_tanh_trainable_depth'))} layers; depth {shallow} tanh test acc: Xavier "
        f"{fmt(accuracy.get(f'tanh/glorot_normal/{shallow}'))}, He {fmt(accuracy.get(f'tanh/he_normal/{shallow}'))} "
        f"(difference {fmt(difference.get('mean'))} +- {fmt(difference.get('se'))})"
    )


def _evidence_regularization(values: dict) -> str:
    lambdas, norm, gap = values.get("lambdas", []), values.get("weight_norm", {}), values.get("gap", {})
    return "; ".join(f"lambda {l2:g}: |W| {fmt(norm.get(l2))}, gap {fmt(gap.get(l2))}" for l2 in lambdas)


def _evidence_bias(values: dict) -> str:
    advantage = values.get("paired_advantage", {})
    return "other bias minus zero, test acc (mean +- se over seeds): " + ", ".join(
        f"{key} {fmt(found.get('mean'))} +- {fmt(found.get('se'))}" for key, found in advantage.items()
    )


def _evidence_keyed(key: str, label: str) -> Callable[[dict], str]:
    def render(values: dict) -> str:
        return ", ".join(f"{name} {fmt(value)}" for name, value in values.get(key, {}).items()) + label

    return render


def _evidence_glorot(values: dict) -> str:
    error, orderings = values.get("test_error", {}), values.get("orderings", [])

    def short(key: str) -> str:
        return key.replace("/normalized", " N").replace("/standard", "")

    parts = [
        f"{short(item['lower'])} < {short(item['higher'])}: {item['status']} ({item['seeds_agreeing']}/{item['seeds']}; "
        f"ours {fmt(item['ours'][0])} vs {fmt(item['ours'][1])}%, paper {item['paper'][0]:g} vs {item['paper'][1]:g})"
        for item in orderings
    ]
    if values.get("sigmoid_at_chance"):
        parts.append("sigmoid at chance under both inits")
    return "; ".join(parts) if parts else "test error %: " + ", ".join(f"{k} {fmt(v)}" for k, v in error.items())


def _evidence_edge(values: dict) -> str:
    conditions = values.get("conditions", [])
    best = [
        f"depth {c['numbers']['depth']}: best sigma_w^2 {c['numbers']['best']:g} (train acc "
        f"{fmt(c['numbers']['accuracy'])}, ends {fmt(c['numbers']['ends'])})"
        for c in conditions
        if "best" in c["numbers"]
    ]
    agreement = [c["numbers"]["share"] for c in conditions if "share" in c["numbers"]]
    theory = f"; theory's 6 xi_c right for {agreement[0]:.0%} of runs" if agreement else ""
    return f"critical {fmt(values.get('critical'))}; " + "; ".join(best) + theory


def _evidence_orthogonal(values: dict) -> str:
    steps = values.get("steps", {})
    return "steps to loss threshold: " + ", ".join(f"{key} {fmt(value)}" for key, value in steps.items())


_EVIDENCE: dict[str, Callable[[dict], str]] = {
    "symmetry": _evidence_symmetry,
    "depth-signal": _evidence_depth_signal,
    "saturation": _evidence_saturation,
    "pairing": _evidence_pairing,
    "regularization": _evidence_regularization,
    "bias": _evidence_bias,
    "glorot-table": _evidence_glorot,
    "edge-of-chaos": _evidence_edge,
    "lsuv": _evidence_keyed("test_accuracy", " (test acc)"),
    "orthogonal-depth": _evidence_orthogonal,
}


def evidence(name: str, claim: ClaimResult) -> str:
    """The measured numbers behind a study's verdict, in one line."""
    return _EVIDENCE[name](claim.values)


def verdict_sentence(name: str, claim: ClaimResult) -> str:
    """What the measurement says, in words, including where the classic account is wrong."""
    if name == "pairing":
        return _pairing_sentence(claim)
    if claim.holds:
        return "The claim holds on this data: every condition below is met by the stored runs."
    return (
        "The claim does NOT hold on this data: see the failed condition(s) below. A reduced "
        "run (fewer seeds and steps) can miss an effect that the full study shows; run "
        "`initlab tour --full` to check."
    )


def _pairing_sentence(claim: ClaimResult) -> str:
    values = claim.values
    loss = values.get("train_loss", {})
    deep = values.get("deep", 0)
    observations = " ".join(
        item["observation"][0].upper() + item["observation"][1:] + "." for item in values.get("observations", [])
    )
    if not claim.holds:
        return (
            "The measurement does not support the pairing on this data (see the failed condition(s)). " + observations
        )
    stalled = values.get("relu_stalled", [0, 0])
    return (
        f'The statement "He suits tanh, Xavier suits ReLU", found in some texts, is backwards for ReLU. '
        f"Measured here: at depth {deep} a ReLU network initialised with He reaches the loss line before "
        f"Xavier in every seed; Xavier ends at train loss {fmt(loss.get(f'relu/glorot_normal/{deep}'))} on "
        f"average (chance is ln 10 = 2.303; at chance in {stalled[0]} of {stalled[1]} seeds) against He's "
        f"{fmt(loss.get(f'relu/he_normal/{deep}'))}. For tanh the pairing is a preference, not a failure, at "
        f"these depths: " + observations
    )
