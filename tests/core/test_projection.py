"""Camera projection UVs without Blender."""

from __future__ import annotations

import numpy as np
from t2i_src.t2i_core.projection import camera_uvs, transform_points


def _perspective(fov_x: float, aspect: float, near=0.1, far=100.0) -> np.ndarray:
    """An OpenGL-style projection (what Camera.calc_matrix_camera returns)."""
    fx = 1 / np.tan(fov_x / 2)
    return np.array([[fx, 0, 0, 0], [0, fx * aspect, 0, 0],
                     [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
                     [0, 0, -1, 0]])


def test_the_point_the_camera_looks_at_is_the_frame_centre():
    matrix = _perspective(np.radians(90), 1.0)  # camera at the origin looking down -Z
    np.testing.assert_allclose(camera_uvs([[0, 0, -5]], matrix), [[0.5, 0.5]])


def test_the_edge_of_a_90_degree_view_maps_to_the_frame_edge():
    matrix = _perspective(np.radians(90), 1.0)
    uvs = camera_uvs([[5, 0, -5], [-5, 0, -5], [0, 5, -5]], matrix)
    np.testing.assert_allclose(uvs, [[1, 0.5], [0, 0.5], [0.5, 1]], atol=1e-12)


def test_orthographic_uvs_do_not_depend_on_distance():
    ortho = np.diag([0.5, 0.5, -0.02, 1.0])  # a 4 m wide frame
    uvs = camera_uvs([[1, 1, -2], [1, 1, -40]], ortho)
    np.testing.assert_allclose(uvs, [[0.75, 0.75], [0.75, 0.75]])


def test_points_behind_the_camera_stay_finite():
    assert np.isfinite(camera_uvs([[1, 1, 0], [1, 1, 3]], _perspective(1.0, 1.0))).all()


def test_object_to_world_transform():
    matrix = np.eye(4)
    matrix[:3, 3] = [1, 2, 3]
    matrix[:3, :3] *= 2
    np.testing.assert_allclose(transform_points([[1, 1, 1]], matrix), [[3, 4, 5]])
