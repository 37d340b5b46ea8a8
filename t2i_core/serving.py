"""The serving loop both generator processes share (docs/protocol.md): the local backend
(`python -m backend`, diffusers) and the ComfyUI bridge (`python -m comfy_bridge`) differ only
in what they do for a hello, capabilities, models, unload and one job.

A thread reads stdin as bytes (a bad byte is one bad request, not a crash) and notices its end
at once, whatever else runs; the main thread answers control requests; a worker thread runs
`generate` and `unload` one after another, so a cancel arrives while a job runs; a heartbeat
thread speaks every HEARTBEAT_S. Events go to a private copy of stdout. When stdin closes
(Blender quit or crashed) the running job is cancelled and the process leaves after a short
grace: no orphan GPU processes."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from typing import IO, Any

from . import protocol
from .presets import FAMILY_INFO
from .protocol import ErrorCode

log = logging.getLogger("blender_t2i.serving")

_STOP = object()  # sentinel on the job queue


class EventWriter:
    """Writes protocol events, one line each, from any thread."""

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, event: dict[str, Any]) -> None:
        line = protocol.encode(event)
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


def claim_stdout() -> IO[str]:
    """Keep the real stdout for protocol lines and point fd 1 and sys.stdout at stderr,
    so a print() or a C library writing to fd 1 can never corrupt the event stream."""
    sys.stdout.flush()
    private = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return private


class ProtocolServer:
    """Subclasses answer `hello` (send_ready), `capabilities`, `models`, `unload` and run one
    job (run_job: its events, ending in result, error or cancelled); the rest is here."""

    exit_grace_s = 1.5  # after stdin closes, how long the job may take to stop before we leave
    shutdown_wait_s = 30.0  # after `shutdown`, how long `bye` waits for the job to stop
    size_hint = "Lower the size, or raise Largest Image in the add-on's preferences."

    def __init__(self, events: EventWriter):
        self.events = events
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._cancelled: set[str] = set()
        self._open: set[str] = set()  # ids queued or running (guarded by _lock)
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="t2i-jobs", daemon=True)
        self.max_megapixels = protocol.max_megapixels(dict(os.environ))

    # --- what a kind of server does ------------------------------------------------------------

    def send_ready(self) -> None:
        raise NotImplementedError

    def send_capabilities(self) -> None:  # on a thread of its own
        raise NotImplementedError

    def send_models(self, message: dict[str, Any]) -> None:  # on a thread of its own
        raise NotImplementedError

    def unload(self) -> None:  # on the worker, between jobs; then `unloaded` is sent
        raise NotImplementedError

    def run_job(self, request: protocol.GenerateRequest) -> None:  # on the worker
        raise NotImplementedError

    def before_exit(self) -> None:
        """stdin closed or shutdown, the running job already marked cancelled."""

    # --- main thread -----------------------------------------------------------------------

    def serve(self, stdin: IO[bytes]) -> None:
        self._worker.start()
        threading.Thread(target=self._beat, name="t2i-heartbeat", daemon=True).start()
        lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read_requests, args=(stdin, lines), name="t2i-stdin",
                         daemon=True).start()
        while (line := lines.get()) is not None:
            if line.strip() and not self._handle_line(line):
                break
        # stdin closed or shutdown: stop the running job at its next step, then leave
        self.cancel_all()
        self.before_exit()
        self._jobs.put(_STOP)
        self._worker.join(timeout=self.shutdown_wait_s)
        with contextlib.suppress(OSError, ValueError):  # nobody may be listening any more
            self.events.send({"type": protocol.BYE})

    def _handle_line(self, line: bytes | str) -> bool:
        """Handle one request line; False means stop serving."""
        try:
            message = protocol.decode(line)
        except protocol.ProtocolError as exc:
            self.events.send(protocol.error_event(exc.code, str(exc)))
            return True
        kind = message["type"]
        if kind == protocol.HELLO:
            self.send_ready()
        elif kind == protocol.CAPABILITIES:  # imports optional packages, or asks a server
            _thread(self.send_capabilities, "t2i-capabilities")
        elif kind == protocol.MODELS:
            # a cold scan reads thousands of headers: never on the thread that hears cancels
            _thread(lambda: self.send_models(message), "t2i-models")
        elif kind == protocol.GENERATE:
            self._accept(message)
        elif kind == protocol.CANCEL:
            job_id = message.get("id")
            if not isinstance(job_id, str):
                self.events.send(protocol.error_event(ErrorCode.BAD_REQUEST,
                                                      "cancel: missing 'id'"))
            else:
                with self._lock:
                    self._cancelled.add(job_id)
        elif kind == protocol.UNLOAD:
            self._jobs.put(protocol.UNLOAD)
        elif kind == protocol.SHUTDOWN:
            return False
        else:
            self.events.send(protocol.error_event(
                ErrorCode.UNKNOWN_REQUEST, f"unknown request type '{kind}'",
                message.get("id") if isinstance(message.get("id"), str) else None))
        return True

    def _accept(self, message: dict[str, Any]) -> None:
        try:
            request = protocol.parse_generate(message)
        except protocol.ProtocolError as exc:
            self.events.send(protocol.error_event(exc.code, str(exc), exc.job_id))
            return
        family = FAMILY_INFO.get(str(request.model.get("family")))
        too_big = protocol.size_error(request.width, request.height, self.max_megapixels,
                                      len(request.control_frames),
                                      family.clip_frame_step if family else 0)
        if too_big is not None:
            self.events.send(protocol.error_event(
                ErrorCode.BAD_REQUEST, f"generate: {too_big}", request.id, hint=self.size_hint))
            return
        with self._lock:
            duplicate = request.id in self._open
            self._open.add(request.id)
        if duplicate:  # its files would overwrite the other job's
            self.events.send(protocol.error_event(
                ErrorCode.BAD_REQUEST, f"generate: a job '{request.id}' is already queued "
                "or running", request.id))
            return
        self._jobs.put(request)
        self.events.send({"type": protocol.ACCEPTED, "id": request.id,
                          "queued": self._jobs.qsize()})

    # --- heartbeat, cancel -----------------------------------------------------------------

    def _beat(self) -> None:
        """The add-on's sign of life: a process whose threads all stop (SIGSTOP, a library
        holding the interpreter lock in a deadlock) falls silent, which the add-on detects."""
        while True:
            time.sleep(protocol.HEARTBEAT_S)
            with self._lock:
                busy = bool(self._open)
            try:
                self.events.send({"type": protocol.HEARTBEAT, "busy": busy})
            except (OSError, ValueError):  # the add-on has gone: so will this process
                return

    def cancel_all(self) -> None:
        with self._lock:
            self._cancelled.add("*")

    def is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled or "*" in self._cancelled

    # --- worker thread ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            if item == protocol.UNLOAD:
                self.unload()
                self.events.send({"type": protocol.UNLOADED})
                continue
            try:
                if self.is_cancelled(item.id):  # cancelled while it waited
                    self.events.send({"type": protocol.CANCELLED, "id": item.id})
                else:
                    self.run_job(item)
            finally:
                with self._lock:
                    self._open.discard(item.id)
                    self._cancelled.discard(item.id)

    def _read_requests(self, stdin: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
        for line in stdin:
            lines.put(line)
        lines.put(None)
        # The add-on is gone (or asked us to stop): a job step, a slow import or a reply in
        # the main thread must not keep a GPU process alive behind it. Leave after a grace.
        time.sleep(self.exit_grace_s)
        log.info("stdin closed %.1f s ago: exiting", self.exit_grace_s)
        os._exit(0)


def _thread(target: Any, name: str) -> None:
    threading.Thread(target=target, name=name, daemon=True).start()
