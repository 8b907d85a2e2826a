"""CIFAR-10 loader on the shared read-only copy, checked against the published figures and
against the raw bytes read here independently of the library; and the synthetic stand-in."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from eosteach import data

RECORD = 3073
# Published figures (see ../shared/data/README.md and the CIFAR-10 page).
FIRST_TRAIN_LABELS = [6, 9, 9, 4, 1]
FIRST_TEST_LABELS = [3, 8, 8, 0, 6]
FIRST_RED_PIXELS = [59, 43, 50, 68, 98, 119, 139, 145, 149, 149]
CHANNEL_MEAN = [125.307, 122.950, 113.865]
CHANNEL_STD = [62.993, 62.089, 66.705]


def raw_records(root: Path, name: str) -> np.ndarray:
    """The file's records (N, 3073) straight from disk, without the library."""
    return np.fromfile(root / "cifar-10-batches-bin" / name, dtype=np.uint8).reshape(-1, RECORD)


def listing(folder: Path) -> dict:
    """Every path under ``folder`` (itself included) with its size and mtime in ns."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [""] + dirnames + filenames:
            path = Path(dirpath, name)
            stat = path.lstat()
            entries[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return entries


@pytest.fixture(scope="module")
def raw_train(cifar_root) -> np.ndarray:
    return np.concatenate([raw_records(cifar_root, f"data_batch_{i}.bin") for i in range(1, 6)])


@pytest.fixture(scope="module")
def independent_stats(raw_train) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and population std, two-pass in float64 (the library uses integers)."""
    pixels = raw_train[:, 1:]
    mean = pixels.mean(axis=0, dtype=np.float64)
    squared = np.zeros(pixels.shape[1])
    for start in range(0, len(pixels), 10_000):
        squared += ((pixels[start:start + 10_000] - mean) ** 2).sum(axis=0)
    return mean, np.sqrt(squared / len(pixels))


def test_nothing_is_written_into_the_data_folder(cifar_root):
    before = listing(cifar_root)
    data._read_folder.cache_clear()  # force a real read of the files
    data._feature_stats.cache_clear()
    data.load_cifar10(100, root=cifar_root, download=True)
    data.load_cifar10(50, root=cifar_root, loss="ce", classes=("cat", "dog"), balanced=True)
    assert listing(cifar_root) == before


def test_sizes_labels_and_first_pixels(cifar_root):
    x_train, y_train, x_test, y_test, classes = data.read_cifar10(cifar_root, download=False)
    assert x_train.shape == (50_000, 3072) and x_train.dtype == np.uint8
    assert x_test.shape == (10_000, 3072) and y_test.shape == (10_000,)
    assert y_train[:5].tolist() == FIRST_TRAIN_LABELS
    assert y_test[:5].tolist() == FIRST_TEST_LABELS
    assert x_train[0, :10].tolist() == FIRST_RED_PIXELS
    assert classes == data.CLASSES
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert not x_train.flags.writeable  # shared cache: callers cannot corrupt it


