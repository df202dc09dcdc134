"""The built-in studies: files, sizes, claim checks computed from a real SQLite store.

Every study runs at its ``tiny`` size once per module (real MNIST-1D / digits, real
training, real store); the tests then read the store back. Claim checks are exercised
on those stored rows, and on copies of them with one measured number changed, to show
that each verdict follows the data (a hard-coded verdict would not flip).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from initlab.errors import InitlabError
from initlab.lab import Store, evaluate_claim, expand, load_study
from initlab.lab.executors import InlineExecutor
from initlab.lab.study_claims import GLOROT_BENGIO_TABLE1, init_label, sigma_w2, theory_preact_std
from initlab.lab.tour import (
    BUILTIN_STUDIES,
    REDUCTIONS,
    TOUR_STUDIES,
    base_name,
    builtin_study,
    claim_from_store,
    run_studies,
    stored_name,
    study_data,
    study_file,
)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """All ten studies at tiny size, trained once into one SQLite file; yields its path."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("studies") / "runs.sqlite"
    try:
        with Store(path) as store:
            outcomes = run_studies([builtin_study(name, "tiny") for name in BUILTIN_STUDIES], store,
                                   InlineExecutor(), None)
    finally:
        torch.set_num_threads(threads)
    assert [outcome.study.name for outcome in outcomes] == [f"{name}.tiny" for name in BUILTIN_STUDIES]
    return path


def _rows(path, name):
    with Store(path) as store:
        return store.runs(study=stored_name(name, "tiny"))


def _condition(result, text):
    """The one condition of ``result`` whose text contains ``text``."""
    found = [item for item in result.values["conditions"] if text in item["condition"]]
    assert len(found) == 1, (text, [item["condition"] for item in result.values["conditions"]])
    return found[0]


# ------------------------------------------------------------------ the files
@pytest.mark.parametrize("name", BUILTIN_STUDIES)
def test_study_file_is_packaged_and_loads_with_its_claim(name):
    assert study_file(name).is_file()
    study = load_study(study_file(name))
    assert study.name == name and study.claim is not None and study.description
    assert len(expand(study)) >= 4


@pytest.mark.parametrize("size", ["tour", "tiny"])
@pytest.mark.parametrize("name", BUILTIN_STUDIES)
def test_reduced_sizes_keep_the_claim_and_every_compared_axis(name, size):
    full, reduced = builtin_study(name), builtin_study(name, size)
    assert reduced.name == f"{name}.{size}" and base_name(reduced.name) == name
    assert reduced.claim.name == full.claim.name
    assert set(reduced.grid) == set(full.grid)
    if size == "tour":
        assert len(reduced.cases) == len(full.cases)
    assert len(reduced.cases) >= min(len(full.cases), 2)
    assert len(expand(reduced)) <= len(expand(full))


def test_tour_runs_studies_one_to_eight_reduced():
    assert TOUR_STUDIES == BUILTIN_STUDIES[:8]
    assert set(REDUCTIONS["tour"]) == set(BUILTIN_STUDIES) == set(REDUCTIONS["tiny"])
    assert builtin_study("pairing", "tour").training.steps < builtin_study("pairing").training.steps


def test_unknown_study_or_size_is_refused_with_the_value():
    with pytest.raises(InitlabError, match=r"study='nope' is invalid; expected one of symmetry"):
        builtin_study("nope")
    with pytest.raises(InitlabError, match=r"size='huge' is invalid; expected one of full, tour, tiny"):
        study_data("pairing", "huge")


@pytest.mark.parametrize("params,message", [
    ({"deep": 30, "tanh_depth": 10, "colour": 1}, r"unknown key\(s\) \['colour'\] for claim 'pairing'"),
    ({"deep": "30", "tanh_depth": 10}, r"claim.params.deep='30' is invalid for claim 'pairing'; expected an integer"),
    ({"tanh_depth": 10}, r"claim.params.deep is missing for claim 'pairing'"),
    ({"deep": -3, "tanh_depth": 10}, r"claim.params.deep=-3 is invalid .* expected a number > 0"),
])
def test_bad_claim_params_name_the_field_and_value(params, message):
    data = study_data("pairing")
    data["claim"]["params"] = params
    with pytest.raises(InitlabError, match=message):
        load_study(data)


