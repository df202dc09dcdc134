"""Port check: every row's call, run in its own framework, samples the std and bounds the row states.

Each row of ``compare_conventions`` names a framework initializer as a runnable
expression; the tests run it (torch always, Keras and JAX when installed) at
the row's shape and check the sampled std and mean (5 standard errors), the
bounds (no value outside; values within 1 % of each end of a bounded
continuous distribution; |x - mean| > 2.5 std somewhere for an unbounded
normal), and exact statistics for the deterministic structures (orthogonal,
delta-orthogonal, identity). Then the four porting traps, one test each.
"""

import json
import math
import os

import numpy as np
import pytest
import torch
from framework_stats import KS_P_MIN, assert_std_close
from scipy import stats

import initlab
from initlab import InitlabError
from initlab.cli import main
from initlab.conventions import (
    KERAS_TORCH_OUTSIDE_PROBABILITY,
    channels_first_axes,
    channels_last_axes,
    compare_conventions,
    framework_shape,
    torch_layout_shape,
)
from initlab.schemes.basic import KERAS_TRUNCATION_CORRECTION

# Keras's torch backend converts tensors with np.array(tensor), which numpy 2 warns about (not initlab's code)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

CASES = [
    (initlab.he_normal(), (256, 128), None, "torch"),
    (initlab.glorot_uniform(), (64, 32, 3, 3), None, "torch"),
    (initlab.glorot_normal(), (3, 3, 32, 64), None, "keras"),
    (initlab.lecun_normal(), (128, 256), None, "jax"),
    (initlab.he_uniform(mode="fan_out", negative_slope=0.2), (256, 128), None, "torch"),
    (initlab.he_normal(activation="tanh"), (256, 128), None, "torch"),
    (initlab.variance_scaling(3.0, "fan_avg", "truncated_normal"), (128, 256), None, "torch"),
    (initlab.variance_scaling(0.5, "fan_geo_avg", "uniform"), (128, 256), None, "torch"),
    (initlab.normal(0.5, 2.0), (100, 200), None, "torch"),
    (initlab.uniform(-0.3, 0.7), (100, 200), None, "torch"),
    (initlab.truncated_normal(0.02), (256, 256), None, "torch"),
    (initlab.truncated_normal(1.0, bound=1.5, corrected=True), (256, 256), None, "torch"),
    (initlab.orthogonal(2.0), (64, 3, 3, 3), None, "torch"),
    (initlab.identity(0.5), (16, 16, 3, 3), None, "torch"),
    (initlab.sparse(0.5, 0.1), (200, 100), None, "torch"),
    (initlab.delta_orthogonal(), (32, 16, 3, 3), None, "torch"),
    (initlab.he_normal(), (1000, 64), "embedding", "torch"),
]
CASE_IDS = [f"{scheme.name}-{'x'.join(map(str, shape))}-{framework}" for scheme, shape, _, framework in CASES]


def _kurtosis(row) -> float:
    """Excess kurtosis of one value of the row's distribution."""
    if row.distribution == "uniform":
        return -1.2
    if row.distribution == "truncated normal":
        return float(stats.truncnorm(-row.bound_sigmas, row.bound_sigmas).stats(moments="k"))
    return 0.0


def assert_row_describes(row, values) -> None:
    """The sampled ``values`` have the row's std, mean and bounds."""
    values = np.asarray(values, dtype=np.float64).ravel()
    assert values.size == math.prod(row.shape)
    if row.distribution in ("orthogonal", "delta orthogonal"):
        # sum of squares is exactly min(rows, cols) * gain^2
        assert math.sqrt(np.mean(values**2)) == pytest.approx(row.std, rel=1e-5)
    elif row.distribution in ("identity", "constant"):
        assert values.std() == pytest.approx(row.std, abs=1e-7)
        assert values.mean() == pytest.approx(row.mean, abs=1e-7)
    elif row.distribution == "sparse normal":
        nonzero = np.count_nonzero(values) / values.size
        assert_std_close(values, row.std, kurtosis=3.0 / nonzero - 3.0)
    else:
        assert_std_close(values, row.std, kurtosis=_kurtosis(row), mean=row.mean)
    if row.low is not None:
        assert_within_bounds(values, row.low, row.high, outside=_keras_torch_outside(row, values.size))
        if row.distribution in ("uniform", "truncated normal"):
            width = row.high - row.low
            assert values.max() >= row.high - 0.01 * width and values.min() <= row.low + 0.01 * width
    elif row.distribution == "normal":
        assert np.abs(values - row.mean).max() > 2.5 * row.std  # not truncated


def assert_within_bounds(values, low: float, high: float, outside: int = 0) -> None:
    """At most ``outside`` values lie outside [low, high] (float32 rounding allowed)."""
    slack = 1e-6 * max(abs(low), abs(high))
    count = np.count_nonzero((values < low - slack) | (values > high + slack))
    assert count <= outside, (count, outside, values.min(), values.max(), low, high)


