"""Shared fixtures: small MLPs and data, and an isolated model cache."""

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


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OBD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
