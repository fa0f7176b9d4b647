"""Reading the user's input files and writing what the user receives, safely.

Why so careful: outputs are named by the user (`-o`), so a typo can point at a device node, a
symlink, another program's file or a run's own state, and a full or read-only disk must not leave
half a file that looks like a result. So an output is checked before any work (not a regular file,
or part of a run's state: refused, exit 2), written to a temporary file beside it and renamed into
place (a multiply-linked file is rewritten in place instead, so its other names see the new
content), with the existing file's mode or, for a new file, the mode the umask allows (0644 by
default), and a failed write leaves nothing behind.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from evorefuse.errors import InputError, RunFailed

RUN_STATE_FILES = frozenset({
    "manifest.json", "config.json", "seeds.jsonl", "checkpoint.json", "archive.jsonl",
    "events.jsonl", "cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "run.lock"})
"""What a run directory holds for itself; no export or report may replace one of them."""


def write_stdout(data: bytes) -> None:
    """Write bytes to stdout as they are (UTF-8 JSON lines), after anything click printed."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (e.g. click's test runner in some modes)
        sys.stdout.write(data.decode("utf-8"))
    else:
        sys.stdout.flush()
        buffer.write(data)
        buffer.flush()


def read_input(path: Path, expected: str, missing: str = "file not found") -> bytes:
    """Read a user's input file, turning every OS failure into a one-line InputError (exit 2)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(missing, path=path) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, expected {expected}", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None


def check_output(out: Path, *, option: str = "-o") -> None:
    """Refuse, before any work is done, an output that cannot or must not be written."""
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_symlink():
        raise InputError("is a symbolic link; refusing to replace it (name the file it points "
                         "to, or another file)", path=out, field=option)
    if out.exists():
        mode = out.stat().st_mode
        if stat.S_ISDIR(mode):
            raise InputError("is a directory; give a file name", path=out, field=option)
        if not stat.S_ISREG(mode):
            raise InputError("is not a regular file (a device, pipe or socket); refusing to "
                             "replace it", path=out, field=option)
    if out.name in RUN_STATE_FILES and (parent / "manifest.json").exists():
        raise InputError("is part of a run directory's own state; choose another file",
                         path=out, field=option)
    if not parent.is_dir():
        raise InputError("directory does not exist", path=parent, field=option)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError("directory is not writable", path=parent, field=option)


def write_output(out: Path, data: bytes) -> None:
    """Write a file the user receives: all of it or nothing, keeping an existing file's mode."""
    try:
        st = out.stat() if out.exists() else None
        mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(out, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if st is not None and st.st_nlink > 1:
            _rewrite_in_place(out, data)
            os.unlink(tmp)
        else:
            os.replace(tmp, out)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _cannot_write(out, exc) from None
        raise


def make_output_dir(path: Path, *, option: str = "-o") -> None:
    """Create a directory for outputs, or say in one line why it cannot be."""
    if path.exists() and not path.is_dir():
        raise InputError("exists and is not a directory", path=path, field=option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create directory: {exc.strerror}", path=path,
                         field=option) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError("directory is not writable", path=path, field=option)


def _rewrite_in_place(out: Path, data: bytes) -> None:
    """For a file with other hard links: the complete new content is already safe on disk in
    the temporary file, so a failure here is reported, not silent."""
    with open(out, "r+b") as f:
        f.truncate(0)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _cannot_write(out: Path, exc: OSError) -> RunFailed:
    return RunFailed(f"{out}: cannot write ({exc.strerror or exc}); nothing was written")
