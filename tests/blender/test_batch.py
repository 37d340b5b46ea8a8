"""scripts/t2i_batch.py run for real: a Python with bpy, the installed extension, the backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

from devtools.scenes import add_box, add_camera, add_plane

from . import depth_layouts as layouts
from .conftest import backend_python

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "t2i_batch.py"


def _animated_blend(path: Path, camera: bool = True) -> Path:
    """Three frames of a box rising towards a camera above a floor."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    scene.render.engine = "BLENDER_WORKBENCH"  # quick colour renders for --init render
    scene.frame_start, scene.frame_end = 1, 3
    if camera:
        add_camera(scene, location=(0.0, 0.0, 10.0))
    add_plane(scene, size=40.0)
    box = add_box(scene, 2.0, (0.0, 0.0, 1.0))
    for frame, height in ((1, 1.0), (3, 5.0)):
        box.location.z = height
        box.keyframe_insert("location", index=2, frame=frame)
    scene.t2i.prompt = "a concrete block"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def _batch(*args: str, wait: bool = True):
    python = backend_python()
    command = [sys.executable, str(SCRIPT), *args]
    if python:
        command += ["--backend-python", python]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_help_documents_every_option():
    proc = _batch("--help")
    assert proc.returncode == 0
    for option in ("--frames", "--prompt", "--prompts", "--negative", "--preset", "--model",
                   "--seed", "--seed-mode", "--steps", "--guidance", "--strength", "--size",
                   "--depth-range", "--init", "--out", "--resume", "--dry-run"):
        assert option in proc.stdout