# ------------------------------------------------------- checks from the store
@pytest.mark.parametrize("name", BUILTIN_STUDIES)
def test_tiny_study_is_stored_and_its_claim_is_computed_from_the_store(tiny_store, name):
    study = builtin_study(name, "tiny")
    rows = _rows(tiny_store, name)
    assert {row["key"] for row in rows} == {run.key for run in expand(study)}
    assert all(row["status"] in ("done", "diverged") for row in rows)
    with Store(tiny_store) as store:
        result = claim_from_store(study, store)
    again = evaluate_claim(study.claim.name, study.claim.params, rows)
    assert (result.holds, result.detail) == (again.holds, again.detail)
    conditions = result.values["conditions"]
    assert conditions and result.holds == all(item["holds"] for item in conditions)


def test_symmetry_units_measured_and_verdict_follows_the_units(tiny_store):
    rows = _rows(tiny_store, "symmetry")
    params = builtin_study("symmetry", "tiny").claim.params
    result = evaluate_claim("symmetry", params, rows)
    assert _condition(result, "zeros: 1 distinct unit")["holds"]
    assert _condition(result, "constant: 1 distinct unit")["holds"]
    assert _condition(result, "every unit distinct (16 per layer)")["holds"]
    tampered = copy.deepcopy(rows)
    for row in tampered:
        if init_label(row) == "zeros":
            row["summary"]["distinct_units"] = [16, 16]
    flipped = evaluate_claim("symmetry", params, tampered)
    assert not _condition(flipped, "zeros: 1 distinct unit")["holds"] and not flipped.holds


def test_depth_signal_vanishing_is_measured_in_float64(tiny_store):
    rows = _rows(tiny_store, "depth-signal")
    assert all(row["config"]["training"]["dtype"] == "float64" for row in rows)
    result = evaluate_claim("depth_signal", builtin_study("depth-signal", "tiny").claim.params, rows)
    assert _condition(result, "small init, tanh: forward std ratio")["holds"]
    assert _condition(result, "small init, relu: gradient ratio")["holds"]
    ratio = result.values["ratios"]["tanh/small_random"]["forward"][0]
    # 11 layers of a factor sigma_w^2 = 0.01^2 * 64 = 0.0064 in variance: std ratio ~ 0.08^11 ~ 9e-13
    assert 1e-15 < ratio < 1e-10


def test_theory_curve_matches_the_measured_xavier_tanh_signal(tiny_store):
    rows = [row for row in _rows(tiny_store, "depth-signal")
            if row["config"]["model"]["activation"] == "tanh" and init_label(row) == "glorot_normal"]
    measured = rows[0]["summary"]["preact_std"]
    assert sigma_w2(rows[0]) == pytest.approx(1.0)
    predicted = theory_preact_std(rows[0], measured[0])
    assert len(predicted) == len(measured) and predicted[0] == pytest.approx(measured[0])
    # width 64, batch 64: the sample std of the pre-activations is within ~20% of theory
    assert all(abs(math.log(m / p)) < math.log(1.25) for m, p in zip(measured, predicted))


def test_saturation_holds_and_flips_when_the_saturation_is_swapped(tiny_store):
    rows = _rows(tiny_store, "saturation")
    params = builtin_study("saturation", "tiny").claim.params
    assert evaluate_claim("saturation", params, rows).holds
    tampered = copy.deepcopy(rows)
    for row in tampered:
        if init_label(row) == "large_random":
            row["summary"]["saturated_fraction"] = [0.0] * len(row["summary"]["saturated_fraction"])
    result = evaluate_claim("saturation", params, tampered)
    assert not result.holds and not _condition(result, "large_random: saturated fraction")["holds"]


