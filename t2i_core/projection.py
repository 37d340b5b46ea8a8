"""Camera projection maths for projecting a result from the camera (numpy, no bpy).

`projection_matrix` is Blender's own camera frame (lens, sensor size and fit, shift,
perspective and orthographic) as the 4x4 OpenGL-style matrix `Camera.calc_matrix_camera`
returns; `CameraView` is one camera's view as it was when a result was generated (world ->
clip, its position and view axis, the frame size). The projection material evaluates the same
view per pixel in shader nodes; the functions here are what those nodes compute, for checks
and for code that works on vertices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")


@dataclass(frozen=True)
class CameraParams:
    """What Blender's camera frame depends on (bpy.types.Camera's fields of the same names)."""

    ortho: bool = False
    lens: float = 50.0  # mm
    sensor_width: float = 36.0  # mm
    sensor_height: float = 24.0  # mm
    sensor_fit: str = "AUTO"
    shift_x: float = 0.0  # fraction of the larger frame side
    shift_y: float = 0.0
    ortho_scale: float = 6.0  # m across the fitted side
    clip_start: float = 0.1
    clip_end: float = 100.0


def projection_matrix(params: CameraParams, width: int, height: int,
                      pixel_aspect: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """The camera's 4x4 camera -> clip matrix for a `width` x `height` frame.

    Follows Blender's view plane (BKE_camera_params_compute_viewplane): the sensor (or the
    ortho scale) spans the frame's horizontal side, or its vertical one when the fit says so
    (AUTO: whichever side is longer); shift moves the frame by that fraction of the fitted side.
    """
    if params.sensor_fit not in SENSOR_FITS:
        raise ValueError(f"sensor fit must be one of {SENSOR_FITS}, not {params.sensor_fit!r}")
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, not {width}x{height}")
    aspect_x, aspect_y = pixel_aspect
    y_correction = aspect_y / aspect_x
    fit = params.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if aspect_x * width >= aspect_y * height else "VERTICAL"
    if params.ortho:
        size = params.ortho_scale
    else:
        sensor = params.sensor_height if params.sensor_fit == "VERTICAL" else params.sensor_width
        size = sensor * params.clip_start / params.lens
    fitted_side = width if fit == "HORIZONTAL" else y_correction * height
    scale = size / fitted_side
    dx, dy = params.shift_x * fitted_side, params.shift_y * fitted_side
    left, right = (-0.5 * width + dx) * scale, (0.5 * width + dx) * scale
    bottom = (-0.5 * y_correction * height + dy) * scale
    top = (0.5 * y_correction * height + dy) * scale
    near, far = params.clip_start, params.clip_end
    matrix = np.zeros((4, 4))
    if params.ortho:
        matrix[0, 0], matrix[0, 3] = 2 / (right - left), -(right + left) / (right - left)
        matrix[1, 1], matrix[1, 3] = 2 / (top - bottom), -(top + bottom) / (top - bottom)
        matrix[2, 2], matrix[2, 3] = -2 / (far - near), -(far + near) / (far - near)
        matrix[3, 3] = 1.0
    else:
        matrix[0, 0], matrix[0, 2] = 2 * near / (right - left), (right + left) / (right - left)
        matrix[1, 1], matrix[1, 2] = 2 * near / (top - bottom), (top + bottom) / (top - bottom)
        matrix[2, 2] = -(far + near) / (far - near)
        matrix[2, 3] = -2 * far * near / (far - near)
        matrix[3, 2] = -1.0
    return matrix


def normalized_camera_matrix(camera_to_world: np.ndarray) -> np.ndarray:
    """The camera's world matrix without scale: Blender's camera view ignores object scale."""
    matrix = np.array(camera_to_world, dtype=np.float64)
    for column in range(3):
        length = np.linalg.norm(matrix[:3, column])
        if length < 1e-12:
            raise ValueError("the camera's scale is zero on one axis: it has no view")
        matrix[:3, column] /= length
    return matrix


@dataclass(frozen=True)
class CameraView:
    """One camera's view: what projecting from it needs, independent of the camera later."""

    world_to_clip: np.ndarray  # 4x4
    origin: np.ndarray  # (3,) the camera's position, world
    axis: np.ndarray  # (3,) unit view direction (the camera's -Z), world
    ortho: bool
    size: tuple[int, int]  # the frame (the generated image) in pixels

    @classmethod
    def from_camera(cls, params: CameraParams, camera_to_world: np.ndarray,
                    size: tuple[int, int]) -> CameraView:
        matrix = normalized_camera_matrix(camera_to_world)
        clip = projection_matrix(params, *size) @ np.linalg.inv(matrix)
        return cls(world_to_clip=clip, origin=matrix[:3, 3].copy(), axis=-matrix[:3, 2],
                   ortho=params.ortho, size=(int(size[0]), int(size[1])))

    def to_list(self) -> list[float]:
        """Flat floats for a custom property (the view lives on the result's image)."""
        return [*self.world_to_clip.ravel(), *self.origin, *self.axis, float(self.ortho),
                float(self.size[0]), float(self.size[1])]

    @classmethod
    def from_list(cls, values: list[float]) -> CameraView:
        values = [float(v) for v in values]
        if len(values) != 25 or not all(math.isfinite(v) for v in values):
            raise ValueError("a camera view is 25 finite numbers")
        return cls(world_to_clip=np.array(values[:16]).reshape(4, 4),
                   origin=np.array(values[16:19]), axis=np.array(values[19:22]),
                   ortho=values[22] > 0.5, size=(int(values[23]), int(values[24])))

    def planar_depth(self, points_world: np.ndarray) -> np.ndarray:
        """(N,) distance of each point from the camera plane along the view axis (Blender's
        Z pass: what the captured depth holds)."""
        return (np.asarray(points_world, dtype=np.float64) - self.origin) @ self.axis

    def frame_coordinates(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 2) camera-frame coordinates: (0, 0) bottom left, (1, 1) top right of the
        frame, as `bpy_extras.object_utils.world_to_camera_view` gives them. Points on or
        behind the camera plane divide by |w| so they stay finite (they are never textured)."""
        points = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        clip = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ self.world_to_clip.T
        w = np.abs(clip[:, 3:4])
        return (clip[:, :2] / np.where(w < 1e-12, 1e-12, w) + 1.0) * 0.5

    def facing(self, points_world: np.ndarray, normals_world: np.ndarray) -> np.ndarray:
        """(N,) cosine between each surface normal and the direction towards the camera
        (1: facing it, 0: grazing, < 0: a back face)."""
        points = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        if self.ortho:
            towards = np.broadcast_to(-self.axis, points.shape)
        else:
            towards = self.origin - points
            towards = towards / np.linalg.norm(towards, axis=1, keepdims=True)
        normals = np.asarray(normals_world, dtype=np.float64).reshape(-1, 3)
        normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
        return np.sum(normals * towards, axis=1)


def fade_weight(facing: np.ndarray, fade_start_degrees: float,
                fade_end_degrees: float) -> np.ndarray:
    """How much of the projection a surface keeps by its angle to the view: 1 up to
    `fade_start` degrees off facing the camera, 0 from `fade_end` on, smoothstep between."""
    low, high = math.cos(math.radians(fade_end_degrees)), math.cos(math.radians(fade_start_degrees))
    t = np.clip((np.asarray(facing, dtype=np.float64) - low) / max(high - low, 1e-9), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def occlusion_limit(depth: np.ndarray, tolerance: float) -> np.ndarray:
    """The farthest planar depth still textured at a pixel whose captured depth is `depth`:
    `tolerance` is a fraction of the depth (the captured map is exact to well under 1%)."""
    return np.asarray(depth, dtype=np.float64) * (1.0 + tolerance)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 3) points through a 4x4 affine matrix (object -> world)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ matrix[:3, :3].T + matrix[:3, 3]


# --- several views -----------------------------------------------------------------------------

def look_at(origin: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """A camera-to-world matrix at `origin` looking at `target` (Blender cameras look down
    their -Z with +Y up)."""
    origin, target = np.asarray(origin, np.float64), np.asarray(target, np.float64)
    back = origin - target
    back /= np.linalg.norm(back)
    right = np.cross(np.asarray(up, np.float64), back)
    if np.linalg.norm(right) < 1e-9:  # looking straight up or down
        right = np.cross((0.0, 1.0, 0.0), back)
    right /= np.linalg.norm(right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2] = right, np.cross(back, right), back
    matrix[:3, 3] = origin
    return matrix


def orbit(target: np.ndarray, distance: float, count: int, elevation_degrees: float = 20.0,
          start_degrees: float = -45.0) -> list[np.ndarray]:
    """`count` camera-to-world matrices evenly round `target` at `distance`, `elevation`
    degrees above its horizon, the first `start` degrees round from -Y (in front)."""
    if count < 1:
        raise ValueError("an orbit needs at least one camera")
    if distance <= 0:
        raise ValueError("the orbit's distance must be positive")
    elevation = math.radians(elevation_degrees)
    matrices = []
    for index in range(count):
        angle = math.radians(start_degrees) + 2 * math.pi * index / count
        offset = distance * np.array([math.cos(elevation) * math.sin(angle),
                                      -math.cos(elevation) * math.cos(angle),
                                      math.sin(elevation)])
        matrices.append(look_at(np.asarray(target, np.float64) + offset, target))
    return matrices


def pixel_points(view: CameraView, depth: np.ndarray) -> np.ndarray:
    """(H, W, 3) world points of a planar-depth map (top row first) seen from `view`."""
    height, width = depth.shape
    xs = (np.arange(width) + 0.5) / width * 2 - 1
    ys = 1 - (np.arange(height) + 0.5) / height * 2
    x, y = np.meshgrid(xs, ys)
    inverse = np.linalg.inv(view.world_to_clip)

    def unproject(z_ndc):
        ndc = np.stack([x, y, np.full_like(x, z_ndc), np.ones_like(x)], axis=-1)
        points = ndc @ inverse.T
        return points[..., :3] / points[..., 3:]

    near, far = unproject(-1.0), unproject(1.0)
    near_depth, far_depth = (near - view.origin) @ view.axis, (far - view.origin) @ view.axis
    t = (np.asarray(depth, np.float64) - near_depth) / (far_depth - near_depth)
    return near + (far - near) * t[..., None]


def pixel_normals(view: CameraView, points: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit normals of the surface behind each pixel, from neighbouring points,
    turned towards the camera."""
    dx = np.gradient(points, axis=1)
    dy = np.gradient(points, axis=0)
    normals = np.cross(dx, dy)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = normals / np.where(length < 1e-12, 1.0, length)
    towards = (-view.axis if view.ortho else view.origin - points)
    flip = np.sum(normals * towards, axis=-1) < 0
    normals[flip] *= -1
    return normals