def _keras_torch_outside(row, size: int) -> int:
    """Values Keras's torch backend may leave outside the truncation bounds (P(more) < 1e-6), else 0."""
    keras_on_torch = row.framework == "keras" and os.environ.get("KERAS_BACKEND") == "torch"
    if not (keras_on_torch and row.distribution == "truncated normal"):
        return 0
    return int(stats.poisson(size * KERAS_TORCH_OUTSIDE_PROBABILITY).isf(1e-6))


def _seeded(call: str) -> str:
    """A Keras call with ``seed=0`` added (Keras's unseeded initializers draw a random seed)."""
    return call[:-1] + ("seed=0)" if call.endswith("()") else ", seed=0)")


def sample_torch(row) -> np.ndarray:
    weight = torch.empty(row.shape)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        eval(row.call, {"torch": torch, "w": weight})
    return weight.numpy()


def sample_keras(row) -> np.ndarray:
    keras = pytest.importorskip("keras")
    call = row.call if row.distribution in ("constant", "identity") else _seeded(row.call)
    return keras.ops.convert_to_numpy(eval(call, {"keras": keras})(row.shape))


def sample_jax(row) -> np.ndarray:
    jax = pytest.importorskip("jax")
    return np.asarray(eval(row.call, {"jax": jax})(jax.random.key(0), row.shape, jax.numpy.float32))


SAMPLERS = {"torch": sample_torch, "keras": sample_keras, "jax": sample_jax}


@pytest.mark.parametrize("framework", ["torch", "keras", "jax"])
@pytest.mark.parametrize(("scheme", "shape", "layout", "caller"), CASES, ids=CASE_IDS)
def test_each_call_samples_what_its_row_states(scheme, shape, layout, caller, framework):
    report = compare_conventions(scheme, shape, layout=layout, framework=caller)
    for row in (row for row in report.rows if row.framework == framework):
        if row.call:
            assert_row_describes(row, SAMPLERS[framework](row))
        else:  # the framework has no such initializer: the row says so and claims nothing
            assert (row.distribution, row.std, row.matches) == ("n/a", None, None) and row.notes


@pytest.mark.parametrize(("scheme", "shape", "layout", "caller"), CASES, ids=CASE_IDS)
def test_initlab_row_is_what_initlab_samples(scheme, shape, layout, caller):
    report = compare_conventions(scheme, shape, layout=layout, framework=caller)
    row = report.row("initlab")
    values = scheme.sample(row.shape, layout=layout or ("conv" if len(shape) > 2 else "linear"), seed=1, name="w")
    assert_row_describes(row, values)
    for other in report.rows[1:]:
        if other.call and other.matches:
            assert other.std == pytest.approx(row.std, rel=1e-9) and (other.low is None) == (row.low is None)


# --------------------------------------------------------------------------- the traps


def test_keras_variance_scaling_normal_is_truncated_with_the_correction():
    keras = pytest.importorskip("keras")
    report = compare_conventions(initlab.variance_scaling(2.0, "fan_in", "normal"), (256, 128))
    row = report.row("keras")
    assert row.call == "keras.initializers.VarianceScaling(scale=2, mode='fan_in', distribution='normal')"
    assert row.distribution == "truncated normal" and row.bound_sigmas == 2.0 and row.matches is False
    assert row.std == pytest.approx(math.sqrt(2.0 / 128), rel=1e-12)
    assert row.sigma == pytest.approx(row.std / 0.87962566103423978, rel=1e-12)
    values = keras.ops.convert_to_numpy(keras.initializers.VarianceScaling(2.0, "fan_in", "normal", seed=3)(row.shape))
    assert stats.kstest(values.ravel(), stats.truncnorm(-2, 2, scale=row.sigma).cdf).pvalue > KS_P_MIN
    assert_within_bounds(values, row.low, row.high, outside=_keras_torch_outside(row, values.size))
    untruncated = eval(_seeded(row.equivalent), {"keras": keras})(row.shape)
    assert stats.kstest(keras.ops.convert_to_numpy(untruncated).ravel(), stats.norm(0, row.std).cdf).pvalue > KS_P_MIN
    assert any(trap.startswith("keras: keras.initializers.VarianceScaling(") for trap in report.traps)
    jax_row = report.row("jax")  # JAX's distribution="normal" is the plain normal
    assert jax_row.distribution == "normal" and jax_row.matches is True
    assert KERAS_TRUNCATION_CORRECTION == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-15)


