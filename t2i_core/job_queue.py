"""The one path every generate job takes: submit -> JobHandle, advanced by `JobQueue.poll`.

No bpy here. The queue owns the session's one backend process. `submit` returns a JobHandle:
the job's state, progress, newest preview, result or failure, `cancel()`, and `wait(timeout)`.
Whoever is on Blender's main thread steps the queue: the UI from a timer (`poll()` never
waits and does a bounded amount of work), background mode and scripts through
`handle.wait()`, which polls until its job is done. Callbacks added with
`handle.on_update` run inside `poll`, on the thread that polls (Blender's main thread), so
they may touch Blender data. Jobs run one at a time in the order they were submitted.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import protocol
from .backend_kinds import BRIDGE_MODULE
from .backend_process import (
    EXITED,
    GARBAGE,
    START_TIMEOUT_S,
    BackendConfig,
    BackendFailure,
    BackendProcess,
)
from .protocol import ErrorCode

log = logging.getLogger("blender_t2i")

Report = tuple[str, str]  # (level, message), as Operator.report takes them


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


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


_FINAL = {UpdateKind.RESULT: JobState.DONE, UpdateKind.FAILED: JobState.FAILED,
          UpdateKind.CANCELLED: JobState.CANCELLED}


@dataclass
class Update:
    """One thing that happened to a job (or the backend, for READY), in the order it happened.
    `reports` holds what the job's callbacks said about it, for the caller to show."""

    kind: UpdateKind
    job: JobHandle | None = None
    event: dict[str, Any] | None = None
    error: BackendFailure | None = None
    reports: list[Report] = field(default_factory=list)


UpdateCallback = Callable[["JobHandle", Update], "list[Report] | None"]


class JobHandle:
    """A submitted job. `payload` is the submitter's own data (Blender: where the result
    goes); `on_update` callbacks run on the polling thread and may return reports."""

    def __init__(self, request: dict[str, Any], jobs: JobQueue, payload: Any = None):
        self.id: str = request["id"]
        self.request = request
        self.payload = payload
        self.state = JobState.QUEUED
        self.step = 0
        self.total = int(request.get("steps", 0))
        self.preview: Path | None = None  # the newest step preview's file
        self.result: dict[str, Any] | None = None  # the `result` event
        self.error: BackendFailure | None = None
        self.start_seconds = 0.0  # backend start-up charged to this job (a backend's first)
        self.reports: list[Report] = []  # everything the callbacks reported, in order
        self._jobs = jobs
        self._callbacks: list[UpdateCallback] = []

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} {self.state}>"

    @property
    def done(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)

    @property
    def progress(self) -> float:
        return self.step / self.total if self.total else 0.0

    def on_update(self, callback: UpdateCallback) -> None:
        self._callbacks.append(callback)

    def cancel(self) -> None:
        """Drop the job if it waits; stop it after its current step if it runs."""
        self._jobs.cancel(self)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Step the queue until this job is done; its `result` event, or BackendFailure
        (its error, CANCELLED, or BACKEND_TIMEOUT when `timeout` passes first: the job is
        then cancelled)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            remaining = 0.25 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                self.cancel()
                raise BackendFailure(ErrorCode.BACKEND_TIMEOUT,
                                     f"job {self.id} was not done after {timeout:.0f} s")
            self._jobs.poll(timeout=min(0.25, remaining))
        if self.state != JobState.DONE:
            assert self.error is not None
            raise self.error
        assert self.result is not None
        return self.result

    def _apply(self, update: Update) -> None:
        """Record an update on the handle, then run the callbacks (on the polling thread)."""
        if update.kind == UpdateKind.PROGRESS and update.event is not None:
            self.state = JobState.RUNNING
            self.step = update.event.get("step", self.step)
            self.total = update.event.get("total", self.total)
            self.preview = preview_file(update.event) or self.preview
        elif update.kind in _FINAL:
            self.state = _FINAL[update.kind]
            self.result = update.event if update.kind == UpdateKind.RESULT else None
            self.error = update.error
        for callback in self._callbacks:
            try:
                update.reports += callback(self, update) or []
            except Exception as exc:  # one failing output must not stop the queue draining
                log.exception("job %s: handling its %s failed", self.id, update.kind)
                update.reports.append(("ERROR", f"{self.id}: {type(exc).__name__}: {exc}"))
        self.reports += update.reports


# How long a backend with a job may say nothing (no event, no heartbeat) before it counts as
# hung, is killed and restarted. Heartbeats come every protocol.HEARTBEAT_S, also during a
# load; loading gets longer because a huge checkpoint read can hold the interpreter lock.
SILENCE_LIMIT_S = 30.0
LOAD_SILENCE_LIMIT_S = 180.0


