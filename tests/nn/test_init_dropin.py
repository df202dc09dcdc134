"""initlab.nn.init against torch.nn.init: same API, distributions, exact values, errors, warnings.

Every random function is checked with a Kolmogorov-Smirnov test against the
distribution torch's documentation states (p > 1e-4 with fixed seeds; a
correct sampler fails one such test with probability 1e-4), deterministic
ones for bit-exact agreement with torch, and bad inputs for the same
exception type, message and warning category as torch.
"""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.init as torch_init
from scipy import stats

from initlab import InitlabError
from initlab import random as streams
from initlab.nn import init
from initlab.random import CHUNK, Stream

KS_P_MIN = 1e-4
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def ks_pvalue(tensor: torch.Tensor, cdf) -> float:
    return stats.kstest(tensor.detach().double().flatten().numpy(), cdf).pvalue


def seeded(function, *args, seed=0, **kwargs):
    torch.manual_seed(seed)
    return function(*args, **kwargs)


# --------------------------------------------------------------------------- API


def test_every_public_torch_function_is_exported():
    assert init.__all__ == torch_init.__all__
    for name in torch_init.__all__:
        assert callable(getattr(init, name)), name


@pytest.mark.parametrize("name", torch_init.__all__)
def test_signature_extends_torchs(name):
    ours = list(inspect.signature(getattr(init, name)).parameters.values())
    theirs = list(inspect.signature(getattr(torch_init, name)).parameters.values())
    if name.endswith("_") or name == "calculate_gain":
        assert [(p.name, p.kind, p.default) for p in ours[: len(theirs)]] == [
            (p.name, p.kind, p.default) for p in theirs
        ]
        # initlab's extensions are keyword-only, so positional calls mean the same
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in ours[len(theirs) :])
    else:  # deprecated aliases take (*args, **kwargs) like torch's
        assert [p.kind for p in ours] == [p.kind for p in theirs]


RANDOM_CALLS = {
    "uniform_": lambda f, t: f(t, -1.0, 2.0),
    "normal_": lambda f, t: f(t, 0.5, 2.0),
    "trunc_normal_": lambda f, t: f(t, 0.0, 1.0, -2.0, 2.0),
    "xavier_uniform_": lambda f, t: f(t, 1.5),
    "xavier_normal_": lambda f, t: f(t),
    "kaiming_uniform_": lambda f, t: f(t, math.sqrt(5)),
    "kaiming_normal_": lambda f, t: f(t, 0, "fan_out", "relu"),
    "orthogonal_": lambda f, t: f(t, 2.0),
    "sparse_": lambda f, t: f(t, 0.25),
}


@pytest.mark.parametrize("name", sorted(RANDOM_CALLS))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_random_functions_return_the_tensor_and_work_on_every_float_dtype(name, dtype):
    tensor = torch.empty(40, 30, dtype=dtype)
    result = RANDOM_CALLS[name](getattr(init, name), tensor)
    assert result is tensor
    assert tensor.dtype == dtype and torch.isfinite(tensor).all()
    assert tensor.float().std() > 0


@pytest.mark.parametrize("name", sorted(RANDOM_CALLS))
def test_random_functions_fill_views_in_place(name):
    base = torch.zeros(30, 40)
    view = base.t()  # non-contiguous (40, 30)
    generator = torch.Generator().manual_seed(7)
    RANDOM_CALLS[name](lambda t, *a: getattr(init, name)(t, *a, generator=generator), view)
    contiguous = torch.empty(40, 30)
    generator = torch.Generator().manual_seed(7)
    RANDOM_CALLS[name](lambda t, *a: getattr(init, name)(t, *a, generator=generator), contiguous)
    # the values depend on the row-major index in the view's shape, not on its strides
    assert torch.equal(view, contiguous)
    assert torch.equal(base, contiguous.t())