def test_the_presets_of_keras_and_jax_are_truncated_where_torch_and_initlab_are_not():
    report = compare_conventions("glorot_normal", (3, 3, 16, 32), framework="keras")
    assert [row.label for row in report.rows] == ["initlab", "torch", "keras", "jax", "torch, as is"]
    assert report.row("torch").call == "torch.nn.init.xavier_normal_(w, gain=1)"
    assert report.row("torch").shape == (32, 16, 3, 3) and report.row("torch").matches
    for name, call in (("keras", "keras.initializers.GlorotNormal()"), ("jax", "jax.nn.initializers.glorot_normal()")):
        row = report.row(name)
        assert (row.call, row.distribution, row.matches) == (call, "truncated normal", False)
        assert row.std == pytest.approx(math.sqrt(2.0 / (144 + 288)), rel=1e-12)


def test_orthogonal_and_conv_kernels_flatten_differently():
    """torch reads (out, in*k); Keras/JAX read (k*in, out): transposes on their own layouts, not on a copied array."""
    report = compare_conventions(initlab.orthogonal(), (64, 3, 3, 3))
    assert report.row("torch").matrix == (64, 27) and report.row("keras").matrix == (27, 64)
    assert report.row("jax").matrix == (27, 64) and report.row("keras").matches and report.row("jax").matches
    as_is = report.row("keras", transposed=False)
    assert (as_is.shape, as_is.matrix, as_is.matches) == ((64, 3, 3, 3), (576, 3), False)
    assert as_is.std == pytest.approx(1 / 24) and report.row("keras").std == pytest.approx(1 / 8)
    assert any("np.transpose(w, (2, 3, 1, 0))" in trap for trap in report.traps)
    torch_on_keras_layout = sample_torch(compare_conventions(initlab.orthogonal(), (3, 3, 3, 64), framework="keras")
                                         .row("torch", transposed=False))
    q = torch_on_keras_layout.reshape(3, 576)  # torch: rows = shape[0] = 3 of the HWIO kernel
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-5)
    assert math.sqrt(np.mean(torch_on_keras_layout**2)) == pytest.approx(1 / 24, rel=1e-5)


@pytest.mark.parametrize("framework", ["keras", "jax"])
def test_keras_and_jax_orthogonal_on_a_torch_array_as_is(framework):
    report = compare_conventions(initlab.orthogonal(), (64, 3, 3, 3))
    values = SAMPLERS[framework](report.row(framework, transposed=False))
    q = values.reshape(576, 3)  # the last axis (a kernel width of 3) becomes the orthonormal columns
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-5)
    own = SAMPLERS[framework](report.row(framework)).reshape(27, 64)
    np.testing.assert_allclose(own @ own.T, np.eye(27), atol=1e-5)


@pytest.mark.parametrize("framework", ["keras", "jax"])
def test_fans_of_a_conv_kernel_copied_without_transposing(framework):
    report = compare_conventions(initlab.glorot_uniform(), (64, 32, 3, 3))
    own, as_is = report.row(framework), report.row(framework, transposed=False)
    assert (own.fan_in, own.fan_out) == (32 * 9, 64 * 9) and (as_is.fan_in, as_is.fan_out) == (64 * 32 * 3, 64 * 32 * 3)
    assert as_is.high == pytest.approx(math.sqrt(6.0 / (2 * 64 * 32 * 3)), rel=1e-12)
    assert_row_describes(as_is, SAMPLERS[framework](as_is))


def test_truncation_bounds_are_absolute_in_torch_and_in_sigma_units_in_keras_and_jax():
    report = compare_conventions(initlab.truncated_normal(0.02), (768, 768))
    assert report.row("torch").call == "torch.nn.init.trunc_normal_(w, mean=0, std=0.02, a=-0.04, b=0.04)"
    assert report.row("jax").call == "jax.nn.initializers.truncated_normal(stddev=0.02, lower=-2, upper=2)"
    assert report.row("keras").call == "keras.initializers.TruncatedNormal(mean=0, stddev=0.02)"
    assert any("absolute" in trap for trap in report.traps)
    torch_row = report.row("torch")
    assert (torch_row.low, torch_row.high, torch_row.bound_sigmas) == (pytest.approx(-0.04), pytest.approx(0.04), 2.0)
    assert_row_describes(torch_row, sample_torch(torch_row))
    # the trap: torch's defaults a=-2, b=2 are absolute, so std=0.02 is not truncated at all
    weight = torch.empty(768, 768)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.nn.init.trunc_normal_(weight, std=0.02)
    assert np.abs(weight.numpy()).max() > 3 * 0.02
    assert_std_close(weight.numpy(), 0.02)


