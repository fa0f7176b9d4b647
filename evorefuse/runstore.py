"""The run directory: everything a run needs to be inspected, resumed and exported.

    runs/<id>/
      manifest.json     format version, evorefuse/library versions, config hash, creation time
      config.json       the resolved config (names of env vars only, never keys)
      seeds.jsonl       the seeds as loaded, so a resume does not depend on the original files
      checkpoint.json   engine state after the last complete generation (atomic replace)
      archive.jsonl     every candidate, append-only; the checkpoint says how many lines are final
      events.jsonl      append-only log of what happened (generations, rejections, resumes, stops)
      cache.sqlite      the request cache and call ledger (WAL)
      run.lock          held (flock) by the process running it

Checkpoints are incremental: the archive is appended, never rewritten, and the checkpoint holds only
the small engine state plus the archive's committed length, so its cost does not grow with the run.
"""

from __future__ import annotations

import fcntl
import os
import platform
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from evorefuse import __version__
from evorefuse.config import Config
from evorefuse.errors import InputError, RunFailed
from evorefuse.evolution.candidate import Candidate

FORMAT_VERSION = 2
"""1: the first format. 2: the manifest adds `run_id` and `config` (what the run computes with),
and `config_hash` covers only those settings, so a resume can tell an edited config from a
legitimately extended one."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write-then-rename: a reader or a crash sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunFailed(f"{path}: cannot write ({exc.strerror}); the last checkpoint is intact "
                        "and `evorefuse resume` continues from it once the disk is writable") from None


def _cannot_write(path: Path, exc: OSError) -> RunFailed:
    return RunFailed(f"{path}: cannot write ({exc.strerror or exc}); the last checkpoint is intact "
                     "and `evorefuse resume` continues from it once the disk is writable")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def read_jsonl(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Records of an append-only log; a torn last line (kill -9 mid-append) ends it quietly."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                return
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    return


def read_committed(path: Path, lines: int) -> list[dict[str, Any]]:
    """The first `lines` records of an append-only file, every one of which a checkpoint says
    was written whole: a damaged or missing one is reported, never silently dropped."""
    out: list[dict[str, Any]] = []
    if lines == 0:
        return out
    if not path.exists():
        raise InputError(f"run directory is damaged: {path.name} is missing but the checkpoint "
                         f"records {lines} lines; restore it from a copy of the run", path=path.parent)
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if i >= lines:
                break
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                rec = None
            if not isinstance(rec, dict):
                raise InputError("run directory is damaged: this committed record is not a JSON "
                                 "object; restore the file from a copy of the run", path=path,
                                 line=i + 1) from None
            out.append(rec)
    if len(out) < lines:
        raise InputError(f"run directory is damaged: {len(out)} lines but the checkpoint records "
                         f"{lines}; restore the file from a copy of the run", path=path)
    return out


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    # --- files ---------------------------------------------------------------------------------
    manifest_file = property(lambda self: self.path / "manifest.json")
    config_file = property(lambda self: self.path / "config.json")
    seeds_file = property(lambda self: self.path / "seeds.jsonl")
    checkpoint_file = property(lambda self: self.path / "checkpoint.json")
    archive_file = property(lambda self: self.path / "archive.jsonl")
    events_file = property(lambda self: self.path / "events.jsonl")
    cache_file = property(lambda self: self.path / "cache.sqlite")

    # --- create / open -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, cfg: Config, seeds: list[dict[str, Any]]) -> RunStore:
        if path.exists() and any(path.iterdir()):
            raise InputError("run directory already exists and is not empty (use `evorefuse resume`)",
                             path=path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create run directory: {exc.strerror}", path=path) from None
        if not os.access(path, os.W_OK):
            raise InputError("run directory is not writable", path=path)
        store = cls(path)
        store.lock()
        write_json(store.config_file, cfg.to_json())
        atomic_write_bytes(store.seeds_file, b"".join(orjson.dumps(s) + b"\n" for s in seeds))
        write_json(store.manifest_file, {
            "format_version": FORMAT_VERSION, "run_id": uuid.uuid4().hex, "evorefuse": __version__,
            "python": platform.python_version(), "config_hash": cfg.computation_hash(),
            "config": cfg.computation_json(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "libraries": _library_versions(),
        })
        return store

    @classmethod
    def open(cls, path: str | Path) -> RunStore:
        path = Path(path)
        if not path.is_dir():
            raise InputError("no such run directory", path=path)
        store = cls(path)
        if not store.manifest_file.exists():
            raise InputError("not an evorefuse run directory (no manifest.json)", path=path)
        try:
            manifest = orjson.loads(store.manifest_file.read_bytes())
        except orjson.JSONDecodeError:
            raise InputError("manifest.json is not valid JSON", path=store.manifest_file) from None
        version = manifest.get("format_version")
        if not isinstance(version, int):
            raise InputError("manifest has no format_version", path=store.manifest_file)
        if version > FORMAT_VERSION:
            raise InputError(f"run format {version} is newer than this evorefuse supports "
                             f"({FORMAT_VERSION}); upgrade evorefuse", path=store.manifest_file)
        return store

    def manifest(self) -> dict[str, Any]:
        return _read_json(self.manifest_file)

    @property
    def run_id(self) -> str:
        """What the run's spending is recorded under: an id in the manifest, so moving or
        renaming the directory keeps its count (runs made before the id existed use their
        directory's name, which `adopt_run_id` then writes into the manifest)."""
        return str(self.manifest().get("run_id") or self.path.name)

    def adopt_run_id(self) -> None:
        """Give a run made before run ids existed the id its spending is already recorded
        under (its directory's name), so a later rename keeps the count."""
        manifest = self.manifest()
        if not manifest.get("run_id"):
            manifest["run_id"] = self.path.name
            write_json(self.manifest_file, manifest)

    def config(self) -> dict[str, Any]:
        return _read_json(self.config_file)

    def seeds(self) -> list[dict[str, Any]]:
        """The seeds as loaded when the run started (written whole, so every line must parse)."""
        if not self.seeds_file.exists():
            raise InputError("run directory is damaged: seeds.jsonl is missing", path=self.path)
        lines = sum(1 for line in self.seeds_file.read_bytes().splitlines() if line.strip())
        seeds = read_committed(self.seeds_file, lines)
        for i, s in enumerate(seeds, 1):
            if not isinstance(s.get("id"), str) or not isinstance(s.get("prompt"), str):
                raise InputError("run directory is damaged: a seed without `id` or `prompt`",
                                 path=self.seeds_file, line=i)
        return seeds

    # --- lock ----------------------------------------------------------------------------------
    def lock(self) -> None:
        try:
            fd = os.open(str(self.path / "run.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _cannot_write(self.path / "run.lock", exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            try:
                holder = (self.path / "run.lock").read_text().strip()
            except OSError:
                pass
            raise InputError("run is locked by another evorefuse process"
                             + (f" (pid {holder})" if holder else ""), path=self.path) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- checkpoint / archive / events ---------------------------------------------------------
    def checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_file.exists():
            return None
        cp = _read_json(self.checkpoint_file)
        for key, kind in (("generation", int), ("archive_lines", int), ("lineages", list),
                          ("bandit", dict)):
            if not isinstance(cp.get(key), kind):
                raise InputError(f"run directory is damaged: no valid `{key}`; restore the file "
                                 "from a copy of the run", path=self.checkpoint_file)
        return cp

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write_bytes(self.checkpoint_file, orjson.dumps(state))

    def archive(self, committed_only: bool = True) -> list[dict[str, Any]]:
        if not committed_only:
            return list(read_jsonl(self.archive_file))
        cp = self.checkpoint()
        return read_committed(self.archive_file, int(cp["archive_lines"]) if cp else 0)

    def candidates(self) -> list[Candidate]:
        """The committed archive as typed records."""
        return [Candidate.from_json(d) for d in self.archive()]

    def append_archive(self, records: Iterable[dict[str, Any]]) -> int:
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        try:
            with open(self.archive_file, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise _cannot_write(self.archive_file, exc) from None
        return data.count(b"\n")

    def truncate_archive(self, lines: int) -> None:
        """Drop records of a generation that was not checkpointed (they will be recomputed, from
        the cache, identically)."""
        if not self.archive_file.exists():
            return
        keep = 0
        with open(self.archive_file, "rb") as f:
            for i, line in enumerate(f):
                if i >= lines:
                    break
                keep += len(line)
        try:
            with open(self.archive_file, "r+b") as f:
                f.truncate(keep)
                os.fsync(f.fileno())
        except OSError as exc:
            raise _cannot_write(self.archive_file, exc) from None

    def event(self, kind: str, **data: Any) -> None:
        rec = {"t": round(time.time(), 3), "event": kind, **data}
        try:
            with open(self.events_file, "ab") as f:
                f.write(orjson.dumps(rec) + b"\n")
        except OSError as exc:
            raise _cannot_write(self.events_file, exc) from None

    def events(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.events_file))


def _read_json(path: Path) -> dict[str, Any]:
    """A run file the user (or a broken copy) may have damaged: one clear line, exit 2."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"run directory is damaged: {path.name} is missing", path=path.parent) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"run directory is damaged: not valid JSON ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise InputError("run directory is damaged: expected a JSON object", path=path)
    return data


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("openai", "llama-cpp-python", "sentence-transformers", "deap", "numpy", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
