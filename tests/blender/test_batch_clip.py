"""scripts/t2i_batch.py --clip for real: a frame range's depth captured in Blender, sent as one
clip to the tiny Wan VACE model through the backend, saved as the frames' results."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
from PIL import Image

from devtools.scenes import add_box, add_camera, add_plane

from .test_batch import _batch


def _moving_camera_blend(path: Path) -> Path:
    """Five frames of a camera sliding past a box on a floor."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    scene.frame_start, scene.frame_end = 1, 5
    camera = add_camera(scene, location=(-3.0, 0.0, 10.0))
    add_plane(scene, size=40.0)
    add_box(scene, 2.0, (0.0, 0.0, 1.0))
    for frame, x in ((1, -3.0), (5, 3.0)):
        camera.location.x = x
        camera.keyframe_insert("location", index=0, frame=frame)
    scene.t2i.prompt = "a concrete block"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def test_a_clip_of_five_frames_is_saved_as_the_frames_results(tmp_path, backend):
    blend = _moving_camera_blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    args = (str(blend), "--frames", "1-5", "--preset", "tiny-wan-vace", "--steps", "2",
            "--size", "32x32", "--seed", "3", "--clip", "--out", str(out / "sh010_###"))

    proc = _batch(*args)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "clip of 5 frames captured" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["frames"]) == ["1", "2", "3", "4", "5"]
    assert {entry["clip"] for entry in manifest["frames"].values()} == {"sh010_001_clip"}
    assert manifest["settings"]["clip"] is True
    depths = set()
    for frame in range(1, 6):
        with Image.open(out / f"sh010_{frame:03d}.png") as result:
            assert result.size == (32, 32)
            assert result.text["t2i:frame"] == f"{frame}/5"
            assert result.text["t2i:seed"] == "3"
        record = json.loads((out / f"sh010_{frame:03d}.json").read_text())
        assert record["depth"].endswith(f"sh010_{frame:03d}_depth.png")
        assert record["result"].endswith(f"sh010_{frame:03d}.png")
        depths.add((out / f"sh010_{frame:03d}_depth.png").read_bytes())
    assert len(depths) == 5  # the camera moves: every frame's depth is its own
    assert not list(out.glob("sh010_001_clip*"))  # the backend's frame files became results

    again = _batch(*args, "--resume")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "5 frames, 0 to generate (5 already done)" in again.stdout


def test_clip_refuses_a_still_family_and_a_clip_over_the_size_limit(tmp_path, backend):
    blend = _moving_camera_blend(tmp_path / "shot.blend")
    out = str(tmp_path / "out" / "f_###")

    still = _batch(str(blend), "--frames", "1-5", "--preset", "tiny-sd15-depth", "--clip",
                   "--out", out)
    assert still.returncode == 2, still.stdout + still.stderr
    assert "makes still pictures" in still.stderr and "tiny-wan-vace" in still.stderr

    long = _batch(str(blend), "--frames", "1-65", "--preset", "tiny-wan-vace", "--clip",
                  "--size", "512x512", "--out", out)
    assert long.returncode == 2, long.stdout + long.stderr
    assert "65 frames" in long.stderr and "at most 61 frames" in long.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
