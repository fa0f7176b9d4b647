"""llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`, the `server`
extra) serving the embedded GGUF on loopback: a real server written by others, next to our
fault-injecting `loopback_server.py`.

The server runs in its own process group and is always stopped (SIGTERM, then SIGKILL) when the
context exits, whatever happened inside it. Readiness is `GET /v1/models` answering 200; a server
that dies while starting fails at once with the end of its log instead of a timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from evorefuse.models.local import N_CTX, gguf_path

# llama.cpp's server penalises repeated tokens (repeat_penalty 1.1) unless a request says
# otherwise; the embedded backend and OpenAI's API do not. With this, greedy texts agree.
NEUTRAL_SAMPLING = {"repeat_penalty": 1.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Starts the server with Linux's parent-death signal set, so the server gets SIGTERM when the test
# process dies however it dies (a pytest killed by a signal runs no fixture teardown); the setting
# survives the exec. argv[1] is the test process's pid: if it is already gone, do not start.
_LAUNCH = ("import ctypes, os, signal, sys\n"
           "ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG\n"
           "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"
           "os.execv(sys.executable, [sys.executable, '-m', 'llama_cpp.server', *sys.argv[2:]])")


class LlamaServer:
    """`with LlamaServer() as srv:` starts the server, waits until it serves, and stops it."""

    def __init__(self, *, threads: int = 2, startup_timeout: float = 300.0) -> None:
        self.port = free_port()
        self.threads = threads
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def command(self) -> list[str]:
        # logits_all is what lets the server return logprobs; n_ctx as the embedded backend's.
        return [sys.executable, "-c", _LAUNCH, str(os.getpid()), "--model", str(gguf_path()),
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(N_CTX),
                "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
                "--logits_all", "true", "--use_mlock", "false", "--verbose", "false"]

    def __enter__(self) -> Self:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode} while "
                                   f"starting:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"llama_cpp.server did not answer /v1/models within "
                           f"{self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers; then drop the log."""
        proc, self.proc = self.proc, None
        if proc is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if proc.poll() is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=15.0)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        self.log_path.unlink(missing_ok=True)
