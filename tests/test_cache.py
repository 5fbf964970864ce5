"""Tests for helpers.cache: hits, misses, damaged entries, atomic writes, locking."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import cache
from helpers.cache import CacheWarning, cache_dir, clear_cache, fetch


@pytest.fixture(autouse=True)
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the cache at a fresh temporary folder for every test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("OBD_CACHE_DIR", str(root))
    return root


class Builder:
    """A ``build`` callable that counts its calls."""

    def __init__(self, seed: int = 0) -> None:
        self.calls = 0
        self.seed = seed

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        rng = np.random.default_rng(self.seed)
        return {
            "weights": rng.normal(size=(100, 50)).astype(np.float32),
            "labels": rng.integers(0, 10, size=20_000),
            "mask": rng.random(30) > 0.5,
            "scalar": np.array(3.5),
            "empty": np.zeros((0, 4), dtype=np.int16),
        }


def entry_files(kind: str) -> list[Path]:
    """The entry files of one kind in the current cache."""
    return sorted((cache_dir() / kind).glob("*.npz"))


def assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        assert got[name].shape == want[name].shape, name
        np.testing.assert_array_equal(got[name], want[name])


def test_cache_dir_honours_env_and_creates_it(cache_root: Path) -> None:
    assert not cache_root.exists()
    assert cache_dir() == cache_root
    assert cache_root.is_dir()


def test_cache_dir_defaults_to_repo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OBD_CACHE_DIR")
    fake_module = tmp_path / "repo" / "helpers" / "cache.py"
    monkeypatch.setattr(cache, "__file__", str(fake_module))
    assert cache_dir() == tmp_path / "repo" / ".cache"
    assert (tmp_path / "repo" / ".cache").is_dir()


def test_hit_returns_identical_arrays_without_building(capsys: pytest.CaptureFixture[str]) -> None:
    build = Builder()
    first = fetch("model", {"lr": 0.1, "layers": [300, 100]}, build, version="1")
    second = fetch("model", {"layers": (300, 100), "lr": 0.1}, build, version="1")
    assert build.calls == 1
    assert_same_arrays(first, Builder()())
    assert_same_arrays(second, first)
    assert len(entry_files("model")) == 1
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("kind", "config", "version"),
    [
        ("model", {"lr": 0.2, "layers": [300, 100]}, "1"),
        ("model", {"lr": 0.1, "layers": [300, 101]}, "1"),
        ("model", {"lr": 0.1, "layers": [300, 100], "seed": 0}, "1"),
        ("model", {"lr": 0.1, "layers": [300, 100]}, "2"),
        ("other", {"lr": 0.1, "layers": [300, 100]}, "1"),
    ],
)
def test_any_change_of_kind_config_or_version_misses(kind: str, config: dict, version: str) -> None:
    build = Builder()
    fetch("model", {"lr": 0.1, "layers": [300, 100]}, build, version="1")
    fetch(kind, config, build, version=version)
    assert build.calls == 2


def test_nested_config_and_special_values_are_keys() -> None:
    build = Builder()
    config = {"opt": {"name": "sgd", "momentum": None}, "flag": True, "n": 1, "x": -0.0}
    fetch("model", config, build, version="1")
    fetch("model", dict(config), build, version="1")
    fetch("model", {**config, "flag": 1}, build, version="1")
    assert build.calls == 2


def _truncate(path: Path, _other: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_payload_byte(path: Path, _other: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the middle of the file is array data
    path.write_bytes(bytes(data))


def _not_npz(path: Path, _other: Path) -> None:
    path.write_text("this is not an npz archive\n")


def _bare_npy(path: Path, _other: Path) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.arange(3))


def _drop_metadata(path: Path, _other: Path) -> None:
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files if name != "__cache_meta__"}
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _garble_metadata(path: Path, _other: Path) -> None:
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["__cache_meta__"] = np.array("{not json")
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _change_arrays_keep_metadata(path: Path, _other: Path) -> None:
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["weights"] = arrays["weights"] + 1
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _entry_of_other_config(path: Path, other: Path) -> None:
    path.write_bytes(other.read_bytes())


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_truncate, "not a readable npz"),
        (_flip_payload_byte, "damaged array data|checksum mismatch"),
        (_not_npz, "not a readable npz"),
        (_bare_npy, "not an npz archive"),
        (_drop_metadata, "missing metadata"),
        (_garble_metadata, "unreadable metadata"),
        (_change_arrays_keep_metadata, "checksum mismatch"),
        (_entry_of_other_config, "differ from the requested"),
    ],
)
def test_damaged_entry_warns_and_is_rebuilt(damage, problem: str) -> None:
    other_build = Builder(seed=1)
    fetch("model", {"lr": 0.5}, other_build, version="1")
    other_path = entry_files("model")[0]
    build = Builder()
    fetch("model", {"lr": 0.1}, build, version="1")
    (path,) = set(entry_files("model")) - {other_path}
    assert cache.has("model", {"lr": 0.1}, version="1")
    damage(path, other_path)
    assert not cache.has("model", {"lr": 0.1}, version="1")  # a damaged entry is not present

    with pytest.warns(CacheWarning, match=rf"{path.name}.*({problem})"):
        rebuilt = fetch("model", {"lr": 0.1}, build, version="1")
    assert build.calls == 2
    assert_same_arrays(rebuilt, Builder()())

    again = fetch("model", {"lr": 0.1}, build, version="1")  # the rebuilt entry is sound
    assert build.calls == 2
    assert_same_arrays(again, rebuilt)
    assert cache.has("model", {"lr": 0.1}, version="1")


def test_two_threads_fetching_one_entry_build_it_once_and_agree() -> None:
    import threading

    build = Builder()
    results: list[dict] = []

    def worker() -> None:
        results.append(fetch("threads", {"i": 1}, build, version="1"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and build.calls == 1
    for result in results[1:]:
        assert_same_arrays(result, results[0])
    assert len(entry_files("threads")) == 1


def test_use_cache_false_builds_every_time_and_writes_nothing() -> None:
    build = Builder()
    first = fetch("a", {"i": 1}, build, version="1", use_cache=False)
    second = fetch("a", {"i": 1}, build, version="1", use_cache=False)
    assert build.calls == 2 and entry_files("a") == []
    assert_same_arrays(first, second)
    with pytest.raises(TypeError, match="use_cache"):
        fetch("a", {"i": 1}, build, version="1", use_cache="no")
    assert build.calls == 2


def test_clear_cache_counts_entries() -> None:
    build = Builder()
    fetch("a", {"i": 1}, build, version="1")
    fetch("a", {"i": 2}, build, version="1")
    fetch("b", {"i": 1}, build, version="1")
    assert clear_cache("a") == 2
    assert entry_files("a") == []
    assert len(entry_files("b")) == 1
    assert clear_cache() == 1
    assert clear_cache() == 0
    fetch("a", {"i": 1}, build, version="1")
    assert build.calls == 4


def test_clear_cache_validates_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        clear_cache("../elsewhere")


def _leftovers(kind: str) -> list[str]:
    """Files other than lock files left in a kind's folder."""
    folder = cache_dir() / kind
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_failing_build_leaves_nothing() -> None:
    def build() -> dict[str, np.ndarray]:
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        fetch("model", {}, build, version="1")
    assert _leftovers("model") == []


