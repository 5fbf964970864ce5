"""Shared fixtures: small MLPs and data, and model caches that are never the repository's.

Every test session reads and writes a temporary model cache (``OBD_CACHE_DIR``), so
unit tests neither read stale entries from ``.cache`` nor leave entries in it; a test
marked ``repository_cache`` (the README's commands, run after ``make test``'s notebook
check has filled the cache) sees the reader's cache instead. ``isolated_cache`` gives a
test an empty cache of its own.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["OBD_PROGRESS"] = "0"

import numpy as np
import pytest

from helpers import models, seeding


def small_mlp(sizes=(6, 5, 4, 3), dropout=0.0, seed=1):
    """A tiny MLP with weights large enough that ReLUs switch on and off."""
    seeding.set_seed(seed)
    return models.mlp(sizes, dropout=dropout, init_stddev=0.6)


def small_data(sizes=(6, 5, 4, 3), n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n)
    return x, y


@pytest.fixture
def tiny():
    return small_mlp(), *small_data()


REPOSITORY_CACHE = "repository_cache"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{REPOSITORY_CACHE}: use the reader's model cache (.cache or the caller's "
                   "OBD_CACHE_DIR), not the test session's temporary one")


@pytest.fixture(scope="session", autouse=True)
def callers_cache_setting(tmp_path_factory: pytest.TempPathFactory):
    """Point ``OBD_CACHE_DIR`` at a temporary folder for the whole session; yield the caller's value."""
    callers = os.environ.get("OBD_CACHE_DIR")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OBD_CACHE_DIR", str(tmp_path_factory.mktemp("obd-cache")))
        yield callers


@pytest.fixture(autouse=True)
def repository_cache(request: pytest.FixtureRequest, callers_cache_setting: str | None,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Give tests marked ``repository_cache`` the caller's ``OBD_CACHE_DIR`` back (unset: ``.cache``)."""
    if request.node.get_closest_marker(REPOSITORY_CACHE) is None:
        return
    if callers_cache_setting is None:
        monkeypatch.delenv("OBD_CACHE_DIR")
    else:
        monkeypatch.setenv("OBD_CACHE_DIR", callers_cache_setting)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OBD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
