"""The backend's side of the serving loop (t2i_core/serving.py): `ready` with this machine's
devices and families, capabilities, the model library's scan, and one job through the
diffusers runner. The runner (and torch with it) is imported on the first job, so `hello` is
answered at once."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from t2i_core import protocol
from t2i_core.protocol import ErrorCode
from t2i_core.serving import EventWriter, ProtocolServer, claim_stdout

from .errors import BackendError, JobCancelled

log = logging.getLogger("blender_t2i.backend")


class Server(ProtocolServer):
    size_hint = ("Lower the size, or raise Largest Image in the add-on's preferences if this "
                 "machine has the memory.")

    def __init__(self, events: EventWriter, cache_dir: Path):
        super().__init__(events)
        self.cache_dir = cache_dir
        self._scan_lock = threading.Lock()
        self._runner: Any = None  # backend.runner.Runner, imported lazily (torch import is slow)

    def send_ready(self) -> None:
        from . import __version__, families
        from .devices import available_devices

        self.events.send({"type": protocol.READY, "protocol": protocol.PROTOCOL_VERSION,
                          "version": __version__, "devices": available_devices(),
                          "families": list(families.FAMILIES), "pid": os.getpid()})

    def send_capabilities(self) -> None:
        try:
            from .capabilities import capabilities_event

            event = capabilities_event()
        except Exception as exc:  # a broken install: say so instead of never answering
            log.exception("capabilities failed")
            event = protocol.error_event(ErrorCode.GENERATION_FAILED,
                                         f"capabilities: {type(exc).__name__}: {exc}")
        self.events.send(event)

    def send_models(self, message: dict[str, Any]) -> None:
        from .library import models_event

        with self._scan_lock:  # two requests at once: the second reuses the first's cache
            self.events.send(models_event(message, self.cache_dir))

    def unload(self) -> None:
        if self._runner is not None:
            self._runner.unload()

    def run_job(self, request: protocol.GenerateRequest) -> None:
        job_id = request.id
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


def main(cache_dir: Path) -> int:
    events = EventWriter(claim_stdout())
    server = Server(events, cache_dir)
    log.info("backend %d serving (cache %s)", os.getpid(), cache_dir)
    server.serve(sys.stdin.buffer)
    return 0