def test_a_seeded_keras_initializer_repeats_and_initlab_keras_does_not():
    keras = pytest.importorskip("keras")
    import initlab.keras as initlab_keras

    report = compare_conventions("he_normal", (64, 32))
    assert any("same values at every call" in trap for trap in report.traps)
    seeded = keras.initializers.HeNormal(seed=5)
    first, second = (keras.ops.convert_to_numpy(seeded((32, 64))) for _ in range(2))
    assert np.array_equal(first, second)
    ours = initlab_keras.HeNormal(seed=5, name="fc.weight")
    first, second = (keras.ops.convert_to_numpy(ours((32, 64))) for _ in range(2))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, initlab.he_normal().sample((64, 32), seed=5, name="fc.weight").T)


# --------------------------------------------------------------------------- layouts, errors, CLI


@pytest.mark.parametrize("ndim", [2, 3, 4, 5])
def test_layout_permutations_are_inverse_and_match_torch_permute(ndim):
    layout = "linear" if ndim == 2 else "conv"
    shape = tuple(range(2, 2 + ndim))
    weight = torch.arange(math.prod(shape), dtype=torch.float32).reshape(shape)
    keras_layout = np.transpose(weight.numpy(), channels_last_axes(ndim, layout))
    assert keras_layout.shape == framework_shape(shape, layout, "keras") == (*shape[2:], shape[1], shape[0])
    assert np.array_equal(keras_layout, weight.permute(*range(2, ndim), 1, 0).numpy())
    assert np.array_equal(np.transpose(keras_layout, channels_first_axes(ndim, layout)), weight.numpy())
    assert torch_layout_shape(keras_layout.shape, layout, "jax") == shape


def test_an_embedding_keeps_its_axes_and_torch_swaps_its_fans():
    report = compare_conventions("he_normal", (1000, 64), layout="embedding")
    assert {row.shape for row in report.rows} == {(1000, 64)} and len(report.rows) == 4
    assert (report.row("torch").fan_in, report.row("keras").fan_in, report.row("initlab").fan_in) == (64, 1000, 1000)
    assert report.row("torch").matches is False


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compare_conventions("he_normal", (4, 4), framework="tf"),
         "compare_conventions: framework='tf' is invalid; expected one of torch, keras, jax."),
        (lambda: compare_conventions("he_normal", (4, 0)),
         "compare_conventions: shape=(4, 0) is invalid; expected 1 or more dimensions, each >= 1."),
        (lambda: compare_conventions("he_normal", (4, 4, 3), layout="linear"),
         ("compare_conventions: layout='linear' does not fit shape=(4, 4, 3); expected 1 or 2 dimensions for "
         "linear/embedding, 3 or more for conv.")),
        (lambda: compare_conventions(initlab.he_normal(), (4, 4), mode="fan_out"),
         ("compare_conventions: options ['mode'] are given with a Scheme object; expected them only with a "
         "scheme name.")),
        (lambda: compare_conventions("he_normal", (4, 4)).row("tf"),
         ("ConventionReport.row: framework='tf', transposed=True has no row; expected one of initlab, torch, keras, "
         "jax.")),
    ],
)
def test_bad_input_is_a_clear_initlab_error(call, message):
    with pytest.raises(InitlabError) as caught:
        call()
    assert str(caught.value) == message


def test_port_check_command_prints_the_table_calls_and_traps(capsys):
    assert main(["port-check", "he_normal", "256", "128"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "port check: initlab.he_normal: initlab.variance_scaling(scale=2.0, mode='fan_in', distribution='normal')"
    assert lines[1] == "weight: shape (256, 128), layout linear, in the torch convention (the caller)"
    table = {line.split("  ")[0]: line.split() for line in lines[3:10]}
    assert table["torch (caller)"][-1] == "same" and table["keras"][-1] == "DIFFERS"
    assert "  torch: torch.nn.init.kaiming_normal_(w, mode='fan_in', nonlinearity='relu')" in lines
    assert ("      to match initlab: keras.initializers.VarianceScaling(scale=2, mode='fan_in', "
            "distribution='untruncated_normal')") in lines
    assert "traps:" in lines


def test_port_check_command_json_and_parameters(capsys):
    assert main(["port-check", "truncated_normal", "3", "3", "8", "16", "--framework", "jax",
                 "--param", "std=0.1", "--param", "corrected=true", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scheme"] == {"scheme": "truncated_normal", "std": 0.1, "bound": 2.0, "corrected": True, "mean": 0.0}
    assert data["caller"] == "jax" and data["layout"] == "conv"
    torch_row = next(row for row in data["rows"] if row["framework"] == "torch" and row["transposed"])
    assert torch_row["shape"] == [16, 8, 3, 3] and torch_row["std"] == pytest.approx(0.1, rel=1e-12)


def test_port_check_command_bad_usage_exits_2(capsys):
    assert main(["port-check", "he_normal", "8", "8", "--param", "gain"]) == 2
    assert capsys.readouterr().err == (
        "initlab port-check: error: --param='gain' is invalid; expected KEY=VALUE, e.g. mode=fan_out.\n"
    )
