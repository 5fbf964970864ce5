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

# The slow tier: tests that train networks, replay the post's runs, start processes, build the
# book or drive a browser (each over about two seconds, measured with --durations=0).
# `make test-fast` runs everything else (`pytest -m "not slow" tests`) in under two minutes;
# `make test` runs both tiers.
SLOW_MODULES = {"test_new_seeds", "test_shipped", "test_book", "test_running_locally", "test_setup",
                "test_as_ran"}
SLOW_TESTS = {
    "test_explorer.py::test_page_data_is_what_view_computes",
    "test_explorer.py::test_page_html_embeds_data_and_script_and_fetches_nothing",
    "test_retraining.py::test_prune_and_retrain_all_side_by_side_equals_one_at_a_time",
    "test_cache_versions.py::test_editing_a_dependency_rebuilds_the_entry_and_editing_another_module_does_not",
    "test_training.py::test_train_models_in_worker_processes_gives_the_same_weights",
    "test_training.py::test_same_seed_same_weights_across_processes",
    "test_cnn.py::test_cnn_models_trains_the_missing_ones_side_by_side",
    "test_hessian.py::test_row_sums_equal_brute_force",
    "test_hessian.py::test_exact_diagonal_equals_brute_force",
    "test_hessian.py::test_hessian_vector_product_matches_full_hessian",
    "test_explorer.py::test_widget_updates_when_controls_change",
    "test_explorer.py::test_widget_offers_the_seeds_of_the_chosen_network",
    "test_explorer.py::test_saliencies_are_computed_once_per_setting",
    "test_cache.py::test_two_processes_build_once",
    "test_cache.py::test_build_side_by_side_fills_the_cache_from_other_processes",
    "test_cache.py::test_fill_builds_each_missing_job_once_in_a_process_with_its_environment",
    "test_cache.py::test_fill_names_a_failing_job_and_leaves_no_entry",
    "test_observations.py::test_taylor_terms_against_the_brute_force_hessian",
    "test_networks.py::test_trains_from_the_requested_scale_and_caches",
    "test_data.py::test_locating_the_data_does_not_import_mnist",
    "test_described.py::test_sweep_matches_direct_pruning_and_is_cached",
    "test_cnn.py::test_training_is_cached_and_deterministic",
    "test_cnn.py::test_exact_diagonal_equals_brute_force",
    "test_retraining.py::test_prune_and_retrain_small_mnist_network",
    "test_benchmarks.py::test_training_rows_take_equal_step_counts",
    "test_benchmarks.py::test_timed_regions_compute_what_the_public_functions_compute",
    "test_training.py::test_same_seed_same_weights_in_one_process",
    "test_tiny.py::test_hessian_is_the_full_hessian_of_the_training_loss",
    "test_taylor.py::test_terms_equal_gradient_and_full_hessian",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tier (``SLOW_MODULES``, ``SLOW_TESTS``) with ``slow``."""
    for item in items:
        module = item.path.stem
        name = f"{item.path.name}::{item.originalname}"
        if module in SLOW_MODULES or name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: the slow tier, left out by `make test-fast`")
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
