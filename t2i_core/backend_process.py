"""One backend process: spawn it, say hello, send requests, turn its stdout into events.

No bpy here, and no waiting on jobs: the job queue (job_queue.py) owns the one BackendProcess
of a Blender session and is the only thing that reads its events. A reader thread turns the
backend's stdout lines into `events`; an exited backend posts EXITED there, so whoever drains
the queue learns of a crash the same way whatever the timing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import protocol
from .backend_kinds import BACKEND_MODULE
from .environment import python_environment
from .protocol import HINTS, ErrorCode

log = logging.getLogger("blender_t2i")

# The extension folder: it holds backend/ and blender_t2i/, which the backend imports.
EXTENSION_ROOT = Path(__file__).resolve().parents[1]
EXITED = "_exited"  # event the reader thread posts when the backend's stdout closes
GARBAGE = "_garbage"  # event it posts for a line that is not protocol: the stream is corrupt
START_TIMEOUT_S = 300.0  # imports of torch + diffusers on a cold disk can take a while
STOP_TIMEOUT_S = 10.0


class BackendFailure(Exception):
    """A job or backend failure to report to the user: code, message and what to do."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.hint = HINTS.get(code, "") if hint is None else hint

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> BackendFailure:
        """The failure an `error` or `cancelled` event means."""
        if event.get("type") == protocol.CANCELLED:
            return cls.cancelled()
        return cls(event.get("code", ErrorCode.GENERATION_FAILED),
                   event.get("message", "generation failed"), event.get("hint"))

    @classmethod
    def cancelled(cls) -> BackendFailure:
        return cls(ErrorCode.CANCELLED, "the job was cancelled")

    def report(self) -> str:
        return f"{self} ({self.hint})" if self.hint else str(self)


@dataclass(frozen=True)
class BackendConfig:
    python: str
    cache_dir: Path
    log_path: Path
    env: tuple[tuple[str, str], ...] = ()  # extra environment: HF cache, model folders, ...
    # what runs: `python -m backend` (local diffusers) or `python -m comfy_bridge --url ...`
    # (a ComfyUI server); both speak the same protocol (t2i_core/backend_kinds.py)
    module: str = BACKEND_MODULE
    args: tuple[str, ...] = ()


