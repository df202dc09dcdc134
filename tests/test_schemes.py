"""Schemes: exact distributions, target statistics, torch/Keras/JAX formulas, errors.

Statistical bounds. For n independent draws with mean mu, std sigma and
excess kurtosis k, the sample mean has std sigma/sqrt(n) and the sample std
has std ~ sigma * sqrt((k + 2) / (4 n)) (delta method on the sample
variance, whose variance is sigma^4 (k + 2) / n). Tests allow 5 of those
standard errors (a false alarm has probability < 1e-6). Kolmogorov-Smirnov
tests use fixed seeds and require p > 1e-4.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

import initlab
from initlab import InitlabError
from initlab.fans import Layout, fans
from initlab.schemes import from_dict, get, known_schemes
from initlab.schemes.basic import KERAS_TRUNCATION_CORRECTION, truncated_std_factor
from initlab.schemes.householder import exact_matmul, orthonormal_columns

KS_P_MIN = 1e-4
SHAPE = (400, 300)
N = SHAPE[0] * SHAPE[1]
LINEAR_FANS = fans(SHAPE, "linear")


def truncnorm(bound, sigma, mean=0.0):
    return stats.truncnorm(-bound, bound, loc=mean, scale=sigma)


# scheme, exact scipy distribution of one element (for SHAPE read as linear)
def continuous_cases():
    fan_in, fan_out = LINEAR_FANS.fan_in, LINEAR_FANS.fan_out
    glorot = math.sqrt(2.0 / (fan_in + fan_out))
    he = math.sqrt(2.0 / fan_in)
    lecun = math.sqrt(1.0 / fan_in)
    keras_truncated_sigma = lambda std: std / KERAS_TRUNCATION_CORRECTION  # noqa: E731
    return [
        (initlab.normal(0.5, 2.0), stats.norm(0.5, 2.0)),
        (initlab.small_random(), stats.norm(0.0, 0.01)),
        (initlab.large_random(), stats.norm(0.0, 1.0)),
        (initlab.uniform(-0.3, 0.7), stats.uniform(-0.3, 1.0)),
        (initlab.truncated_normal(0.2), truncnorm(2.0, 0.2)),
        (initlab.truncated_normal(0.2, bound=1.5, corrected=True), truncnorm(1.5, 0.2 / truncated_std_factor(1.5))),
        (initlab.truncated_normal(1.0, bound=0.25), truncnorm(0.25, 1.0)),
        (initlab.glorot_normal(), stats.norm(0.0, glorot)),
        (initlab.glorot_normal(distribution="truncated_normal"), truncnorm(2.0, keras_truncated_sigma(glorot))),
        (initlab.glorot_uniform(gain=5 / 3), stats.uniform(-5 / 3 * math.sqrt(3) * glorot, 2 * 5 / 3 * math.sqrt(3) * glorot)),
        (initlab.he_normal(), stats.norm(0.0, he)),
        (initlab.he_normal(mode="fan_out"), stats.norm(0.0, math.sqrt(2.0 / fan_out))),
        (initlab.he_uniform(negative_slope=0.2), stats.uniform(-math.sqrt(6 / 1.04 / fan_in), 2 * math.sqrt(6 / 1.04 / fan_in))),
        (initlab.lecun_normal(), stats.norm(0.0, lecun)),
        (initlab.lecun_uniform(), stats.uniform(-math.sqrt(3) * lecun, 2 * math.sqrt(3) * lecun)),
        (initlab.variance_scaling(3.0, "fan_geo_avg", "normal"), stats.norm(0.0, math.sqrt(3 / math.sqrt(fan_in * fan_out)))),
        (initlab.variance_scaling(0.5, "fan_avg", "truncated_normal"),
         truncnorm(2.0, keras_truncated_sigma(math.sqrt(0.5 / ((fan_in + fan_out) / 2))))),
    ]


CASES = continuous_cases()


@pytest.mark.parametrize("scheme, distribution", CASES, ids=[case[0].name for case in CASES])
def test_kolmogorov_smirnov_against_exact_distribution(scheme, distribution):
    values = scheme.sample(SHAPE, seed=7, name="ks").astype(np.float64).ravel()
    assert stats.kstest(values, distribution.cdf).pvalue > KS_P_MIN


@pytest.mark.parametrize("scheme, distribution", CASES, ids=[case[0].name for case in CASES])
def test_sample_mean_and_std_within_sampling_error(scheme, distribution):
    values = scheme.sample(SHAPE, seed=3, name="moments").astype(np.float64).ravel()
    mean, var, _, excess_kurtosis = (float(v) for v in distribution.stats(moments="mvsk"))
    sigma = math.sqrt(var)
    assert abs(values.mean() - mean) < 5 * sigma / math.sqrt(N)
    assert abs(values.std() - sigma) < 5 * sigma * math.sqrt((excess_kurtosis + 2) / (4 * N))
    # the scheme's own target_std is the distribution's std
    assert scheme.target_std(LINEAR_FANS, shape=SHAPE) == pytest.approx(sigma, rel=1e-12)


def test_constant_schemes_are_exact():
    assert np.all(initlab.zeros().sample((3, 4)) == 0.0)
    assert np.all(initlab.ones().sample((5,)) == 1.0)
    assert np.all(initlab.constant(-0.25).sample((2, 3, 4)) == -0.25)


# ------------------------------------------------------------------ reference formulas
# torch.nn.init (fans from _calculate_fan_in_and_fan_out):
#   xavier_uniform_: a = gain * sqrt(6 / (fan_in + fan_out)); xavier_normal_: std = gain * sqrt(2 / (fan_in + fan_out))
#   kaiming_uniform_: a = sqrt(3) * gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)); kaiming_normal_: std = gain / sqrt(fan)
# Keras 3 / JAX (kernel (*k, in, out); VarianceScaling): scale/n, uniform limit sqrt(3 scale / n),
#   glorot_uniform = (1, fan_avg, uniform), he_normal = (2, fan_in, truncated), lecun_normal = (1, fan_in, truncated)

TORCH_SHAPES = [
    (64, 32), (1, 1), (1000, 3), (16, 8, 3), (16, 8, 3, 3), (16, 8, 3, 3, 3), (64, 3, 7, 7),
    (32, 8, 3, 3), (32, 1, 3, 3), (12, 6, 1, 1), (256, 128, 1), (7, 5, 2, 3), (8, 8, 2, 2, 2),
    (300, 200), (5, 500), (128, 16, 5), (3, 3, 3, 3), (2, 9, 4), (40, 40, 1, 1, 1), (10, 1),
    (32, 4, 3, 3), (16, 4, 3, 3),
]


@pytest.mark.parametrize("shape", TORCH_SHAPES)
def test_target_std_and_bounds_match_torch_formulas(shape):
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    torch_fans = fans(shape, layout_compat="torch")
    assert initlab.glorot_uniform().bound(torch_fans) == pytest.approx(math.sqrt(6 / (fan_in + fan_out)), rel=1e-12)
    assert initlab.glorot_normal(gain=5 / 3).target_std(torch_fans) == pytest.approx(5 / 3 * math.sqrt(2 / (fan_in + fan_out)), rel=1e-12)
    slope = 0.1
    gain = math.sqrt(2 / (1 + slope**2))
    assert initlab.he_uniform(negative_slope=slope).bound(torch_fans) == pytest.approx(math.sqrt(3) * gain / math.sqrt(fan_in), rel=1e-12)
    assert initlab.he_normal(mode="fan_out").target_std(torch_fans) == pytest.approx(math.sqrt(2) / math.sqrt(fan_out), rel=1e-12)
    # torch's own sampler respects that bound (a check of the reference formula itself)
    weight = torch.nn.init.xavier_uniform_(torch.empty(shape))
    assert float(weight.abs().max()) <= math.sqrt(6 / (fan_in + fan_out))


@pytest.mark.parametrize("shape", [(32, 64), (3, 3, 8, 16), (5, 8, 16), (2, 2, 2, 4, 8), (1, 1, 3, 3), (7, 11)])
def test_target_std_and_bounds_match_keras_and_jax_formulas(shape):
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    keras_fans = fans(shape, "axes", in_axis=-2, out_axis=-1)
    assert initlab.glorot_uniform().bound(keras_fans) == pytest.approx(math.sqrt(6 / (fan_in + fan_out)), rel=1e-12)
    he = initlab.he_normal(distribution="truncated_normal")
    keras_stddev = math.sqrt(2 / fan_in) / KERAS_TRUNCATION_CORRECTION
    assert he.target_std(keras_fans) / truncated_std_factor(2.0) == pytest.approx(keras_stddev, rel=1e-12)
    assert initlab.lecun_uniform().bound(keras_fans) == pytest.approx(math.sqrt(3 / fan_in), rel=1e-12)


def test_keras_truncation_constant_is_the_truncated_std():
    assert truncated_std_factor(2.0) == pytest.approx(KERAS_TRUNCATION_CORRECTION, rel=1e-15)


def test_grouped_and_transposed_convs_use_forward_fans():
    grouped = initlab.he_normal().sample((32, 8, 3, 3), layout=Layout("conv", groups=4))
    assert grouped.std() == pytest.approx(math.sqrt(2 / 72), rel=0.05)
    transposed = initlab.glorot_uniform().target_std(fans((16, 8, 4, 4), "conv_transpose"))
    assert transposed == pytest.approx(math.sqrt(2 / (256 + 128)))


# ------------------------------------------------------------------ structured schemes


@pytest.mark.parametrize("shape", [(64, 64), (32, 128), (128, 32), (16, 8, 3, 3)])
# Rounding each entry to a unit roundoff u moves every Gram entry by at most
# ~2u * gain^2 (Cauchy-Schwarz): bfloat16 u = 2^-9 gives 2^-8; float32 and
# float64 are dominated by QR's backward error, ~n * u.
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 2**-8 * 1.01 + 1e-5), (torch.float64, 1e-12)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape, dtype, tolerance):
    gain = 1.7
    weight = initlab.orthogonal(gain).init_(torch.empty(shape, dtype=dtype), seed=1, name="q")
    matrix = weight.reshape(shape[0], -1).double()
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    identity = torch.eye(gram.shape[0], dtype=torch.float64) * gain**2
    assert float((gram - identity).abs().max()) < tolerance * gain**2


def test_orthogonal_is_haar_distributed():
    # an entry q of a Haar n x n orthogonal matrix has q^2 ~ Beta(1/2, (n-1)/2);
    # 3000 independent blocks give 3000 independent q_00 values.
    n, blocks = 12, 3000
    weight = initlab.orthogonal().sample((blocks * n, n), layout=Layout("linear", blocks=blocks), seed=4)
    first_entries = weight.reshape(blocks, n, n)[:, 0, 0].astype(np.float64)
    assert stats.kstest(first_entries**2, stats.beta(0.5, (n - 1) / 2).cdf).pvalue > KS_P_MIN
    # and signs are symmetric: the Mezzadri sign fix removes QR's bias
    assert abs(np.mean(first_entries > 0) - 0.5) < 5 * 0.5 / math.sqrt(blocks)


def test_orthogonal_target_std():
    assert initlab.orthogonal(2.0).target_std(shape=(32, 128)) == pytest.approx(2.0 / math.sqrt(128))
    values = initlab.orthogonal(2.0).sample((32, 128))
    assert values.std() == pytest.approx(2.0 / math.sqrt(128), rel=0.02)


@pytest.mark.parametrize("shape, groups", [((16, 16, 3), 1), ((32, 8, 3, 3), 4), ((16, 16, 3, 3, 3), 1), ((32, 16, 5), 1)])
def test_delta_orthogonal_centre_tap_orthogonal_and_other_taps_zero(shape, groups):
    weight = initlab.delta_orthogonal(gain=2.0).init_(torch.empty(shape), layout=Layout("conv", groups=groups), seed=2)
    centre = tuple(size // 2 for size in shape[2:])
    tap = weight[(slice(None), slice(None)) + centre].double()
    per_group = shape[0] // groups
    for group in range(groups):
        block = tap[group * per_group:(group + 1) * per_group]
        gram = block.T @ block if block.shape[0] >= block.shape[1] else block @ block.T
        assert torch.allclose(gram, 4.0 * torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-5)
    others = weight.clone()
    others[(slice(None), slice(None)) + centre] = 0.0
    assert torch.count_nonzero(others) == 0


@pytest.mark.parametrize("shape, groups", [((6, 6), 1), ((4, 7), 1), ((8, 4, 3, 3), 2), ((16, 4, 5), 4), ((3, 3, 3, 3, 3), 1)])
def test_identity_equals_torch_eye_and_dirac(shape, groups):
    ours = initlab.identity(gain=1.5).init_(torch.empty(shape), layout=Layout("linear" if len(shape) == 2 else "conv", groups=groups))
    expected = torch.empty(shape)
    if len(shape) == 2:
        torch.nn.init.eye_(expected).mul_(1.5)
    else:
        torch.nn.init.dirac_(expected, groups=groups).mul_(1.5)
    assert torch.equal(ours, expected)


def test_sparse_zeros_per_column_and_normal_nonzeros():
    rows, cols, sparsity, std = 200, 500, 0.3, 0.05
    values = initlab.sparse(sparsity, std).sample((rows, cols), seed=9)
    zeros_per_column = (values == 0).sum(axis=0)
    assert np.all(zeros_per_column == math.ceil(sparsity * rows))
    nonzero = values[values != 0].astype(np.float64)
    assert stats.kstest(nonzero, stats.norm(0, std).cdf).pvalue > KS_P_MIN
    assert initlab.sparse(sparsity, std).target_std(shape=(rows, cols)) == pytest.approx(std * math.sqrt(1 - 60 / 200))


# ------------------------------------------------------------------ torch tensors in place


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_init_in_place_on_own_dtype_equals_float32_sample_cast(dtype):
    tensor = torch.empty(64, 48, dtype=dtype)
    returned = initlab.he_normal().init_(tensor, seed=5, name="layer.weight")
    assert returned is tensor and tensor.dtype == dtype
    reference = initlab.he_normal().sample((64, 48), seed=5, name="layer.weight")
    assert torch.equal(tensor, torch.from_numpy(reference).to(dtype))


def test_init_shard_equals_slice_of_full():
    full = initlab.glorot_uniform().init_(torch.empty(96, 40), seed=1, name="w")
    shard = initlab.glorot_uniform().init_(torch.empty(32, 40), seed=1, name="w", shard=((96, 40), (slice(32, 64),)))
    assert torch.equal(shard, full[32:64])
    ortho_full = initlab.orthogonal().init_(torch.empty(96, 40), seed=1, name="w")
    ortho_shard = initlab.orthogonal().init_(torch.empty(96, 10), seed=1, name="w", shard=((96, 40), (slice(None), slice(30, 40))))
    assert torch.equal(ortho_shard, ortho_full[:, 30:40])


def test_sample_index_and_dtype():
    full = initlab.normal().sample((10, 20), seed=2)
    assert np.array_equal(initlab.normal().sample((10, 20), seed=2, index=(slice(2, 4),)), full[2:4])
    assert initlab.normal().sample((3, 3), dtype="float64").dtype == np.float64


# ------------------------------------------------------------------ lookup and round trip


@pytest.mark.parametrize("name", sorted(set(known_schemes())))
def test_every_scheme_round_trips_through_to_dict(name):
    scheme = get(name, value=0.5) if name == "constant" else get(name)
    assert from_dict(scheme.to_dict()) == scheme
    assert from_dict({"scheme": name, **({"value": 0.5} if name == "constant" else {})}) == scheme


def test_aliases():
    assert get("xavier_uniform") == get("glorot_uniform") == initlab.xavier_uniform()
    assert get("kaiming_normal", mode="fan_out") == initlab.he_normal(mode="fan_out")
    assert get("Kaiming-Uniform") == initlab.he_uniform()


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: initlab.normal(std=-1.0), "normal: std=-1.0 is invalid; expected a number >= 0."),
        (lambda: initlab.normal(std=float("nan")), "normal: std=nan is invalid; expected a finite number."),
        (lambda: initlab.truncated_normal(std=float("inf")), "truncated_normal: std=inf is invalid; expected a finite number."),
        (lambda: initlab.sparse(sparsity=1.0), "sparse: sparsity=1.0 is invalid; expected 0 <= sparsity < 1."),
        (lambda: initlab.sparse(sparsity=-0.1), "sparse: sparsity=-0.1 is invalid; expected 0 <= sparsity < 1."),
        (lambda: initlab.uniform(1.0, 1.0), "uniform: low=1.0 and high=1.0 are invalid; expected low < high."),
        (lambda: initlab.truncated_normal(bound=0.0), "truncated_normal: bound=0.0 is invalid; expected a number > 0."),
        (lambda: initlab.variance_scaling(mode="fan_sum"),
         "variance_scaling: mode='fan_sum' is invalid; expected one of fan_in, fan_out, fan_avg, fan_geo_avg."),
        (lambda: initlab.he_normal().init_(torch.empty(256), name="encoder.0.bias"),
         "he_normal cannot initialise 'encoder.0.bias' (shape (256,)): shape=(256,) has 1 dimension(s); a fan-based "
         "scheme needs a tensor with 2 or more dimensions. Use zeros() or constant(value) for biases."),
        (lambda: initlab.glorot_uniform().init_(torch.empty(0, 4), name="w"),
         "glorot_uniform cannot initialise 'w' (shape (0, 4)): shape=(0, 4) has a dimension of size 0, so fan_in "
         "or fan_out is 0; expected every dimension >= 1."),
        (lambda: initlab.orthogonal().init_(torch.empty(8), name="fc.bias"),
         "orthogonal cannot initialise 'fc.bias' (shape (8,)): it needs a tensor with 2 or more non-empty dimensions. "
         "Use zeros() or constant(value) for biases."),
        (lambda: initlab.normal().init_(torch.empty(4, 4, device="meta"), name="w"),
         "normal cannot initialise 'w' (shape (4, 4)): the tensor is on the meta device and has no storage; "
         "call model.to_empty(device=...) first."),
        (lambda: initlab.normal().init_(torch.empty(4, dtype=torch.int64)),
         "normal cannot initialise 'the tensor': dtype=torch.int64 is invalid; expected float16, bfloat16, float32 or float64."),
        (lambda: initlab.normal().sample((4, 4), index=(slice(0, 9),)),
         "index=(slice(0, 9, None),) is outside the full shape (4, 4): slice(0, 9, None) in dimension 0 (size 4); "
         "expected bounds within [0, 4]."),
        (lambda: get("he_normall"), None),
        (lambda: get("glorot_normal", scale=2), "initlab.get('glorot_normal'): unknown argument(s) scale; glorot_normal accepts: gain, distribution."),
        (lambda: from_dict({"std": 1}), "schemes.from_dict: data={'std': 1} is invalid; expected a mapping with a 'scheme' key."),
    ],
)
def test_bad_input_is_a_clear_initlab_error(call, message):
    with pytest.raises(InitlabError) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    if message is not None:
        assert str(caught.value) == message


def test_unknown_scheme_lists_known_names_and_suggests():
    with pytest.raises(InitlabError) as caught:
        get("he_normall")
    text = str(caught.value)
    assert text.startswith("initlab.get: unknown scheme 'he_normall'; expected one of: constant, delta_orthogonal,")
    assert "Did you mean he_normal" in text


# ------------------------------------------------------------------ thread invariance (issue 21)

FILL_AND_DIGEST = """
import hashlib, json, sys
import torch
torch.set_num_threads(int(sys.argv[1]))  # this subprocess's own setting
import initlab
from initlab import Layout
from torch import nn

