"""The queue of generate jobs and the backend's status, advanced one non-blocking step at a time.

No bpy here. The UI calls `poll()` from a timer and it never waits: it drains what the backend's
reader thread has queued, within a small time budget, and sends the next job when the backend is
free. Background mode and scripts call `poll(timeout=...)` in a loop instead. Jobs run one at a
time in the order they were submitted. A job is any object with `stem` (its id) and `request`
(the `generate` message); generation.PreparedJob in Blender.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import json
import logging
import os
import queue
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import backend_process as client_module
from . import protocol
from .backend_process import EXITED, START_TIMEOUT_S, BackendClient, BackendConfig, BackendFailure
from .png import write_bytes_atomic
from .protocol import ErrorCode

log = logging.getLogger("blender_t2i")


class Status(enum.StrEnum):
    """What the panel shows about the backend."""

    STOPPED = "stopped"
    STARTING = "starting"
    LOADING = "loading model"
    READY = "ready"
    BUSY = "busy"
    ERROR = "error"


class UpdateKind(enum.StrEnum):
    PROGRESS = "progress"
    RESULT = "result"
    FAILED = "failed"
    CANCELLED = "cancelled"
    READY = "ready"


@dataclass
class Update:
    """Something the main thread must act on: show a preview, apply a result, report."""

    kind: UpdateKind
    job: Any = None
    event: dict[str, Any] | None = None
    error: BackendFailure | None = None
    start_seconds: float = 0.0  # backend start-up charged to this job (the first of a backend)


def _cancelled_failure() -> BackendFailure:
    return BackendFailure("CANCELLED", "the job was cancelled", "")


class JobQueue:
    def __init__(self, start_timeout: float = START_TIMEOUT_S):
        self.start_timeout = start_timeout
        self.pending: deque[Any] = deque()
        self.current: Any = None
        self.status = Status.STOPPED
        self.message = ""  # the last error, shown under the status
        self.step = 0
        self.total = 0
        self._client: BackendClient | None = None
        self._config: BackendConfig | None = None
        self._launched_at = 0.0
        self._loaded_model = ""  # the model spec of the last finished job: no reload needed
        self._start_seconds = 0.0
        self._outbox: list[Update] = []  # updates made outside poll (cancelled pending jobs)
        # the backend's `capabilities` reply, asked for once it is ready: which presets'
        # weights are on this machine, devices, memory modes
        self.capabilities: dict[str, Any] = {}

    # --- what the UI asks --------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A job is running or waiting."""
        return self.current is not None or bool(self.pending)

    @property
    def active(self) -> bool:
        """Something needs polling: a job, a starting backend, or updates not yet collected."""
        return self.busy or self.status == Status.STARTING or bool(self._outbox)

    @property
    def progress(self) -> float:
        return self.step / self.total if self.total else 0.0

    def preset_present(self, name: str) -> bool | None:
        """Whether the backend found the preset's weights on this machine (None: not asked
        yet, e.g. the backend has not started)."""
        for preset in self.capabilities.get("presets", ()):
            if preset.get("name") == name:
                return bool(preset.get("present"))
        return None

    # --- commands ----------------------------------------------------------------------------

    def submit(self, job: Any, config: BackendConfig) -> None:
        """Queue a job and launch the backend if needed; a backend that cannot be launched
        (no such interpreter, ...) raises BackendFailure and the job is not queued."""
        self.start(config)
        self.pending.append(job)

    def start(self, config: BackendConfig) -> None:
        """Launch the backend if it is not running (returns at once; `poll` sees it ready)."""
        self._config = config
        running = self._client is not None and self._client.alive()
        if running and self._client.config == config:
            return
        if running:  # the preferences changed: the old backend goes once it is idle
            if self.current is not None:
                return
            self._drop_client()
        try:
            self._client = client_module.launch_client(config)
        except BackendFailure as exc:
            self.status, self.message = Status.ERROR, exc.report()
            raise
        self._launched_at = time.monotonic()
        # a backend already started by a blocking caller (get_client) is ready now
        self.status = Status.READY if self._client.ready else Status.STARTING
        self.message = ""

    def stop(self) -> None:
        """Cancel everything and shut the backend down."""
        self.cancel()
        for job in ([self.current] if self.current is not None else []):
            self._outbox.append(Update(UpdateKind.CANCELLED, job, error=_cancelled_failure()))
        self.current = None
        self._drop_client()
        self.status, self.message = Status.STOPPED, ""

    def cancel(self) -> None:
        """Cancel the running job (the backend stops it after its current step) and drop the
        waiting ones."""
        while self.pending:
            job = self.pending.popleft()
            self._outbox.append(Update(UpdateKind.CANCELLED, job, error=_cancelled_failure()))
        if self.current is not None and self._client is not None:
            # a backend already gone cannot be told; the next poll reports its exit
            with contextlib.suppress(BackendFailure):
                self._client.send({"type": protocol.CANCEL, "id": self.current.stem})

    # --- the step ------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, budget_s: float = 0.02) -> list[Update]:
        """Handle the backend's events: wait up to `timeout` for the first one (0: never wait),
        then take more for at most `budget_s`, and send the next job if the backend is free."""
        updates, self._outbox = self._outbox, []
        client = self._client
        if client is None:
            if self.pending and self._config is not None:
                try:
                    self.start(self._config)
                except BackendFailure as exc:
                    updates += self._fail_all(exc)
            return updates
        deadline = time.perf_counter() + budget_s
        wait = timeout
        while True:
            try:
                event = client.events.get(timeout=wait) if wait > 0 else client.events.get_nowait()
            except queue.Empty:
                break
            wait = 0.0
            updates += self._handle(client, event)
            if self._client is not client or time.perf_counter() > deadline:
                break
        if self._client is client:
            updates += self._check_start_timeout(client)
            self._send_next(client)
        return updates

    def _handle(self, client: BackendClient, event: dict[str, Any]) -> list[Update]:
        kind = event["type"]
        if kind == EXITED:
            failure = client.start_failure() if not client.ready \
                else client.crash_failure(event["returncode"])
            return self._fail_all(failure)
        if not client.ready:
            try:
                client.accept_ready(event)
            except BackendFailure as exc:
                return self._fail_all(exc)
            self._start_seconds = client.start_seconds
            self.status = Status.READY
            with contextlib.suppress(BackendFailure):  # an exit shows up as the next event
                client.send({"type": protocol.CAPABILITIES})
            return [Update(UpdateKind.READY, event=event)]
        if kind == protocol.CAPABILITIES:
            self.capabilities = event
            return []
        job = self.current
        if job is None or event.get("id") != job.stem:
            if kind == protocol.ERROR and "id" not in event:
                log.error("backend error: %s", event.get("message"))
            return []  # e.g. the last events of a job cancelled earlier
        client.last_event = event
        if kind == protocol.PROGRESS:
            self.step, self.total = event.get("step", 0), event.get("total", self.total)
            self.status = Status.BUSY
            return [Update(UpdateKind.PROGRESS, job, event)]
        if kind in (protocol.RESULT, protocol.ERROR, protocol.CANCELLED):
            self.current = None
            self.status = Status.READY
            self.step = self.total = 0
            start_seconds, self._start_seconds = self._start_seconds, 0.0
            if kind == protocol.RESULT:
                self._loaded_model = _model_key(job.request)
                return [Update(UpdateKind.RESULT, job, event, start_seconds=start_seconds)]
            if kind == protocol.CANCELLED:
                return [Update(UpdateKind.CANCELLED, job, event, error=_cancelled_failure())]
            failure = BackendFailure(event.get("code", ErrorCode.GENERATION_FAILED),
                                     event.get("message", "generation failed"), event.get("hint"))
            return [Update(UpdateKind.FAILED, job, event, error=failure)]
        return []  # accepted

    def _send_next(self, client: BackendClient) -> None:
        if self.current is not None or not self.pending or not client.ready:
            return
        job = self.pending.popleft()
        try:
            client.send(job.request)
        except BackendFailure as exc:
            self._outbox += [Update(UpdateKind.FAILED, job, error=exc)]
            return  # the reader thread posts the exit; the next poll fails the rest
        self.current = job
        self.step, self.total = 0, job.request.get("steps", 0)
        loading = _model_key(job.request) != self._loaded_model
        self.status = Status.LOADING if loading else Status.BUSY

    def _check_start_timeout(self, client: BackendClient) -> list[Update]:
        if client.ready or time.monotonic() - self._launched_at < self.start_timeout:
            return []
        return self._fail_all(BackendFailure(
            ErrorCode.BACKEND_TIMEOUT,
            f"timed out after {self.start_timeout:.0f} s waiting for the backend to start"))

    def _fail_all(self, failure: BackendFailure) -> list[Update]:
        """The backend is gone (or never came up): every job fails with the same reason."""
        jobs = ([self.current] if self.current is not None else []) + list(self.pending)
        self.current = None
        self.pending.clear()
        self._drop_client()
        self.status, self.message = Status.ERROR, failure.report()
        self.step = self.total = 0
        return [Update(UpdateKind.FAILED, job, error=failure) for job in jobs]

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._loaded_model = ""
        if client is not None:
            client.stop()
            if client_module.current_client() is client:
                client_module.shutdown_client()