def test_parameters_requiring_grad_are_filled_without_autograd_errors():
    weight = torch.nn.Parameter(torch.empty(64, 32))
    for name, call in RANDOM_CALLS.items():
        assert call(getattr(init, name), weight) is weight
        assert weight.requires_grad and weight.grad_fn is None


# --------------------------------------------------------------------------- distributions


def test_uniform_ks():
    tensor = seeded(init.uniform_, torch.empty(400, 500), -0.5, 2.0)
    assert ks_pvalue(tensor, stats.uniform(-0.5, 2.5).cdf) > KS_P_MIN
    assert tensor.min() >= -0.5 and tensor.max() < 2.0


def test_normal_ks():
    tensor = seeded(init.normal_, torch.empty(400, 500), 0.3, 2.0)
    assert ks_pvalue(tensor, stats.norm(0.3, 2.0).cdf) > KS_P_MIN


@pytest.mark.parametrize(
    "mean, std, a, b",
    [
        (0.0, 1.0, -2.0, 2.0),  # the default
        (1.0, 0.5, 0.0, 3.0),  # absolute bounds, asymmetric
        (0.0, 0.02, -0.04, 0.04),  # small std (torch's docs' ViT-style use)
        (0.0, 1.0, 0.1, 0.2),  # narrow interval, mass 4 %
        (0.0, 1.0, -math.inf, -3.0),  # one-sided far tail (torch's sampler raises here)
        (0.0, 1.0, 5.0, 6.0),  # far from the mean (torch warns)
        (0.0, 2.0, -math.inf, math.inf),  # untruncated
    ],
)
def test_trunc_normal_ks_in_absolute_units(mean, std, a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tensor = seeded(init.trunc_normal_, torch.empty(300, 400), mean, std, a, b)
    alpha, beta = (a - mean) / std, (b - mean) / std
    assert ks_pvalue(tensor, stats.truncnorm(alpha, beta, loc=mean, scale=std).cdf) > KS_P_MIN
    assert tensor.min() >= a and tensor.max() <= b


def test_trunc_normal_has_no_clamped_boundary_values():
    tensor = seeded(init.trunc_normal_, torch.empty(1000, 1000), 0.0, 1.0, -0.5, 0.5)
    # torch's erfinv-and-clamp sampler piles values on the bounds; a continuous one has none
    assert (tensor == -0.5).sum() + (tensor == 0.5).sum() <= 2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_trunc_normal_half_precision_stays_within_bounds(dtype):
    tensor = seeded(init.trunc_normal_, torch.empty(500, 400, dtype=dtype), 0.0, 1.0, -0.7, 1.3)
    assert tensor.min() >= -0.7 and tensor.max() <= 1.3
    # and the rounded values still follow the distribution (rounding moves a value by <= 2^-8 relative)
    assert ks_pvalue(tensor[:20], stats.truncnorm(-0.7, 1.3).cdf) > KS_P_MIN


def test_trunc_normal_negative_std_acts_as_its_magnitude_like_torch():
    with pytest.warns(UserWarning, match="mean is more than 2 std"):  # torch's test on the raw std
        tensor = seeded(init.trunc_normal_, torch.empty(300, 300), 0.0, -1.0, -1.0, 2.0)
    assert ks_pvalue(tensor, stats.truncnorm(-1.0, 2.0).cdf) > KS_P_MIN
    assert torch.equal(init.trunc_normal_(torch.empty(3, 4), 0.0, 1.0, 0.25, 0.25), torch.full((3, 4), 0.25))


def _torch_fans(shape):
    return torch_init._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("shape", [(300, 200), (64, 16, 3, 3), (32, 48, 5)])
def test_xavier_uniform_ks(shape):
    fan_in, fan_out = _torch_fans(shape)
    bound = 1.5 * math.sqrt(6.0 / (fan_in + fan_out))
    tensor = seeded(init.xavier_uniform_, torch.empty(shape), gain=1.5)
    assert ks_pvalue(tensor, stats.uniform(-bound, 2 * bound).cdf) > KS_P_MIN


@pytest.mark.parametrize("shape", [(300, 200), (64, 16, 3, 3)])
def test_xavier_normal_ks(shape):
    fan_in, fan_out = _torch_fans(shape)
    std = 2.0 * math.sqrt(2.0 / (fan_in + fan_out))
    tensor = seeded(init.xavier_normal_, torch.empty(shape), 2.0)
    assert ks_pvalue(tensor, stats.norm(0, std).cdf) > KS_P_MIN


@pytest.mark.parametrize(
    "shape, a, mode, nonlinearity",
    [
        ((300, 200), math.sqrt(5), "fan_in", "leaky_relu"),  # nn.Linear's default
        ((64, 16, 3, 3), 0, "fan_out", "relu"),  # ResNet's convs
        ((128, 64), 0.2, "fan_in", "leaky_relu"),
        ((100, 300), 0, "FAN_OUT", "tanh"),
    ],
)
def test_kaiming_uniform_and_normal_ks(shape, a, mode, nonlinearity):
    fan_in, fan_out = _torch_fans(shape)
    fan = fan_in if mode.lower() == "fan_in" else fan_out
    std = torch_init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    uniform = seeded(init.kaiming_uniform_, torch.empty(shape), a, mode, nonlinearity)
    bound = math.sqrt(3.0) * std
    assert ks_pvalue(uniform, stats.uniform(-bound, 2 * bound).cdf) > KS_P_MIN
    normal = seeded(init.kaiming_normal_, torch.empty(shape), a, mode, nonlinearity, seed=1)
    assert ks_pvalue(normal, stats.norm(0, std).cdf) > KS_P_MIN


def _haar_entry_cdf(n: int):
    """CDF of one entry of a Haar n x n orthogonal matrix: q^2 ~ Beta(1/2, (n-1)/2), sign symmetric."""
    beta = stats.beta(0.5, (n - 1) / 2)

    def cdf(x):
        x = np.asarray(x, dtype=float)
        return 0.5 + np.sign(x) * 0.5 * beta.cdf(x * x)

    return cdf


@pytest.mark.parametrize("shape", [(4, 4), (6, 4), (4, 6)])
def test_orthogonal_is_haar_distributed(shape):
    # one entry per matrix (entries of one matrix are dependent), cycling over all positions
    generator = torch.Generator().manual_seed(0)
    rows, cols = shape
    n = max(rows, cols)
    samples = []
    for k in range(3000):
        q = init.orthogonal_(torch.empty(shape, dtype=torch.float64), generator=generator)
        samples.append(float(q[k % rows, (k // rows) % cols]))
    # an entry of the first min(rows, cols) columns/rows of a Haar n x n matrix
    assert stats.kstest(samples, _haar_entry_cdf(n)).pvalue > KS_P_MIN
    # the sign correction matters: without it the diagonal would be one-signed
    diagonal = [float(init.orthogonal_(torch.empty(shape), generator=generator)[0, 0]) for _ in range(400)]
    assert 120 < sum(value > 0 for value in diagonal) < 280


@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (64, 64), (16, 8, 3, 3), (8, 16, 3, 3)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_orthogonal_rows_or_columns_are_orthonormal_times_gain(shape, dtype):
    tensor = seeded(init.orthogonal_, torch.empty(shape, dtype=dtype), 1.5)
    matrix = tensor.reshape(shape[0], -1).double()
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    tolerance = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 5e-2}[dtype]
    assert torch.allclose(gram, 2.25 * torch.eye(gram.shape[0], dtype=torch.float64), atol=tolerance)


def test_sparse_zeros_per_column_values_and_positions():
    rows, cols, sparsity, std = 50, 4000, 0.3, 0.05
    tensor = seeded(init.sparse_, torch.empty(rows, cols), sparsity, std)
    zeros = tensor == 0
    assert (zeros.sum(0) == math.ceil(sparsity * rows)).all()
    assert ks_pvalue(tensor[~zeros], stats.norm(0, std).cdf) > KS_P_MIN
    # each row is zero in a column with probability 15/50; chi-square over the rows
    counts = zeros.sum(1).double().numpy()
    expected = cols * math.ceil(sparsity * rows) / rows
    assert stats.chisquare(counts, np.full(rows, expected)).pvalue > KS_P_MIN


def test_sparse_out_of_range_sparsity_follows_torchs_slice_semantics():
    assert (init.sparse_(torch.empty(3, 5), 1.5) == 0).all()
    # ceil(-0.5 * 4) = -2: torch zeros randperm(4)[:-2], i.e. 2 entries per column
    assert ((init.sparse_(torch.empty(4, 5), -0.5) == 0).sum(0) == 2).all()


# --------------------------------------------------------------------------- deterministic: exact


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool], ids=str)
def test_eye_matches_torch_exactly(shape, dtype):
    ours, theirs = torch.full(shape, 3).to(dtype), torch.full(shape, 3).to(dtype)
    assert init.eye_(ours) is ours
    torch_init.eye_(theirs)
    assert torch.equal(ours, theirs)
    view = torch.full(shape[::-1], 3).to(dtype).t()
    reference = torch.full(shape, 3).to(dtype)
    assert torch.equal(init.eye_(view), torch_init.eye_(reference))


@pytest.mark.parametrize(
    "shape, groups",
    [((4, 4, 3), 1), ((6, 4, 5, 5), 1), ((3, 5, 3, 3), 1), ((8, 2, 3, 3, 3), 1),
     ((6, 2, 3, 3), 3), ((24, 16, 5, 5), 3), ((4, 2, 3), -2), ((6, 1, 4, 2), 2)],
)
def test_dirac_matches_torch_exactly(shape, groups):
    ours, theirs = torch.randn(shape), torch.randn(shape)
    assert init.dirac_(ours, groups) is ours
    torch_init.dirac_(theirs, groups)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64], ids=str)
