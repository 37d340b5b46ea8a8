"""The bridge's side of the serving loop (t2i_core/serving.py, shared with the local backend):
`ready` with the families this ComfyUI can run, capabilities and models from its /object_info,
unload through /free, and one job on the server (job.py). When stdin closes, whatever of ours
the server holds is cancelled there, then the process exits.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from t2i_core import protocol
from t2i_core.presets import FAMILY_INFO, PRESETS
from t2i_core.protocol import ErrorCode
from t2i_core.serving import EventWriter, ProtocolServer, claim_stdout

from . import __version__
from .errors import BridgeError, JobCancelled, http_status_error, unreachable
from .families import ServerInfo, missing_message, model_entries, preset_files, runnable
from .http import ComfyClient, HttpError, ServerUnreachable
from .job import Job, cancel_prompt

log = logging.getLogger("blender_t2i.comfy_bridge")

EXIT_GRACE_S = 2.0  # after stdin closes: time to cancel on the server, then leave regardless
HELLO_TIMEOUT_S = 10.0  # an unreachable host answers `ready` (with no families) this soon


class Server(ProtocolServer):
    exit_grace_s = EXIT_GRACE_S
    shutdown_wait_s = EXIT_GRACE_S - 0.5

    def __init__(self, events: EventWriter, client: ComfyClient, cache_dir: Path):
        super().__init__(events)
        self.client = client
        self.cache_dir = cache_dir
        self.client_id = uuid.uuid4().hex  # this bridge on the server's WebSocket
        self._info: ServerInfo | None = None
        self._info_lock = threading.Lock()  # one /object_info fetch at a time
        self._last_failure = ""  # why the server was not reachable, for capabilities
        self._current: Job | None = None

    def before_exit(self) -> None:
        """Nothing of ours may stay queued or running on the server."""
        job = self._current
        if job is not None and job.prompt_id:
            cancel_prompt(self.client, job.prompt_id, timeout=1.0)

    def send_ready(self) -> None:
        """`ready` always comes (the add-on starts no other way); an unreachable server then
        gets an `error` SERVER_UNREACHABLE without id, and `ready` lists no families."""
        try:
            info = self.server_info(refresh=True, timeout=HELLO_TIMEOUT_S)
        except BridgeError as exc:
            info, failure = None, exc
        else:
            failure = None
        families = runnable(info)[0] if info is not None else []
        self.events.send({"type": protocol.READY, "protocol": protocol.PROTOCOL_VERSION,
                          "version": __version__, "devices": [f"comfyui:{self.client.host}"],
                          "families": families, "pid": os.getpid(),
                          "server": self._server_state()})
        if failure is not None:
            self.events.send(protocol.error_event(failure.code, str(failure),
                                                  hint=failure.hint))

    # --- the server's description ------------------------------------------------------------

    def server_info(self, refresh: bool = False, timeout: float | None = None) -> ServerInfo:
        """What the server has (nodes, model lists), fetched once per connection."""
        with self._info_lock:
            if self._info is not None and not refresh:
                return self._info
            try:
                self.client.get_json("/system_stats", timeout=timeout)
                info = ServerInfo.from_object_info(
                    self.client.get_json("/object_info", timeout=timeout))
            except ServerUnreachable as exc:
                self._info, self._last_failure = None, str(exc)
                raise unreachable(self.client.url, exc) from None
            except HttpError as exc:
                self._info, self._last_failure = None, str(exc)
                raise http_status_error(self.client.url, exc.status, exc.body) from None
            self._info, self._last_failure = info, ""
            return info

    def _server_state(self) -> dict[str, Any]:
        return {"url": self.client.url, "reachable": self._info is not None,
                "problem": self._last_failure}

    def send_capabilities(self) -> None:
        try:
            info = self.server_info(refresh=True)
        except BridgeError as exc:
            info, problem = None, str(exc)
        else:
            problem = ""
        families, missing = runnable(info) if info is not None else ([], {})
        have = {entry["reference"] for entry in model_entries(info)} if info else set()
        presets = []
        for preset in PRESETS:
            if preset.family not in families:
                continue
            files = preset_files(preset.name)
            present = {role: any(name in have for name in names)
                       for role, names in files.items()}
            presets.append({
                "name": preset.name, "label": preset.label, "description": preset.description,
                "family": preset.family, "model": preset.model_spec(), "steps": preset.steps,
                "guidance": preset.guidance, "control_strength": preset.control_strength,
                "size_multiple": preset.size_multiple, "default_size": preset.default_size,
                "present": bool(present) and all(present.values()), "weights_present": present,
            })
        unavailable = [{"package": ", ".join(nodes), "problem": missing_message(family, nodes),
                        "needed_for": family,
                        "fix": "Update ComfyUI, or install the node pack that provides "
                               "these nodes, and restart the server."}
                       for family, nodes in sorted(missing.items())]
        if problem:
            unavailable.insert(0, {"package": "ComfyUI server", "problem": problem,
                                   "needed_for": "every family",
                                   "fix": protocol.HINTS[ErrorCode.SERVER_UNREACHABLE]})
        self.events.send({
            "type": protocol.CAPABILITIES,
            "families": [asdict(FAMILY_INFO[name]) for name in families if name in FAMILY_INFO],
            "presets": presets, "devices": [f"comfyui:{self.client.host}"],
            "memory_modes": ["auto"], "schedulers": list(protocol.SCHEDULERS),
            "unavailable": unavailable, "server": self._server_state()})

    def send_models(self, message: dict[str, Any]) -> None:
        event: dict[str, Any] = {"type": protocol.MODELS, "entries": [], "skipped": [],
                                 "roots": [self.client.url]}
        if isinstance(message.get("id"), str):
            event["id"] = message["id"]
        try:
            event["entries"] = model_entries(self.server_info(refresh=True))
        except BridgeError as exc:
            event["skipped"] = [{"path": self.client.url, "reason": str(exc)}]
        self.events.send(event)

    # --- worker thread -----------------------------------------------------------------------

    def unload(self) -> None:
        try:
            self.client.post_json("/free", {"unload_models": True, "free_memory": True})
        except (ServerUnreachable, HttpError) as exc:
            log.warning("unload: %s", exc)

    def run_job(self, request: protocol.GenerateRequest) -> None:
        job_id = request.id
        try:
            event = self._attempt(request, retry=True)
            self.events.send(event)
            log.info("job %s: %.2f s", job_id, event["timings"]["total"])
        except JobCancelled:
            self.events.send({"type": protocol.CANCELLED, "id": job_id})
        except BridgeError as exc:
            log.warning("job %s failed: %s", job_id, exc)
            if exc.code == ErrorCode.SERVER_UNREACHABLE:
                self._info = None  # the next job connects afresh
            self.events.send(protocol.error_event(exc.code, str(exc), job_id, exc.hint))
        except Exception as exc:  # the job fails, the bridge keeps serving
            log.exception("job %s crashed", job_id)
            self.events.send(protocol.error_event(ErrorCode.GENERATION_FAILED,
                                                  f"{type(exc).__name__}: {exc}", job_id))

    def _attempt(self, request: protocol.GenerateRequest, retry: bool) -> dict[str, Any]:
        cached = self._info is not None
        job = Job(self.client, self.server_info(), request, self.client_id,
                  self.client_id[:8], self.events.send, lambda: self.is_cancelled(request.id))
        self._current = job
        try:
            return job.run()
        except BridgeError as exc:
            # Refused before anything was queued, on what the server said earlier: models or
            # nodes may have been added since. Look again once.
            stale = exc.code in (ErrorCode.MODEL_NOT_FOUND, ErrorCode.SERVER_REJECTED)
            if not (retry and cached and stale and not job.prompt_id):
                raise
        except JobCancelled:
            raise
        except Exception:  # a bug of ours mid-job: the server must not keep running it
            if job.prompt_id:
                cancel_prompt(self.client, job.prompt_id)
            raise
        finally:
            # before the job's last event goes out: an exit right after it has nothing to
            # cancel on the server
            self._current = None
        log.info("job %s: refused on what the server said earlier; asking again", request.id)
        self.server_info(refresh=True)
        return self._attempt(request, retry=False)


def main(url: str, cache_dir: Path) -> int:
    from .http import environment_headers

    try:
        client = ComfyClient(url, environment_headers(os.environ))
    except ValueError as exc:
        log.error("%s", exc)
        print(f"comfy_bridge: {exc}", file=sys.stderr)
        return 2
    events = EventWriter(claim_stdout())
    server = Server(events, client, cache_dir)
    log.info("ComfyUI bridge %d serving %s", os.getpid(), client.url)
    server.serve(sys.stdin.buffer)
    return 0
