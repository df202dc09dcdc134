"""Datasets: documented shapes, standardisation, the mnist1d cache, file loaders on files written here."""

import gzip
import random
import struct

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.lab import datasets
from initlab.lab.datasets import (
    load_cifar10_binary,
    load_dataset,
    load_digits,
    load_gaussian_mixture,
    load_idx,
    load_mnist1d,
    load_mnist_idx,
    load_teacher,
    read_cifar10_batch,
)


def test_mnist1d_shapes_and_training_standardisation():
    data = load_mnist1d()
    assert data.x_train.shape == (4000, 1, 40) and data.x_test.shape == (1000, 1, 40)
    assert data.y_train.shape == (4000,) and set(np.unique(data.y_train)) == set(range(10))
    assert data.task == "classification" and data.num_outputs == 10 and data.input_dim == 40
    flat = data.x_train.reshape(4000, -1)
    np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(flat.std(axis=0), 1.0, atol=1e-4)
    # the test split is transformed with training statistics, so it is not exactly standard
    assert abs(data.x_test.reshape(1000, -1).mean(axis=0)).max() > 1e-3


def test_mnist1d_generation_restores_global_generators_and_cache_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("INITLAB_CACHE", str(tmp_path))
    random.seed(123)
    np.random.seed(321)
    expected_python, expected_numpy = random.random(), np.random.rand()
    random.seed(123)
    np.random.seed(321)
    generated = datasets.mnist1d_arrays()
    assert (random.random(), np.random.rand()) == (expected_python, expected_numpy)
    (cache_file,) = tmp_path.glob("mnist1d-*.npz")
    with np.load(cache_file, allow_pickle=False) as stored:
        assert str(stored["content_sha256"]) == datasets.content_hash(
            {name: stored[name] for name in ("x", "y", "x_test", "y_test")})
    # corrupt one byte of the stored content: the hash check fails and the data is regenerated
    with np.load(cache_file, allow_pickle=False) as stored:
        arrays = {name: stored[name].copy() for name in stored.files}
    arrays["x"][0, 0] += 1.0
    np.savez(cache_file, **arrays)
    assert datasets._load_npz(cache_file) is None
    reloaded = datasets.mnist1d_arrays()
    np.testing.assert_array_equal(reloaded["x"], generated["x"])
    assert datasets._load_npz(cache_file) is not None


def test_digits_split_is_seeded_and_complete():
    first, again, other = load_digits(), load_digits(), load_digits(split_seed=1)
    assert first.x_train.shape == (1258, 1, 64) and first.x_test.shape == (539, 1, 64)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    assert not np.array_equal(first.y_test, other.y_test)
    assert len(first.y_train) + len(first.y_test) == 1797


def test_synthetic_datasets():
    teacher = load_teacher(n_train=300, n_test=100, input_dim=8, output_dim=2, noise=0.0)
    assert teacher.task == "regression" and teacher.y_train.shape == (300, 2)
    assert teacher.x_train.shape == (300, 8) and teacher.num_outputs == 2
    assert teacher.y_train.std() > 0.05
    mixture = load_gaussian_mixture(n_train=400, n_test=100, num_classes=3, separation=4.0)
    assert mixture.x_train.shape == (400, 1, 20) and set(np.unique(mixture.y_train)) == {0, 1, 2}
    # well-separated clusters: the nearest class mean classifies the test set almost perfectly
    means = np.stack([mixture.x_train[mixture.y_train == c].mean(axis=0) for c in range(3)])
    distances = ((mixture.x_test[:, None] - means[None]) ** 2).sum(axis=(2, 3))
    assert (distances.argmin(axis=1) == mixture.y_test).mean() > 0.95


