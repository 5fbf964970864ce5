"""Retrain every network the book ships, from scratch, on this machine (``make networks``).

The book ships its long training runs as data (``helpers/shipped``, listed in its
``manifest.json``): the shared networks of every variant and seed, chapter 5's
networks, the CNNs, chapter 13's retrained networks, chapter 1's tiny network, and
the levels of chapter 16's static explorer (computed from the shipped networks and
the post's checkpoints; they take minutes, and a few depend on the CPU's kernels).
This script trains each listed result again with the current code, ignoring every
cache, and stores it in place of the old one with a new manifest record. Run it
after changing code that trains (``tests/test_shipped.py`` fails until you do), then
re-execute the chapters (``make notebooks``).

    python scripts/ship_networks.py                 # retrain everything listed
    python scripts/ship_networks.py --kind cnn      # only one kind
    python scripts/ship_networks.py --from-cache    # ship what .cache holds (first time)
    python scripts/ship_networks.py --sample --into DIR   # retrain a sample into DIR (the check)

``--from-cache`` adds the results of the shipped kinds that the model cache holds for
the current code (after ``pytest --nbval notebooks`` ran on an empty cache), without
training anything.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import cache, cnn, retraining, training  # noqa: E402
from helpers.chapters import explorer, tiny  # noqa: E402
from helpers.post import networks  # noqa: E402

@dataclass(frozen=True)
class Kind:
    """How one kind of shipped result is rebuilt: the module whose code builds it (its
    ``code_version``), how to build one result from its key, optionally the keys to ship
    today (instead of those listed) and which keys share a process (their key ``group``)."""

    module: str
    build: Callable[[dict], dict]
    today: Callable[[], list[dict]] | None = None
    group: Callable[[dict], Hashable] = id  # by default each key alone


def explorer_configs() -> list[dict]:
    """The configurations of every level set the explorer offers, for today's networks."""
    return [explorer.levels_key(network, method, scope, seed)
            for network, seed, method, scope in explorer.settings()]


KINDS = {
    "model": Kind("helpers.training", lambda c: training._train_arrays(training.TrainConfig(**_tuples(c)))),
    "cnn": Kind("helpers.cnn", lambda c: cnn._train_arrays(cnn.CnnConfig(**_tuples(c)))),
    "tiny_model": Kind("helpers.chapters.tiny", lambda c: tiny._train(tiny.TinyConfig(**_tuples(c)))),
    "retrain": Kind("helpers.retraining", lambda c: retraining._run_schedule(
        training.train_model(training.TrainConfig(**_tuples(c["trained"]))),
        retraining.Schedule(**_tuples(c["schedule"])))),
    # The level sets of today's networks, one process per network: its saliencies serve every setting.
    "explorer_levels": Kind("helpers.chapters.explorer", lambda c: explorer.levels_arrays(
        c["network"], c["method"], c["scope"], c["seed"]), today=explorer_configs,
        group=lambda c: (c["network"], c["seed"])),
}
#: Retrained networks and the explorer's levels start from shipped networks, so they come last.
ORDER = ("model", "cnn", "tiny_model", "retrain", "explorer_levels")


