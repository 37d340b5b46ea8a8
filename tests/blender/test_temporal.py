"""Temporal mode for real: the batch script and the panel's animation operator on a 6-frame
shot with a moving camera and a moving object (devtools.scenes.motion_shot), the tiny SD 1.5
model at 64x64, 2 steps. Each frame after the first carries the previous result; a killed
run resumes from the manifest and makes the very same frames."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import bpy
import numpy as np
import pytest

from devtools import scenes

from .modal_driver import ModalDriver
from .test_batch import _batch

FRAMES = 6
ARGS = ("--frames", f"1-{FRAMES}", "--preset", "tiny-sd15-depth", "--steps", "2", "--seed", "7",
        "--size", "64x64", "--temporal", "--carry", "1", "--keyframe-every", "4")


def _png(addon, path: Path) -> np.ndarray:
    return addon.t2i_core.png.read_png(path)


def _record(out: Path, frame: int) -> dict:
    return json.loads((out / f"frame_{frame:04d}.json").read_text())


def _shot(scene, frames: int) -> None:
    scenes.motion_shot(scene, range(1, frames + 1))
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.render.resolution_percentage = 100


@pytest.fixture(scope="module")
def shot_blend(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("shot") / "shot.blend"
    bpy.ops.wm.read_homefile(use_empty=True)
    _shot(bpy.context.scene, FRAMES)
    bpy.context.scene.t2i.prompt = "stone blocks on a floor"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


@pytest.fixture(scope="module")
def uninterrupted(shot_blend, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "out"
    proc = _batch(str(shot_blend), *ARGS, "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{FRAMES} of {FRAMES} frames captured" in proc.stdout
    return out


def test_each_frame_after_the_first_carries_the_previous_result(addon, backend, uninterrupted):
    out = uninterrupted
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["frames"], key=int) == [str(f) for f in range(1, FRAMES + 1)]
    assert manifest["settings"]["temporal"]["keyframe_every"] == 4
    for frame in range(1, FRAMES + 1):
        record = _record(out, frame)
        assert (out / f"frame_{frame:04d}.png").is_file()
        assert (out / f"motion_{frame:04d}.npz").is_file()
        keyframe = frame in (1, 5)  # the first, and every 4th of the shot
        assert record["temporal"]["keyframe"] is keyframe
        if keyframe:
            assert record["mask_image"] == "" and record["init_image"] == ""
            continue
        assert record["temporal"]["carried_from"] == frame - 1
        assert record["init_image"].endswith(f"frame_{frame:04d}_carried.png")
        assert record["mask_image"].endswith(f"frame_{frame:04d}_mask.png")
        assert record["strength"] == 1.0
        mask = _png(addon, Path(record["mask_image"]))
        occluded = mask == 255
        assert 0 < occluded.mean() < 0.6  # the camera and the box moved: some, not all
        # carry 1: what stays visible is the previous result warped, exactly
        result = _png(addon, out / f"frame_{frame:04d}.png")
        carried = _png(addon, Path(record["init_image"]))
        assert np.array_equal(result[~occluded], carried[~occluded])
        assert not np.array_equal(result[occluded], carried[occluded])  # regenerated
        previous = _png(addon, out / f"frame_{frame - 1:04d}.png")
        assert np.abs(carried.astype(int) - previous).mean() > 0.5  # moved, not copied


def test_a_run_killed_mid_shot_resumes_to_the_same_frames(addon, backend, shot_blend,
                                                          uninterrupted, tmp_path):
    out = tmp_path / "out"
    run = _batch(str(shot_blend), *ARGS, "--out", str(out), wait=False)
    for line in run.stdout:
        if line.startswith("frame 2 done"):
            os.kill(run.pid, signal.SIGKILL)  # mid-shot: frame 3 is being made
            break
    run.wait(timeout=60)
    done = json.loads((out / "manifest.json").read_text())["frames"]
    assert 2 <= len(done) < FRAMES

    proc = _batch(str(shot_blend), *ARGS, "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"({len(done)} already done)" in proc.stdout
    assert f"carrying frame {len(done)}'s result into frame {len(done) + 1}" in proc.stdout
    for frame in range(1, FRAMES + 1):
        assert np.array_equal(_png(addon, out / f"frame_{frame:04d}.png"),
                              _png(addon, uninterrupted / f"frame_{frame:04d}.png")), frame


def test_temporal_runs_refuse_farm_chunks_gaps_and_families_without_a_way_in(shot_blend):
    for extra, message in ((("--prepare",), "cannot be split into farm chunks"),
                           (("--frames", "1-5x2"), "needs consecutive frames"),
                           (("--preset", "sd2-depth"), "temporal mode is not offered")):
        args = [*ARGS, *extra]
        proc = _batch(str(shot_blend), *args, "--out", "/tmp/t2i-never", "--dry-run")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert message in proc.stderr


def test_the_panel_animation_runs_three_frames_without_waiting(addon, scene, backend):
    _shot(scene, 3)
    settings = scene.t2i
    settings.model_preset = "tiny-sd15-depth"
    settings.prompt = "stone blocks"
    settings.steps, settings.seed = 2, 3
    settings.use_render_size = False
    settings.width, settings.height = 64, 64
    scene.frame_set(2)
    operator = addon.operators.animation.T2I_OT_generate_animation
    driver = ModalDriver(operator)
    driver.op._run = addon.blender_t2i.generation.animation.start(bpy.context)
    assert driver.run(limit_s=300) == {"FINISHED"}
    run = driver.op._run
    assert len(run.results) == 3 and all(path.is_file() for path in run.results)
    assert [p.name for p in run.results] == ["frame_0001.png", "frame_0002.png",
                                             "frame_0003.png"]
    assert len(settings.history) == 3
    records = [json.loads(p.with_suffix(".json").read_text()) for p in run.results]
    assert [r["temporal"]["keyframe"] for r in records] == [True, False, False]
    assert records[2]["mask_image"].endswith("frame_0003_mask.png")
    assert scene.frame_current == 2  # put back
    assert ("INFO", f"Generated 3 frames into {run.folder}") in driver.reports


def test_esc_stops_the_panel_animation_after_the_running_frame(addon, scene, backend):
    _shot(scene, 3)
    settings = scene.t2i
    settings.model_preset = "tiny-sd15-depth"
    settings.steps = 2
    settings.use_render_size = False
    settings.width, settings.height = 64, 64
    driver = ModalDriver(addon.operators.animation.T2I_OT_generate_animation)
    run = driver.op._run = addon.blender_t2i.generation.animation.start(bpy.context)
    assert driver.run(limit_s=300, on_tick=lambda d: run.results and d.event("ESC")) == \
        {"CANCELLED"}
    assert 1 <= len(run.results) < 3
    assert any(level == "WARNING" and "Animation cancelled after" in message
               for level, message in driver.reports)


def test_an_edit_family_gets_the_carried_frame_as_its_first_reference(shot_blend, tmp_path,
                                                                     backend):
    out = tmp_path / "out"
    proc = _batch(str(shot_blend), "--frames", "1-2", "--model",
                  '{"family": "flux_kontext", "base": "tiny"}', "--prompt", "make it stone",
                  "--steps", "2", "--size", "64x64", "--temporal", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = _record(out, 2)
    assert record["temporal"]["carried_from"] == 1 and record["mask_image"] == ""
    assert [Path(p).name for p in record["reference_images"]] == [
        "frame_0002_carried.png", "frame_0002_depth.png"]
