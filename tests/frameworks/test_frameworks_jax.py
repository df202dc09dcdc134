"""initlab.jax: every scheme as a jax.random initializer; agreement with jax.nn.initializers; Flax.

What agrees with initlab and what does not (module docstring of initlab.jax):
the distribution, fans, target std and bounds agree (two-sample KS tests
against JAX's own initializers and against initlab's streams, std within 5
standard errors, exact structure); the values do not (another generator).
"""

import math

import numpy as np
import pytest
from framework_stats import KS_P_MIN, assert_std_close
from scipy import stats

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'initlab[jax]')")

import jax.numpy as jnp
from jax.nn import initializers as jax_init

import initlab
import initlab.jax as initlab_jax
from initlab import InitlabError
from initlab.conventions import compare_conventions
from initlab.schemes import ALIASES, FACTORIES
from initlab.schemes.basic import KERAS_TRUNCATION_CORRECTION


def key(seed: int = 0):
    """A JAX key, made inside a test: a key made at import would start JAX's runtime during collection."""
    return jax.random.key(seed)

CONV = (3, 3, 32, 64)  # JAX/Flax HWIO: fan_in 288, fan_out 576
TRUNCATED_KURTOSIS = float(stats.truncnorm(-2, 2).stats(moments="k"))

AGREEMENT = [
    ("variance_scaling normal", initlab_jax.variance_scaling(2.0, "fan_in", "normal"),
     jax_init.variance_scaling(2.0, "fan_in", "normal"), CONV),
    ("variance_scaling truncated", initlab_jax.variance_scaling(0.5, "fan_out", "truncated_normal"),
     jax_init.variance_scaling(0.5, "fan_out", "truncated_normal"), CONV),
    ("variance_scaling uniform", initlab_jax.variance_scaling(1.0, "fan_avg", "uniform"),
     jax_init.variance_scaling(1.0, "fan_avg", "uniform"), CONV),
    ("variance_scaling axes", initlab_jax.variance_scaling(3.0, "fan_geo_avg", "normal", in_axis=1, out_axis=2,
                                                             batch_axis=0),
     jax_init.variance_scaling(3.0, "fan_geo_avg", "normal", in_axis=1, out_axis=2, batch_axis=0), (4, 96, 48)),
    ("variance_scaling in axes", initlab_jax.variance_scaling(1.0, "fan_in", "uniform", in_axis=(0, 1), out_axis=2),
     jax_init.variance_scaling(1.0, "fan_in", "uniform", in_axis=(0, 1), out_axis=2), (8, 16, 128)),
    ("glorot_normal truncated", initlab_jax.glorot_normal(distribution="truncated_normal"), jax_init.glorot_normal(),
     CONV),
    ("he_normal truncated", initlab_jax.he_normal(distribution="truncated_normal"), jax_init.he_normal(), CONV),
    ("lecun_normal truncated", initlab_jax.lecun_normal(distribution="truncated_normal"), jax_init.lecun_normal(),
     CONV),
    ("glorot_uniform", initlab_jax.glorot_uniform(), jax_init.glorot_uniform(), CONV),
    ("he_uniform", initlab_jax.he_uniform(), jax_init.he_uniform(), CONV),
    ("lecun_uniform", initlab_jax.lecun_uniform(), jax_init.lecun_uniform(), CONV),
    ("normal", initlab_jax.normal(std=0.3), jax_init.normal(0.3), CONV),
    ("uniform", initlab_jax.uniform(0.0, 0.7), jax_init.uniform(0.7), CONV),
    ("truncated_normal", initlab_jax.truncated_normal(0.2, bound=1.5),
     jax_init.truncated_normal(0.2, lower=-1.5, upper=1.5), CONV),
    ("orthogonal", initlab_jax.orthogonal(2.0), jax_init.orthogonal(2.0), (3, 3, 16, 64)),
    ("delta_orthogonal", initlab_jax.delta_orthogonal(), jax_init.delta_orthogonal(), (3, 3, 16, 32)),
]


def sample(init, shape, seed: int = 0) -> np.ndarray:
    return np.asarray(init(key(seed), shape, jnp.float32), dtype=np.float64)


@pytest.mark.parametrize("kind", sorted(FACTORIES) + sorted(ALIASES))
def test_every_scheme_is_a_traced_jax_initializer(kind):
    """Each initializer traces (make_jaxpr): the values come from jax.random, with no host round trip."""
    shape = (3, 3, 16, 32) if kind == "delta_orthogonal" else (32, 16)
    init = getattr(initlab_jax, kind)(*((0.5,) if kind == "constant" else ()))
    jaxpr = jax.make_jaxpr(lambda traced: init(traced, shape, jnp.float32))(key())
    assert jaxpr.out_avals[0].shape == shape and jaxpr.out_avals[0].dtype == jnp.float32
    target = ALIASES.get(kind, kind)
    assert init.scheme == initlab.get(target, **({"value": 0.5} if kind == "constant" else {}))
    assert init(key(), shape).dtype == jnp.zeros(()).dtype  # default: JAX's default float


@pytest.mark.parametrize(("ours", "theirs", "shape"), [case[1:] for case in AGREEMENT],
                         ids=[case[0] for case in AGREEMENT])
def test_agrees_in_distribution_with_jax_nn_initializers(ours, theirs, shape):
    mine, reference = sample(ours, shape), sample(theirs, shape, seed=1)
    assert mine.shape == reference.shape == shape
    assert stats.ks_2samp(mine.ravel(), reference.ravel()).pvalue > KS_P_MIN
    if ours.scheme.kind in ("uniform", "truncated_normal") or getattr(ours.scheme, "distribution", "normal") != "normal":
        # bounded: with ~10^4 draws both reach within 1 % of the same bound
        assert np.abs(mine).max() == pytest.approx(np.abs(reference).max(), rel=0.01)