def test_regularization_verdict_follows_the_weight_norms(tiny_store):
    rows = _rows(tiny_store, "regularization")
    result = evaluate_claim("regularization", {}, rows)
    norms = result.values["weight_norm"]
    assert _condition(result, "weight norm falls")["holds"] == (norms[0.0] > norms[0.1])
    tampered = copy.deepcopy(rows)
    for row in tampered:
        row["summary"]["weight_norm"] = 1.0 / row["summary"]["weight_norm"]
    assert (_condition(evaluate_claim("regularization", {}, tampered), "weight norm falls")["holds"]
            != _condition(result, "weight norm falls")["holds"])


def test_pairing_relu_half_compares_steps_to_the_loss_line_seed_by_seed(tiny_store):
    rows = _rows(tiny_store, "pairing")
    params = builtin_study("pairing", "tiny").claim.params
    result = evaluate_claim("pairing", params, rows)
    assert result.values["chance_loss"] == pytest.approx(math.log(10))
    tampered = copy.deepcopy(rows)
    for row in tampered:
        if row["config"]["model"]["activation"] == "relu":
            row["summary"]["steps_to_target_loss"] = None if init_label(row) == "glorot_normal" else 20
    flipped = evaluate_claim("pairing", params, tampered)
    assert _condition(flipped, "He + ReLU reaches train loss 1.84 in 1 of 1 seeds")["holds"]
    assert _condition(flipped, "He + ReLU gets there before Xavier + ReLU")["holds"]
    for row in tampered:  # Xavier reaches the line first: the ReLU half fails
        if row["config"]["model"]["activation"] == "relu" and init_label(row) == "glorot_normal":
            row["summary"]["steps_to_target_loss"] = 10
    assert not _condition(evaluate_claim("pairing", params, tampered), "gets there before")["holds"]


def test_glorot_table_quotes_the_paper_and_compares_our_errors(tiny_store):
    result = evaluate_claim("glorot_table", {}, _rows(tiny_store, "glorot-table"))
    assert result.values["paper"]["rows"]["tanh/normalized"] == list(GLOROT_BENGIO_TABLE1["rows"][("tanh", "normalized")])
    errors = result.values["test_error"]
    assert set(errors) == {f"{a}/{k}" for a in ("tanh", "softsign", "sigmoid") for k in ("standard", "normalized")}
    assert _condition(result, "tanh: normalized error")["holds"] == (errors["tanh/normalized"] < errors["tanh/standard"])


def test_edge_of_chaos_uses_the_theory_critical_point(tiny_store):
    result = evaluate_claim("edge_of_chaos", builtin_study("edge-of-chaos", "tiny").claim.params,
                            _rows(tiny_store, "edge-of-chaos"))
    assert result.values["critical"] == pytest.approx(1.76, abs=0.01)
    depths = result.values["trainable_depth"]
    assert depths[1.76] > depths[1.0] and depths[1.76] > depths[4.0]


def test_missing_runs_make_a_claim_fail_rather_than_pass():
    result = evaluate_claim("orthogonal_depth", {}, [])
    assert not result.holds and "runs exist for" in result.detail


def test_pairing_report_calls_the_common_statement_backwards_only_when_measured(tiny_store):
    from initlab.report.study_text import verdict_sentence

    rows = _rows(tiny_store, "pairing")
    params = builtin_study("pairing", "tiny").claim.params
    measured = copy.deepcopy(rows)
    for row in measured:
        model = row["config"]["model"]
        if model["activation"] == "relu":
            xavier = init_label(row) == "glorot_normal"
            row["summary"]["train_loss"] = 2.30 if xavier else 1.2
            row["summary"]["steps_to_target_loss"] = None if xavier else 20
        if model["activation"] == "tanh":
            row["summary"]["train_loss"] = 1.0
            row["summary"]["test_accuracy"] = 0.6 if init_label(row) == "glorot_normal" else 0.5
    holding = evaluate_claim("pairing", params, measured)
    assert holding.holds
    sentence = verdict_sentence("pairing", holding)
    assert "\"He suits tanh, Xavier suits ReLU\"" in sentence and "is backwards for ReLU" in sentence
    assert "2.3" in sentence and "1.2" in sentence and "6 xi_c = 130" in sentence
    for row in measured:
        if row["config"]["model"]["activation"] == "tanh" and init_label(row) == "glorot_normal":
            row["summary"]["train_loss"] = 2.3
    failing = evaluate_claim("pairing", params, measured)
    assert not failing.holds and "is backwards" not in verdict_sentence("pairing", failing)


