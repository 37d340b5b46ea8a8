"""The add-on's side of the backend: spawn the process, send requests, collect events.

No bpy here. A reader thread turns the backend's stdout lines into a queue; the caller (an
operator on Blender's main thread) drains it: blocking in background mode, from a timer in the UI.
A backend that exits is noticed (EOF on its stdout) and the next `get_client` starts a fresh one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import protocol
from .protocol import HINTS, ErrorCode

log = logging.getLogger("blender_t2i")

EXTENSION_ROOT = Path(__file__).resolve().parents[2]  # holds backend/ and blender_t2i/
EXITED = "_exited"  # queue item the reader thread posts when the backend's stdout closes
START_TIMEOUT_S = 300.0  # imports of torch + diffusers on a cold disk can take a while


class BackendFailure(Exception):
    """A job or backend failure to report to the user: code, message and what to do."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.hint = HINTS.get(code, "") if hint is None else hint

    def report(self) -> str:
        return f"{self} ({self.hint})" if self.hint else str(self)


@dataclass(frozen=True)
class BackendConfig:
    python: str
    cache_dir: Path
    log_path: Path
    env: tuple[tuple[str, str], ...] = ()  # extra environment, e.g. the HF cache to read


class BackendClient:
    def __init__(self, config: BackendConfig):
        self.config = config
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready: dict[str, Any] = {}
        self.start_seconds = 0.0
        self.jobs_sent = 0
        self.last_event: dict[str, Any] = {}  # the latest event of the job being waited for
        self._process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self._launched = 0.0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Launch and wait for the backend's `ready` (blocking: background mode and scripts)."""
        self.launch()
        try:
            event = self._next_event(timeout, waiting_for="the backend to start")
        except BackendFailure as exc:
            if exc.code != ErrorCode.BACKEND_CRASHED:
                raise
            raise self.start_failure() from None
        self.accept_ready(event)

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
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(self.config.env)
        self._launched = time.perf_counter()
        try:
            self._process = subprocess.Popen(
                [python, "-m", "backend", "--cache-dir", str(self.config.cache_dir)],
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
                self.events.put(protocol.decode(raw.decode("utf-8")))
            except (protocol.ProtocolError, UnicodeDecodeError):
                log.error("backend sent a malformed line: %r", raw[:200])
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

    def crash_failure(self, returncode: int) -> BackendFailure:
        return BackendFailure(
            ErrorCode.BACKEND_CRASHED,
            f"the backend stopped unexpectedly (exit status {returncode}); "
            f"its log is {self.config.log_path}")

    def _next_event(self, timeout: float | None, waiting_for: str) -> dict[str, Any]:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise BackendFailure(ErrorCode.BACKEND_TIMEOUT,
                                 f"timed out after {timeout:.0f} s waiting for {waiting_for}") \
                from None
        if event["type"] == EXITED:
            raise self.crash_failure(event["returncode"])
        return event

    def wait_for(self, job_id: str, on_event: Callable[[dict[str, Any]], None] | None = None,
                 timeout: float | None = None) -> dict[str, Any]:
        """Block until the job's result; raises BackendFailure on error, cancel or crash."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            event = self._next_event(remaining, waiting_for=f"job {job_id}")
            if event.get("id") != job_id:
                if event["type"] == protocol.ERROR and "id" not in event:
                    log.error("backend error: %s", event.get("message"))
                continue
            self.last_event = event
            if on_event is not None:
                on_event(event)
            kind = event["type"]
            if kind == protocol.RESULT:
                return event
            if kind == protocol.ERROR:
                raise BackendFailure(event.get("code", ErrorCode.GENERATION_FAILED),
                                     event.get("message", "generation failed"),
                                     event.get("hint"))
            if kind == protocol.CANCELLED:
                raise BackendFailure("CANCELLED", "the job was cancelled", "")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the backend to shut down; kill it if it does not within `timeout`."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                assert process.stdin is not None
                process.stdin.write(protocol.encode({"type": protocol.SHUTDOWN}).encode())
                process.stdin.close()
            except (BrokenPipeError, OSError):
                pass  # already gone: nothing to ask
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("backend %s did not exit; killing it", process.pid)
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


_client: BackendClient | None = None


def get_client(config: BackendConfig) -> BackendClient:
    """The running backend for this Blender session, started (or restarted) as needed."""
    global _client
    if _client is not None and (_client.config != config or not _client.alive()):
        _client.stop()
        _client = None
    if _client is None:
        client = BackendClient(config)
        client.start()
        _client = client
    return _client


def current_client() -> BackendClient | None:
    return _client


def launch_client(config: BackendConfig) -> BackendClient:
    """Like `get_client` but without waiting for `ready`: a running backend with the same
    config is reused; otherwise a fresh one is launched (see BackendClient.launch)."""
    global _client
    if _client is not None and _client.config == config and _client.alive():
        return _client
    shutdown_client()
    client = BackendClient(config)
    client.launch()
    _client = client
    return client


def shutdown_client() -> None:
    global _client
    if _client is not None:
        _client.stop()
        _client = None