def test_constant_ones_zeros_match_torch_exactly(dtype):
    for ours_fn, theirs_fn, args in [
        (init.constant_, torch_init.constant_, (0.3,)),
        (init.constant_, torch_init.constant_, (-7,)),
        (init.ones_, torch_init.ones_, ()),
        (init.zeros_, torch_init.zeros_, ()),
    ]:
        ours, theirs = torch.empty(4, 6, dtype=dtype), torch.empty(4, 6, dtype=dtype)
        assert ours_fn(ours, *args) is ours
        assert torch.equal(ours, theirs_fn(theirs, *args))


@pytest.mark.parametrize(
    "nonlinearity, param",
    [("linear", None), ("conv1d", None), ("conv_transpose3d", None), ("sigmoid", None),
     ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
     ("leaky_relu", 3), ("leaky_relu", np.float64(0.1)), ("selu", None), ("relu", "ignored")],
)
def test_calculate_gain_matches_torch_value_and_type(nonlinearity, param):
    ours, theirs = init.calculate_gain(nonlinearity, param), torch_init.calculate_gain(nonlinearity, param)
    assert ours == theirs and type(ours) is type(theirs)


def test_fan_helpers_match_torch():
    for shape in [(3, 5), (7, 2, 3), (4, 6, 2, 5), (0, 3)]:
        tensor = torch.empty(shape)
        assert init._calculate_fan_in_and_fan_out(tensor) == torch_init._calculate_fan_in_and_fan_out(tensor)


