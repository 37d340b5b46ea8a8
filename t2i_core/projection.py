"""Camera projection maths for "project from camera" (numpy, no bpy).

UVs are the camera-frame coordinates of each vertex: (0, 0) bottom-left, (1, 1) top-right of
the camera's frame, as `bpy_extras.object_utils.world_to_camera_view` gives them. They are per
vertex, so on a coarse mesh seen at a steep angle the texture swims between vertices the way
Blender's UV Project modifier does; subdivide for a closer fit.
"""

from __future__ import annotations

import numpy as np


def camera_uvs(points_world: np.ndarray, view_projection: np.ndarray) -> np.ndarray:
    """(N, 3) world points -> (N, 2) camera-frame UVs.

    `view_projection` is the camera's projection matrix times its world-to-camera matrix
    (4x4). Points on or behind the camera plane get their projection through |w| so they stay
    finite (they are outside the frame anyway).
    """
    points = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    clip = homogeneous @ np.asarray(view_projection, dtype=np.float64).T
    w = clip[:, 3:4]
    w = np.where(np.abs(w) < 1e-12, 1e-12, np.abs(w))
    return (clip[:, :2] / w + 1.0) * 0.5


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 3) points through a 4x4 affine matrix (object -> world)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
