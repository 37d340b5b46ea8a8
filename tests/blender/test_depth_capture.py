"""Depth capture in real Blender: analytic scenes on every path and engine that runs headless,
clear refusals, and a scene left exactly as it was."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from devtools.scenes import (
    add_box,
    add_camera,
    add_plane,
    add_sphere,
    add_tilted_plane,
    plane_depth,
    sphere_depth,
)

W, H = 96, 64  # non-square on purpose
FAST_METHODS = [("COMPOSITOR", "WORKBENCH"), ("COMPOSITOR", "CYCLES"), ("SHADER", "CYCLES")]


def _capture(addon, scene, path="COMPOSITOR", engine="WORKBENCH", size=(W, H), **kwargs):
    return addon.compositor.capture.capture_depth(scene, *size, path=path, engine=engine,
                                                  **kwargs)


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 8 neighbours share their value: silhouettes are sampled differently by
    each renderer and are left out of exact comparisons."""
    padded = np.pad(mask, 1, mode="edge")
    same = np.ones_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= padded[1 + dy:1 + dy + mask.shape[0], 1 + dx:1 + dx + mask.shape[1]] == mask
    return same


@pytest.mark.parametrize(("path", "engine"), FAST_METHODS)
@pytest.mark.parametrize("ortho", [False, True], ids=["persp", "ortho"])
def test_tilted_plane_depth_is_exact(addon, scene, path, engine, ortho):
    add_camera(scene, location=(0.0, 0.0, 0.0), ortho_scale=8.0 if ortho else None)
    add_tilted_plane(scene, distance=12.0, tilt_degrees=30.0)
    depth = _capture(addon, scene, path, engine)
    expected = plane_depth(scene, W, H, 12.0, 30.0)
    assert depth.z.shape == (H, W) and not depth.background.any()
    np.testing.assert_allclose(depth.z, expected, rtol=0.005)
    assert depth.path == path


@pytest.mark.parametrize(("path", "engine"), FAST_METHODS)
@pytest.mark.parametrize("ortho", [False, True], ids=["persp", "ortho"])
def test_sphere_depth_is_exact(addon, scene, path, engine, ortho):
    add_camera(scene, location=(0.0, 0.0, 0.0), ortho_scale=6.0 if ortho else None)
    add_sphere(scene, 2.0, (0.3, -0.2, -10.0))
    depth = _capture(addon, scene, path, engine)
    expected = sphere_depth(scene, W, H, (0.3, -0.2, -10.0), 2.0)
    hit = np.isfinite(expected)
    inside = _interior(hit)
    assert hit.sum() > 200
    np.testing.assert_array_equal(depth.background[inside], ~hit[inside])
    np.testing.assert_allclose(depth.z[inside & hit], expected[inside & hit], rtol=0.005)


@pytest.mark.parametrize("path", ["COMPOSITOR", "SHADER"])
@pytest.mark.parametrize("ortho", [False, True], ids=["persp", "ortho"])
def test_eevee_depth_is_exact(addon, scene, path, ortho):
    """Kept to one small scene: EEVEE compiles shaders on its first render."""
    add_camera(scene, location=(0.0, 0.0, 0.0), ortho_scale=8.0 if ortho else None)
    add_tilted_plane(scene, distance=12.0, tilt_degrees=30.0)
    depth = _capture(addon, scene, path, "EEVEE", size=(48, 32))
    np.testing.assert_allclose(depth.z, plane_depth(scene, 48, 32, 12.0, 30.0), rtol=0.005)


def test_border_and_percentage_do_not_crop_the_capture(addon, scene):
    add_camera(scene, location=(0.0, 0.0, 0.0))
    add_tilted_plane(scene, distance=12.0, tilt_degrees=30.0)
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 1920, 1080, 25
    render.use_border, render.border_min_x, render.border_max_x = True, 0.4, 0.6
    render.pixel_aspect_x = 2.0
    depth = _capture(addon, scene)
    render.pixel_aspect_x = 1.0
    np.testing.assert_allclose(depth.z, plane_depth(scene, W, H, 12.0, 30.0), rtol=0.005)
    render.pixel_aspect_x = 2.0
    assert (render.use_border, render.resolution_percentage) == (True, 25)


def test_nearer_surfaces_are_nearer_in_z(addon, scene):
    add_camera(scene, location=(0.0, 0.0, 10.0))
    add_plane(scene, size=40.0)
    add_box(scene, 2.0, (0.0, 0.0, 3.0))
    depth = _capture(addon, scene)
    assert depth.z[H // 2, W // 2] == pytest.approx(6.0, rel=0.005)
    assert depth.z[2, 2] == pytest.approx(10.0, rel=0.005)


def test_objects_beyond_clip_end_are_background(addon, scene):
    add_camera(scene, location=(0.0, 0.0, 0.0), clip_end=30.0)
    add_plane(scene, size=400.0, location=(0.0, 0.0, -50.0))
    add_box(scene, 2.0, (0.0, 0.0, -10.0))
    depth = _capture(addon, scene)
    assert depth.background[0, 0] and not depth.background[H // 2, W // 2]
    assert depth.clip_end == 30.0


def test_no_camera_is_refused(addon, scene):
    with pytest.raises(addon.compositor.capture.CaptureError, match="no active camera"):
        _capture(addon, scene)


def test_a_camera_that_sees_nothing_is_reported(scene):
    add_camera(scene)
    with pytest.raises(RuntimeError, match="sees nothing"):
        bpy.ops.t2i.capture_depth()


def test_sizes_above_the_limit_are_refused_until_it_is_raised(addon, scene):
    add_camera(scene)
    add_plane(scene)
    with pytest.raises(addon.compositor.capture.CaptureError, match="Max Size"):
        _capture(addon, scene, size=(64, 40), max_side=48)
    assert _capture(addon, scene, size=(64, 40), max_side=64).z.shape == (40, 64)
    scene.t2i.depth.max_side = 16
    with pytest.raises(RuntimeError, match="above the depth capture limit"):
        bpy.ops.t2i.capture_depth()


def test_workbench_cannot_run_the_shader_path(addon, scene):
    add_camera(scene)
    with pytest.raises(addon.compositor.capture.CaptureError, match="Workbench ignores"):
        _capture(addon, scene, "SHADER", "WORKBENCH")


def test_viewport_capture_says_it_needs_the_window(addon, scene):
    add_camera(scene)
    add_plane(scene)
    with pytest.raises(addon.compositor.capture.CaptureError, match="background mode"):
        _capture(addon, scene, "VIEWPORT", "AUTO")
