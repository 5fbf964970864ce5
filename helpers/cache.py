"""On-disk cache for trained models and other expensive results.

Introduced in the Appendix and first used in Chapter 'Training the two
networks': every notebook asks :func:`fetch` for what it needs, so a second
run (or a reader's rerun) skips the hours of training and reads the arrays
back instead.

An entry is one ``.npz`` file at ``cache_dir()/<kind>/<key[:16]>.npz``.  The
key is the sha256 of a canonical JSON of ``{"kind", "config", "version"}``.
Callers never type the version: :func:`code_version` derives it from the
source of the building module and of every ``helpers`` module it imports,
and from the TensorFlow, Keras and NumPy versions, so that changing any of
them rebuilds the entry instead of reading stale arrays.
Next to the arrays the file stores a JSON metadata record with the kind,
config, version and a sha256 checksum of the arrays; every read checks all
of them, and a damaged or mismatched entry is reported with a
:class:`CacheWarning`, deleted and rebuilt.  Writes go to a temporary file
that is moved into place atomically, under a per-entry file lock, so
concurrent processes build a missing entry only once.
"""

from __future__ import annotations

import ast
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import multiprocessing
import os
import re
import secrets
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from helpers import checks

__all__ = ["CacheWarning", "Entry", "build_side_by_side", "cache_dir", "checksum", "clear_cache", "code_digest", "code_version",
           "dependencies", "fetch", "fill", "has", "ship", "shipped", "shipped_dir", "shipped_entries", "unship",
           "source_version"]

_ENV_VAR = "OBD_CACHE_DIR"
_SHIPPED_ENV = "OBD_SHIPPED_DIR"
_MANIFEST = "manifest.json"
_META_KEY = "__cache_meta__"
_FORMAT = 1
_KIND_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
#: The package whose modules :func:`code_version` follows, and its folder.
_PACKAGE = __name__.partition(".")[0]
_PACKAGE_DIR = Path(__file__).resolve().parent


class CacheWarning(UserWarning):
    """A cache entry was unusable and is being rebuilt (Appendix)."""


class _BadEntry(Exception):
    """Raised internally when an entry on disk fails a check."""


def cache_dir() -> Path:
    """Return the cache root, creating it on demand (Appendix).

    ``$OBD_CACHE_DIR`` if set, else ``.cache`` in the repository root (the
    folder that contains the ``helpers`` package).
    """
    configured = os.environ.get(_ENV_VAR)
    if configured:
        root = Path(configured).expanduser()
    else:
        root = Path(__file__).resolve().parent.parent / ".cache"
    root.mkdir(parents=True, exist_ok=True)
    return root


def code_version(module: str) -> str:
    """The version of every entry ``module`` builds, derived from what it depends on (Appendix).

    Pass ``__name__``: ``fetch(kind, config, build, version=code_version(__name__))``.
    The result names the TensorFlow, Keras and NumPy versions and a sha256 over
    what the code of ``module`` and of every module of the ``helpers`` package it
    imports does: the syntax tree of each source, without its docstrings, comments
    and line numbers (:func:`code_digest`); this module is left out, since it stores
    results and computes none (its file format has a version of its own). Imports
    count directly or through other
    helpers modules: ``from helpers import a``, ``from helpers.post import b``,
    ``import helpers.c``, relative imports and imports inside functions. Editing the
    code of any of them changes the version, so the entry is rebuilt rather than
    read stale; editing only a docstring or a comment keeps it. The manifest of the
    shipped networks (:func:`shipped_dir`) counts too, so results computed from a
    shipped network are recomputed when it is replaced. A package's ``__init__.py``
    counts only when a name is imported from it, and other data files next to the
    code (the post's checkpoints, its published numbers) do not count: they are
    verified by their own checksums. The sources are read once per process, which
    is when the running code was imported.
    """
    _check_module(module)
    return _code_version(module)