def test_failure_mid_write_leaves_no_partial_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def half_write(handle, payload, compressed=False) -> None:
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    save_npz = cache._save_npz
    monkeypatch.setattr(cache, "_save_npz", half_write)
    with pytest.raises(OSError, match="disk full"):
        fetch("model", {}, Builder(), version="1")
    assert _leftovers("model") == []

    monkeypatch.setattr(cache, "_save_npz", save_npz)
    build = Builder()
    fetch("model", {}, build, version="1")
    fetch("model", {}, build, version="1")
    assert build.calls == 1


def test_entry_appears_only_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    replaced = []
    real_replace = os.replace

    def checking_replace(source, target) -> None:
        source, target = Path(source), Path(target)
        assert source.parent == target.parent
        assert not target.exists()
        with np.load(source, allow_pickle=False) as archive:  # fully written already
            assert "weights" in archive.files
        real_replace(source, target)
        replaced.append(target)

    monkeypatch.setattr(cache.os, "replace", checking_replace)
    fetch("model", {}, Builder(), version="1")
    assert replaced == entry_files("model")
    assert _leftovers("model") == [replaced[0].name]


_RACER = textwrap.dedent(
    """
    import pathlib, sys, time
    import numpy as np
    from helpers.cache import fetch

    calls, ready, me = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]

    def build():
        with open(calls, "a") as log:
            log.write(me + "\\n")
        time.sleep(1)
        return {"x": np.arange(5)}

    (ready / me).touch()
    deadline = time.monotonic() + 60
    while len(list(ready.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    print(fetch("race", {"n": 1}, build, version="1")["x"].tolist())
    """
)


