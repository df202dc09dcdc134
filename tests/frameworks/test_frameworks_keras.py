"""initlab.keras: every scheme as a registered Keras 3 initializer with initlab's values.

Runs on the backend ``KERAS_BACKEND`` names (torch here, set by conftest.py;
``test_frameworks_keras_jax_backend.py`` runs this file again on JAX).
"""

import math

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install 'initlab[keras]')")

import initlab
import initlab.keras as initlab_keras
from initlab import InitlabError
from initlab.conventions import channels_last_axes
from initlab.schemes import ALIASES, FACTORIES

# Keras's torch backend converts tensors with np.array(tensor), which numpy 2 warns about (not initlab's code)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

ARGS = {"constant": (0.25,)}
DENSE = ((20, 30), torch.nn.Linear(20, 30))  # Keras (in, out); torch (out, in)
CONV = ((3, 3, 4, 8), torch.nn.Conv2d(4, 8, 3))  # Keras (kh, kw, in, out); torch (out, in, kh, kw)
PARITY_CASES = [(kind, layer) for kind in FACTORIES for layer in ("dense", "conv")
                if not (kind == "delta_orthogonal" and layer == "dense")]


def as_numpy(tensor) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(tensor))


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_every_scheme_is_a_registered_keras_initializer(kind):
    cls = initlab_keras.CLASSES[kind]
    assert getattr(initlab_keras, kind) is cls and issubclass(cls, keras.initializers.Initializer)
    assert keras.saving.get_registered_name(cls) == f"initlab>{cls.__name__}"
    assert keras.saving.get_registered_object(f"initlab>{kind}") is cls
    if kind in ARGS:  # by name alone there are no arguments, and constant needs its value
        with pytest.raises(InitlabError, match="missing a required argument: 'value'"):
            keras.initializers.get(f"initlab>{kind}")
    else:
        assert isinstance(keras.initializers.get(f"initlab>{kind}"), cls)
    initializer = cls(*ARGS.get(kind, ()), seed=7, name="w")
    config = initializer.get_config()
    assert config["seed"] == 7 and config["name"] == "w"
    assert cls.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(initializer))
    assert type(restored) is cls and restored.get_config() == config


def test_aliases_are_the_same_classes_and_registered():
    for alias, target in ALIASES.items():
        cls = initlab_keras.CLASSES[target]
        assert getattr(initlab_keras, alias) is cls
        assert keras.saving.get_registered_object(f"initlab>{alias}") is cls


@pytest.mark.parametrize(("kind", "layer"), PARITY_CASES)
def test_values_are_torchs_after_the_layout_transpose(kind, layer):
    """Same scheme, seed and name: the Keras kernel is the torch layer's weight, transposed."""
    keras_shape, module = DENSE if layer == "dense" else CONV
    scheme = initlab.get(kind, **dict(zip(["value"], ARGS.get(kind, ()))))
    weight = torch.empty_like(module.weight)
    scheme.init_(weight, seed=11, name="block.weight")
    values = as_numpy(initlab_keras.CLASSES[kind](*ARGS.get(kind, ()), seed=11, name="block.weight")(keras_shape))
    expected = np.transpose(weight.detach().numpy(), channels_last_axes(weight.dim(), "linear" if layer == "dense" else "conv"))
    assert values.shape == keras_shape
    np.testing.assert_array_equal(values, expected)


def test_each_call_of_one_instance_draws_its_own_stream():
    initializer = initlab_keras.HeNormal(seed=1, name="fc")
    first, second, third = (as_numpy(initializer((16, 8))) for _ in range(3))
    he = initlab.he_normal()
    np.testing.assert_array_equal(first, he.sample((8, 16), seed=1, name="fc").T)
    np.testing.assert_array_equal(second, he.sample((8, 16), seed=1, name="fc#call1").T)
    np.testing.assert_array_equal(third, he.sample((8, 16), seed=1, name="fc#call2").T)
    # Keras's own seeded initializer repeats itself: two layers sharing it get identical weights
    seeded = keras.initializers.HeNormal(seed=1)
    np.testing.assert_array_equal(as_numpy(seeded((16, 8))), as_numpy(seeded((16, 8))))