def test_feature_statistics_match_published_channel_figures(cifar_root, independent_stats):
    mean, std = data.feature_stats(cifar_root, download=False)
    np.testing.assert_allclose(mean, independent_stats[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(std, independent_stats[1], rtol=1e-9)
    # Pool the 1,024 features of each channel: E[x] and E[x^2] average over features.
    feature_mean, feature_var = mean.reshape(3, 1024), std.reshape(3, 1024) ** 2
    channel_mean = feature_mean.mean(axis=1)
    channel_std = np.sqrt((feature_var + feature_mean**2).mean(axis=1) - channel_mean**2)
    np.testing.assert_allclose(channel_mean, CHANNEL_MEAN, atol=1e-3)
    np.testing.assert_allclose(channel_std, CHANNEL_STD, atol=1e-3)


def test_cifar10_5k_is_the_first_5000_standardised_with_full_train_statistics(cifar_root, independent_stats):
    ds = data.load_cifar10(5000, n_test=2000, root=cifar_root, loss="ce", dtype=torch.float64)
    first = raw_records(cifar_root, "data_batch_1.bin")[:5000]
    mean, std = independent_stats
    expected = (first[:, 1:] / 255.0 - mean / 255.0) / (std / 255.0)
    assert ds.name == "cifar10-5k" and not ds.synthetic
    assert ds.x_train.shape == (5000, 3072) and ds.x_train.dtype == torch.float64
    np.testing.assert_allclose(ds.x_train.numpy(), expected, rtol=0, atol=1e-10)
    assert ds.y_train.tolist() == first[:, 0].tolist()
    test = raw_records(cifar_root, "test_batch.bin")[:2000]
    np.testing.assert_allclose(ds.x_test.numpy(), (test[:, 1:] - mean) / std, atol=1e-10)
    assert ds.y_test.tolist() == test[:, 0].tolist()


def test_standardised_training_set_has_mean_0_and_std_1(cifar_root):
    x = data.load_cifar10(None, n_test=1, root=cifar_root).x_train
    assert x.shape == (50_000, 3072) and x.dtype == torch.float32
    # float32 sums over the 50,000 rows are accurate to ~1e-6 here (mean 0, mean square 1).
    mean = x.mean(0)
    std = (x.square().mean(0) - mean.square()).sqrt()
    assert mean.abs().max() < 1e-4
    assert (std - 1).abs().max() < 1e-4


def test_mse_targets_are_one_hot_of_the_labels(cifar_root):
    mse = data.load_cifar10(200, n_test=30, root=cifar_root, loss="mse")
    ce = data.load_cifar10(200, n_test=30, root=cifar_root, loss="ce")
    assert mse.y_train.shape == (200, 10) and mse.y_train.dtype == torch.float32
    assert ce.y_train.shape == (200,) and ce.y_train.dtype == torch.long
    assert torch.equal(mse.y_train.sum(1), torch.ones(200))
    assert torch.equal(mse.y_train.argmax(1), ce.y_train)
    assert torch.equal(mse.y_test.argmax(1), ce.y_test) and ce.n_test == 30
    assert torch.equal(mse.x_train, ce.x_train)


def test_balanced_subset_takes_the_first_images_of_each_class(cifar_root, raw_train):
    ds = data.load_cifar10(1000, n_test=100, root=cifar_root, loss="ce", balanced=True)
    labels = raw_train[:, 0]
    expected = sorted(i for c in range(10) for i in np.flatnonzero(labels == c)[:100])
    assert ds.name == "cifar10-1k-balanced"
    assert torch.bincount(ds.y_train).tolist() == [100] * 10
    assert ds.y_train.tolist() == labels[expected].tolist()
    full = data.load_cifar10(int(max(expected)) + 1, n_test=1, root=cifar_root)
    assert torch.equal(ds.x_train, full.x_train[expected])
    assert torch.bincount(ds.y_test).tolist() == [10] * 10


def test_fewer_classes_are_renumbered_in_the_order_given(cifar_root, raw_train):
    ds = data.load_cifar10(300, n_test=40, root=cifar_root, classes=("dog", "cat"), loss="ce")
    labels = raw_train[:, 0]
    rows = np.flatnonzero((labels == 5) | (labels == 3))[:300]
    assert ds.classes == ("dog", "cat") and ds.n_classes == 2
    assert ds.y_train.tolist() == [0 if y == 5 else 1 for y in labels[rows]]
    all_ten = data.load_cifar10(int(rows[-1]) + 1, n_test=1, root=cifar_root)
    assert torch.equal(ds.x_train, all_ten.x_train[rows])
    first_two = data.load_cifar10(100, n_test=10, root=cifar_root, classes=2)
    assert first_two.classes == ("airplane", "automobile") and first_two.y_train.shape == (100, 2)
    assert set(first_two.y_test.argmax(1).tolist()) <= {0, 1}


def test_dataset_to_dtype_and_repr(cifar_root):
    ds = data.load_cifar10(10, n_test=5, root=cifar_root).to("cpu", torch.float64)
    assert ds.x_train.dtype == ds.y_train.dtype == torch.float64
    assert "cifar10-10" in repr(ds) and "SYNTHETIC" not in repr(ds)
    ce = data.load_cifar10(10, n_test=5, root=cifar_root, loss="ce").to(dtype=torch.float64)
    assert ce.y_train.dtype == torch.long  # labels stay integer


def test_root_may_name_the_extracted_folder_itself(cifar_root):
    via_parent = data.load_cifar10(10, n_test=5, root=cifar_root)
    via_folder = data.load_cifar10(10, n_test=5, root=cifar_root / "cifar-10-batches-bin", download=False)
    assert torch.equal(via_parent.x_train, via_folder.x_train)


def test_repeated_loads_reuse_the_parsed_files(cifar_root):
    data.load_cifar10(10, n_test=5, root=cifar_root)
    hits = data._read_folder.cache_info().hits
    data.load_cifar10(20, n_test=5, root=cifar_root)
    assert data._read_folder.cache_info().hits > hits


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"n_train": 0}, "n_train"),
        ({"n_train": 50_001}, "n_train"),
        ({"n_test": -1}, "n_test"),
        ({"loss": "l2"}, "loss"),
        ({"classes": ("cat", "cow")}, "classes"),
        ({"classes": 11}, "classes"),
        ({"classes": ("cat",)}, "classes"),
        ({"dtype": torch.int64}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"balanced": "yes"}, "balanced"),
    ],
)
def test_bad_settings_raise_value_error_naming_the_parameter(cifar_root, kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        data.load_cifar10(**{"root": cifar_root, **kwargs})


def test_missing_folder_without_download_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-bin"):
        data.load_cifar10(10, root=tmp_path, download=False)
    assert list(tmp_path.iterdir()) == []


def test_synthetic_is_labelled_deterministic_and_warning_free():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = data.synthetic(300, n_test=50, n_classes=4, dim=48, seed=1)
        again = data.synthetic(300, n_test=50, n_classes=4, dim=48, seed=1)
    assert ds.synthetic and "not CIFAR-10" in ds.name and repr(ds).startswith("SYNTHETIC")
    assert "NOT CIFAR-10" in ds.note
    assert ds.x_train.shape == (300, 48) and ds.y_train.shape == (300, 4)
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_test, again.y_test)
    assert not torch.equal(ds.x_train, data.synthetic(300, n_test=50, n_classes=4, dim=48, seed=2).x_train)
    # The first n training examples do not depend on n_test, and prefix larger sets.
    bigger = data.synthetic(500, n_test=7, n_classes=4, dim=48, seed=1)
    assert torch.equal(bigger.x_train[:300], ds.x_train) and torch.equal(bigger.y_train[:300], ds.y_train)
    # Standardised with the mixture's population moments: sample moments within sampling error.
    many = data.synthetic(20_000, n_test=1, n_classes=4, dim=48, seed=1, separation=8.0).x_train.double()
    std, mean = torch.std_mean(many, dim=0, correction=0)
    assert mean.abs().max() < 0.05 and (std - 1).abs().max() < 0.05  # 5 sigma of 1/sqrt(20,000) ~ 0.035


def test_load_dataset_dispatches_by_name(cifar_root):
    cifar = data.load_dataset("cifar10", n_train=10, n_test=5, root=cifar_root, loss="ce")
    assert cifar.name == "cifar10-10" and cifar.y_train.shape == (10,)
    fake = data.load_dataset("synthetic", n_train=20, n_test=5, classes=3, root=cifar_root, dim=12)
    assert fake.synthetic and fake.n_classes == 3 and fake.x_train.shape == (20, 12)
    with pytest.raises(ValueError, match="data"):
        data.load_dataset("mnist")