def test_glorot_normal_is_a_plain_normal_here_and_truncated_in_jax():
    """Same std sqrt(2 / (fan_in + fan_out)); JAX's is cut at 2 sigma, sigma = std / 0.8796, initlab's is not."""
    std = math.sqrt(2.0 / (288 + 576))
    ours, theirs = sample(initlab_jax.glorot_normal(), CONV), sample(jax_init.glorot_normal(), CONV)
    assert_std_close(ours, std)
    assert_std_close(theirs, std, kurtosis=TRUNCATED_KURTOSIS)
    bound = 2.0 * std / KERAS_TRUNCATION_CORRECTION
    assert np.abs(theirs).max() <= bound * (1 + 1e-6) and np.abs(ours).max() > 1.2 * bound
    assert stats.kstest(ours.ravel(), stats.norm(0, std).cdf).pvalue > KS_P_MIN
    assert stats.kstest(theirs.ravel(), stats.truncnorm(-2, 2, scale=std / KERAS_TRUNCATION_CORRECTION).cdf).pvalue \
        > KS_P_MIN


def test_values_differ_from_initlab_streams_but_the_distribution_fans_and_std_agree():
    keyed = sample(initlab_jax.he_normal(), (128, 64))
    streamed = initlab.he_normal().sample((64, 128), seed=0, name="").T.astype(np.float64)
    assert not np.allclose(keyed, streamed)  # another generator: other numbers
    assert stats.ks_2samp(keyed.ravel(), streamed.ravel()).pvalue > KS_P_MIN
    report = compare_conventions(initlab.he_normal(), (128, 64), framework="jax")
    assert (report.row("initlab").fan_in, report.row("initlab").fan_out) == (128, 64)
    for values in (keyed, streamed):
        assert_std_close(values, report.row("initlab").std)
    bounded = sample(initlab_jax.he_uniform(), (128, 64))
    limit = math.sqrt(6.0 / 128)
    assert np.abs(bounded).max() <= limit and np.abs(bounded).max() >= 0.99 * limit


def test_structured_schemes_read_jax_layout():
    identity = sample(initlab_jax.identity(), (3, 3, 4, 4))
    np.testing.assert_array_equal(identity, np.transpose(initlab.identity().sample((4, 4, 3, 3)), (2, 3, 1, 0)))
    np.testing.assert_array_equal(sample(initlab_jax.identity(2.0), (5, 3)), initlab.identity(2.0).sample((3, 5)).T)
    batched = sample(initlab_jax.orthogonal(batch_axis=0), (4, 10, 6))
    for matrix in batched:
        np.testing.assert_allclose(matrix.T @ matrix, np.eye(6), atol=1e-5)
    kernel = sample(initlab_jax.delta_orthogonal(), (4, 4, 8, 16))  # even kernel: tap at 4 // 2 = 2, as torch
    centre = kernel[2, 2]
    np.testing.assert_allclose(centre @ centre.T, np.eye(8), atol=1e-5)
    assert np.count_nonzero(kernel) == np.count_nonzero(centre)
    sparse = sample(initlab_jax.sparse(0.3, 1.0), (50, 40))
    assert np.all((sparse == 0).sum(axis=1) == math.ceil(0.3 * 40))  # per input, among its out weights


def test_a_flax_dense_network_trains():
    nn = pytest.importorskip("flax.linen", reason="Flax is not installed (pip install 'initlab[jax]')")

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(64, kernel_init=initlab_jax.he_normal())(x))
            return nn.Dense(1, kernel_init=initlab_jax.glorot_uniform())(x)

    model = MLP()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((256, 16)), jnp.float32)
    y = x @ jnp.asarray(rng.standard_normal((16, 1)), jnp.float32) + jnp.abs(x[:, :1])
    params = model.init(key(), x)
    kernel = np.asarray(params["params"]["Dense_0"]["kernel"])
    assert kernel.shape == (16, 64)
    assert_std_close(kernel, math.sqrt(2.0 / 16))

    def loss(params):
        return jnp.mean((model.apply(params, x) - y) ** 2)

    step = jax.jit(lambda params: jax.tree.map(lambda p, g: p - 0.05 * g, params, jax.grad(loss)(params)))
    first = float(loss(params))
    for _ in range(30):
        params = step(params)
    assert float(loss(params)) < 0.25 * first


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: initlab_jax.orthogonal(in_axis=(0, 1))(key(), (2, 3, 4)),
         "initlab.jax.orthogonal: in_axis=(0, 1), out_axis=-1 are invalid for this scheme; expected one axis each."),
        (lambda: initlab_jax.he_normal()(key(), (5,)),
         ("initlab.jax.he_normal (shape (5,)): shape=(5,) has 1 dimension(s); a fan-based scheme needs a tensor with "
         "2 or more dimensions. Use zeros() or constant(value) for biases.")),
        (lambda: initlab_jax.normal()(key(), (2, 2), jnp.int32),
         "initlab.jax.normal: dtype=int32 is invalid; expected a real floating dtype."),
        (lambda: initlab_jax.he_normal(gain=2),
         ("initlab.jax.he_normal: arguments () {'gain': 2} are invalid (got an unexpected keyword argument 'gain'); "
         "expected the arguments of initlab.he_normal: mode, activation, negative_slope, distribution.")),
    ],
)
def test_bad_input_is_a_clear_initlab_error(call, message):
    with pytest.raises(InitlabError) as caught:
        call()
    assert str(caught.value) == message