def test_unnamed_initializers_never_repeat_each_other():
    values = [as_numpy(initlab_keras.GlorotUniform()((32, 32))) for _ in range(2)]
    values.append(as_numpy(initlab_keras.GlorotUniform(seed=0)((32, 32))))
    assert not np.array_equal(values[0], values[1]) and not np.array_equal(values[1], values[2])
    limit = math.sqrt(6.0 / 64)
    assert all(np.abs(v).max() <= limit for v in values)


def test_a_bias_vector_uses_the_vector_rule():
    values = as_numpy(initlab_keras.HeNormal(seed=2, name="b")((50,)))
    np.testing.assert_array_equal(values, initlab.he_normal().sample((50,), seed=2, name="b"))


def test_dtypes():
    initializer = initlab_keras.Normal(seed=3, name="w")
    wide = initializer((6, 5), dtype="float64")
    # JAX keeps float64 only with jax_enable_x64; otherwise it stores float32
    x64 = keras.backend.backend() != "jax" or __import__("jax").config.jax_enable_x64
    assert keras.backend.standardize_dtype(wide.dtype) == ("float64" if x64 else "float32")
    np.testing.assert_array_equal(as_numpy(wide), initlab.normal().sample((5, 6), seed=3, name="w").T.astype(np.float64))
    for dtype in ("float16", "bfloat16"):
        assert keras.backend.standardize_dtype(initializer((6, 5), dtype=dtype).dtype) == dtype
    with pytest.raises(InitlabError) as caught:
        initializer((6, 5), dtype="int32")
    assert str(caught.value) == "initlab.keras.Normal: dtype='int32' is invalid; expected a floating dtype."


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: initlab_keras.HeNormal(gain=2.0),
         ("initlab.keras.HeNormal: arguments () {'gain': 2.0} are invalid (got an unexpected keyword argument "
         "'gain'); expected the arguments of initlab.he_normal: mode, activation, negative_slope, distribution.")),
        (lambda: initlab_keras.Orthogonal(seed=1.5),
         "initlab.keras.Orthogonal: seed=1.5 is invalid; expected an integer (initlab streams are always seeded)."),
        (lambda: initlab_keras.SchemeInitializer(42),
         "initlab.keras.SchemeInitializer: scheme=42 is invalid; expected an initlab scheme, its dict or name."),
    ],
)
def test_bad_arguments_are_clear_initlab_errors(call, message):
    with pytest.raises(InitlabError) as caught:
        call()
    assert str(caught.value) == message


def _model():
    return keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(32, activation="relu", kernel_initializer=initlab_keras.he_normal(seed=0, name="0.weight")),
        keras.layers.Dense(1, kernel_initializer=initlab_keras.SchemeInitializer(initlab.orthogonal(0.5), seed=0,
                                                                                name="1.weight")),
    ])


def test_a_small_keras_model_trains_and_holds_torchs_weights():
    model = _model()
    np.testing.assert_array_equal(as_numpy(model.layers[0].kernel),
                                  initlab.he_normal().sample((32, 8), seed=0, name="0.weight").T)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype("float32")
    y = (x @ rng.standard_normal((8, 1)) + np.abs(x[:, :1])).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    losses = model.fit(x, y, epochs=25, batch_size=256, shuffle=False, verbose=0).history["loss"]
    assert losses[-1] < 0.25 * losses[0], losses


def test_a_saved_model_loads_back_with_its_initializers(tmp_path):
    model = _model()
    model.add(keras.layers.Dense(2, kernel_initializer="initlab>kaiming_uniform", bias_initializer="initlab>zeros"))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for original, restored in zip(model.layers, loaded.layers):
        assert type(restored.kernel_initializer) is type(original.kernel_initializer)
        assert restored.kernel_initializer.get_config() == original.kernel_initializer.get_config()
    assert isinstance(loaded.layers[2].kernel_initializer, initlab_keras.HeUniform)
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    x = np.ones((3, 8), dtype="float32")
    np.testing.assert_array_equal(as_numpy(model(x)), as_numpy(loaded(x)))
