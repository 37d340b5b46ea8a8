"""The bridge's cases, each run through the real bridge process driven by the add-on's own
JobQueue: live against a real ComfyUI (through the recording proxy) or against a recording.
A `Rig` says where the bridge connects and, live, how to kill and restart the server."""

from __future__ import annotations

import json
import struct
import sys
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from t2i_src.t2i_core import job_request as jobs
from t2i_src.t2i_core import png
from t2i_src.t2i_core.backend_process import BackendConfig
from t2i_src.t2i_core.job_queue import JobQueue, UpdateKind
from t2i_src.t2i_core.job_request import JobSettings
from t2i_src.t2i_core.presets import get_preset

TINY = get_preset("tiny-sd15-depth")
SIZE = (64, 64)


@dataclass
class Rig:
    url: str  # where the bridge connects (the proxy or the replay server)
    work: Path
    live: bool
    kill: Callable[[], None] = lambda: None
    restart: Callable[[], None] = lambda: None
    server_url: str = ""  # live: the real server, for checks behind the bridge's back

    def config(self) -> BackendConfig:
        return BackendConfig(python=sys.executable, cache_dir=self.work / "cache",
                             log_path=self.work / "bridge.log", module="comfy_bridge",
                             args=("--url", self.url))

    def server_queue(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.server_url + "/queue", timeout=10) as answer:
            return json.loads(answer.read())


def depth_png(path: Path, vertical: bool = False) -> Path:
    """A 16-bit grey gradient, near = white, as the add-on writes the control image."""
    ramp = np.linspace(0, 65535, SIZE[1 if vertical else 0]).astype(np.uint16)
    pixels = np.tile(ramp[:, None], (1, SIZE[0])) if vertical else np.tile(ramp, (SIZE[1], 1))
    return png.write_png(path, pixels)


def request(rig: Rig, stem: str, steps: int = 2, vertical: bool = False,
            **fields: Any) -> dict[str, Any]:
    depth = depth_png(rig.work / f"{stem}_depth.png", vertical)
    settings = JobSettings(preset=TINY, prompt="a red cube", negative_prompt="blurry", seed=7,
                           steps=steps, guidance=7.5, control_strength=1.0, size=SIZE)
    message = jobs.build_request(stem, settings, str(depth), str(rig.work / "out"))
    return {**message, **fields}


def run(queue: JobQueue, limit_s: float = 300,
        on_update: Callable[[Any], None] | None = None) -> list:
    updates = []
    deadline = time.monotonic() + limit_s
    while queue.active and time.monotonic() < deadline:
        for update in queue.poll(timeout=0.05):
            updates.append(update)
            if on_update is not None:
                on_update(update)
    assert not queue.active, "the queue did not finish in time"
    return updates


def finals(updates: list) -> list[tuple[str, str]]:
    return [(u.job.id, u.kind) for u in updates if u.job is not None
            and u.kind != UpdateKind.PROGRESS]