def test_three_frames_give_three_results_and_a_manifest(tmp_path, backend):
    blend = _animated_blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    proc = _batch(str(blend), "--frames", "1-3", "--preset", "tiny-sd15-depth", "--steps", "2",
                  "--seed", "5", "--seed-mode", "per-frame", "--out", str(out / "sh010_###"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "depth range locked over 3 frames" in proc.stdout
    assert "frame 3 done (3/3)" in proc.stdout and "ETA" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["frames"]) == ["1", "2", "3"]
    assert [manifest["frames"][f]["seed"] for f in ("1", "2", "3")] == [6, 7, 8]
    ranges = {tuple(manifest["frames"][f]["depth_range"]) for f in ("1", "2", "3")}
    assert len(ranges) == 1  # locked: the same range on every frame
    for frame in (1, 2, 3):
        assert (out / f"sh010_{frame:03d}.png").is_file()
        assert (out / f"sh010_{frame:03d}_depth.png").is_file()


def test_a_killed_run_resumes_without_redoing_finished_frames(tmp_path, backend):
    blend = _animated_blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    args = (str(blend), "--frames", "1-3", "--preset", "tiny-sd15-depth", "--steps", "20",
            "--size", "96x64", "--out", str(out))
    run = _batch(*args, wait=False)
    for line in run.stdout:
        if line.startswith("frame 1 done"):
            os.kill(run.pid, signal.SIGKILL)  # mid-run: frame 2 is being generated
            break
    run.wait(timeout=60)
    first = json.loads((out / "manifest.json").read_text())
    assert sorted(first["frames"]) == ["1"]
    frame1_mtime = (out / "frame_0001.png").stat().st_mtime_ns

    proc = _batch(*args, "--resume")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 to generate (1 already done)" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["frames"]) == ["1", "2", "3"]
    assert manifest["frames"]["1"] == first["frames"]["1"]
    assert (out / "frame_0001.png").stat().st_mtime_ns == frame1_mtime


def test_init_render_sends_each_frames_colour_render(tmp_path, backend):
    blend = _animated_blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    proc = _batch(str(blend), "--frames", "2", "--preset", "tiny-sd15-depth", "--steps", "2",
                  "--init", "render", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert "frame_0002_render.png" in manifest["frames"]["2"]["files"]
    assert manifest["settings"]["init"] == "render"


def test_resume_with_other_settings_is_refused(tmp_path, backend):
    blend = _animated_blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    common = (str(blend), "--frames", "1", "--preset", "tiny-sd15-depth", "--steps", "1",
              "--out", str(out))
    assert _batch(*common).returncode == 0
    proc = _batch(*common, "--seed", "99", "--resume")
    assert proc.returncode == 2
    assert "seed differ" in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--frames", "5-1"), "empty range"),
    (("--size", "big"), "WIDTHxHEIGHT"),
    (("--preset", "no-such-model"), "unknown preset"),
    (("--depth-range", "manual"), "--near"),
    (("--model", "{not json"), "JSON"),
])
def test_bad_arguments_exit_non_zero_with_a_message(tmp_path, args, message):
    blend = _animated_blend(tmp_path / "shot.blend")
    proc = _batch(str(blend), "--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_scene_without_camera_exits_non_zero(tmp_path):
    blend = _animated_blend(tmp_path / "shot.blend", camera=False)
    proc = _batch(str(blend), "--out", str(tmp_path / "out"), "--preset", "tiny-sd15-depth")
    assert proc.returncode == 2
    assert "no active camera" in proc.stderr


def test_a_missing_blend_exits_non_zero(tmp_path):
    proc = _batch(str(tmp_path / "nope.blend"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


def test_dry_run_lists_frames_without_generating(tmp_path):
    blend = _animated_blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    proc = _batch(str(blend), "--frames", "1-3", "--preset", "tiny-sd15-depth", "--out",
                  str(out), "--dry-run", "--seed-mode", "per-frame", "--seed", "10")
    assert proc.returncode == 0, proc.stderr
    assert "frame 3: frame_0003.png seed 13" in proc.stdout
    assert not out.exists()


def test_a_render_size_the_model_was_not_trained_for_is_warned_about(tmp_path):
    blend = _animated_blend(tmp_path / "shot.blend")
    bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y = 1920, 1080
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    args = (str(blend), "--frames", "1", "--preset", "sd15-depth", "--out",
            str(tmp_path / "out"), "--dry-run")
    proc = _batch(*args)
    assert proc.returncode == 0, proc.stderr
    assert "warning: the render size 1920 x 1080 is 7.9x the 512 x 512 pixels" in proc.stdout
    assert "pass --size 680x384" in proc.stdout
    proc = _batch(*args, "--size", "680x384")
    assert proc.returncode == 0 and "warning" not in proc.stdout


def _layout_blend(path: Path, build, **kwargs) -> Path:
    """One frame of a depth layout (tests/blender/depth_layouts.py), saved."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    build(scene, **kwargs)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.frame_start = scene.frame_end = 1
    scene.t2i.prompt = "a quiet street"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


@pytest.mark.parametrize(("build", "kwargs"), [(layouts.wall, {"size": 20.0}),
                                               (layouts.street, {})])
def test_a_flat_wall_and_a_deep_street_generate_with_the_default_locked_range(
        tmp_path, backend, build, kwargs):
    """The default batch (a range locked at 256 px, frames captured at their own size) on a
    flat wall (refused before: 'nearer than the depth range 5.00001-5.05267 m') and on a
    street whose far/near is in the hundreds (refused before: 'far -... m')."""
    blend = _layout_blend(tmp_path / "layout.blend", build, width=384, height=288, **kwargs)
    out = tmp_path / "out"
    proc = _batch(str(blend), "--preset", "tiny-sd15-depth", "--steps", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "depth range locked over 1 frames" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    near, far = manifest["frames"]["1"]["depth_range"]
    assert 0 < near < far
    assert (out / "frame_0001.png").is_file()


def test_a_range_that_sends_a_black_map_exits_2_with_what_to_change(tmp_path, backend):
    blend = _layout_blend(tmp_path / "clip.blend", layouts.wall, size=20.0)
    bpy.data.cameras["Camera"].clip_end = 1e6
    bpy.data.objects["Camera"].location.z = 100.0
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    proc = _batch(str(blend), "--preset", "tiny-sd15-depth", "--steps", "1",
                  "--depth-range", "clip", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("t2i_batch: error: frame 1: Camera Clip's range 0.1-1e+06 m puts everything the "
            "camera sees (100-100 m) below 1/255, so the depth map sent would be all "
            "black") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_camera_inside_an_object_exits_2_before_any_generation(tmp_path):
    blend = _layout_blend(tmp_path / "crate.blend", layouts.inside_a_crate)
    proc = _batch(str(blend), "--preset", "tiny-sd15-depth", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "t2i_batch: error: camera 'Camera' is inside 'Crate'" in proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def _backend_child(pid: int) -> int | None:
    """The backend process the batch's Blender started (its child running `-m backend`)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"backend" in cmdline and b"-m" in cmdline:
                return int(child)
    return None


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_a_backend_killed_mid_shot_is_restarted_and_its_frame_retried(tmp_path, backend):
    blend = _animated_blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    proc = _batch(str(blend), "--frames", "1-3", "--preset", "tiny-sd15-depth", "--steps", "20",
                  "--out", str(out / "f_###"), wait=False)
    lines, killed = [], None
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if killed is None and "frame 1 done" in line:
            killed = _backend_child(proc.pid)
            assert killed is not None, "no backend child found"
            os.kill(killed, signal.SIGKILL)  # while frame 2 generates
    assert proc.wait(timeout=600) == 0, "".join(lines)
    text = "".join(lines)
    assert "restarting it and retrying" in text, text
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["frames"]) == ["1", "2", "3"]
    assert all((out / f"f_{frame:03d}.png").is_file() for frame in (1, 2, 3))