def _model_key(request: dict[str, Any]) -> str:
    return json.dumps(request.get("model"), sort_keys=True)


_jobs: JobQueue | None = None


def get_job_queue() -> JobQueue:
    """The session's one queue (the panel, the operators and the timers share it)."""
    global _jobs
    if _jobs is None:
        _jobs = JobQueue()
    return _jobs


def reset_job_queue() -> None:
    """Stop the backend and forget the queue (add-on unregister)."""
    global _jobs
    if _jobs is not None:
        _jobs.stop()
        _jobs = None


def preview_file(event: dict[str, Any], scratch: Path) -> Path | None:
    """The step preview a progress event carries, as a PNG file: the backend sends a path
    (or, from other backends, base64 PNG data, bare or as a data: URI); None if there is none
    or it is already gone (the backend keeps only its newest few)."""
    preview = event.get("preview")
    if isinstance(preview, dict):
        preview = preview.get("path") or preview.get("data") or preview.get("png")
    if not isinstance(preview, str) or not preview:
        return None
    if preview.startswith("data:") or not (os.sep in preview or preview.endswith(".png")):
        try:
            data = base64.b64decode(preview.partition(",")[2] if preview.startswith("data:")
                                    else preview, validate=True)
        except (binascii.Error, ValueError):
            log.warning("a progress event's preview is neither a file nor base64 PNG")
            return None
        return write_bytes_atomic(scratch / "preview-data.png", data)
    path = Path(preview)
    return path if path.is_file() else None