def png_parts(path: Path) -> tuple[dict[str, str], bytes]:
    """A PNG's text chunks and its inflated pixel rows."""
    data, text, idat, offset = path.read_bytes(), {}, b"", 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        if kind == b"iTXt":  # keyword, flag, method, language, translated keyword, text
            key, _, rest = body.partition(b"\0")
            _language, _, rest = rest[2:].partition(b"\0")
            _translated, _, value = rest.partition(b"\0")
            text[key.decode("latin-1")] = value.decode("utf-8")
        elif kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            text[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    return text, zlib.decompress(idat)


# --- the cases -------------------------------------------------------------------------------


def case_generate(rig: Rig) -> None:
    """2 steps at 64x64: the result is a PNG with the project's text chunks, progress came in
    step order, and the depth mattered (another depth, same seed: another picture)."""
    queue = JobQueue()
    try:
        first = queue.submit(request(rig, "gen_a"), rig.config())
        updates = run(queue)
        assert queue.backend_ready["families"][:1] == ["sd15_controlnet"]
        assert queue.backend_ready["devices"][0].startswith("comfyui:127.0.0.1:")
        second = queue.submit(request(rig, "gen_b", vertical=True), rig.config())
        updates += run(queue)
    finally:
        queue.stop(wait=True)
    assert finals(updates) == [("gen_a", UpdateKind.RESULT), ("gen_b", UpdateKind.RESULT)], \
        [(u.job and u.job.id, u.kind, u.error and u.error.report()) for u in updates]
    steps = [u.event["step"] for u in updates if u.kind == UpdateKind.PROGRESS
             and u.job is first]
    assert steps and steps == sorted(steps) and steps[-1] == 2
    path_a, path_b = Path(first.result["paths"][0]), Path(second.result["paths"][0])
    assert path_a == rig.work / "out" / "gen_a.png"
    text, pixels_a = png_parts(path_a)
    assert text["t2i:prompt"] == "a red cube" and text["t2i:seed"] == "7"
    assert text["t2i:steps"] == "2" and text["t2i:size"] == "64x64"
    assert "Steps: 2, Sampler: Euler" in text["parameters"]
    assert "prompt" not in text and "workflow" not in text  # ComfyUI's own chunks replaced
    assert pixels_a != png_parts(path_b)[1], "a different depth gave the same picture"
    timings = first.result["timings"]
    assert set(timings) >= {"load", "generate", "write", "total"}
    assert not list((rig.work / "out" / ".previews").glob("gen_a.*"))  # cleaned at the end


def case_three_in_a_row(rig: Rig) -> None:
    queue = JobQueue()
    try:
        for name in ("row_1", "row_2", "row_3"):
            queue.submit(request(rig, name), rig.config())
        updates = run(queue)
    finally:
        queue.stop(wait=True)
    assert finals(updates) == [(n, UpdateKind.RESULT) for n in ("row_1", "row_2", "row_3")]
    assert all((rig.work / "out" / f"{n}.png").is_file() for n in ("row_1", "row_2", "row_3"))


def case_cancel(rig: Rig) -> None:
    """Cancelled at its first step: the job ends `cancelled` and nothing of it stays queued or
    running on the server."""
    queue = JobQueue()
    try:
        queue.submit(request(rig, "long", steps=60), rig.config())

        def cancel_at_first_step(update: Any) -> None:
            if update.kind == UpdateKind.PROGRESS:
                queue.cancel()

        updates = run(queue, on_update=cancel_at_first_step)
    finally:
        queue.stop(wait=True)
    assert finals(updates) == [("long", UpdateKind.CANCELLED)]
    assert not (rig.work / "out" / "long.png").exists()
    if rig.live:
        state = rig.server_queue()
        assert state["queue_running"] == [] and state["queue_pending"] == [], state


def case_exit_mid_job(rig: Rig) -> None:
    """Blender quits mid-job (the queue closes the bridge's stdin): the bridge interrupts its
    job on the server and is gone within about 2 s; nothing of it stays on the server."""
    queue = JobQueue()
    stopped: list[float] = []
    queue.submit(request(rig, "orphan", steps=60), rig.config())
    deadline = time.monotonic() + 300
    while not stopped and time.monotonic() < deadline:
        for update in queue.poll(timeout=0.05):
            if update.kind == UpdateKind.PROGRESS and not stopped:
                process = queue._process._process  # the bridge's Popen, for its status
                started = time.monotonic()
                queue.stop(wait=True)  # closes stdin; kills it after 10 s if still there
                stopped.append(time.monotonic() - started)
    assert stopped, "the job never started"
    assert process.poll() == 0, process.returncode  # it left by itself, not killed
    assert stopped[0] < 4.0, f"the bridge took {stopped[0]:.1f} s to exit"
    if rig.live:  # the interrupt lands at the server's next step
        for _ in range(50):
            state = rig.server_queue()
            if not state["queue_running"] and not state["queue_pending"]:
                break
            time.sleep(0.1)
        assert state["queue_running"] == [] and state["queue_pending"] == [], state


def case_bad_graph(rig: Rig) -> None:
    """A size the server's EmptyLatentImage refuses (below its minimum 16): SERVER_REJECTED
    naming the node and ComfyUI's complaint; the bridge keeps serving."""
    queue = JobQueue()
    try:
        handle = queue.submit(request(rig, "tiny_size", width=8, height=8), rig.config())
        updates = run(queue)
    finally:
        queue.stop(wait=True)
    assert finals(updates) == [("tiny_size", UpdateKind.FAILED)]
    assert handle.error.code == "SERVER_REJECTED", handle.error.report()
    assert "EmptyLatentImage (node" in str(handle.error) and "width" in str(handle.error)


def case_server_killed(rig: Rig) -> None:
    """The server dies mid-job: SERVER_UNREACHABLE for it; once the server is back, the next
    job on the same bridge works."""
    queue = JobQueue()
    killed = []
    try:
        handle = queue.submit(request(rig, "doomed", steps=60), rig.config())

        def kill_at_first_step(update: Any) -> None:
            if update.kind == UpdateKind.PROGRESS and not killed:
                killed.append(True)
                rig.kill()

        updates = run(queue, on_update=kill_at_first_step)
        assert finals(updates) == [("doomed", UpdateKind.FAILED)]
        assert handle.error.code == "SERVER_UNREACHABLE", handle.error.report()
        assert f"ComfyUI at {rig.url} is not reachable" in str(handle.error)
        pid = queue.backend_pid
        rig.restart()
        after = queue.submit(request(rig, "after_restart"), rig.config())
        updates = run(queue)
        assert queue.backend_pid == pid  # the same bridge: it reconnected
    finally:
        queue.stop(wait=True)
    assert finals(updates) == [("after_restart", UpdateKind.RESULT)], after.error


def case_missing_node(rig: Rig) -> None:
    """A family whose nodes this server lacks (Z-Image's, newer than 0.3.64): a clear message
    before anything is uploaded or queued."""
    queue = JobQueue()
    try:
        model = {"family": "zimage_controlnet", "base": "z_image_turbo.safetensors",
                 "controlnet": "zimage_fun_controlnet.safetensors"}
        handle = queue.submit(request(rig, "zimage", model=model), rig.config())
        updates = run(queue)
        families = queue.backend_ready["families"]
    finally:
        queue.stop(wait=True)
    assert finals(updates) == [("zimage", UpdateKind.FAILED)]
    assert "this ComfyUI lacks" in str(handle.error), handle.error.report()
    assert "update it or install the node pack" in str(handle.error)
    assert "zimage_controlnet" not in families and "sd15_controlnet" in families


def case_missing_model(rig: Rig) -> None:
    """A checkpoint the server does not have: MODEL_NOT_FOUND naming the file."""
    queue = JobQueue()
    try:
        model = {**TINY.model_spec(), "base": "no_such_checkpoint.safetensors"}
        handle = queue.submit(request(rig, "nomodel", model=model), rig.config())
        updates = run(queue)
    finally:
        queue.stop(wait=True)
    assert finals(updates) == [("nomodel", UpdateKind.FAILED)]
    assert handle.error.code == "MODEL_NOT_FOUND", handle.error.report()
    assert "no_such_checkpoint.safetensors" in str(handle.error)


CASES: dict[str, Callable[[Rig], None]] = {
    "generate": case_generate, "three_in_a_row": case_three_in_a_row, "cancel": case_cancel,
    "exit_mid_job": case_exit_mid_job,
    "bad_graph": case_bad_graph, "server_killed": case_server_killed,
    "missing_node": case_missing_node, "missing_model": case_missing_model,
}