def code_digest(source: str | bytes) -> str:
    """sha256 of what Python source does: its syntax tree without docstrings, comments or positions.

    Appendix. A docstring is the string literal that opens a module, class or function
    body; it is replaced by nothing (an empty body keeps a ``pass``), so rewording
    documentation keeps the digest and any change to the code changes it.
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def source_version(module: str) -> str:
    """:func:`code_version` without the shipped networks: the code and the library versions only.

    What the manifest of the shipped networks records as their producer, so a test
    can tell when the code that trains them has changed since (Appendix).
    """
    _check_module(module)
    return _source_version(module)


@functools.cache
def _source_version(module: str) -> str:
    """:func:`source_version` after its checks, memoised for the process."""
    import keras
    import tensorflow as tf

    digest = hashlib.sha256()
    for name in sorted(dependencies(module) - {__name__}):  # this module stores results, computes none
        digest.update(f"{name}\0{code_digest(_module_file(name).read_bytes())}\0".encode())
    return (f"code-{digest.hexdigest()[:16]} tensorflow-{tf.__version__} "
            f"keras-{keras.__version__} numpy-{np.__version__}")


@functools.cache
def _code_version(module: str) -> str:
    """:func:`code_version` after its checks, memoised for the process."""
    manifest = shipped_dir() / _MANIFEST  # results computed from shipped networks follow them
    shipped_digest = hashlib.sha256(manifest.read_bytes() if manifest.is_file() else b"").hexdigest()
    return f"{_source_version(module)} shipped-{shipped_digest[:16]}"


def dependencies(module: str) -> frozenset[str]:
    """``module`` and every ``helpers`` module it imports, transitively (Appendix; see :func:`code_version`)."""
    _check_module(module)
    found: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = _module_file(name)
        if path is None:
            raise ValueError(f"{name!r}, imported by a helpers module, has no source file under {_PACKAGE_DIR}")
        found.add(name)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_bytes(), filename=str(path))
        pending.extend(_imported_modules(tree, name, is_package))
    return frozenset(found)


def _imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The ``helpers`` modules an import statement anywhere in ``tree`` loads."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _in_package(alias.name):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            if not _in_package(base):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                # ``from helpers import data`` loads helpers/data.py; ``from helpers.x import f`` loads helpers/x.py
                yield submodule if _module_file(submodule) is not None else base


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module name ``from ... import`` reads from (resolving relative imports)."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


def _check_module(module: object) -> None:
    """Require the name of a module of the ``helpers`` package that has a source file."""
    if not isinstance(module, str):
        raise TypeError(f"module must be a module name string, got {type(module).__name__}")
    if not _in_package(module) or _module_file(module) is None:
        raise ValueError(f"module must name a module of the {_PACKAGE!r} package with a source file "
                         f"under {_PACKAGE_DIR}, got {module!r}")


def _in_package(name: str) -> bool:
    """Whether ``name`` is the ``helpers`` package or one of its modules."""
    return name == _PACKAGE or name.startswith(f"{_PACKAGE}.")


def _module_file(name: str) -> Path | None:
    """The source file of a ``helpers`` module or package, or None when there is none."""
    base = _PACKAGE_DIR.joinpath(*name.split(".")[1:])
    for path in (base / "__init__.py", base.with_name(f"{base.name}.py")):
        if path.is_file():
            return path
    return None


def has(kind: str, config: Mapping[str, Any], *, version: str, shipped: bool = False) -> bool:
    """Whether a valid entry for ``(kind, config, version)`` is on disk.

    The entry is read and verified as ``fetch`` would (metadata and checksum), so a damaged
    entry does not count. With ``shipped=True`` a result the book ships for ``(kind, config)``
    counts too, if its sha256 is the manifest's.
    """
    _check_kind(kind)
    _check_version(version)
    plain = _plain_config(config)
    if shipped:
        path = _shipped_file(kind, plain)
        if path is not None and _shipped_intact(kind, path):
            return True
    identity = {"kind": kind, "config": plain, "version": version}
    path = _entry_path(identity)
    if not path.exists():
        return False
    try:
        _read_entry(path, identity)
    except _BadEntry:
        return False
    return True


def fetch(
    kind: str,
    config: Mapping[str, Any],
    build: Callable[[], dict[str, np.ndarray]],
    *,
    version: str,
    use_cache: bool = True,
    shipped: bool = False,
) -> dict[str, np.ndarray]:
    """Return the cached arrays for ``(kind, config, version)``, building them if needed.

    Appendix / Chapter 'Training the two networks'.  ``build()`` is called
    only when no valid entry exists, and must return a dict mapping names to
    numpy arrays (no object dtype).  Nothing is printed, hit or miss.  With
    ``shipped=True`` the result the book ships for ``(kind, config)`` comes first
    (:func:`shipped`; the same arrays on every machine); a damaged one is reported
    with a :class:`CacheWarning` and built instead.  With ``use_cache=False``
    neither the shipped results nor the cache are read, and nothing is written:
    ``build()`` runs.
    """
    _check_kind(kind)
    if not callable(build):
        raise TypeError(f"build must be callable, got {type(build).__name__}")
    _check_version(version)
    use_cache, shipped = checks.flag(use_cache, "use_cache"), checks.flag(shipped, "shipped")
    plain = _plain_config(config)
    if not use_cache:
        return _checked_result(build())
    if shipped:
        arrays = _read_shipped(kind, plain)
        if arrays is not None:
            return arrays
    identity = {"kind": kind, "config": plain, "version": version}
    path = _entry_path(identity)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if path.exists():
            try:
                return _read_entry(path, identity)
            except _BadEntry as problem:
                warnings.warn(
                    f"cache entry {path} is unusable ({problem}); deleting and rebuilding it",
                    CacheWarning,
                    stacklevel=2,
                )
                path.unlink(missing_ok=True)
        arrays = _checked_result(build())
        _write_entry(path, arrays, identity)
        return arrays


@dataclasses.dataclass(frozen=True)
class Entry:
    """Where one result lives: its kind, configuration and code version, and whether the book
    ships results of its kind (``fetch``'s ``shipped``). A module builds one ``Entry`` per
    result and both reads it (:meth:`fetch`) and fills it (:func:`fill`) through it."""

    kind: str
    config: Mapping[str, Any]
    version: str
    shipped: bool = False

    def fetch(self, build: Callable[[], dict[str, np.ndarray]], *,
              use_cache: bool = True) -> dict[str, np.ndarray]:
        """``fetch(kind, config, build, version=..., shipped=...)`` of this entry."""
        return fetch(self.kind, self.config, build, version=self.version, use_cache=use_cache,
                     shipped=self.shipped)

    def present(self) -> bool:
        """``has(kind, config, version=..., shipped=...)`` of this entry."""
        return has(self.kind, self.config, version=self.version, shipped=self.shipped)


def fill(worker: Callable[..., object], jobs: Sequence[tuple], entries: Callable[..., Sequence[Entry]], *,
         processes: int | None = None,
         environment: Callable[..., Mapping[str, str]] | None = None) -> None:
    """Build, side by side, what the cache lacks: ``worker(*job)`` for each distinct job one of
    whose ``entries(*job)`` is not present (chapter "Training the two networks").

    ``worker`` stores the job's entries (with :meth:`Entry.fetch`) and the caller then reads
    them. Each job runs in a fresh process of its own, at most ``processes`` at a time (default:
    one per CPU core); with fewer than two jobs to run and no ``environment`` the caller's own
    reads build them instead. ``environment(*job)`` gives environment variables the job's
    process starts with (TensorFlow reads some, such as its choice of CPU kernels, only at
    start-up): such a job always runs in a process of its own. A worker's error is raised here,
    naming its job; the entry it was building is not written.
    """
    if not callable(worker) or not callable(entries):
        raise TypeError("worker and entries must be callable")
    if environment is not None and not callable(environment):
        raise TypeError(f"environment must be callable or None, got {environment!r}")
    jobs = _check_jobs(jobs)
    processes = checks.integer((os.cpu_count() or 1) if processes is None else processes, "processes")
    missing = [job for job in dict.fromkeys(jobs) if not all(e.present() for e in entries(*job))]
    if environment is None:
        build_side_by_side(worker, missing, processes=processes)
        return
    groups: dict[tuple, list[tuple]] = {}
    for job in missing:
        groups.setdefault(tuple(sorted(environment(*job).items())), []).append(job)
    for variables, group in groups.items():
        _in_processes(worker, group, processes, dict(variables))


def build_side_by_side(function: Callable[..., object], jobs: Sequence[tuple], *,
                       processes: int | None = None) -> None:
    """Call ``function(*job)`` for every job, each in a fresh process of its own, ``processes`` at a time.

    For functions that :func:`fetch` their result, the children fill the cache and the
    caller's own calls afterwards read it (:func:`fill` picks the jobs whose entries are
    missing). With fewer than two jobs, or one process, nothing is started.
    ``function`` must be importable by name (a module-level function).
    """
    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__name__}")
    jobs = _check_jobs(jobs)
    processes = checks.integer((os.cpu_count() or 1) if processes is None else processes, "processes")
    if len(jobs) < 2 or processes == 1:
        return
    _in_processes(function, jobs, processes, {})


def _check_jobs(jobs: object) -> list[tuple]:
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Sequence):
        raise TypeError(f"jobs must be a sequence of argument tuples, got {jobs!r}")
    for i, job in enumerate(jobs):
        if not isinstance(job, tuple):
            raise TypeError(f"jobs[{i}] must be a tuple of arguments, got {job!r}")
    return list(jobs)


_ENVIRONMENT_LOCK = threading.Lock()


def _in_processes(function: Callable[..., object], jobs: list[tuple], processes: int,
                  variables: dict[str, str]) -> None:
    """``function(*job)`` for every job, each in a fresh spawned process that starts with the
    caller's environment updated by ``variables``, ``processes`` at a time."""
    spawn = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
    # A child inherits the environment its parent has when it starts, so the variables are set
    # for the pool's life (one pool with variables at a time) and restored afterwards.
    # A fresh process per job: what a job's TensorFlow graphs hold is returned to the system when
    # it ends (a worker that ran ten chapter-13 retraining runs in a row had grown to 11 GB).
    with _ENVIRONMENT_LOCK if variables else contextlib.nullcontext():
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            with concurrent.futures.ProcessPoolExecutor(min(processes, len(jobs)), mp_context=spawn,
                                                        max_tasks_per_child=1) as pool:
                futures = [(job, pool.submit(_call, function, job)) for job in jobs]
                for job, future in futures:
                    try:
                        future.result()
                    except Exception as error:
                        raise RuntimeError(f"{function.__module__}.{function.__qualname__}{job} "
                                           f"failed in its own process: {error!r}") from error
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _call(function: Callable[..., object], job: tuple) -> None:
    """Worker of :func:`fill` and :func:`build_side_by_side`; the result stays in the cache, not in the pipe."""
    function(*job)