def digest(tensor):
    return hashlib.sha256(tensor.detach().contiguous().numpy().tobytes()).hexdigest()

found = {}
shapes = {"linear": [(96, 80), (700, 300), (300, 700), (1100, 1000)], "conv": [(64, 32, 3, 3), (256, 128, 3)]}
for name in initlab.known_schemes():
    scheme = initlab.get(name, value=0.5) if name == "constant" else initlab.get(name)
    for kind, kind_shapes in shapes.items():
        for shape in kind_shapes:
            for dtype in (torch.float32, torch.float64):
                tensor = torch.empty(shape, dtype=dtype)
                try:
                    scheme.init_(tensor, layout=Layout(kind), seed=3, name="w")
                except initlab.InitlabError:  # e.g. delta_orthogonal of a matrix
                    continue
                found[f"{name} {shape} {dtype}"] = digest(tensor)

def convnet():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.Tanh(),
                         nn.Flatten(), nn.Linear(64 * 8 * 8, 300), nn.ReLU(), nn.Linear(300, 10))

batch = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
plans = {
    "auto": "auto",
    "auto, residual scaled": initlab.Plan.auto(initlab.Residual("7")),
    "orthogonal": initlab.Plan([initlab.Rule(type=(nn.Linear, nn.Conv2d), weight=initlab.orthogonal())]),
    "delta orthogonal": initlab.Plan([initlab.Rule(type=nn.Conv2d, weight=initlab.delta_orthogonal()),
                                      initlab.Rule(type=nn.Linear, weight=initlab.orthogonal(2.0))]),
}
preset_arguments = {"gpt2": {"n_layer": 2}, "nanogpt": {"n_layer": 2},
                    "t5": {"d_model": 64, "d_kv": 8, "num_heads": 8, "d_ff": 128},
                    "fixup": {"n_branches": 2, "branch_layers": 2, "inner": "0", "last": "2"},
                    "t_fixup": {"n_layers": 2, "d_model": 64}, "deepnet": {"n_encoder": 2}}