# ---------------------------------------------------------------- IDX files
def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", size) for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder, *, compress: bool, n_train=12, n_test=5):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, array in arrays.items():
        data = _idx_bytes(array)
        (folder / (name + (".gz" if compress else ""))).write_bytes(gzip.compress(data) if compress else data)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_loads_raw_and_gzip(tmp_path, compress):
    arrays = _write_mnist(tmp_path, compress=compress)
    data = load_dataset("fashion_mnist_idx", path=str(tmp_path), standardize=False)
    assert data.x_train.shape == (12, 1, 784) and data.x_test.shape == (5, 1, 784)
    np.testing.assert_array_equal(data.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.x_train.reshape(12, 28, 28), arrays["train-images-idx3-ubyte"])


def test_idx_wrong_magic_truncated_and_missing_name_the_file(tmp_path):
    _write_mnist(tmp_path, compress=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    good = labels.read_bytes()
    labels.write_bytes(b"\x08\x03" + good[2:])
    with pytest.raises(InitlabError, match=r"train-labels-idx1-ubyte: wrong magic number 0803"):
        load_idx(labels)
    labels.write_bytes(good[:-3])
    with pytest.raises(InitlabError, match=r"train-labels-idx1-ubyte: file is truncated: 17 bytes, expected 20"):
        load_mnist_idx(tmp_path)
    labels.unlink()
    with pytest.raises(InitlabError, match=r"train-labels-idx1-ubyte: file not found"):
        load_mnist_idx(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(InitlabError, match=r"train-labels-idx1-ubyte.gz: the gzip stream is truncated"):
        load_mnist_idx(tmp_path)


def test_idx_label_count_must_match_images(tmp_path):
    _write_mnist(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(4)))
    with pytest.raises(InitlabError, match=r"t10k-labels-idx1-ubyte: 4 labels .* expected one label per image"):
        load_mnist_idx(tmp_path)


# ----------------------------------------------------------------- CIFAR-10
def _write_cifar(folder, records=3):
    rng = np.random.default_rng(1)
    expected = {}
    for name in [*datasets.CIFAR_TRAIN_FILES, datasets.CIFAR_TEST_FILE]:
        labels = rng.integers(0, 10, records).astype(np.uint8)
        pixels = rng.integers(0, 256, (records, 3072)).astype(np.uint8)
        (folder / name).write_bytes(np.concatenate([labels[:, None], pixels], axis=1).tobytes())
        expected[name] = (labels, pixels)
    return expected


def test_cifar10_binary_loads(tmp_path):
    expected = _write_cifar(tmp_path)
    data = load_cifar10_binary(tmp_path, standardize=False)
    assert data.x_train.shape == (15, 3, 1024) and data.x_test.shape == (3, 3, 1024)
    labels, pixels = expected["data_batch_2.bin"]
    np.testing.assert_array_equal(data.y_train[3:6], labels)
    np.testing.assert_array_equal(data.x_train[3].reshape(-1), pixels[0])
    images, _ = read_cifar10_batch(tmp_path / "test_batch.bin")
    assert images.shape == (3, 3, 32, 32)


def test_cifar10_bad_files_name_the_file(tmp_path):
    _write_cifar(tmp_path)
    batch = tmp_path / "data_batch_3.bin"
    good = batch.read_bytes()
    batch.write_bytes(good[:-100])
    with pytest.raises(InitlabError, match=r"data_batch_3.bin: 9119 bytes is not a whole number of CIFAR-10 records"):
        load_cifar10_binary(tmp_path)
    batch.write_bytes(bytes([42]) + good[1:])
    with pytest.raises(InitlabError, match=r"data_batch_3.bin: label 42 found; expected labels 0..9"):
        load_cifar10_binary(tmp_path)
    (tmp_path / "test_batch.bin").unlink()
    batch.write_bytes(good)
    with pytest.raises(InitlabError, match=r"test_batch.bin: file not found"):
        load_cifar10_binary(tmp_path)


def test_unknown_dataset_name():
    with pytest.raises(InitlabError, match=r"name='cifar100' is invalid; expected one of"):
        load_dataset("cifar100")
