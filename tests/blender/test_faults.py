"""Faults around the backend, in real Blender: Blender killed while a backend runs, the add-on
disabled during a job (neither may leave a backend process behind), a backend frozen mid-job
(SIGSTOP), garbage on its event stream, and a real out-of-memory inside torch (the backend's
address space capped). Each is reported, and the next job succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bpy

from devtools import faults
from devtools.scenes import add_camera, add_plane

from .conftest import MODULE, backend_python
from .modal_driver import ModalDriver

ROOT = Path(__file__).resolve().parents[2]
# A cap on the backend's address space that a 64 x 64 job fits under and an OOM_SIDE one not
OOM_CAP_BYTES = 6 << 30
OOM_SIDE = 2048

# A Blender (the bpy module) that starts a backend through the add-on's own queue, says the
# backend's pid once it is ready, then waits to be killed.
CHILD = textwrap.dedent("""
    import sys, time, types
    import bpy
    root, python, cache = sys.argv[1:4]
    package = types.ModuleType("t2i_src")
    package.__path__ = [root]
    sys.modules["t2i_src"] = package
    from pathlib import Path
    from t2i_src.t2i_core.backend_process import BackendConfig
    from t2i_src.t2i_core.job_queue import JobQueue, Status
    jobs = JobQueue()
    jobs.start(BackendConfig(python=python, cache_dir=Path(cache), log_path=Path(cache) / "log"))
    while jobs.status == Status.STARTING:
        jobs.poll(timeout=0.1)
    print("BACKEND", jobs.backend_pid, jobs.status, flush=True)
    time.sleep(600)
""")


def _exited(pid: int) -> bool:
    """Gone, or a zombie: it has exited and only waits for a parent to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.05)
    return False


def test_blender_killed_ten_times_leaves_no_backend_running(tmp_path):
    orphans, slowest = [], 0.0
    for _attempt in range(10):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(ROOT), backend_python() or sys.executable,
             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = ""
        while not line.startswith("BACKEND"):
            line = child.stdout.readline()
            assert line or child.poll() is None, "the Blender child died before its backend"
        _, pid, status = line.split()
        assert status == "ready", line
        child.send_signal(signal.SIGKILL)  # no unregister, no atexit: only the pipe closes
        child.wait()
        killed = time.monotonic()
        if not _gone_within(int(pid), 2.0):
            orphans.append(int(pid))
            os.kill(int(pid), signal.SIGKILL)
        slowest = max(slowest, time.monotonic() - killed)
    print(f"10 Blender kills: {len(orphans)} orphans, slowest backend exit {slowest:.2f} s")
    assert not orphans, f"backends left running after Blender died: {orphans}"


def _tiny_job_scene(scene, steps: int) -> None:
    add_camera(scene)
    add_plane(scene)
    scene.t2i.model_preset = "tiny-sd15-depth"
    scene.t2i.use_render_size = False
    scene.t2i.width = scene.t2i.height = 64
    scene.t2i.steps = steps


def test_disabling_the_add_on_during_a_job_stops_its_backend(addon, scene, backend):
    _tiny_job_scene(scene, steps=300)
    queue_module = addon.t2i_core.job_queue
    handle = addon.blender_t2i.generation.submit.submit(bpy.context)
    jobs = queue_module.get_job_queue()
    deadline = time.monotonic() + 120
    while handle.step < 1 and time.monotonic() < deadline:
        jobs.poll(timeout=0.1)
    pid = jobs.backend_pid
    assert pid is not None and handle.step >= 1
    started = time.perf_counter()
    bpy.ops.preferences.addon_disable(module=MODULE)
    held = time.perf_counter() - started
    try:
        assert held < 1.0, f"disabling held Blender {held:.2f} s"  # stop does not wait
        assert _gone_within(pid, 15.0), "the backend outlived the add-on"
    finally:
        bpy.ops.preferences.addon_enable(module=MODULE)
        bpy.context.preferences.addons[MODULE].preferences.backend_python = backend
    bpy.ops.wm.read_homefile(use_empty=True)
    _tiny_job_scene(bpy.context.scene, steps=1)  # the add-on's new settings
    assert bpy.ops.t2i.generate() == {"FINISHED"}  # and the next job runs on a new backend