def _sample_nearest(depth: np.ndarray, uv: np.ndarray) -> np.ndarray:
    height, width = depth.shape
    col = np.clip((uv[:, 0] * width).astype(np.int64), 0, width - 1)
    row = np.clip(((1.0 - uv[:, 1]) * height).astype(np.int64), 0, height - 1)
    return depth[row, col]


def seen_weight(view: CameraView, depth: np.ndarray, points: np.ndarray,
                normals: np.ndarray, tolerance: float, fade_start_degrees: float,
                fade_end_degrees: float) -> np.ndarray:
    """(N,) how much of `view`'s picture the projection material gives each world point:
    inside the frame, in front, no farther than the captured `depth` allows, by its facing.
    The material computes the same per pixel; this is for masks and measurements."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    uv = view.frame_coordinates(points)
    planar = view.planar_depth(points)
    inside = (uv >= 0).all(axis=1) & (uv <= 1).all(axis=1) & (planar > 0)
    visible = planar <= occlusion_limit(_sample_nearest(depth, np.clip(uv, 0, 1)), tolerance)
    fade = fade_weight(view.facing(points, normals), fade_start_degrees, fade_end_degrees)
    return np.where(inside & visible, fade, 0.0)


def inpaint_mask(view: CameraView, depth: np.ndarray, earlier: list[tuple[CameraView, np.ndarray]],
                 tolerance: float, fade_start_degrees: float, fade_end_degrees: float,
                 threshold: float = 0.5, grow: int = 2) -> np.ndarray:
    """(H, W) uint8 for a view after the first: 255 (regenerate) where no earlier view
    textures the surface at least `threshold`, 0 (keep) where one does. The white part grows
    by `grow` pixels, so the new picture overlaps the seam that the blend then smooths."""
    background = depth >= 1e9
    points = pixel_points(view, np.where(background, 1.0, depth))
    normals = pixel_normals(view, points)
    covered = np.zeros(depth.size)
    for other, other_depth in earlier:
        covered = np.maximum(covered, seen_weight(other, other_depth, points.reshape(-1, 3),
                                                  normals.reshape(-1, 3), tolerance,
                                                  fade_start_degrees, fade_end_degrees))
    regenerate = (covered.reshape(depth.shape) < threshold) | background
    for _ in range(grow):  # grow white by one pixel (4-neighbourhood) per step
        grown = regenerate.copy()
        grown[1:] |= regenerate[:-1]
        grown[:-1] |= regenerate[1:]
        grown[:, 1:] |= regenerate[:, :-1]
        grown[:, :-1] |= regenerate[:, 1:]
        regenerate = grown
    return np.where(regenerate, 255, 0).astype(np.uint8)