class JobQueue:
    def __init__(self, start_timeout: float = START_TIMEOUT_S,
                 silence_limit: float = SILENCE_LIMIT_S,
                 load_silence_limit: float = LOAD_SILENCE_LIMIT_S):
        self.start_timeout = start_timeout
        self.silence_limit = silence_limit
        self.load_silence_limit = load_silence_limit
        self._last_heard = 0.0  # when the backend last sent anything
        self.pending: deque[JobHandle] = deque()
        self.current: JobHandle | None = None
        self.status = Status.STOPPED
        self.message = ""  # the last error, shown under the status
        self._process: BackendProcess | None = None
        self._config: BackendConfig | None = None
        self._launched_at = 0.0
        self._loaded_model = ""  # the model spec of the last finished job: no reload needed
        self._start_seconds = 0.0
        self._outbox: list[Update] = []  # updates made outside poll (cancelled pending jobs)
        # the backend's `capabilities` reply, asked for once it is ready: which presets'
        # weights are on this machine, devices, memory modes
        self.capabilities: dict[str, Any] = {}
        # the newest `models` reply: a ComfyUI server's model lists (the bridge is asked once
        # ready, and on request_models); the local library is scanned in Blender instead
        self.models: dict[str, Any] = {}
        self._models_asked = False  # a `models` request is unanswered: keep polling

    # --- what the UI asks --------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A job is running or waiting."""
        return self.current is not None or bool(self.pending)

    @property
    def active(self) -> bool:
        """Something needs polling: a job, a starting backend, or updates not yet collected."""
        return self.busy or self.status == Status.STARTING or bool(self._outbox) \
            or self._models_asked

    @property
    def step(self) -> int:
        return self.current.step if self.current is not None else 0

    @property
    def total(self) -> int:
        return self.current.total if self.current is not None else 0

    @property
    def progress(self) -> float:
        return self.current.progress if self.current is not None else 0.0

    @property
    def backend_pid(self) -> int | None:
        """The running backend's process id (None: none runs)."""
        return self._process.pid if self._process is not None and self._process.alive() \
            else None

    @property
    def backend_ready(self) -> dict[str, Any]:
        """The running backend's `ready` event ({} until it is ready)."""
        return self._process.ready if self._process is not None else {}

    def preset_present(self, name: str) -> bool | None:
        """Whether the backend found the preset's weights on this machine (None: not asked
        yet, e.g. the backend has not started)."""
        for preset in self.capabilities.get("presets", ()):
            if preset.get("name") == name:
                return bool(preset.get("present"))
        return None

    # --- commands ----------------------------------------------------------------------------

    def submit(self, request: dict[str, Any], config: BackendConfig,
               payload: Any = None) -> JobHandle:
        """Queue a job (a validated `generate` message) and launch the backend if needed; a
        backend that cannot be launched (no such interpreter, ...) raises BackendFailure and
        the job is not queued."""
        if any(job.id == request["id"] for job in self._jobs()):
            raise ValueError(f"a job with id '{request['id']}' is already queued")
        self.start(config)
        handle = JobHandle(request, self, payload)
        self.pending.append(handle)
        return handle

    def start(self, config: BackendConfig) -> None:
        """Launch the backend if it is not running (returns at once; `poll` sees it ready)."""
        self._config = config
        running = self._process is not None and self._process.alive()
        if running and self._process.config == config:
            return
        if self._process is not None and not running:
            # It died and no poll has read its exit yet (a job submitted in between, e.g. the
            # batch's next frame): its jobs fail now. Replacing it silently would leave them
            # waiting on a process nobody reads, and the new one's heartbeats would hide it.
            self._outbox += self._handle(self._process, _exit_event(self._process))
        if running:  # the preferences changed: the old backend goes once it is idle
            if self.current is not None:
                return
            self._drop_process()
        process = BackendProcess(config)
        try:
            process.launch()
        except BackendFailure as exc:
            self.status, self.message = Status.ERROR, exc.report()
            raise
        self._process = process
        self._launched_at = time.monotonic()
        self.status, self.message = Status.STARTING, ""

    def request_models(self, config: BackendConfig) -> None:
        """Ask the backend for its model lists again (a ComfyUI server's change while it
        runs); launches it if needed, and a backend not ready yet is asked once it is."""
        self.start(config)
        process = self._process
        self._models_asked = True  # a backend still starting is asked once it is ready
        if process is not None and process.ready:
            with contextlib.suppress(BackendFailure):
                process.send({"type": protocol.MODELS})

    def stop(self, wait: bool = False) -> None:
        """Cancel everything and shut the backend down: at once, the process is reaped on a
        thread (wait=True: here, e.g. at the end of a batch run)."""
        self.cancel()
        if self.current is not None:
            self._outbox.append(Update(UpdateKind.CANCELLED, self.current,
                                       error=BackendFailure.cancelled()))
        self.current = None
        self._drop_process(wait)
        self.status, self.message = Status.STOPPED, ""

    def cancel(self, job: JobHandle | None = None) -> None:
        """Cancel one job, or (None) the running one and every waiting one. A running job
        stops after its current step; waiting ones are dropped at once."""
        for waiting in [j for j in self.pending if job is None or j is job]:
            self.pending.remove(waiting)
            self._outbox.append(Update(UpdateKind.CANCELLED, waiting,
                                       error=BackendFailure.cancelled()))
        running = self.current
        if running is not None and (job is None or job is running) \
                and self._process is not None:
            # a backend already gone cannot be told; the next poll reports its exit
            with contextlib.suppress(BackendFailure):
                self._process.send({"type": protocol.CANCEL, "id": running.id})

    # --- the step ------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, budget_s: float = 0.02) -> list[Update]:
        """Handle the backend's events: wait up to `timeout` for the first one (0: never wait),
        then take more for at most `budget_s`, and send the next job if the backend is free.
        Each update is applied to its handle (state, callbacks) before it is returned."""
        updates, self._outbox = self._outbox, []
        process = self._process
        if process is None:
            if self.pending and self._config is not None:
                try:
                    self.start(self._config)
                except BackendFailure as exc:
                    updates += self._fail_all(exc)
        else:
            deadline = time.perf_counter() + budget_s
            wait = timeout
            while True:
                try:
                    event = process.events.get(timeout=wait) if wait > 0 \
                        else process.events.get_nowait()
                except queue.Empty:
                    break
                wait = 0.0
                self._last_heard = time.monotonic()
                updates += self._handle(process, event)
                if self._process is not process or time.perf_counter() > deadline:
                    break
            if self._process is process:
                updates += self._check_start_timeout(process)
                updates += self._check_silence(process)
            if self._process is process:
                self._send_next(process)
        updates = _latest_progress_only(updates)
        for update in updates:
            if update.job is not None:
                update.job._apply(update)
        return updates

    def _handle(self, process: BackendProcess, event: dict[str, Any]) -> list[Update]:
        kind = event["type"]
        if kind == EXITED:
            self._models_asked = False  # nobody is left to answer it
            failure = process.start_failure() if not process.ready \
                else process.crash_failure(event["returncode"])
            return self._fail_all(failure)
        if kind == protocol.HEARTBEAT:
            return []  # alive, also while it starts: _last_heard is all it is for
        if kind == GARBAGE:  # whatever wrote it may have eaten real events too: start afresh
            process.kill()
            return self._fail_all(process.garbage_failure(event))
        if not process.ready:
            try:
                process.accept_ready(event)
            except BackendFailure as exc:
                return self._fail_all(exc)
            self._start_seconds = process.start_seconds
            self.status = Status.READY
            self._note_server(event)
            with contextlib.suppress(BackendFailure):  # an exit shows up as the next event
                process.send({"type": protocol.CAPABILITIES})
                if process.config.module == BRIDGE_MODULE or self._models_asked:
                    process.send({"type": protocol.MODELS})
                    self._models_asked = True
            return [Update(UpdateKind.READY, event=event)]
        if kind == protocol.CAPABILITIES:
            self.capabilities = event
            self._note_server(event)
            return []
        if kind == protocol.MODELS:
            self.models, self._models_asked = event, False
            return []
        job = self.current
        if job is None or event.get("id") != job.id:
            if kind == protocol.ERROR and "id" not in event:
                log.error("backend error: %s", event.get("message"))
            return []  # e.g. the last events of a job cancelled earlier
        if kind == protocol.PROGRESS:
            self.status = Status.BUSY
            return [Update(UpdateKind.PROGRESS, job, event)]
        if kind not in (protocol.RESULT, protocol.ERROR, protocol.CANCELLED):
            return []  # accepted
        self.current = None
        self.status = Status.READY
        job.start_seconds, self._start_seconds = self._start_seconds, 0.0
        if kind == protocol.RESULT:
            forged = _result_problem(job, event)
            if forged:  # never load a file the job did not ask for
                return [Update(UpdateKind.FAILED, job, event, error=BackendFailure(
                    ErrorCode.GENERATION_FAILED, f"the backend's result for {job.id} {forged}"))]
            self._loaded_model = _model_key(job.request)
            self.message = ""  # whatever was wrong (a server away) is not any more
            return [Update(UpdateKind.RESULT, job, event)]
        failure = BackendFailure.from_event(event)
        cancelled = kind == protocol.CANCELLED
        return [Update(UpdateKind.CANCELLED if cancelled else UpdateKind.FAILED, job, event,
                       error=failure)]

    def _note_server(self, event: dict[str, Any]) -> None:
        """A ComfyUI bridge says whether its server answers (`server` in ready and
        capabilities): the panel shows why not, under a backend that is itself ready."""
        server = event.get("server")
        if isinstance(server, dict) and "reachable" in server:
            self.message = "" if server["reachable"] else (
                f"ComfyUI at {server.get('url')} is not reachable: "
                f"{server.get('problem') or 'no answer'}")

    def _send_next(self, process: BackendProcess) -> None:
        if self.current is not None or not self.pending or not process.ready:
            return
        job = self.pending.popleft()
        try:
            process.send(job.request)
        except BackendFailure as exc:
            self._outbox.append(Update(UpdateKind.FAILED, job, error=exc))
            return  # the reader thread posts the exit; the next poll fails the rest
        self.current = job
        self._last_heard = time.monotonic()  # silence counts from the send
        loading = _model_key(job.request) != self._loaded_model
        self.status = Status.LOADING if loading else Status.BUSY

    def _check_start_timeout(self, process: BackendProcess) -> list[Update]:
        if process.ready or time.monotonic() - self._launched_at < self.start_timeout:
            return []
        return self._fail_all(BackendFailure(
            ErrorCode.BACKEND_TIMEOUT,
            f"timed out after {self.start_timeout:.0f} s waiting for the backend to start"))

    def _check_silence(self, process: BackendProcess) -> list[Update]:
        """A backend running a job that has said nothing for too long is hung (SIGSTOP, a
        deadlock): kill it, fail its jobs with BACKEND_TIMEOUT; the next submit restarts it."""
        if self.current is None or not process.ready:
            return []
        limit = self.load_silence_limit if self.status == Status.LOADING \
            else self.silence_limit
        silent = time.monotonic() - self._last_heard
        if silent < limit:
            return []
        log.error("backend %s silent for %.0f s with job %s: killing it", process.pid, silent,
                  self.current.id)
        process.kill()
        return self._fail_all(BackendFailure(
            ErrorCode.BACKEND_TIMEOUT,
            f"the backend sent nothing for {silent:.0f} s while running {self.current.id} and "
            "was stopped"))

    def _fail_all(self, failure: BackendFailure) -> list[Update]:
        """The backend is gone (or never came up): every job fails with the same reason."""
        jobs = self._jobs()
        self.current = None
        self.pending.clear()
        self._drop_process()
        self.status, self.message = Status.ERROR, failure.report()
        return [Update(UpdateKind.FAILED, job, error=failure) for job in jobs]

    def _jobs(self) -> list[JobHandle]:
        return ([self.current] if self.current is not None else []) + list(self.pending)

    def _drop_process(self, wait: bool = False) -> None:
        process, self._process = self._process, None
        self._loaded_model = ""
        if process is not None:
            process.stop(wait=wait)