# --- a frozen backend, garbage on its stream, a real out-of-memory ------------------------------

def _modal_job(addon, steps: int, on_tick=None) -> tuple[set[str], list[tuple[str, str]]]:
    """Submit the scene's job and drive the modal operator to its end: (result, reports)."""
    addon.blender_t2i.generation.submit.submit(bpy.context)
    driver = ModalDriver(addon.operators.generate.T2I_OT_generate)
    result = driver.run(limit_s=300, on_tick=on_tick)
    return result, driver.reports


def _errors(reports: list[tuple[str, str]]) -> list[str]:
    return [text for level, text in reports if level == "ERROR"]


def test_a_frozen_backend_is_reported_killed_and_the_next_job_succeeds(addon, scene, backend):
    _tiny_job_scene(scene, steps=300)
    jobs = addon.t2i_core.job_queue.get_job_queue()
    jobs.silence_limit = 4.0  # the default 30 s, shortened for the test
    frozen: dict[str, int] = {}

    def freeze_once_running(_driver):
        if not frozen and jobs.step >= 1:
            frozen["pid"] = jobs.backend_pid
            os.kill(frozen["pid"], signal.SIGSTOP)  # every thread stops: no heartbeats either

    try:
        result, reports = _modal_job(addon, 300, freeze_once_running)
    finally:
        jobs.silence_limit = addon.t2i_core.job_queue.SILENCE_LIMIT_S
        if frozen and not _exited(frozen["pid"]):
            os.kill(frozen["pid"], signal.SIGKILL)
    assert result == {"CANCELLED"}
    assert any("sent nothing for" in text for text in _errors(reports)), reports
    assert _gone_within(frozen["pid"], 15.0), "the frozen backend was left stopped"
    scene.t2i.steps = 1
    assert bpy.ops.t2i.generate() == {"FINISHED"}  # on a fresh backend
    assert jobs.backend_pid != frozen["pid"]


def test_garbage_on_the_event_stream_is_reported_and_the_backend_replaced(
        addon, scene, backend, tmp_path):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_python = str(faults.garbling_python(backend, tmp_path))
    _tiny_job_scene(scene, steps=4)
    result, reports = _modal_job(addon, 4)
    assert result == {"CANCELLED"}
    assert any("not protocol" in text or "garbage" in text.lower() for text in _errors(reports)), \
        reports
    prefs.backend_python = backend
    assert bpy.ops.t2i.generate() == {"FINISHED"}


def test_running_out_of_memory_is_reported_and_the_backend_keeps_serving(
        addon, scene, backend, tmp_path):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_python = str(faults.memory_capped_python(backend, tmp_path, OOM_CAP_BYTES))
    prefs.max_megapixels = 16.8
    try:
        _tiny_job_scene(scene, steps=1)
        assert bpy.ops.t2i.generate() == {"FINISHED"}  # 64 x 64 fits under the cap
        pid = addon.t2i_core.job_queue.get_job_queue().backend_pid
        scene.t2i.width = scene.t2i.height = OOM_SIDE
        result, reports = _modal_job(addon, 1)
        assert result == {"CANCELLED"}
        assert any("out of memory" in text for text in _errors(reports)), reports
        scene.t2i.width = scene.t2i.height = 64
        assert bpy.ops.t2i.generate() == {"FINISHED"}
        assert addon.t2i_core.job_queue.get_job_queue().backend_pid == pid  # no restart needed
    finally:
        prefs.max_megapixels = addon.t2i_core.protocol.DEFAULT_MAX_MEGAPIXELS
        prefs.backend_python = backend