class BackendProcess:
    def __init__(self, config: BackendConfig):
        self.config = config
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready: dict[str, Any] = {}  # the `ready` event, once accepted
        self.start_seconds = 0.0
        self.jobs_sent = 0
        self._process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self._launched = 0.0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (None while it runs or before launch)."""
        return self._process.poll() if self._process is not None else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def launch(self) -> None:
        """Spawn the backend and say hello without waiting: its `ready` (or exit) arrives on
        `events`; pass it to `accept_ready`. Takes milliseconds, so the UI can call it."""
        python = self.config.python
        if not python:
            raise BackendFailure(ErrorCode.BACKEND_NOT_CONFIGURED, "no backend Python is set")
        if not os.path.isfile(python) or not os.access(python, os.X_OK):
            raise BackendFailure(ErrorCode.BACKEND_NOT_CONFIGURED,
                                 f"the backend Python '{python}' does not exist or is not "
                                 "executable")
        self.config.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.config.log_path, "ab")  # noqa: SIM115 (lives as long as the process)
        # The backend imports `backend` and `t2i_core` from the extension folder: say
        # so explicitly rather than rely on the working directory alone.
        env = python_environment([*self.config.env, ("PYTHONPATH", str(EXTENSION_ROOT))])
        self._launched = time.perf_counter()
        try:
            self._process = subprocess.Popen(
                [python, "-m", self.config.module, "--cache-dir", str(self.config.cache_dir),
                 *self.config.args],
                cwd=EXTENSION_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._log, bufsize=0)
        except OSError as exc:
            self._log.close()
            self._log = None
            raise BackendFailure(ErrorCode.BACKEND_START_FAILED,
                                 f"could not run '{python}': {exc}") from exc
        threading.Thread(target=self._read_events, args=(self._process,),
                         name="t2i-backend-reader", daemon=True).start()
        # A backend that dies at once breaks the pipe here; the reader thread then posts its
        # exit, so callers learn of it one way (from `events`) whatever the timing.
        with contextlib.suppress(BackendFailure):
            self.send({"type": protocol.HELLO})

    def start_failure(self) -> BackendFailure:
        """The backend exited before `ready`: stop it and say why (the log's last line)."""
        if self._process is not None:
            self._process.wait()  # its log is complete once it has exited
        self.stop()
        return BackendFailure(ErrorCode.BACKEND_START_FAILED,
                              f"the backend exited while starting: {self.log_tail()}")

    def accept_ready(self, event: dict[str, Any]) -> None:
        """Check the backend's answer to hello; raises BackendFailure (and stops it) if wrong."""
        if event["type"] != protocol.READY:
            self.stop()
            raise BackendFailure(ErrorCode.BACKEND_START_FAILED,
                                 f"the backend answered hello with {event['type']}")
        if event.get("protocol") != protocol.PROTOCOL_VERSION:
            self.stop()
            raise BackendFailure(ErrorCode.BACKEND_START_FAILED,
                                 f"backend protocol {event.get('protocol')} != add-on "
                                 f"protocol {protocol.PROTOCOL_VERSION}",
                                 HINTS[ErrorCode.UNKNOWN_REQUEST])
        self.ready = event
        self.start_seconds = time.perf_counter() - self._launched
        log.info("backend %s ready in %.1f s", self.pid, self.start_seconds)

    def log_tail(self, lines: int = 1) -> str:
        """The last lines of the backend log (where a start failure says why)."""
        try:
            text = self.config.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) or "(empty log)"

    def _read_events(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            try:
                self.events.put(protocol.decode(raw))
            except protocol.ProtocolError as exc:
                log.error("backend sent a malformed line (%s): %r", exc, raw[:200])
                self.events.put({"type": GARBAGE, "reason": str(exc), "line": raw[:80]})
        self.events.put({"type": EXITED, "returncode": process.wait()})

    def send(self, message: dict[str, Any]) -> None:
        if self._process is None or self._process.stdin is None:
            raise BackendFailure(ErrorCode.BACKEND_CRASHED, "the backend is not running")
        try:
            self._process.stdin.write(protocol.encode(message).encode("utf-8"))
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise BackendFailure(ErrorCode.BACKEND_CRASHED,
                                 f"the backend stopped unexpectedly ({exc})") from exc
        if message.get("type") == protocol.GENERATE:
            self.jobs_sent += 1

    def garbage_failure(self, event: dict[str, Any]) -> BackendFailure:
        return BackendFailure(
            ErrorCode.BACKEND_CRASHED,
            f"the backend sent a line that is not protocol ({event['reason']}: "
            f"{event['line']!r}); it was stopped and starts afresh with the next job")

    def crash_failure(self, returncode: int) -> BackendFailure:
        return BackendFailure(
            ErrorCode.BACKEND_CRASHED,
            f"the backend stopped unexpectedly (exit status {returncode}); "
            f"its log is {self.config.log_path}")

    def kill(self) -> None:
        """For a hung backend: no shutdown to ask for, it would not answer."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    def stop(self, timeout: float = STOP_TIMEOUT_S, wait: bool = True) -> None:
        """Ask the backend to shut down (closing its stdin, which alone makes it exit) and
        kill it if it has not within `timeout`. With wait=False that waiting happens on a
        thread, so Blender's main thread never waits for a backend to finish."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                assert process.stdin is not None
                process.stdin.write(protocol.encode({"type": protocol.SHUTDOWN}).encode())
                process.stdin.close()
            except (BrokenPipeError, OSError):
                pass  # already gone: nothing to ask
        log_file, self._log = self._log, None
        if not wait:
            threading.Thread(target=_reap, args=(process, log_file, timeout),
                             name="t2i-backend-stop", daemon=True).start()
            return
        _reap(process, log_file, timeout)


def _reap(process: subprocess.Popen | None, log_file: IO[bytes] | None, timeout: float) -> None:
    """Wait for a backend told to stop; kill it after `timeout`; close its log."""
    if process is not None and process.poll() is None:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("backend %s did not exit; killing it", process.pid)
            process.kill()
            process.wait()
    if log_file is not None:
        log_file.close()