# --------------------------------------------------------------------------- errors and warnings


def _empty(*shape, dtype=torch.float32):
    return lambda: torch.empty(*shape, dtype=dtype)


BAD_CALLS = {
    "normal negative std": ("normal_", _empty(3, 4), (0, -1.0)),
    "normal nan std": ("normal_", _empty(3, 4), (0, math.nan)),
    "normal str std": ("normal_", _empty(3, 4), (0, "x")),
    "normal int tensor": ("normal_", _empty(3, dtype=torch.int64), ()),
    "normal bad generator": ("normal_", _empty(3), (0, 1, 5)),
    "normal not a tensor": ("normal_", lambda: [1.0, 2.0], ()),
    "uniform a > b": ("uniform_", _empty(3, 4), (1.0, 0.0)),
    "uniform infinite": ("uniform_", _empty(3, 4), (-math.inf, 1.0)),
    "uniform nan": ("uniform_", _empty(3, 4), (math.nan, 1.0)),
    "uniform range too wide": ("uniform_", _empty(3, 4), (-3e38, 3e38)),
    "uniform out of bfloat16": ("uniform_", _empty(3, dtype=torch.bfloat16), (-1e300, 0.0)),
    "uniform out of float16": ("uniform_", _empty(3, dtype=torch.float16), (-1e6, 0.0)),
    "uniform int tensor": ("uniform_", _empty(3, dtype=torch.int64), (0, 10)),
    "trunc std 0": ("trunc_normal_", _empty(3, 4), (0.0, 0.0)),
    "trunc a > b": ("trunc_normal_", _empty(3, 4), (0.0, 1.0, 2.0, -2.0)),
    "trunc nan bound": ("trunc_normal_", _empty(3, 4), (0.0, 1.0, math.nan, 1.0)),
    "trunc str std": ("trunc_normal_", _empty(3, 4), (0.0, "x")),
    "trunc far from mean": ("trunc_normal_", _empty(3, 4), (0.0, 1.0, 5.0, 6.0)),
    "trunc int tensor": ("trunc_normal_", _empty(3, dtype=torch.int64), ()),
    "xavier 1-D": ("xavier_uniform_", _empty(3), ()),
    "xavier 0-D": ("xavier_normal_", _empty(), ()),
    "xavier both fans 0": ("xavier_uniform_", _empty(0, 0), ()),
    "xavier str gain": ("xavier_uniform_", _empty(3, 3), ("a",)),
    "kaiming 1-D": ("kaiming_uniform_", _empty(3), ()),
    "kaiming zero elements": ("kaiming_uniform_", _empty(0, 3), ()),
    "kaiming normal zero elements": ("kaiming_normal_", _empty(4, 0), ()),
    "kaiming bad mode": ("kaiming_normal_", _empty(3, 3), (0, "fan_avg")),
    "kaiming mode None": ("kaiming_uniform_", _empty(3, 3), (0, None)),
    "kaiming bad nonlinearity": ("kaiming_uniform_", _empty(3, 3), (0, "fan_in", "gelu")),
    "kaiming slope str": ("kaiming_uniform_", _empty(3, 3), ("x",)),
    "kaiming slope bool": ("kaiming_normal_", _empty(3, 3), (True,)),
    "kaiming int tensor": ("kaiming_uniform_", _empty(3, 3, dtype=torch.int64), ()),
    "kaiming not a tensor": ("kaiming_uniform_", lambda: [1.0], ()),
    "eye 3-D": ("eye_", _empty(2, 2, 2), ()),
    "eye 1-D": ("eye_", _empty(2), ()),
    "dirac 2-D": ("dirac_", _empty(2, 2), ()),
    "dirac groups do not divide": ("dirac_", _empty(5, 2, 3), (2,)),
    "dirac zero groups": ("dirac_", _empty(4, 2, 3), (0,)),
    "orthogonal 1-D": ("orthogonal_", _empty(3), ()),
    "orthogonal str gain": ("orthogonal_", _empty(3, 3), ("a",)),
    "orthogonal int tensor": ("orthogonal_", _empty(3, 3, dtype=torch.int64), ()),
    "sparse 3-D": ("sparse_", _empty(3, 4, 2), (0.1,)),
    "sparse 1-D": ("sparse_", _empty(3), (0.1,)),
    "sparse str sparsity": ("sparse_", _empty(3, 4), ("a",)),
    "sparse negative std": ("sparse_", _empty(3, 4), (0.5, -1.0)),
    "constant str": ("constant_", _empty(3), ("a",)),
    "gain leaky_relu bool": ("calculate_gain", lambda: "leaky_relu", (True,)),
    "gain leaky_relu str": ("calculate_gain", lambda: "leaky_relu", ("0.1",)),
    "gain leaky_relu float32": ("calculate_gain", lambda: "leaky_relu", (np.float32(0.1),)),
    "gain unknown": ("calculate_gain", lambda: "gelu", ()),
    "deprecated alias": ("normal", _empty(3), ()),
    "deprecated kaiming alias": ("kaiming_uniform", _empty(3, 3), ()),
}