def _exit_event(process: BackendProcess) -> dict[str, Any]:
    """The exit event its reader thread posts (or is about to), taken now."""
    returncode = process.returncode
    return {"type": EXITED, "returncode": -1 if returncode is None else returncode}


def _model_key(request: dict[str, Any]) -> str:
    return json.dumps(request.get("model"), sort_keys=True)


def _result_problem(job: JobHandle, event: dict[str, Any]) -> str:
    """Why a `result` event cannot be trusted ("" if it can): it must name files inside the
    job folder the request gave."""
    paths = event.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        return f"names no result file ({paths!r})"
    folder = Path(job.request["output_dir"]).resolve()
    outside = [p for p in paths if not Path(p).resolve().is_relative_to(folder)]
    return f"names files outside its job folder {folder}: {outside}" if outside else ""


def _latest_progress_only(updates: list[Update]) -> list[Update]:
    """Within one poll only a job's newest progress matters (one preview to show)."""
    last = {id(u.job): i for i, u in enumerate(updates) if u.kind == UpdateKind.PROGRESS}
    return [u for i, u in enumerate(updates)
            if u.kind != UpdateKind.PROGRESS or last[id(u.job)] == i]


def preview_file(event: dict[str, Any]) -> Path | None:
    """The step preview a progress event names (`preview: {"path": ...}`), if it is still
    there (the backend keeps only its newest few)."""
    preview = event.get("preview")
    path = preview.get("path") if isinstance(preview, dict) else preview
    if not isinstance(path, str) or not path:
        return None
    return Path(path) if Path(path).is_file() else None


_jobs: JobQueue | None = None


def get_job_queue() -> JobQueue:
    """The session's one queue, and with it the one backend process (the panel, operators,
    batch runs and render handler share it)."""
    global _jobs
    if _jobs is None:
        _jobs = JobQueue()
    return _jobs


def reset_job_queue(wait: bool = False) -> None:
    """Stop the backend and forget the queue (add-on unregister; a batch run's end waits for
    the process to be gone)."""
    global _jobs
    if _jobs is not None:
        _jobs.stop(wait)
        _jobs = None