def test_paired_difference_is_judged_against_its_standard_error():
    from initlab.lab.study_claims import paired

    consistent = paired({0: 0.52, 1: 0.53, 2: 0.54}, {0: 0.50, 1: 0.50, 2: 0.50})
    # differences 0.02, 0.03, 0.04: mean 0.03, sd 0.01, se 0.01 / sqrt(3)
    assert consistent.mean == pytest.approx(0.03) and consistent.se == pytest.approx(0.01 / math.sqrt(3))
    assert consistent.beyond(3.0)
    noisy = paired({0: 0.60, 1: 0.45, 2: 0.54}, {0: 0.50, 1: 0.50, 2: 0.50})
    assert noisy.mean == pytest.approx(0.03) and not noisy.beyond(3.0)
    assert paired({0: 0.6}, {0: 0.5}).beyond(3.0) and not paired({0: 0.4}, {0: 0.5}).beyond(3.0)
    assert not paired({0: 0.6}, {1: 0.5}).beyond(3.0)


def test_bias_margin_holds_seed_by_seed_and_real_differences_are_named():
    def rows(zero, constant):
        found = []
        for bias, values in (({"scheme": "zeros"}, zero), ({"scheme": "constant", "value": 0.1}, constant)):
            for seed, value in enumerate(values):
                found.append({"key": f"{bias['scheme']}{seed}", "status": "done", "point": {},
                              "config": {"model": {"activation": "relu", "bias_init": bias},
                                         "training": {"seed": seed}},
                              "summary": {"test_accuracy": value}})
        return found

    noisy = evaluate_claim("bias", {}, rows([0.50, 0.48, 0.52], [0.53, 0.47, 0.55]))
    assert noisy.holds and "within 3 standard errors" in noisy.values["observations"][0]["observation"]
    # differences 0.02, 0.025, 0.03: mean 0.025, se 0.0029 -> beyond 3 se, named, but under the 0.05 margin
    real = evaluate_claim("bias", {}, rows([0.50, 0.48, 0.52], [0.52, 0.505, 0.55]))
    assert real.holds and real.values["observations"][0]["numbers"]["beyond"]
    far = evaluate_claim("bias", {}, rows([0.50, 0.48, 0.52], [0.52, 0.505, 0.58]))
    assert not far.holds and "in 2 of 3 seeds" in far.detail


@pytest.mark.parametrize("activation,kappa", [("linear", 2.0), ("relu", 5.0)])
def test_finite_width_band_uses_the_fourth_moment_of_the_activation(activation, kappa):
    from initlab.lab.study_claims import finite_width_band

    row = {"config": {"model": {"activation": activation, "width": 64}}}
    band = finite_width_band(row, [0.7] * 6, 3.0, 1.0)
    # E[z^4] / E[z^2]^2 - 1 = 3 - 1 = 2 for a linear unit; (3/2) / (1/2)^2 - 1 = 5 for ReLU
    expected = [3.0 * 0.5 * math.sqrt(kappa * layer / 64) for layer in range(6)]
    assert band == pytest.approx(expected, rel=1e-6)


def test_study_claims_are_registered_by_importing_the_lab_alone(tmp_path):
    """`initlab run <built-in>.toml` works in a fresh interpreter: initlab.lab registers the claims."""
    import subprocess
    import sys

    code = ("import sys; from initlab.lab.config import load_study; "
            "print(load_study(sys.argv[1]).claim.name)")
    done = subprocess.run([sys.executable, "-c", code, str(study_file("edge-of-chaos"))],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "edge_of_chaos"
