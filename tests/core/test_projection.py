"""Camera projection maths without Blender (tests/blender/test_projection.py checks the same
matrices against Blender's own camera)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from t2i_src.t2i_core.projection import (
    CameraParams,
    CameraView,
    fade_weight,
    inpaint_mask,
    look_at,
    occlusion_limit,
    orbit,
    pixel_normals,
    pixel_points,
    projection_matrix,
    seen_weight,
    transform_points,
)


def _view(params: CameraParams | None = None, size=(80, 60),
          location=(0.0, 0.0, 10.0)) -> CameraView:
    params = params or CameraParams()
    matrix = np.eye(4)  # looking down -Z
    matrix[:3, 3] = location
    return CameraView.from_camera(params, matrix, size)


def test_the_point_the_camera_looks_at_is_the_frame_centre():
    np.testing.assert_allclose(_view().frame_coordinates([[0, 0, 0]]), [[0.5, 0.5]])


def test_the_sensor_spans_the_longer_side_under_auto_fit():
    # 36 mm sensor, 18 mm lens: the frame is 20 m wide at 10 m, whichever side is longer
    for size in ((80, 60), (60, 80)):
        view = _view(CameraParams(lens=18.0), size)
        half = 10.0 if size[0] >= size[1] else 10.0 * size[0] / size[1]
        np.testing.assert_allclose(view.frame_coordinates([[half, 0, 0]])[0, 0], 1.0)


def test_vertical_fit_uses_the_sensor_height_across_the_vertical_side():
    view = _view(CameraParams(lens=12.0, sensor_height=24.0, sensor_fit="VERTICAL"))
    np.testing.assert_allclose(view.frame_coordinates([[0, 10.0, 0]])[0, 1], 1.0)


def test_shift_moves_the_frame_by_a_fraction_of_the_fitted_side():
    view = _view(CameraParams(lens=18.0, shift_x=0.25))  # 20 m wide at 10 m: 5 m across
    np.testing.assert_allclose(view.frame_coordinates([[5.0, 0, 0]]), [[0.5, 0.5]])


def test_orthographic_frame_coordinates_do_not_depend_on_distance():
    view = _view(CameraParams(ortho=True, ortho_scale=8.0))
    uv = view.frame_coordinates([[2, 1.5, 0], [2, 1.5, -40]])
    np.testing.assert_allclose(uv, [[0.75, 0.75], [0.75, 0.75]])


def test_planar_depth_is_the_distance_along_the_view_axis():
    np.testing.assert_allclose(_view().planar_depth([[3, -2, 1], [0, 0, 12]]), [9, -2])


def test_points_behind_the_camera_stay_finite():
    assert np.isfinite(_view().frame_coordinates([[1, 1, 10], [1, 1, 13]])).all()


def test_facing_and_fade():
    view = _view()
    facing = view.facing([[0, 0, 0]] * 3, [[0, 0, 1], [1, 0, 0], [0, 0, -1]])
    np.testing.assert_allclose(facing, [1, 0, -1], atol=1e-12)
    grazing = math.cos(math.radians(72.5))  # halfway between 60 and 85 degrees, by cosine
    weights = fade_weight([1.0, math.cos(math.radians(60)), math.cos(math.radians(85)), -1.0],
                          60.0, 85.0)
    np.testing.assert_allclose(weights, [1, 1, 0, 0], atol=1e-12)
    assert 0 < fade_weight([grazing], 60.0, 85.0)[0] < 1


def test_occlusion_limit_is_a_fraction_beyond_the_captured_depth():
    np.testing.assert_allclose(occlusion_limit([10.0, 1e10], 0.01), [10.1, 1.01e10])


def test_a_view_survives_its_custom_property_form():
    view = _view(CameraParams(ortho=True, shift_y=0.1), (64, 48), (1, 2, 3))
    again = CameraView.from_list(view.to_list())
    np.testing.assert_allclose(again.world_to_clip, view.world_to_clip)
    assert again.ortho and again.size == (64, 48)
    np.testing.assert_allclose(again.origin, [1, 2, 3])
    with pytest.raises(ValueError, match="25 finite numbers"):
        CameraView.from_list([0.0] * 24)
    with pytest.raises(ValueError, match="25 finite numbers"):
        CameraView.from_list([float("nan")] * 25)


def test_bad_frames_and_fits_are_refused():
    with pytest.raises(ValueError, match="sensor fit"):
        projection_matrix(CameraParams(sensor_fit="DIAGONAL"), 64, 64)
    with pytest.raises(ValueError, match="positive"):
        projection_matrix(CameraParams(), 0, 64)
    scaled = np.diag([0.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="scale is zero"):
        CameraView.from_camera(CameraParams(), scaled, (8, 8))


def test_a_scaled_camera_sees_what_the_unscaled_one_sees():
    matrix = np.diag([2.0, 3.0, 0.5, 1.0])
    matrix[:3, 3] = (0.0, 0.0, 10.0)
    np.testing.assert_allclose(CameraView.from_camera(CameraParams(), matrix, (80, 60))
                               .world_to_clip, _view().world_to_clip)


def test_object_to_world_transform():
    matrix = np.eye(4)
    matrix[:3, 3] = [1, 2, 3]
    matrix[:3, :3] *= 2
    np.testing.assert_allclose(transform_points([[1, 1, 1]], matrix), [[3, 4, 5]])


def test_look_at_points_the_cameras_minus_z_at_the_target_with_z_up():
    matrix = look_at([3.0, -4.0, 0.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(-matrix[:3, 2], [-0.6, 0.8, 0.0], atol=1e-12)
    assert matrix[2, 1] > 0.99  # the camera's up is the world's
    np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-12)


def test_an_orbit_spaces_cameras_evenly_at_its_distance_and_elevation():
    target = np.array([1.0, 2.0, 0.5])
    cameras = orbit(target, 5.0, 4, elevation_degrees=30.0)
    for matrix in cameras:
        offset = matrix[:3, 3] - target
        np.testing.assert_allclose(np.linalg.norm(offset), 5.0)
        np.testing.assert_allclose(offset[2], 2.5)
        np.testing.assert_allclose(-matrix[:3, 2], -offset / 5.0, atol=1e-12)
    headings = [np.arctan2(m[1, 3] - 2.0, m[0, 3] - 1.0) for m in cameras]
    steps = np.diff(np.unwrap(headings))
    np.testing.assert_allclose(np.abs(steps), np.pi / 2, atol=1e-12)
    with pytest.raises(ValueError, match="at least one"):
        orbit(target, 5.0, 0)


def _floor_depth(view: CameraView, height: float = 10.0) -> np.ndarray:
    """Planar depth of the floor z = 0 seen straight down from `height`."""
    return np.full((view.size[1], view.size[0]), height)


def test_pixel_points_put_each_pixel_centre_back_on_the_surface():
    view = _view(CameraParams(lens=30.0, shift_x=0.1), (40, 30))
    points = pixel_points(view, _floor_depth(view))
    np.testing.assert_allclose(points[..., 2], 0.0, atol=1e-9)
    uv = view.frame_coordinates(points.reshape(-1, 3)).reshape(30, 40, 2)
    np.testing.assert_allclose(uv[0, 0], [0.5 / 40, 1 - 0.5 / 30], atol=1e-9)  # top left
    normals = pixel_normals(view, points)
    np.testing.assert_allclose(normals[5:-5, 5:-5].reshape(-1, 3) - [0.0, 0.0, 1.0], 0.0,
                               atol=1e-9)


def test_the_same_view_again_needs_nothing_inpainted_and_a_new_one_all_of_it():
    view = _view(size=(40, 30))
    depth = _floor_depth(view)
    kept = inpaint_mask(view, depth, [(view, depth)], 0.01, 60.0, 85.0, grow=0)
    assert (kept == 0).all()
    elsewhere = _view(size=(40, 30), location=(100.0, 0.0, 10.0))  # sees another floor patch
    fresh = inpaint_mask(view, depth, [(elsewhere, _floor_depth(elsewhere))], 0.01, 60.0,
                         85.0)
    assert (fresh == 255).all()


def test_a_half_overlapping_view_keeps_its_half_and_the_seam_grows_white():
    view = _view(CameraParams(lens=18.0), (40, 30))  # 20 m across at 10 m
    depth = _floor_depth(view)
    left = _view(CameraParams(lens=18.0), (40, 30), location=(-10.0, 0.0, 10.0))
    mask = inpaint_mask(view, depth, [(left, _floor_depth(left))], 0.01, 60.0, 85.0, grow=0)
    assert (mask[:, :20] == 0).all() and (mask[:, 20:] == 255).all()
    grown = inpaint_mask(view, depth, [(left, _floor_depth(left))], 0.01, 60.0, 85.0, grow=2)
    assert (grown[:, 18:] == 255).all() and (grown[:, :18] == 0).all()


def test_a_point_behind_what_a_view_saw_is_not_seen_by_it():
    view = _view(size=(8, 8))
    points = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -3.0]])  # on the floor, and under it
    normals = np.array([[0.0, 0.0, 1.0]] * 2)
    weights = seen_weight(view, _floor_depth(view, 10.0)[:8, :8], points, normals, 0.01,
                          60.0, 85.0)
    np.testing.assert_allclose(weights, [1.0, 0.0])
