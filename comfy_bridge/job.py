"""One job on the ComfyUI server: upload the pictures, build the graph, queue it, follow its
progress and previews on the WebSocket, fetch the result through /history and /view, write it
into the job folder with the project's PNG text; cancel by removing it from the server's queue
or interrupting it (only when it is ours)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from t2i_core import png, protocol
from t2i_core.files import os_error_text, write_bytes_atomic
from t2i_core.job_record import JobRecord
from t2i_core.png import replace_text
from t2i_core.presets import FAMILY_INFO
from t2i_core.protocol import ErrorCode, GenerateRequest

from .errors import (
    BridgeError,
    JobCancelled,
    execution_error,
    http_status_error,
    rejected_prompt,
    unreachable,
)
from .families import NOT_OFFERED, ServerInfo, missing_message, required_nodes
from .graphs import Uploads, build_graph
from .http import ComfyClient, HttpError, ServerUnreachable
from .websocket import BINARY, WebSocket, WebSocketClosed

log = logging.getLogger("blender_t2i.comfy_bridge")

POLL_S = 0.2  # the longest the job loop waits on the socket before it looks at cancel again
QUIET_CHECK_S = 10.0  # a silent socket this long: ask /history whether the job ended unseen
CANCEL_WAIT_S = 10.0  # how long a cancel waits for the server to drop or stop the job
HISTORY_WAIT_S = 5.0  # how long a finished job's outputs may take to appear in /history
KEEP_PREVIEWS = 2  # as the local backend: only the newest two while the job runs
PREVIEW_IMAGE = 1  # ComfyUI's binary event type of a step preview; then 1 = JPEG, 2 = PNG
PREVIEW_SUFFIX = {1: ".jpg", 2: ".png"}
# KSampler's sampler names -> the diffusers class whose A1111 name the PNG text uses
_SAMPLER_CLASSES = {"euler": "EulerDiscreteScheduler",
                    "euler_ancestral": "EulerAncestralDiscreteScheduler",
                    "ddim": "DDIMScheduler", "dpmpp_2m": "DPMSolverMultistepScheduler",
                    "uni_pc": "UniPCMultistepScheduler"}

Send = Callable[[dict[str, Any]], None]


def upload_stem(job_id: str, session: str) -> str:
    """A server-side name for the job's pictures: the job id (readable in ComfyUI's input
    folder) and this bridge's session token, so two users' job "shot-0001" never clash."""
    return f"t2i_{re.sub(r'[^A-Za-z0-9_.-]', '_', job_id)[:80]}_{session}"


class Job:
    def __init__(self, client: ComfyClient, server: ServerInfo, request: GenerateRequest,
                 client_id: str, session: str, send: Send, cancelled: Callable[[], bool]):
        self.client = client
        self.server = server
        self.request = request
        self.client_id = client_id
        self.session = session
        self.send = send
        self.cancelled = cancelled
        self.prompt_id = ""  # set once the job is queued on the server
        self._previews: list[Path] = []
        self._pending: dict[str, Any] | None = None  # a progress event waiting for its preview
        self._cached: set[str] = set()

    # --- the job ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """The `result` event; raises BridgeError or JobCancelled."""
        request, started = self.request, time.perf_counter()
        family = str(request.model.get("family", ""))
        if family in NOT_OFFERED or family not in FAMILY_INFO:
            raise BridgeError(ErrorCode.BAD_REQUEST, NOT_OFFERED.get(
                family, f"generate: unknown family '{family}'"))
        missing = sorted(required_nodes(family, request) - self.server.nodes)
        if missing:
            raise BridgeError(ErrorCode.SERVER_REJECTED,
                              f"ComfyUI at {self.client.url}: {missing_message(family, missing)}",
                              "Update ComfyUI or install the node pack that provides these "
                              "nodes, then restart it; or pick a family the server lists.")
        self._check_cancel()
        self._graph(self._placeholders())  # a model the server lacks: refused before uploads
        uploads = self._upload()
        inputs_done = time.perf_counter()
        graph, save_node = self._graph(uploads)
        self._check_cancel()
        ws = self._connect()
        try:
            self._queue(graph)
            queued_at = time.perf_counter()
            try:
                execution_started = self._follow(ws)
            finally:
                self._flush_progress()
                self._drop_previews()
        finally:
            ws.close()
        generated = time.perf_counter()
        path, sampler = self._fetch_result(save_node, graph)
        written = time.perf_counter()
        loaders = {k for k, v in graph.items() if "Loader" in v.get("class_type", "")}
        return {"type": protocol.RESULT, "id": request.id, "paths": [str(path)],
                "seed": request.seed,
                "timings": {"load": round(execution_started - queued_at, 4),
                            "inputs": round(inputs_done - started, 4),
                            "generate": round(generated - execution_started, 4),
                            "write": round(written - generated, 4),
                            "total": round(written - started, 4)},
                # the server kept the models loaded from an earlier job when it cached them
                "reused_model": bool(loaders) and loaders <= self._cached,
                "peak_memory": None, "memory_mode": request.memory_mode,
                "scheduler": sampler}

    def _graph(self, uploads: Uploads) -> tuple[dict[str, dict], str]:
        try:
            return build_graph(self.request, uploads, self.server)
        except ValueError as exc:
            # graphs/families raise ValueError for both; only a file the server lacks is a
            # missing model, the rest (a role the spec lacks or the family has not) a bad spec
            text = str(exc)
            if "not on this ComfyUI" in text or "no tiny ComfyUI model" in text:
                raise BridgeError(ErrorCode.MODEL_NOT_FOUND, text,
                                  "Put the file into the ComfyUI server's model folder, or "
                                  "pick one the server lists in the model browser.") from None
            raise BridgeError(ErrorCode.BAD_REQUEST, f"generate: {text}") from None

    def _placeholders(self) -> Uploads:
        """Upload names for checking the graph before anything goes up."""
        request = self.request
        return Uploads(control="control.png", init="init.png" if request.init_image else None,
                       mask="mask.png" if request.mask_image else None,
                       references=tuple(f"reference{i}.png" for i, _ in
                                        enumerate(request.reference_images)))

    def _check_cancel(self) -> None:
        if self.cancelled():
            raise JobCancelled()

    def _upload(self) -> Uploads:
        request = self.request
        stem = upload_stem(request.id, self.session)

        def put(path: str, role: str) -> str:
            try:
                # as the add-on wrote it (8-bit control), but a 16-bit PNG goes as 8-bit:
                # ComfyUI's LoadImage clips 16-bit grey to white
                data = png.as_eight_bit(path) or Path(path).read_bytes()
            except FileNotFoundError:
                raise BridgeError(ErrorCode.INPUT_NOT_FOUND,
                                  f"{role} '{path}' was removed before the job read it") from None
            except OSError as exc:
                raise BridgeError(ErrorCode.BAD_REQUEST, f"{role}: {os_error_text(exc)}") \
                    from None
            except ValueError as exc:
                raise BridgeError(ErrorCode.BAD_REQUEST, f"{role}: {exc}") from None
            suffix = Path(path).suffix.lower() or ".png"
            return self._call(lambda: self.client.upload_image(f"{stem}_{role}{suffix}", data))

        control = put(request.control_image, "control")
        init = put(request.init_image, "init") if request.init_image else None
        mask = put(request.mask_image, "mask") if request.mask_image else None
        references = tuple(put(p, f"reference{i}") for i, p in
                           enumerate(request.reference_images))
        return Uploads(control=control, init=init, mask=mask, references=references)

    def _connect(self) -> WebSocket:
        """The socket opens before the prompt is queued, so no event of it is missed."""
        url = f"{self.client.ws_url}?clientId={self.client_id}"
        try:
            return WebSocket.connect(url, self.client.headers, timeout=self.client.timeout)
        except WebSocketClosed as exc:
            raise unreachable(self.client.url, exc) from None

    def _queue(self, graph: dict[str, dict]) -> None:
        # Our own prompt id (the server takes one): a cancel can name the job at once.
        prompt_id = str(uuid.uuid4())
        payload = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        try:
            answer = self.client.post_json("/prompt", payload)
        except HttpError as exc:
            if exc.status == 400:
                raise rejected_prompt(exc.json(), graph) from None
            raise http_status_error(self.client.url, exc.status, exc.body) from None
        except ServerUnreachable as exc:
            raise unreachable(self.client.url, exc) from None
        self.prompt_id = str((answer or {}).get("prompt_id") or prompt_id)
        log.info("job %s queued on %s as %s", self.request.id, self.client.url, self.prompt_id)

    def _follow(self, ws: WebSocket) -> float:
        """Read the socket until the prompt ends; the time it started executing."""
        started: float | None = None
        quiet_since = time.monotonic()
        while True:
            if self.cancelled():
                self._cancel_on_server(ws)
            try:
                message = ws.recv(POLL_S)
            except WebSocketClosed as exc:
                raise unreachable(self.client.url, f"the connection closed mid-job ({exc})") \
                    from None
            if message is None:
                self._flush_progress()
                if time.monotonic() - quiet_since > QUIET_CHECK_S:
                    quiet_since = time.monotonic()
                    if self._finished_unseen():
                        return started if started is not None else time.perf_counter()
                continue
            quiet_since = time.monotonic()
            if message.opcode == BINARY:
                self._preview(message.data)
                continue
            try:
                event = json.loads(message.text)
            except ValueError:
                continue
            kind, data = event.get("type"), event.get("data") or {}
            if not isinstance(data, dict) or data.get("prompt_id") not in (None,
                                                                           self.prompt_id):
                continue  # another client's or another prompt's
            if data.get("prompt_id") is None and kind != "progress":
                continue  # status broadcasts
            if kind == "execution_start":
                started = time.perf_counter()
            elif kind == "execution_cached":
                self._cached.update(str(n) for n in data.get("nodes") or ())
            elif kind == "progress":
                self._progress(data)
            elif kind == "execution_error":
                raise execution_error(data)
            elif kind == "execution_interrupted":
                if self.cancelled():
                    raise JobCancelled()
                raise BridgeError(ErrorCode.GENERATION_FAILED,
                                  f"the job was interrupted on the ComfyUI server at "
                                  f"{self.client.url} (by someone else)",
                                  "Generate again; someone or something on the server "
                                  "pressed Cancel.")
            elif kind == "executing" and data.get("node") is None:
                # sent once the history holds the outputs (execution_success comes before)
                return started if started is not None else time.perf_counter()

    def _finished_unseen(self) -> bool:
        """Whether /history already has the prompt (its end event was lost)."""
        history = self._call(lambda: self.client.get_json(f"/history/{self.prompt_id}"))
        entry = history.get(self.prompt_id) if isinstance(history, dict) else None
        if not entry:
            return False
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            for name, data in status.get("messages") or ():
                if name == "execution_error":
                    raise execution_error(data)
            raise BridgeError(ErrorCode.GENERATION_FAILED, "ComfyUI reported the job failed")
        return bool(status.get("completed", True))

    # --- progress and previews ------------------------------------------------------------

    def _progress(self, data: dict[str, Any]) -> None:
        """ComfyUI sends a step's progress, then its preview: hold the progress a moment so
        it can carry the preview's path."""
        self._flush_progress()
        try:
            step, total = int(data["value"]), int(data["max"])
        except (KeyError, TypeError, ValueError):
            return
        self._pending = {"type": protocol.PROGRESS, "id": self.request.id,
                         "step": step, "total": total}

    def _flush_progress(self) -> None:
        if self._pending is not None:
            event, self._pending = self._pending, None
            self.send(event)

    def _preview(self, frame: bytes) -> None:
        if len(frame) < 8 or self._pending is None or not self.request.preview_every:
            return
        event_type, image_type = int.from_bytes(frame[:4], "big"), \
            int.from_bytes(frame[4:8], "big")
        if event_type != PREVIEW_IMAGE or image_type not in PREVIEW_SUFFIX:
            return
        step = self._pending["step"]
        if step % self.request.preview_every and step != self._pending["total"]:
            return
        folder = Path(self.request.output_dir) / ".previews"
        path = folder / f"{self.request.id}.{step:04d}{PREVIEW_SUFFIX[image_type]}"
        try:
            write_bytes_atomic(path, frame[8:])
        except OSError as exc:
            log.warning("preview not written: %s", exc)
            return
        self._previews.append(path)
        while len(self._previews) > KEEP_PREVIEWS:
            _remove(self._previews.pop(0))
        self._pending["preview"] = str(path)
        self._flush_progress()

    def _drop_previews(self) -> None:
        for path in self._previews:
            _remove(path)
        self._previews = []

    # --- cancel -------------------------------------------------------------------------------

    def _cancel_on_server(self, ws: WebSocket | None) -> None:
        """Take the prompt off the server's queue, or interrupt it if it is the one running,
        then wait (bounded) until the server has let go of it; raises JobCancelled."""
        if self.prompt_id:
            cancel_prompt(self.client, self.prompt_id)
            deadline = time.monotonic() + CANCEL_WAIT_S
            while time.monotonic() < deadline:
                if ws is not None and not ws.closed:
                    try:
                        ws.recv(POLL_S)
                    except WebSocketClosed:
                        ws = None
                else:
                    time.sleep(POLL_S)
                try:
                    if not prompt_on_server(self.client, self.prompt_id):
                        break
                except ServerUnreachable:
                    break
                cancel_prompt(self.client, self.prompt_id)  # it may have started meanwhile
        raise JobCancelled()

    # --- the result ---------------------------------------------------------------------------

    def _fetch_result(self, save_node: str, graph: dict[str, dict]) -> tuple[Path, str]:
        deadline = time.monotonic() + HISTORY_WAIT_S
        while True:  # a server that ends with execution_success alone may store it a bit later
            history = self._call(lambda: self.client.get_json(f"/history/{self.prompt_id}"))
            entry = history.get(self.prompt_id) if isinstance(history, dict) else None
            images = (((entry or {}).get("outputs") or {}).get(save_node) or {}).get("images")
            if images or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        if not images:
            raise BridgeError(ErrorCode.GENERATION_FAILED,
                              f"ComfyUI finished the job but its history has no image of "
                              f"node {save_node}")
        image = images[0]
        data = self._call(lambda: self.client.view(image["filename"],
                                                   image.get("subfolder", ""),
                                                   image.get("type", "output")))
        sampler = _sampler_name(graph)
        record = JobRecord.from_request(self.request)
        text = {**record.png_text(_scheduler_class(self.request, sampler)),
                **(self.request.metadata or {})}
        try:
            data = replace_text(data, text)
        except ValueError as exc:
            raise BridgeError(ErrorCode.GENERATION_FAILED,
                              f"ComfyUI's result is not a PNG ({exc})") from None
        path = Path(self.request.output_dir) / f"{self.request.id}.png"
        try:
            write_bytes_atomic(path, data)
        except OSError as exc:
            raise BridgeError(ErrorCode.GENERATION_FAILED, os_error_text(exc)) from None
        return path, sampler

    def _call(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except ServerUnreachable as exc:
            raise unreachable(self.client.url, exc) from None
        except HttpError as exc:
            raise http_status_error(self.client.url, exc.status, exc.body) from None


def prompt_on_server(client: ComfyClient, prompt_id: str) -> bool:
    """Whether the prompt is still queued or running on the server."""
    queue = client.get_json("/queue", timeout=5.0) or {}
    return any(_item_id(item) == prompt_id for item in
               [*(queue.get("queue_running") or ()), *(queue.get("queue_pending") or ())])


def cancel_prompt(client: ComfyClient, prompt_id: str, timeout: float = 5.0) -> None:
    """Remove the prompt from the queue if it waits; interrupt it if it runs. The interrupt
    names the prompt and is only sent when /queue says ours is the one running, so another
    user's job is never stopped. Errors are logged: a gone server has nothing to cancel."""
    try:
        queue = client.get_json("/queue", timeout=timeout) or {}
        if any(_item_id(item) == prompt_id for item in queue.get("queue_pending") or ()):
            client.post_json("/queue", {"delete": [prompt_id]}, timeout=timeout)
        if any(_item_id(item) == prompt_id for item in queue.get("queue_running") or ()):
            client.post_json("/interrupt", {"prompt_id": prompt_id}, timeout=timeout)
    except (ServerUnreachable, HttpError) as exc:
        log.warning("cancelling %s on the server failed: %s", prompt_id, exc)


def _item_id(item: Any) -> str:
    """A /queue item is [number, prompt_id, prompt, extra_data, outputs]."""
    return str(item[1]) if isinstance(item, list) and len(item) > 1 else ""


def _sampler_name(graph: dict[str, dict]) -> str:
    for node in graph.values():
        inputs = node.get("inputs") or {}
        if "sampler_name" in inputs and isinstance(inputs["sampler_name"], str):
            schedule = inputs.get("scheduler")
            return inputs["sampler_name"] + (f"/{schedule}" if isinstance(schedule, str)
                                             else "")
    return ""


def _scheduler_class(request: GenerateRequest, sampler: str) -> str:
    """The diffusers class whose A1111 name matches what ComfyUI ran (for `parameters`)."""
    family = FAMILY_INFO.get(str(request.model.get("family", "")))
    if family is not None and family.flow_match:
        return "FlowMatchEulerDiscreteScheduler"
    return _SAMPLER_CLASSES.get(sampler.split("/")[0], "")


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