def _tuples(config: dict) -> dict:
    """A key's lists back as the tuples the configuration classes hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def rebuild(kind: str, config: dict, into: str | None = None) -> None:
    """Build one result from scratch and ship it, into the folder ``into`` if given (runs in a
    worker process). A retraining run starts from the shipped network, as in chapter 13."""
    spec = KINDS[kind]
    cache.ship(kind, config, spec.build(config), version=cache.source_version(spec.module),
               into=None if into is None else Path(into))


def rebuild_all(kind: str, configs: list[dict], into: str | None = None) -> None:
    """``rebuild`` each of ``configs`` in this one process (a worker of ``main``)."""
    for config in configs:
        rebuild(kind, config, into)


def sample(entries: list[dict]) -> list[dict]:
    """What ``tests/test_shipped.py`` retrains: every kind at least once, at a few minutes' cost.

    The shared networks of seed 0 (one per variant), the first CNN and tiny network of
    seed 0, and per pruning method the retraining schedule with the fewest steps on the
    plain network of seed 0 among those that end above 90 % test accuracy.
    """
    def seed0(entry: dict) -> bool:
        config = entry["config"]
        return config.get("seed", config.get("trained", {}).get("seed")) == 0

    shared = [networks.post_config(variant, 0).to_dict() for variant in networks.VARIANTS]
    chosen = [e for e in entries if e["kind"] == "model" and e["config"] in shared]
    for kind in ("cnn", "tiny_model"):
        chosen += [e for e in entries if e["kind"] == kind and seed0(e)][:1]
    runs = [e for e in entries if e["kind"] == "retrain" and seed0(e)
            and e["config"]["trained"]["dropout"] == 0 and any(c == e["config"]["trained"] for c in
                                                               (m["config"] for m in chosen))]
    for method in ("magnitude", "obd"):  # runs that end near dense accuracy: chaotic ones say little
        of_method = [e for e in runs if e["config"]["schedule"]["method"] == method
                     and cache.shipped("retrain", e["config"])["accuracy"][-1] > 0.9]
        chosen += sorted(of_method, key=lambda e: e["config"]["schedule"]["steps_per_round"]
                         * len(e["config"]["schedule"]["sparsities"]))[:1]
    chosen += [e for e in entries if e["kind"] == "explorer_levels"  # a setting no near-tie moves
               and (e["config"]["network"], e["config"]["seed"], e["config"]["method"],
                    e["config"]["scope"]) == ("plain", 0, "obd", "global")]
    return chosen


def from_cache(kinds: tuple[str, ...]) -> int:
    """Ship every cache entry of ``kinds`` that the current code produced; return how many."""
    count = 0
    versions = {kind: cache.code_version(KINDS[kind].module) for kind in kinds}  # before shipping any
    for kind in kinds:
        version = versions[kind]
        for path in sorted((cache.cache_dir() / kind).glob("*.npz")):
            meta_text, arrays = cache._load_npz(path)
            meta = cache._parse_meta(meta_text)
            if meta.get("version") != version:
                continue
            arrays = cache._read_entry(path, {k: meta[k] for k in ("kind", "config", "version")})
            cache.ship(kind, meta["config"], arrays, version=cache.source_version(KINDS[kind].module))
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=ORDER, action="append", help="only this kind (repeatable)")
    parser.add_argument("--from-cache", action="store_true",
                        help="ship what the model cache holds for the current code; train nothing")
    parser.add_argument("--sample", action="store_true", help="only the sample the tests retrain")
    parser.add_argument("--into", type=Path, help="write into this folder, not the shipped one")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in ORDER if args.kind is None or k in args.kind)
    if args.from_cache:
        print(f"shipped {from_cache(kinds)} results from {cache.cache_dir()}")
        return 0
    listed = cache.shipped_entries()
    if args.sample:
        listed = sample(listed)
    into = None if args.into is None else str(args.into.resolve())
    for kind in kinds:
        spec = KINDS[kind]
        configs = [e["config"] for e in listed if e["kind"] == kind]
        if spec.today is not None and not args.sample:  # what today's code offers, whatever was listed
            configs = spec.today()
            if into is None:
                cache.unship(kind, keep=configs)
        start = time.perf_counter()
        groups: dict[Hashable, list[dict]] = {}
        for config in configs:
            groups.setdefault(spec.group(config), []).append(config)
        jobs = [(kind, group, into) for group in groups.values()]
        cache.build_side_by_side(rebuild_all, jobs)
        if len(jobs) < 2:  # nothing was started: build here
            for job in jobs:
                rebuild_all(*job)
        print(f"{kind}: {len(configs)} rebuilt in {time.perf_counter() - start:.0f} s")
    if into is None:
        total = sum(e["bytes"] for e in cache.shipped_entries())
        print(f"{len(cache.shipped_entries())} shipped files, {total / 1e6:.1f} MB, in {cache.shipped_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