def test_two_processes_build_once(tmp_path: Path, cache_root: Path) -> None:
    calls = tmp_path / "calls.txt"
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, "OBD_CACHE_DIR": str(cache_root)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(calls), str(ready), name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    for racer, (out, err) in zip(racers, outputs):
        assert racer.returncode == 0, err
        assert out == "[0, 1, 2, 3, 4]\n"
    assert len(calls.read_text().splitlines()) == 1


@pytest.mark.parametrize("kind", ["", "a/b", "../x", "has space", "dot.ted", "new\nline", 3, None])
def test_bad_kind(kind) -> None:
    with pytest.raises(ValueError, match="kind"):
        fetch(kind, {}, Builder(), version="1")


def test_bad_build() -> None:
    with pytest.raises(TypeError, match="build"):
        fetch("model", {}, "not callable", version="1")


@pytest.mark.parametrize(
    ("version", "error"), [("", ValueError), (1, TypeError), (None, TypeError)]
)
def test_bad_version(version, error: type[Exception]) -> None:
    with pytest.raises(error, match="version"):
        fetch("model", {}, Builder(), version=version)


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ([("lr", 0.1)], TypeError),
        ({"lr": np.float32(0.1)}, TypeError),
        ({"n": np.int64(3)}, TypeError),
        ({"f": print}, TypeError),
        ({"s": {1, 2}}, TypeError),
        ({"nested": {1: "non-string key"}}, TypeError),
        ({"lr": float("nan")}, ValueError),
        ({"lr": [1.0, float("inf")]}, ValueError),
    ],
)
def test_bad_config(config, error: type[Exception]) -> None:
    with pytest.raises(error, match="config"):
        fetch("model", config, Builder(), version="1")


@pytest.mark.parametrize(
    "result",
    [
        [np.zeros(3)],
        {"x": [1, 2, 3]},
        {"x": np.array([object(), 1], dtype=object)},
        {1: np.zeros(3)},
        {"": np.zeros(3)},
        {"__cache_meta__": np.zeros(3)},
    ],
)
def test_bad_build_result(result) -> None:
    with pytest.raises(TypeError, match="build"):
        fetch("model", {}, lambda: result, version="1")
    assert _leftovers("model") == []


def _record_pid(name: str) -> None:
    """Cache the id of the process that built the entry (a worker of build_side_by_side)."""
    fetch("side_by_side", {"name": name}, lambda: {"pid": np.array(os.getpid())}, version="v1")


def _refuse() -> dict:
    raise AssertionError("the entry should have been built by a child process")