for name in initlab.nn.presets.names():  # every built-in plan
    plans[f"preset {name}"] = initlab.nn.presets.preset(name, **preset_arguments.get(name, {}))
for name, plan in plans.items():
    model = convnet()
    try:
        initlab.init_(model, plan, seed=5, example_input=batch)
    except initlab.InitlabError as error:  # a preset that needs layers this model lacks: the same at any count
        found[f"init_ {name}"] = str(error)
        continue
    found[f"init_ {name}"] = [digest(parameter) for parameter in model.parameters()]

torch.manual_seed(0)
mlp = nn.Sequential(nn.Linear(48, 128), nn.ReLU(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 10))
initlab.lsuv_(mlp, torch.randn(32, 48, generator=torch.Generator().manual_seed(2)), seed=5)
found["lsuv_"] = [digest(parameter) for parameter in mlp.parameters()]
print(json.dumps(found))
"""


def digests(torch_threads: int, fill_threads: int, blas_threads: int) -> dict:
    environment = {"INITLAB_FILL_THREADS": str(fill_threads), "OPENBLAS_NUM_THREADS": str(blas_threads),
                   "OMP_NUM_THREADS": str(blas_threads)}
    result = subprocess.run([sys.executable, "-c", FILL_AND_DIGEST, str(torch_threads)],
                            env={**os.environ, **environment}, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_values_are_the_same_at_one_and_two_threads():
    # torch's thread count (set in each subprocess), initlab's fill threads and numpy's BLAS threads all
    # change; orthogonal and delta_orthogonal used to follow the QR's thread count (issue 21)
    one, two = digests(1, 1, 1), digests(2, 3, 2)
    assert one.keys() == two.keys() and len(one) > 300
    applied = [key for key in one if key.startswith("init_ preset") and isinstance(one[key], list)]
    assert len(applied) >= 8, sorted(key for key in one if key.startswith("init_"))
    assert [key for key in one if one[key] != two[key]] == []


@pytest.mark.parametrize("slices", [1, 2, 3])
def test_exact_matmul_products_of_the_integer_parts_are_exact(slices, monkeypatch):
    # the integer parts' products equal Python's exact integer arithmetic, whatever BLAS does
    products = []
    original = initlab.schemes.householder._integer_product

    def checked(left, right):
        result = original(left, right)
        products.append((left, right, result.copy()))  # the caller scales the product in place
        return result

    monkeypatch.setattr(initlab.schemes.householder, "_integer_product", checked)
    rng = np.random.default_rng(slices)
    left, right = rng.standard_normal((2, 40, 3000)) * 1e3, rng.standard_normal((2, 3000, 30)) * 1e-3
    result = exact_matmul(left, right, slices)
    assert len(products) == slices * (slices + 1) // 2
    for left_integers, right_integers, product in products:
        assert np.all(np.abs(product) < 2.0**53)
        as_integers = [array.astype(np.int64).astype(object) for array in (left_integers, right_integers, product)]
        assert np.array_equal(np.einsum("bik,bkj->bij", as_integers[0], as_integers[1]), as_integers[2])
    # and the result is left @ right within the documented bound (per entry, relative to |row| |column|)
    scale = np.linalg.norm(left, axis=-1)[..., :, None] * np.linalg.norm(right, axis=-2)[..., None, :]
    bound = (slices + 1) * (math.sqrt(3000) * 2.0**-26) ** slices + 2.0**-50
    assert np.all(np.abs(result - left @ right) <= bound * scale)


@pytest.mark.parametrize("rows, cols, slices, tolerance", [(300, 300, 1, 1e-6), (700, 300, 1, 1e-6),
                                                           (600, 520, 3, 1e-14), (12, 12, 3, 1e-15)])
def test_orthonormal_columns_equal_lapack_householder_product_of_the_same_reflectors(rows, cols, slices, tolerance):
    gaussian = torch.randn(rows, cols, dtype=torch.float64, generator=torch.Generator().manual_seed(rows))
    lower = gaussian.tril()
    norms, alpha = lower.square().sum(0).sqrt(), lower.diagonal().clone()
    sign = torch.where(alpha >= 0, 1.0, -1.0).double()
    beta = -sign * norms
    reference = torch.linalg.householder_product(lower / (alpha - beta), (beta - alpha) / beta) * -sign
    assert float((orthonormal_columns(gaussian[None], slices)[0] - reference).abs().max()) < tolerance