def _outcome(function, make_input, args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            function(make_input(), *args)
            error = None
        except Exception as exception:  # noqa: BLE001 - comparing whatever torch raises
            error = (type(exception), str(exception))
    return error, [warning.category for warning in caught]


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_inputs_raise_and_warn_like_torch(case):
    name, make_input, args = BAD_CALLS[case]
    ours = _outcome(getattr(init, name), make_input, args)
    theirs = _outcome(getattr(torch_init, name), make_input, args)
    assert ours == theirs


def test_deprecated_aliases_warn_futurewarning_and_forward():
    for name in [n for n in torch_init.__all__ if not n.endswith("_") and n != "calculate_gain"]:
        tensor = torch.empty(4, 4, 3) if name == "dirac" else torch.empty(4, 4)
        args = (0.5,) if name in ("constant", "sparse") else ()
        with pytest.warns(FutureWarning, match=f"`nn.init.{name}` is now deprecated in favor of `nn.init.{name}_`"):
            assert getattr(init, name)(tensor, *args) is tensor


def test_kaiming_zero_element_warning_points_at_the_caller():
    with pytest.warns(UserWarning, match="zero-element") as record:
        init.kaiming_normal_(torch.empty(0, 4))
    assert record[0].filename == __file__


# --------------------------------------------------------------------------- reproducibility


SEEDED_CALLS = {
    "uniform_": lambda t, g=None: init.uniform_(t, -1, 1, generator=g),
    "normal_": lambda t, g=None: init.normal_(t, 0, 2, generator=g),
    "trunc_normal_": lambda t, g=None: init.trunc_normal_(t, 0, 1, -2, 2, generator=g),
    "trunc_normal_ tail": lambda t, g=None: init.trunc_normal_(t, 0, 1, 2.5, 4, generator=g),
    "xavier_uniform_": lambda t, g=None: init.xavier_uniform_(t, generator=g),
    "xavier_normal_": lambda t, g=None: init.xavier_normal_(t, generator=g),
    "kaiming_uniform_": lambda t, g=None: init.kaiming_uniform_(t, math.sqrt(5), generator=g),
    "kaiming_normal_": lambda t, g=None: init.kaiming_normal_(t, generator=g),
    "orthogonal_": lambda t, g=None: init.orthogonal_(t, generator=g),
    "sparse_": lambda t, g=None: init.sparse_(t, 0.4, generator=g),
}
BIG = (3, CHUNK // 2 + 1000)  # spans two chunks


def _run(name, shape=BIG, generator=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return SEEDED_CALLS[name](torch.empty(shape), generator)


@pytest.mark.parametrize("name", sorted(SEEDED_CALLS))
def test_manual_seed_reproduces_and_successive_calls_differ(name):
    torch.manual_seed(123)
    first, second = _run(name), _run(name)
    torch.manual_seed(123)
    again = _run(name)
    assert torch.equal(first, again)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("name", sorted(SEEDED_CALLS))
def test_generator_reproduces_and_leaves_the_global_generator_alone(name):
    state = torch.get_rng_state()
    generator = torch.Generator().manual_seed(5)
    first, second = _run(name, generator=generator), _run(name, generator=generator)
    assert torch.equal(torch.get_rng_state(), state)
    generator.manual_seed(5)
    assert torch.equal(_run(name, generator=generator), first)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("name", sorted(SEEDED_CALLS))
def test_values_do_not_depend_on_thread_counts(name, monkeypatch):
    torch.manual_seed(9)
    reference = _run(name, shape=(700, 400) if name == "orthogonal_" else BIG)
    previous = torch.get_num_threads()
    try:
        for torch_threads, fill_threads in [(1, 1), (2, 3), (1, 4)]:
            torch.set_num_threads(torch_threads)
            monkeypatch.setenv("INITLAB_FILL_THREADS", str(fill_threads))
            torch.manual_seed(9)
            assert torch.equal(_run(name, shape=reference.shape), reference), (torch_threads, fill_threads)
    finally:
        torch.set_num_threads(previous)


def test_the_documented_seeding_rule():
    """One int64 drawn with random_() seeds the stream Stream(s, ""); element i is its i-th value."""
    seed = int(torch.empty((), dtype=torch.int64).random_(generator=torch.Generator().manual_seed(42)))
    assert seed == init.draw_seed(torch.Generator().manual_seed(42))
    generator = torch.Generator().manual_seed(42)
    tensor = init.normal_(torch.empty(5, CHUNK // 3), generator=generator)
    expected = streams.normal_(torch.empty(5, CHUNK // 3), Stream(seed, init.STREAM_NAME))
    assert torch.equal(tensor, expected)
    # the global generator likewise: torch.manual_seed(s) then one draw
    torch.manual_seed(3)
    seed = int(torch.empty((), dtype=torch.int64).random_())
    torch.manual_seed(3)
    uniform = init.uniform_(torch.empty(1000))
    assert torch.equal(uniform, streams.uniform_(torch.empty(1000), Stream(seed, "")))
    torch.manual_seed(3)
    truncated = init.trunc_normal_(torch.empty(1000), 0.5, 2.0, -1.0, 3.0)
    reference = streams.truncated_normal_(torch.empty(1000), Stream(seed, ""), mean=0.5, std=2.0,
                                          low=-0.75, high=1.25)
    assert torch.equal(truncated, reference)


def test_a_call_draws_once_and_an_empty_tensor_draws_nothing():
    torch.manual_seed(0)
    init.normal_(torch.empty(0, 5))
    init.xavier_uniform_(torch.empty(0, 5))
    init.trunc_normal_(torch.empty(0))
    after_empty = torch.get_rng_state()
    torch.manual_seed(0)
    assert torch.equal(torch.get_rng_state(), after_empty)
    init.normal_(torch.empty(10**6))
    torch.manual_seed(0)
    torch.empty((), dtype=torch.int64).random_()
    one_draw = torch.get_rng_state()
    torch.manual_seed(0)
    init.normal_(torch.empty(10**6))
    assert torch.equal(torch.get_rng_state(), one_draw)


def test_dtypes_round_the_same_float32_values():
    generator = torch.Generator().manual_seed(1)
    single = init.normal_(torch.empty(1000), generator=generator)
    generator.manual_seed(1)
    half = init.normal_(torch.empty(1000, dtype=torch.bfloat16), generator=generator)
    assert torch.equal(half, single.to(torch.bfloat16))


# --------------------------------------------------------------------------- forward fans


def test_forward_fans_for_grouped_and_transposed_convolutions():
    grouped = torch.empty(64, 8, 3, 3)  # Conv2d(64, 64, 3, groups=8): in/groups = 8
    seeded(init.kaiming_normal_, grouped, 0, "fan_out", "relu", fans="forward", groups=8)
    expected = math.sqrt(2.0) / math.sqrt(8 * 9)  # fan_out per group: (64/8) * 9
    assert abs(grouped.std().item() - expected) < 6 * expected / math.sqrt(2 * grouped.numel())
    torch_counted = seeded(init.kaiming_normal_, torch.empty(64, 8, 3, 3), 0, "fan_out", "relu")
    assert abs(torch_counted.std().item() - math.sqrt(2.0 / (64 * 9))) < 0.1 * math.sqrt(2.0 / (64 * 9))

    transposed = torch.empty(16, 32, 4, 4)  # ConvTranspose2d(16, 32, 4): weight (in, out, k, k)
    # forward fan_in = 16 * 16 (torch's counting would say 32 * 16)
    seeded(init.kaiming_uniform_, transposed, fans="forward", layout="conv_transpose")
    bound = math.sqrt(2.0 / (1 + 0.01**2)) * math.sqrt(3.0 / (16 * 16))
    assert ks_pvalue(transposed, stats.uniform(-bound, 2 * bound).cdf) > KS_P_MIN


def test_forward_fans_without_layout_equal_torchs_counts():
    for shape in [(30, 20), (8, 4, 3, 3)]:
        generator = torch.Generator().manual_seed(0)
        forward = init.kaiming_uniform_(torch.empty(shape), fans="forward", generator=generator)
        generator.manual_seed(0)
        assert torch.equal(forward, init.kaiming_uniform_(torch.empty(shape), generator=generator))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fans": "fan_avg"}, "fans='fan_avg' is invalid"),
        ({"groups": 2}, "apply only with fans='forward'"),
        ({"layout": "conv"}, "apply only with fans='forward'"),
        ({"fans": "forward", "groups": 3}, "groups=3 does not divide"),
        ({"fans": "forward", "groups": 2, "layout": "linear"}, "groups apply to layout"),
        ({"fans": "forward", "layout": "dense"}, "kind='dense' is invalid"),
    ],
)
def test_fan_options_reject_bad_values_with_initlab_errors(kwargs, match):
    with pytest.raises(InitlabError, match=match):
        init.kaiming_uniform_(torch.empty(8, 4, 3, 3), **kwargs)
    assert issubclass(InitlabError, ValueError)


# --------------------------------------------------------------------------- handing over to torch


class LoggingTensor(torch.Tensor):
    """A subclass whose __torch_function__ records the functions it is handed."""

    seen: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


def test_torch_function_subclasses_get_torchs_own_function_objects():
    LoggingTensor.seen = []
    tensor = torch.empty(4, 5).as_subclass(LoggingTensor)
    init.uniform_(tensor)
    init.kaiming_uniform_(tensor)
    init.constant_(tensor, 1.0)
    assert torch_init.uniform_ in LoggingTensor.seen
    assert torch_init.kaiming_uniform_ in LoggingTensor.seen
    assert torch_init.constant_ in LoggingTensor.seen
    assert init.uniform_ not in LoggingTensor.seen


def test_meta_tensors_are_left_alone_without_drawing():
    state = torch.get_rng_state()
    for name, call in RANDOM_CALLS.items():
        tensor = torch.empty(6, 4, device="meta")
        assert call(getattr(init, name), tensor) is tensor
    assert torch.equal(torch.get_rng_state(), state)


def test_device_contexts_keep_initlab_values_and_other_modes_get_torchs_functions():
    def fresh():
        return torch.Generator().manual_seed(4)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = {name: call(torch.empty(40, 30), fresh()) for name, call in SEEDED_CALLS.items()}
    with torch.device("cpu"):
        for name, call in SEEDED_CALLS.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                assert torch.equal(call(torch.empty(40, 30), fresh()), reference[name]), name

    class Recording(torch.overrides.TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.seen.append(func)
            return func(*args, **(kwargs or {}))

    with Recording() as mode:
        init.uniform_(torch.empty(3, 4))
        init.normal_(torch.empty(3, 4))
    assert torch_init.uniform_ in mode.seen and torch_init.normal_ in mode.seen
