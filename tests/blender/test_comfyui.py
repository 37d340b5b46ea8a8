"""Blender with a ComfyUI server as its backend: the panel's Generate and a batch of three
frames go through the preferences' ComfyUI settings, the bridge process and the server.

Live against a real ComfyUI when T2I_TEST_COMFYUI and T2I_TEST_COMFYUI_PYTHON name one (through
the recording proxy; `make record-comfyui` keeps what it saw), else against those recordings
(CI has no ComfyUI): a request the add-on's bridge sends that differs from the recorded one
fails the test. Recordings are per Blender version, since each captures its own depth bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

from devtools.scenes import add_box, add_camera, add_plane, motion_shot
from tests.comfyui.comfy_server import ComfyServer, find_comfyui, tiny_models
from tests.comfyui.recording import RECORDINGS, RecordingProxy, ReplayServer

from .conftest import MODULE

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "t2i_batch.py"
RECORD_ENV = "T2I_COMFYUI_RECORD"
VERSION = "{}.{}".format(*bpy.app.version[:2])


@pytest.fixture(scope="module")
def live_server(request, tmp_path_factory):
    """The real ComfyUI with the tiny SD 1.5 files, or None (then the tests replay)."""
    found = find_comfyui()
    if isinstance(found, str):
        yield None
        return
    root, python = found
    models = tiny_models(request.config.cache.mkdir("t2i-comfyui"))
    server = ComfyServer(root, python, models, tmp_path_factory.mktemp("comfyui"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def comfyui(request, live_server):
    """A URL for this test's case: the proxy in front of the live server, or a replay."""
    case = f"blender_{request.node.originalname.removeprefix('test_')}_{VERSION}"
    if live_server is not None:
        proxy = RecordingProxy(live_server.port)
        proxy.start_case()
        yield proxy.url
        if os.environ.get(RECORD_ENV) == "1":
            proxy.save(case)
        proxy.close()
        return
    if not (RECORDINGS / f"{case}.json").is_file():
        pytest.fail(f"no recording {case}: run `make record-comfyui` against a ComfyUI")
    replay = ReplayServer(case)
    yield replay.url
    replay.close()
    assert replay.mismatches == [], "\n".join(replay.mismatches)
    assert replay.unused() == [], "recorded requests the bridge did not send"


@pytest.fixture
def prefs(addon):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    yield prefs
    addon.t2i_core.job_queue.reset_job_queue(wait=True)  # no bridge left for the next test
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_kind, prefs.comfyui_url = "local", "http://127.0.0.1:8188"


def _shot(scene) -> None:
    scene.render.resolution_x, scene.render.resolution_y = 64, 64
    scene.render.engine = "BLENDER_WORKBENCH"
    add_camera(scene, location=(0.0, 0.0, 10.0))
    add_plane(scene, size=40.0)
    box = add_box(scene, 2.0, (0.0, 0.0, 1.0))
    scene.frame_start, scene.frame_end = 1, 3
    for frame, height in ((1, 1.0), (3, 5.0)):
        box.location.z = height
        box.keyframe_insert("location", index=2, frame=frame)
    settings = scene.t2i
    settings.model_preset = "tiny-sd15-depth"
    settings.prompt, settings.seed, settings.steps = "a concrete block", 5, 2
    settings.use_render_size = False
    settings.width, settings.height = 64, 64
    settings.depth.range_policy = "MANUAL"
    settings.depth.near, settings.depth.far = 4.0, 12.0


def _batch(tmp_path: Path, url: str, *args: str) -> Path:
    """The scene saved and frames 1-3 run through scripts/t2i_batch.py --comfyui URL (2 steps,
    seed 5); returns the output folder (the --out given, without its frame pattern)."""
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    head = [sys.executable, str(SCRIPT), str(blend), "--frames", "1-3", "--comfyui", url]
    options = ["--steps", "2", "--seed", "5", *args]
    proc = subprocess.run([*head, *options], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp_path / "out"


def test_generate(addon, scene, prefs, comfyui):
    _shot(scene)
    prefs.backend_kind, prefs.comfyui_url = "comfyui", comfyui
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    result = bpy.data.images["T2I Result"]
    assert tuple(result.size) == (64, 64)
    record = json.loads(Path(result.filepath).with_suffix(".json").read_text())
    assert record["seed"] == 5 and record["size"] == [64, 64]
    assert record["prompt"] == "a concrete block"
    jobs = addon.t2i_core.job_queue.get_job_queue()
    assert jobs.backend_ready["devices"][0].startswith("comfyui:")
    # the server's files are the model library while it is the backend
    names = {entry.name for entry in addon.blender_t2i.scene.library.current().entries}
    assert any("tiny_sd15" in name for name in names), names
    assert [item.seed for item in scene.t2i.history] == [5]


def test_batch_of_three_frames(scene, tmp_path, prefs, comfyui):
    _shot(scene)
    out = _batch(tmp_path, comfyui, "--seed-mode", "per-frame", "--depth-range", "manual",
                 "--near", "4", "--far", "12", "--out", str(tmp_path / "out" / "sh010_###"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["frames"]) == ["1", "2", "3"]
    assert [manifest["frames"][f]["seed"] for f in ("1", "2", "3")] == [6, 7, 8]
    for frame in (1, 2, 3):
        assert (out / f"sh010_{frame:03d}.png").stat().st_size > 0


def test_temporal_batch(addon, scene, tmp_path, prefs, comfyui):
    """Temporal mode through the server: frames 2 and 3 send the previous result, warped, as
    init with a mask, and at carry 1 ComfyUI's result keeps the carried pixels exactly."""
    motion_shot(scene, range(1, 4))
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.frame_start, scene.frame_end = 1, 3
    out = _batch(tmp_path, comfyui, "--preset", "tiny-sd15-depth", "--size", "64x64",
                 "--temporal", "--carry", "1", "--out", str(tmp_path / "out"))
    read = addon.t2i_core.png.read_png
    for frame in (2, 3):
        record = json.loads((out / f"frame_{frame:04d}.json").read_text())
        assert record["temporal"]["carried_from"] == frame - 1
        kept = read(Path(record["mask_image"])) == 0
        assert kept.any()
        result, carried = read(out / f"frame_{frame:04d}.png"), read(Path(record["init_image"]))
        assert np.array_equal(result[kept], carried[kept])


def test_an_unreachable_server_is_reported(addon, scene, prefs):
    _shot(scene)
    prefs.backend_kind, prefs.comfyui_url = "comfyui", "http://127.0.0.1:9"  # discard port
    with pytest.raises(RuntimeError, match="not reachable"):
        bpy.ops.t2i.generate()
    # Connect says so too, under a bridge that is itself running (the panel shows the message)
    addon.t2i_core.job_queue.reset_job_queue(wait=True)
    assert bpy.ops.t2i.backend_start() == {"FINISHED"}
    assert "127.0.0.1:9 is not reachable" in addon.t2i_core.job_queue.get_job_queue().message


def test_a_bad_url_is_reported_before_any_capture(scene, prefs):
    _shot(scene)
    prefs.backend_kind, prefs.comfyui_url = "comfyui", "ftp://gpu-box"
    with pytest.raises(RuntimeError, match="http:// or https://"):
        bpy.ops.t2i.generate()