def shipped_dir() -> Path:
    """The folder of the results the book ships as data: ``$OBD_SHIPPED_DIR`` if set, else
    ``helpers/shipped`` (Appendix "Building and publishing this book").

    Long training runs amplify the last-bit differences between CPUs into other weights,
    so the book ships the networks its pages were computed from (:func:`ship`) and
    computes everything downstream of them live. ``manifest.json`` there lists every
    file with its kind, configuration, sha256 and what produced it.
    """
    configured = os.environ.get(_SHIPPED_ENV)
    return Path(configured).expanduser() if configured else _PACKAGE_DIR / "shipped"


def shipped(kind: str, config: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays the book ships for ``(kind, config)``, verified, or None if it ships none.

    A shipped file is read only if its sha256 is the manifest's and its own record
    names the same kind and configuration; otherwise a :class:`CacheWarning` says
    so and None is returned, so the caller builds the result instead.
    """
    _check_kind(kind)
    return _read_shipped(kind, _plain_config(config))


def shipped_entries() -> list[dict[str, Any]]:
    """The manifest's records, one per shipped file: ``file``, ``kind``, ``config``,
    ``sha256``, ``bytes`` and ``produced_by`` (code version, libraries, CPU)."""
    return [{"file": name, **record} for name, record in sorted(_manifest(shipped_dir()).items())]


def ship(kind: str, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *,
         version: str, into: Path | None = None) -> Path:
    """Store ``arrays`` as the shipped result of ``(kind, config)``; return its file.

    Appendix. Used by ``make networks`` (``scripts/ship_networks.py``). The file
    is written compressed and atomically into :func:`shipped_dir` (or the folder
    ``into``), and the manifest there records its checksum and what produced it:
    ``version`` (pass ``source_version`` of the building module), the Python
    version, the machine and its CPU's instruction sets.
    """
    _check_kind(kind)
    _check_version(version)
    if into is not None and not isinstance(into, Path):
        raise TypeError(f"into must be a pathlib.Path or None, got {type(into).__name__}")
    plain = _plain_config(config)
    arrays = _checked_result(dict(arrays))
    root = shipped_dir() if into is None else into
    root.mkdir(parents=True, exist_ok=True)
    identity = {"kind": kind, "config": plain}
    path = root / _shipped_name(identity)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{root / _MANIFEST}.lock"):
        _write_entry(path, arrays, identity, compressed=True)
        manifest = _manifest(root)
        manifest[_shipped_name(identity)] = {
            "kind": kind, "config": plain, "sha256": _file_sha256(path), "bytes": path.stat().st_size,
            "produced_by": {"version": version, **_machine()}}
        _write_manifest(root, manifest)
    return path


def unship(kind: str, *, keep: Sequence[Mapping[str, Any]]) -> int:
    """Remove the shipped results of ``kind`` whose configuration is not in ``keep``; return how many.

    Appendix. ``make networks`` uses it for results keyed by the networks they were
    computed from (the explorer's levels), whose old keys no chapter asks for again.
    """
    _check_kind(kind)
    if isinstance(keep, (str, bytes)) or not isinstance(keep, Sequence):
        raise TypeError(f"keep must be a sequence of configurations, got {type(keep).__name__}")
    kept = {_shipped_name({"kind": kind, "config": _plain_config(c)}) for c in keep}
    root = shipped_dir()
    with FileLock(f"{root / _MANIFEST}.lock"):
        manifest = _manifest(root)
        stale = [name for name, record in manifest.items() if record["kind"] == kind and name not in kept]
        for name in stale:
            del manifest[name]
            (root / name).unlink(missing_ok=True)
        if stale:
            _write_manifest(root, manifest)
    return len(stale)


def _write_manifest(root: Path, manifest: dict[str, dict[str, Any]]) -> None:
    """Replace ``root``'s manifest atomically (the caller holds its lock)."""
    text = json.dumps({"format": _FORMAT, "entries": manifest}, indent=1, sort_keys=True) + "\n"
    temporary = root / f".{_MANIFEST}.{os.getpid()}.tmp"
    temporary.write_text(text)
    os.replace(temporary, root / _MANIFEST)


def _shipped_name(identity: dict[str, Any]) -> str:
    """``<kind>/<key[:16]>.npz``, the key a sha256 of kind and configuration only."""
    key = hashlib.sha256(_canonical_json(identity).encode("utf-8")).hexdigest()
    return f"{identity['kind']}/{key[:16]}.npz"


def _shipped_file(kind: str, plain: dict[str, Any]) -> Path | None:
    """The shipped file the manifest lists for this kind and configuration, or None."""
    root = shipped_dir()
    name = _shipped_name({"kind": kind, "config": plain})
    return root / name if name in _manifest(root) else None


def _read_shipped(kind: str, plain: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """Read and verify one shipped result (see :func:`shipped`)."""
    path = _shipped_file(kind, plain)
    if path is None:
        return None
    try:
        if not _shipped_intact(kind, path):
            raise _BadEntry("its sha256 is not the manifest's")
        return _read_entry(path, {"kind": kind, "config": plain})
    except _BadEntry as problem:
        warnings.warn(f"shipped result {path} is unusable ({problem}); building it instead",
                      CacheWarning, stacklevel=3)
        return None


def _shipped_intact(kind: str, path: Path) -> bool:
    """Whether the shipped file at ``path`` exists and has the sha256 its manifest lists."""
    record = _manifest(path.parents[1])[f"{kind}/{path.name}"]
    return path.is_file() and _file_sha256(path) == record.get("sha256")


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    """The manifest's entries (empty when there is none), read again whenever the file changes."""
    path = root / _MANIFEST
    try:
        stamp = path.stat()
    except FileNotFoundError:
        return {}
    return dict(_read_manifest(str(path), stamp.st_mtime_ns, stamp.st_size))


@functools.lru_cache(maxsize=8)
def _read_manifest(path: str, mtime_ns: int, size: int) -> dict[str, dict[str, Any]]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("entries"), dict):
        raise ValueError(f"{path} is not a manifest of shipped results (format {_FORMAT})")
    return data["entries"]


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: CPU flags that choose TensorFlow's and oneDNN's kernels (x86): the vector width, and the
#: VNNI/BF16/AMX extensions without which TensorFlow leaves oneDNN's optimisations off.
_KERNEL_FLAGS = ("sse4_1", "avx", "avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def _machine() -> dict[str, str]:
    """What produced a shipped result: Python, platform, and the CPU's vector instruction sets."""
    import platform

    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = sorted({f for f in line.split(":", 1)[1].split()
                                if f in _KERNEL_FLAGS})
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "machine": f"{platform.system()} {platform.machine()}",
            "cpu_flags": " ".join(flags),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default")}


def clear_cache(kind: str | None = None) -> int:
    """Delete all cache entries, or those of one ``kind``; return how many (Appendix)."""
    if kind is not None:
        _check_kind(kind)
    removed = 0
    for path in _entries(kind):
        with FileLock(f"{path}.lock"):
            if path.exists():
                path.unlink()
                removed += 1
    return removed


def _entries(kind: str | None) -> Iterator[Path]:
    """Yield the entry files of one kind, or of every kind."""
    root = cache_dir()
    pattern = f"{kind}/*.npz" if kind is not None else "*/*.npz"
    yield from sorted(root.glob(pattern))


def _check_kind(kind: object) -> None:
    """Require a non-empty name made of letters, digits, ``_`` and ``-``."""
    if not isinstance(kind, str) or not _KIND_PATTERN.fullmatch(kind):
        raise ValueError(f"kind must be a non-empty string of [A-Za-z0-9_-], got {kind!r}")


def _check_version(version: object) -> None:
    """Require a non-empty string."""
    if not isinstance(version, str):
        raise TypeError(f"version must be a string, got {type(version).__name__}")
    if not version:
        raise ValueError("version must be a non-empty string")


def _plain_config(config: object) -> dict[str, Any]:
    """Validate ``config`` and return it as plain JSON data (tuples become lists)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    return _plain_value(config, "config")


def _plain_value(value: object, where: str) -> Any:
    """Convert one config value to JSON data, or raise naming where it sits in ``config``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value!r}")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} keys must be strings, got {key!r}")
            plain[key] = _plain_value(item, f"{where}[{key!r}]")
        return plain
    raise TypeError(
        f"{where} must hold only numbers, strings, bools, None, lists/tuples or "
        f"mappings, got {type(value).__name__}"
    )


def _canonical_json(data: object) -> str:
    """Serialise JSON data the same way every time."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _entry_path(identity: dict[str, Any]) -> Path:
    """Where the entry for this kind/config/version lives."""
    key = hashlib.sha256(_canonical_json(identity).encode("utf-8")).hexdigest()
    return cache_dir() / identity["kind"] / f"{key[:16]}.npz"


def _checked_result(result: object) -> dict[str, np.ndarray]:
    """Check what ``build()`` returned: a dict of names to non-object arrays."""
    if not isinstance(result, dict):
        raise TypeError(f"build must return a dict of arrays, got {type(result).__name__}")
    for name, array in result.items():
        if not isinstance(name, str) or not name or name == _META_KEY:
            raise TypeError(f"build returned an invalid array name {name!r}")
        if not isinstance(array, np.ndarray):
            raise TypeError(f"build returned {type(array).__name__} for {name!r}, not an ndarray")
        if array.dtype.hasobject:
            raise TypeError(f"build returned an object-dtype array for {name!r}")
    return dict(result)


def checksum(arrays: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> str:
    """sha256 over name, dtype, shape and bytes of each array, in sorted name order (the
    arrays of a sequence are named by their positions): what a cache entry records of its
    arrays, and the book's one digest of arrays (appendix "Reproducibility")."""
    if isinstance(arrays, Mapping):
        named = dict(arrays)
    elif isinstance(arrays, Sequence) and not isinstance(arrays, (str, bytes)):
        named = {str(i): a for i, a in enumerate(arrays)}
    else:
        raise TypeError(f"arrays must be a mapping or a sequence of arrays, got {type(arrays).__name__}")
    digest = hashlib.sha256()
    for name in sorted(named):
        array = np.ascontiguousarray(named[name])
        header = _canonical_json([name, array.dtype.str, list(array.shape)])
        digest.update(header.encode("utf-8"))
        digest.update(array.tobytes())
    return digest.hexdigest()


def _write_entry(path: Path, arrays: dict[str, np.ndarray], identity: dict[str, Any], *,
                 compressed: bool = False) -> None:
    """Write the entry to a temporary file in the same folder, then move it into place."""
    meta = {**identity, "checksum": checksum(arrays), "format": _FORMAT}
    payload = {**arrays, _META_KEY: np.array(_canonical_json(meta))}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as handle:  # "x": a fresh file with the usual umask
            _save_npz(handle, payload, compressed)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _save_npz(handle: Any, payload: dict[str, np.ndarray], compressed: bool = False) -> None:
    """Serialise the arrays: uncompressed in the cache (reading back is what must be fast),
    compressed when shipped (what must be small)."""
    (np.savez_compressed if compressed else np.savez)(handle, **payload)


def _read_entry(path: Path, identity: dict[str, Any]) -> dict[str, np.ndarray]:
    """Load an entry and check metadata and checksum; raise ``_BadEntry`` on any problem."""
    meta_text, arrays = _load_npz(path)
    meta = _parse_meta(meta_text)
    if meta.get("format") != _FORMAT:
        raise _BadEntry(f"unknown entry format {meta.get('format')!r}")
    stored = {field: meta.get(field) for field in identity}
    if _canonical_json(stored) != _canonical_json(identity):
        raise _BadEntry("stored kind/config/version differ from the requested ones")
    if meta.get("checksum") != checksum(arrays):
        raise _BadEntry("checksum mismatch")
    return arrays


def _load_npz(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Read the metadata text and the arrays of an entry, never unpickling anything."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as error:  # bad magic, bad zip directory, pickle refused, ...
        raise _BadEntry(f"not a readable npz file: {error}") from error
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise _BadEntry("not an npz archive")
    with loaded as archive:
        if _META_KEY not in archive.files:
            raise _BadEntry("missing metadata")
        try:
            arrays = {name: archive[name] for name in archive.files}
        except Exception as error:  # CRC, truncation, bad array header, ...
            raise _BadEntry(f"damaged array data: {error}") from error
    return str(arrays.pop(_META_KEY)[()]), arrays


def _parse_meta(text: str) -> dict[str, Any]:
    """Decode the metadata record stored in an entry."""
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as error:
        raise _BadEntry(f"unreadable metadata: {error}") from error
    if not isinstance(meta, dict):
        raise _BadEntry("metadata is not a JSON object")
    return meta
