"""Writing user-facing output files so that an interruption never leaves a partial file behind."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def write_atomic(out: Path, data: bytes) -> None:
    """Write to a temporary file beside `out`, fsync, then rename over `out`."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    from evorefuse.errors import InputError

    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(missing, path=path) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, expected {expected}", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None