def test_build_side_by_side_fills_the_cache_from_other_processes() -> None:
    cache.build_side_by_side(_record_pid, [("a",), ("b",), ("c",)], processes=2)
    pids = {n: int(fetch("side_by_side", {"name": n}, _refuse, version="v1")["pid"]) for n in "abc"}
    assert os.getpid() not in pids.values()  # every entry came from a worker process


def test_build_side_by_side_starts_nothing_for_one_job_or_one_process() -> None:
    cache.build_side_by_side(_record_pid, [("a",)])
    cache.build_side_by_side(_record_pid, [("b",), ("c",)], processes=1)
    assert not any(cache.has("side_by_side", {"name": n}, version="v1") for n in "abc")


def _record_environment(name: str) -> None:
    """Cache what the process that built the entry saw of its environment (a worker of fill)."""
    fetch("environment", {"name": name}, lambda: {
        "pid": np.array(os.getpid()), "variable": np.array(os.environ.get("OBD_TEST_VARIABLE", "")),
        "limit": np.array(os.environ.get("ONEDNN_MAX_CPU_ISA", ""))}, version="v1")


def _fail(name: str) -> None:
    def build() -> dict:
        raise ValueError(f"no entry for {name}")
    fetch("environment", {"name": name}, build, version="v1")


def _environment_entries(name: str) -> list[cache.Entry]:
    return [cache.Entry("environment", {"name": name}, "v1")]


def test_fill_builds_each_missing_job_once_in_a_process_with_its_environment(monkeypatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    monkeypatch.delenv("OBD_TEST_VARIABLE", raising=False)
    _record_environment("c")  # present already: not built again
    before = fetch("environment", {"name": "c"}, _refuse, version="v1")
    cache.fill(_record_environment, [("a",), ("b",), ("a",), ("c",)], _environment_entries,
               environment=lambda name: {"OBD_TEST_VARIABLE": name.upper()})
    got = {n: fetch("environment", {"name": n}, _refuse, version="v1") for n in "abc"}
    assert [str(got[n]["variable"]) for n in "ab"] == ["A", "B"]  # each job its own variables
    assert {str(got[n]["limit"]) for n in "ab"} == {"SSE41"}  # and the caller's environment
    assert os.getpid() not in {int(got[n]["pid"]) for n in "ab"}
    assert int(got["c"]["pid"]) == int(before["pid"]) == os.getpid()
    assert "OBD_TEST_VARIABLE" not in os.environ  # the caller's environment is restored


def test_fill_names_a_failing_job_and_leaves_no_entry() -> None:
    with pytest.raises(RuntimeError, match=r"_fail\('x',\) failed in its own process.*no entry for x"):
        cache.fill(_fail, [("x",)], _environment_entries, environment=lambda name: {})
    assert not cache.has("environment", {"name": "x"}, version="v1")
    assert _leftovers("environment") == []


def test_fill_without_environment_leaves_one_job_to_the_caller() -> None:
    cache.fill(_record_environment, [("a",), ("a",)], _environment_entries)
    assert not cache.has("environment", {"name": "a"}, version="v1")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(worker=1, jobs=[], entries=_environment_entries), TypeError, "worker"),
    (dict(worker=_fail, jobs="ab", entries=_environment_entries), TypeError, "jobs"),
    (dict(worker=_fail, jobs=[("a",)], entries=_environment_entries, environment={}), TypeError, "environment"),
    (dict(worker=_fail, jobs=[], entries=_environment_entries, processes=0), ValueError, "processes"),
])
def test_fill_argument_checks(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        cache.fill(**kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(function=1, jobs=[]), TypeError, "function"),
    (dict(function=_record_pid, jobs="ab"), TypeError, "jobs"),
    (dict(function=_record_pid, jobs=["a", "b"]), TypeError, r"jobs\[0\]"),
    (dict(function=_record_pid, jobs=[], processes=0), ValueError, "processes"),
])
def test_build_side_by_side_argument_checks(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        cache.build_side_by_side(**kwargs)
