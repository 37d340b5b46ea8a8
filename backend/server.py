"""The backend's serving loop: JSON requests on stdin, JSON events on a private copy of stdout.

The main thread reads stdin and answers control requests (hello, capabilities, cancel, shutdown)
at once; a worker thread runs `generate` and `unload` one after another, so a cancel arrives
while a job runs.
When stdin closes (Blender quit or crashed) the process cancels its job and exits: no orphans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from t2i_core import protocol
from t2i_core.presets import FAMILY_INFO
from t2i_core.protocol import ErrorCode

from .errors import BackendError, JobCancelled

log = logging.getLogger("blender_t2i.backend")

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


class Server:
    def __init__(self, events: EventWriter, cache_dir: Path):
        self.events = events
        self.cache_dir = cache_dir
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._cancelled: set[str] = set()
        self._open: set[str] = set()  # ids queued or running (guarded by _cancel_lock)
        self._cancel_lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="t2i-jobs", daemon=True)
        self.max_megapixels = protocol.max_megapixels(dict(os.environ))
        self._runner: Any = None  # backend.runner.Runner, imported lazily (torch import is slow)

    # --- main thread -----------------------------------------------------------------------

    def serve(self, stdin: IO[bytes]) -> None:
        """Serve request lines read as bytes: a bad byte is one bad request, not a crash.
        A thread of its own reads stdin, so its end (Blender quit or was killed) is noticed
        at once, whatever the main thread is busy with."""
        self._worker.start()
        threading.Thread(target=self._beat, name="t2i-heartbeat", daemon=True).start()
        lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=_read_requests, args=(stdin, lines), name="t2i-stdin",
                         daemon=True).start()
        while (line := lines.get()) is not None:
            if line.strip() and not self._handle_line(line):
                break
        # stdin closed or shutdown: stop the running job at its next step, then leave
        self._cancel_all()
        self._jobs.put(_STOP)
        self._worker.join(timeout=30)
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
            self.events.send(self._ready_event())
        elif kind == protocol.CAPABILITIES:  # on a thread: it imports the optional packages
            threading.Thread(target=self._send_capabilities, name="t2i-capabilities",
                             daemon=True).start()
        elif kind == protocol.MODELS:
            # a cold scan reads thousands of headers: never on the thread that hears cancels
            threading.Thread(target=self._answer_models, args=(message,), name="t2i-models",
                             daemon=True).start()
        elif kind == protocol.GENERATE:
            try:
                request = protocol.parse_generate(message)
            except protocol.ProtocolError as exc:
                self.events.send(protocol.error_event(exc.code, str(exc), exc.job_id))
                return True
            family = FAMILY_INFO.get(str(request.model.get("family")))
            too_big = protocol.size_error(request.width, request.height, self.max_megapixels,
                                          len(request.control_frames),
                                          family.clip_frame_step if family else 0)
            if too_big is not None:
                self.events.send(protocol.error_event(
                    ErrorCode.BAD_REQUEST, f"generate: {too_big}", request.id,
                    hint="Lower the size, or raise Largest Image in the add-on's preferences "
                         "if this machine has the memory."))
                return True
            with self._cancel_lock:
                duplicate = request.id in self._open
                self._open.add(request.id)
            if duplicate:  # its files would overwrite the other job's
                self.events.send(protocol.error_event(
                    ErrorCode.BAD_REQUEST, f"generate: a job '{request.id}' is already queued "
                    "or running", request.id))
                return True
            self._jobs.put(request)
            self.events.send({"type": protocol.ACCEPTED, "id": request.id,
                              "queued": self._jobs.qsize()})
        elif kind == protocol.CANCEL:
            job_id = message.get("id")
            if not isinstance(job_id, str):
                self.events.send(protocol.error_event(ErrorCode.BAD_REQUEST,
                                                      "cancel: missing 'id'"))
            else:
                with self._cancel_lock:
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

    def _send_capabilities(self) -> None:
        try:
            from .capabilities import capabilities_event

            event = capabilities_event()
        except Exception as exc:  # a broken install: say so instead of never answering
            log.exception("capabilities failed")
            event = protocol.error_event(ErrorCode.GENERATION_FAILED,
                                         f"capabilities: {type(exc).__name__}: {exc}")
        self.events.send(event)

    def _answer_models(self, message: dict[str, Any]) -> None:
        from .library import models_event

        with self._scan_lock:  # two requests at once: the second reuses the first's cache
            self.events.send(models_event(message, self.cache_dir))

    def _beat(self) -> None:
        """The add-on's sign of life: a process whose threads all stop (SIGSTOP, a library
        holding the interpreter lock in a deadlock) falls silent, which the add-on detects."""
        while True:
            time.sleep(protocol.HEARTBEAT_S)
            with self._cancel_lock:
                busy = bool(self._open)
            try:
                self.events.send({"type": protocol.HEARTBEAT, "busy": busy})
            except (OSError, ValueError):  # the add-on has gone: so will this process
                return

    def _ready_event(self) -> dict[str, Any]:
        from . import __version__, families
        from .devices import available_devices

        return {"type": protocol.READY, "protocol": protocol.PROTOCOL_VERSION,
                "version": __version__, "devices": available_devices(),
                "families": list(families.FAMILIES), "pid": os.getpid()}

    def _cancel_all(self) -> None:
        with self._cancel_lock:
            self._cancelled.add("*")

    def is_cancelled(self, job_id: str) -> bool:
        with self._cancel_lock:
            return job_id in self._cancelled or "*" in self._cancelled

    # --- worker thread ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            if item == protocol.UNLOAD:
                if self._runner is not None:
                    self._runner.unload()
                self.events.send({"type": protocol.UNLOADED})
                continue
            self._run_job(item)

    def _run_job(self, request: protocol.GenerateRequest) -> None:
        try:
            self._run_one(request)
        finally:
            with self._cancel_lock:
                self._open.discard(request.id)

    def _run_one(self, request: protocol.GenerateRequest) -> None:
        job_id = request.id
        if self.is_cancelled(job_id):
            self.events.send({"type": protocol.CANCELLED, "id": job_id})
            return
        try:
            if self._runner is None:
                from .runner import Runner

                self._runner = Runner(self.cache_dir)

            def report(step: int, total: int, preview: str | None) -> None:
                event: dict[str, Any] = {"type": protocol.PROGRESS, "id": job_id,
                                         "step": step, "total": total}
                if preview is not None:
                    event["preview"] = preview
                self.events.send(event)

            started = time.perf_counter()
            result = self._runner.generate(request, report,
                                           lambda: self.is_cancelled(job_id))
            result.timings["total"] = round(time.perf_counter() - started, 4)
            self.events.send({"type": protocol.RESULT, "id": job_id,
                              "paths": result.paths, "seed": request.seed,
                              "timings": result.timings, "reused_model": result.reused,
                              "peak_memory": result.peak_memory,
                              "memory_mode": result.memory_mode,
                              "scheduler": result.scheduler})
            log.info("job %s: %.2f s%s", job_id, result.timings["total"],
                     f", device memory peak {result.peak_memory / 2**30:.2f} GiB"
                     if result.peak_memory else "")
        except JobCancelled:
            self.events.send({"type": protocol.CANCELLED, "id": job_id})
        except BackendError as exc:
            log.warning("job %s failed: %s", job_id, exc)
            self.events.send(protocol.error_event(exc.code, str(exc), job_id, exc.hint))
        except Exception as exc:  # the job fails, the backend keeps serving
            log.exception("job %s crashed", job_id)
            self.events.send(protocol.error_event(ErrorCode.GENERATION_FAILED,
                                                  f"{type(exc).__name__}: {exc}", job_id))
        finally:
            with self._cancel_lock:
                self._cancelled.discard(job_id)


EXIT_GRACE_S = 1.5  # after stdin closes, how long the job may take to stop before we leave


def _read_requests(stdin: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    for line in stdin:
        lines.put(line)
    lines.put(None)
    # The add-on is gone (or asked us to stop): a job step, a slow import or a reply in the
    # main thread must not keep a GPU process alive behind it. Leave after a short grace.
    time.sleep(EXIT_GRACE_S)
    log.info("stdin closed %.1f s ago: exiting", EXIT_GRACE_S)
    os._exit(0)


def main(cache_dir: Path) -> int:
    events = EventWriter(claim_stdout())
    server = Server(events, cache_dir)
    log.info("backend %d serving (cache %s)", os.getpid(), cache_dir)
    server.serve(sys.stdin.buffer)
    return 0
