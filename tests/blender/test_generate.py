"""Capture and generate through the installed add-on's operators, in real Blender."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import bpy
import numpy as np
import pytest

from devtools.scenes import add_box, add_camera, add_plane


def _settings(scene, **values):
    scene.t2i.model_preset = "tiny-sd15-depth"
    scene.t2i.prompt = "a stone floor"
    for key, value in values.items():
        setattr(scene.t2i, key, value)
    return scene.t2i


def test_plane_depth_comes_back_within_half_a_percent(addon, scene):
    add_camera(scene, location=(0.0, 0.0, 7.25))
    add_plane(scene)
    depth = addon.compositor.capture.capture_depth(scene, 64, 48)
    assert depth.z.shape == (48, 64)
    assert not depth.background.any()
    np.testing.assert_allclose(depth.z, 7.25, rtol=0.005)


def test_capture_leaves_the_users_render_settings_as_they_were(addon, scene):
    add_camera(scene)
    add_plane(scene)
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 300, 200, 37
    render.filepath = "//frames/shot_"
    bpy.context.view_layer.use_pass_z = False
    before = (render.engine, render.resolution_x, render.resolution_y,
              render.resolution_percentage, render.filepath, bpy.context.view_layer.use_pass_z,
              len(bpy.data.node_groups), _user_images())
    bpy.ops.t2i.capture_depth()
    after = (render.engine, render.resolution_x, render.resolution_y,
             render.resolution_percentage, render.filepath, bpy.context.view_layer.use_pass_z,
             len(bpy.data.node_groups), _user_images())
    assert after == before
    assert bpy.data.images["T2I Depth"].size[:] == (112, 72)  # 300x200 at 37%, snapped to 8


def _user_images() -> set[str]:
    return {image.name for image in bpy.data.images} - {"Render Result", "T2I Depth"}


def test_generate_makes_an_image_of_the_requested_size(scene, backend):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, use_render_size=False, width=96, height=64, steps=2, seed=11)
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    result = bpy.data.images["T2I Result"]
    assert tuple(result.size) == (96, 64)
    assert result.packed_file is not None  # unsaved .blend: kept inside the file
    record_path = Path(result.filepath).with_suffix(".json")
    record = json.loads(record_path.read_text())
    assert record["seed"] == 11 and record["size"] == [96, 64]
    assert Path(record["depth"]).exists()
    assert set(record["timings"]) >= {"capture", "load", "inputs", "generate", "write", "total"}
    assert record["peak_memory"] is None  # reported on CUDA only


def test_saved_blend_gets_its_results_beside_it(scene, backend, tmp_path):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, use_render_size=False, width=64, height=64, steps=1)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    files = sorted(p.name for p in (tmp_path / "t2i").iterdir())
    assert any(name.endswith("_depth.png") for name in files)
    assert any(name.endswith("_s0.png") for name in files)
    assert bpy.data.images["T2I Result"].packed_file is None


def test_a_backend_killed_mid_job_is_reported_and_the_next_generate_restarts_it(
        addon, scene, backend):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, use_render_size=False, width=64, height=64, steps=1)
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    jobs = addon.t2i_core.job_queue.get_job_queue()
    first_pid = jobs.backend_pid

    def kill_once_busy():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = jobs.current
            if running is not None and running.step >= 1:  # the second job is under way
                break
            time.sleep(0.02)
        os.kill(first_pid, signal.SIGKILL)

    scene.t2i.steps = 400
    killer = threading.Thread(target=kill_once_busy)
    killer.start()
    with pytest.raises(RuntimeError, match="backend stopped unexpectedly"):
        bpy.ops.t2i.generate()
    killer.join()

    scene.t2i.steps = 1
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    assert jobs.backend_pid not in (None, first_pid)


def test_an_empty_size_is_reported(scene):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, use_render_size=False, width=0)
    with pytest.raises(RuntimeError, match="empty"):
        bpy.ops.t2i.generate()


def test_a_camera_that_sees_nothing_is_reported_not_sent_as_a_black_map(scene):
    add_camera(scene, rotation=(3.14159, 0.0, 0.0))  # looking up, away from the plane
    add_plane(scene)
    _settings(scene, use_render_size=False, width=64, height=64)
    with pytest.raises(RuntimeError, match="sees nothing"):
        bpy.ops.t2i.generate()


def test_a_backend_python_that_does_not_exist_is_reported(addon, scene, tmp_path):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, use_render_size=False, width=64, height=64)
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    prefs.backend_python = str(tmp_path / "no-python")
    try:
        with pytest.raises(RuntimeError, match="does not exist"):
            bpy.ops.t2i.generate()
    finally:
        prefs.backend_python = ""


def test_use_render_sends_the_colour_render_as_init_image(scene, backend):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, use_render_size=False, width=64, height=48, steps=2, use_render=True,
              render_strength=0.6)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = 300, 200
    scene.render.filepath = "//frames/shot_"
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    record = json.loads(Path(bpy.data.images["T2I Result"].filepath).with_suffix(".json")
                        .read_text())
    render = Path(record["depth"].replace("_depth.png", "_render.png"))
    assert render.is_file()
    from PIL import Image

    with Image.open(render) as picture:
        assert picture.size == (64, 48) and picture.mode == "RGB"
    assert (scene.render.resolution_x, scene.render.resolution_y) == (300, 200)
    assert scene.render.filepath == "//frames/shot_"
    assert "Render Result" not in bpy.data.images


def test_use_render_with_a_family_that_takes_none_is_reported(scene):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, use_render_size=False, width=64, height=64)
    scene.t2i.model_preset = "flux-depth"
    scene.t2i.use_render = True
    with pytest.raises(RuntimeError, match="takes no colour render"):
        bpy.ops.t2i.generate()


def test_choosing_an_edit_model_turns_on_use_render(scene):
    scene.t2i.model_preset = "flux-kontext"
    assert scene.t2i.use_render
    scene.t2i.model_preset = "tiny-sd15-depth"
    assert not scene.t2i.use_render


def test_sd2_depth2img_jobs_carry_the_captures_float_depth(addon, scene, backend, tmp_path):
    """The float map the capture writes reaches SD 2 depth2img with the job; other families
    get the 8-bit map only."""
    add_camera(scene)
    add_plane(scene)
    add_box(scene, 1.0, (0.0, 0.0, 0.5))
    _settings(scene, use_render_size=False, width=64, height=64, steps=2)
    scene_job = addon.blender_t2i.generation.scene_job
    sd2 = scene_job.job_settings(scene, model={"family": "sd2_depth2img", "base": "tiny"})
    job = scene_job.prepare_job(scene, tmp_path, sd2)
    assert job.request["depth_float"] == str(job.control.path_exr)
    assert Path(job.request["depth_float"]).is_file()
    sd15 = scene_job.prepare_job(scene, tmp_path, scene_job.job_settings(scene))
    assert "depth_float" not in sd15.request
    config = addon.blender_t2i.scene.preferences.backend_config(bpy.context)
    result = addon.t2i_core.job_queue.get_job_queue().submit(job.request, config).wait(600)
    assert Path(result["paths"][0]).is_file()


@pytest.mark.parametrize("operator", ["capture_depth", "generate"])
def test_an_output_folder_that_cannot_be_written_is_reported(scene, tmp_path, operator):
    """OSError (full disk, read-only or impossible folder) is an operator report, not a
    traceback: here the folder would lie inside a file."""
    add_camera(scene)
    add_plane(scene)
    _settings(scene, use_render_size=False, width=64, height=64, steps=1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    scene.t2i.output_dir = str(blocker / "t2i")
    with pytest.raises(RuntimeError, match="could not write or read") as raised:
        getattr(bpy.ops.t2i, operator)()
    assert "Traceback" not in str(raised.value)
