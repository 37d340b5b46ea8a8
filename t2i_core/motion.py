"""Carrying one frame into the next with Blender's vector pass (numpy, no bpy).

A `MotionFrame` is what one capture gives: planar depth, the vector pass and the camera. From
two adjacent frames this module makes the flow from each pixel of the newer frame to where it
was in the older one, warps the older frame's picture along it, and marks where that cannot
be trusted (occluded, newly revealed, come in from outside the frame).

Conventions (checked against analytic motion, /work/shared/facts/motion-vectors.md):
- Blender's vectors are in pixels of the render size, x right, y UP; X,Y = position in the
  previous frame - position in this one; Z,W = position in this one - position in the next.
- Flows here are image space: dx right, dy DOWN rows, in pixels of the array they belong to.
- The world background gets zero vectors even when the camera moves; it lies at infinity, so
  only the camera's rotation (and lens) moves it: `flow_to_previous` reprojects it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .files import write_bytes_atomic
from .projection import CameraParams, normalized_camera_matrix, projection_matrix

BACKGROUND_DEPTH = 1e9  # planar Z at or beyond this is the world background (the depth capture's)
_FLIP_Z = np.diag([1.0, 1.0, -1.0])  # camera space (looking down -Z) <-> forward-positive


@dataclass(frozen=True)
class CameraView:
    """A camera as reprojection needs it: where it is and its lens, independent of the scene."""

    world_from_camera: np.ndarray  # 4x4, the camera object's world matrix (scale is ignored)
    lens: CameraParams

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        """3x3 K: (x, y, d) with d the distance in front of the camera -> (col, row, 1) in
        pixels of a width x height frame, (0, 0) the top-left corner (pixel centres at +0.5).
        Orthographic cameras have none: their background shows one direction only."""
        if self.lens.ortho:
            raise ValueError("an orthographic camera has no perspective intrinsics")
        clip = projection_matrix(self.lens, width, height)
        return np.array([[0.5 * width * clip[0, 0], 0.0, 0.5 * width * (1.0 - clip[0, 2])],
                         [0.0, -0.5 * height * clip[1, 1], 0.5 * height * (1.0 + clip[1, 2])],
                         [0.0, 0.0, 1.0]])

    def rotation(self) -> np.ndarray:
        return normalized_camera_matrix(self.world_from_camera)[:3, :3]


@dataclass
class MotionFrame:
    frame: int
    depth: np.ndarray  # (H, W) float32 planar Z in metres, background >= 1e9, top row first
    vectors: np.ndarray  # (H, W, 4) float32 Blender's vector pass (render px, y up), top row first
    background: np.ndarray  # (H, W) bool: nothing was hit
    camera: CameraView
    colour: Path | None = None  # the colour render when Use Render is on

    def __post_init__(self) -> None:
        self.depth = np.asarray(self.depth, np.float32)
        self.vectors = np.asarray(self.vectors, np.float32)
        self.background = np.asarray(self.background, bool)
        shape = self.depth.shape
        if len(shape) != 2 or self.vectors.shape != (*shape, 4) or self.background.shape != shape:
            raise ValueError(f"frame {self.frame}: depth {self.depth.shape}, vectors "
                             f"{self.vectors.shape} and background {self.background.shape} do "
                             "not describe one (H, W) picture with 4 vector channels")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the render."""
        return self.depth.shape[1], self.depth.shape[0]


# --- files ---------------------------------------------------------------------------------

def motion_path(folder: Path, frame: int) -> Path:
    return Path(folder) / f"motion_{frame:04d}.npz"


def save_motion(frame: MotionFrame, folder: Path) -> Path:
    """`<folder>/motion_<frame>.npz`, written atomically. A colour render inside `folder` is
    stored relative to it, so a shot folder can move (farm workers mount it elsewhere)."""
    folder = Path(folder)
    colour = ""
    if frame.colour is not None:
        colour_path = Path(frame.colour)
        try:
            colour = colour_path.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            colour = str(colour_path.resolve())
    lens = frame.camera.lens
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, frame=np.int64(frame.frame), depth=frame.depth, vectors=frame.vectors,
        background=frame.background,
        world_from_camera=np.asarray(frame.camera.world_from_camera, np.float64),
        lens_numbers=np.array([float(getattr(lens, f.name)) for f in fields(lens)
                               if f.name not in ("ortho", "sensor_fit")]),
        lens_ortho=np.bool_(lens.ortho), lens_sensor_fit=np.str_(lens.sensor_fit),
        colour=np.str_(colour))
    return write_bytes_atomic(motion_path(folder, frame.frame), buffer.getvalue())


def load_motion(path: Path) -> MotionFrame:
    """A frame saved by `save_motion`; ValueError naming the file when it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            values = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"'{path}' is not a readable motion capture: {exc}") from None
    needed = {"frame", "depth", "vectors", "background", "world_from_camera", "lens_numbers",
              "lens_ortho", "lens_sensor_fit", "colour"}
    if missing := needed - values.keys():
        raise ValueError(f"'{path}' is not a motion capture (missing {', '.join(sorted(missing))})")
    names = [f.name for f in fields(CameraParams) if f.name not in ("ortho", "sensor_fit")]
    numbers = values["lens_numbers"]
    if numbers.shape != (len(names),) or values["world_from_camera"].shape != (4, 4):
        raise ValueError(f"'{path}' holds a camera this version does not read")
    lens = CameraParams(ortho=bool(values["lens_ortho"]),
                        sensor_fit=str(values["lens_sensor_fit"]),
                        **{name: float(v) for name, v in zip(names, numbers, strict=True)})
    colour = str(values["colour"])
    return MotionFrame(frame=int(values["frame"]), depth=values["depth"],
                       vectors=values["vectors"], background=values["background"],
                       camera=CameraView(values["world_from_camera"], lens),
                       colour=(path.parent / colour) if colour else None)


# --- flow ----------------------------------------------------------------------------------

def _pixel_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(cols, rows) of each pixel, as float arrays of shape (H, W)."""
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64),
                             np.arange(height, dtype=np.float64))
    return cols, rows


def background_flow(source: CameraView, target: CameraView, width: int,
                    height: int) -> np.ndarray:
    """(H, W, 2) image-space flow of directions at infinity from `source`'s frame to
    `target`'s: the rotation-only homography K_t F R_t^T R_s F K_s^-1 (F flips camera Z to
    forward-positive). Pixels whose direction is behind `target` get NaN. An orthographic
    camera sees the world background as one direction, so its flow is zero."""
    if source.lens.ortho or target.lens.ortho:
        return np.zeros((height, width, 2))
    homography = (target.intrinsics(width, height) @ _FLIP_Z @ target.rotation().T
                  @ source.rotation() @ _FLIP_Z @ np.linalg.inv(source.intrinsics(width, height)))
    cols, rows = _pixel_grid(width, height)
    centres = np.stack([cols + 0.5, rows + 0.5, np.ones_like(cols)], axis=-1)
    mapped = centres @ homography.T
    ahead = mapped[..., 2] > 1e-9
    safe = np.where(ahead, mapped[..., 2], 1.0)
    flow = np.stack([mapped[..., 0] / safe - centres[..., 0],
                     mapped[..., 1] / safe - centres[..., 1]], axis=-1)
    flow[~ahead] = np.nan
    return flow


def _check_adjacent(older: MotionFrame, newer: MotionFrame) -> None:
    if newer.frame != older.frame + 1:
        raise ValueError(f"Blender's vectors reach only the adjacent frame: frame {newer.frame} "
                         f"cannot be carried from frame {older.frame}")
    if newer.depth.shape != older.depth.shape:
        raise ValueError(f"frames {older.frame} and {newer.frame} were captured at different "
                         f"sizes ({older.size[0]}x{older.size[1]}, "
                         f"{newer.size[0]}x{newer.size[1]})")


def flow_to_previous(cur: MotionFrame, prev: MotionFrame | None) -> np.ndarray:
    """(H, W, 2) image-space offset from each pixel of `cur` to where it was in `prev`, in
    render pixels. Geometry takes the vector pass; the world background is reprojected from
    the two cameras (without `prev`, it keeps the pass's zero: right for a still camera)."""
    flow = np.stack([cur.vectors[..., 0], -cur.vectors[..., 1]], axis=-1).astype(np.float64)
    if prev is not None:
        _check_adjacent(prev, cur)
        reprojected = background_flow(cur.camera, prev.camera, *cur.size)
        flow[cur.background] = reprojected[cur.background]
    return flow


def flow_to_next(prev: MotionFrame, cur: MotionFrame) -> np.ndarray:
    """(H, W, 2) image-space offset from each pixel of `prev` to where it is in `cur`
    (the pass's Z,W negated and flipped to rows down), background reprojected."""
    _check_adjacent(prev, cur)
    flow = np.stack([-prev.vectors[..., 2], prev.vectors[..., 3]], axis=-1).astype(np.float64)
    reprojected = background_flow(prev.camera, cur.camera, *prev.size)
    flow[prev.background] = reprojected[prev.background]
    return flow


def _bilinear(image: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`image` (h, w, C) float sampled at pixel-index coordinates, edges clamped."""
    height, width = image.shape[:2]
    cols = np.clip(cols, 0.0, width - 1.0)
    rows = np.clip(rows, 0.0, height - 1.0)
    c0 = np.minimum(np.floor(cols).astype(np.int64), width - 2 if width > 1 else 0)
    r0 = np.minimum(np.floor(rows).astype(np.int64), height - 2 if height > 1 else 0)
    c1, r1 = np.minimum(c0 + 1, width - 1), np.minimum(r0 + 1, height - 1)
    fc, fr = (cols - c0)[..., None], (rows - r0)[..., None]
    top = image[r0, c0] * (1 - fc) + image[r0, c1] * fc
    bottom = image[r1, c0] * (1 - fc) + image[r1, c1] * fc
    return top * (1 - fr) + bottom * fr


def _nearest_index(out_size: int, in_size: int) -> np.ndarray:
    """For each output pixel, the input pixel whose area holds its centre."""
    return np.minimum(((np.arange(out_size) + 0.5) * in_size / out_size).astype(np.int64),
                      in_size - 1)


def scale_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) flow for a picture of `size` (w, h) from a render-size flow: each pixel takes
    the flow of the render pixel under its centre (nearest: interpolating would blend the
    motion of an object with what is behind it), scaled per axis."""
    width, height = size
    flow_height, flow_width = flow.shape[:2]
    if (width, height) == (flow_width, flow_height):
        return np.asarray(flow, np.float64)
    picked = flow[_nearest_index(height, flow_height)[:, None],
                  _nearest_index(width, flow_width)[None, :]]
    return picked * np.array([width / flow_width, height / flow_height])


def out_of_frame(flow: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose offset lands outside the frame (or is not finite)."""
    height, width = flow.shape[:2]
    cols, rows = _pixel_grid(width, height)
    x, y = cols + flow[..., 0], rows + flow[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    return ~inside


def warp_previous(image_prev: np.ndarray, flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The previous result (h, w[, C]), uint8 or float, backward-warped to `size` (w, h) by
    the render-size `flow` of `flow_to_previous`: bilinear, flow scaled per axis. Pixels whose
    source is outside the frame take the nearest edge pixel; `occlusion_mask` marks them."""
    image = np.asarray(image_prev)
    width, height = size
    if image.ndim not in (2, 3) or image.shape[:2] != (height, width):
        raise ValueError(f"the previous picture is {image.shape[1]}x{image.shape[0]}, not the "
                         f"generation size {width}x{height}")
    scaled = scale_flow(flow, size)
    finite = np.isfinite(scaled)
    scaled = np.where(finite, scaled, 0.0)
    cols, rows = _pixel_grid(width, height)
    source = image[..., None] if image.ndim == 2 else image
    warped = _bilinear(source.astype(np.float64), cols + scaled[..., 0], rows + scaled[..., 1])
    if image.ndim == 2:
        warped = warped[..., 0]
    if image.dtype == np.uint8:
        return np.clip(np.rint(warped), 0, 255).astype(np.uint8)
    return warped.astype(np.float32)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Binary dilation by a (2 * pixels + 1) square."""
    grown = np.asarray(mask, bool).copy()
    for axis in (0, 1):
        step = grown.copy()
        for shift in range(1, pixels + 1):
            if shift >= grown.shape[axis]:
                break
            ahead = [slice(None)] * 2
            behind = [slice(None)] * 2
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            step[tuple(ahead)] |= grown[tuple(behind)]
            step[tuple(behind)] |= grown[tuple(ahead)]
        grown = step
    return grown


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool for `size` (w, h): a pixel is True where any mask pixel under its area is
    (so shrinking never loses an occlusion; growing repeats pixels)."""
    width, height = size
    mask = np.asarray(mask, bool)
    for axis, out_size in ((0, height), (1, width)):
        in_size = mask.shape[axis]
        if in_size == out_size:
            continue
        edges = np.arange(out_size + 1) * in_size / out_size
        start = np.floor(edges[:-1]).astype(np.int64)
        end = np.maximum(np.ceil(edges[1:]).astype(np.int64), start + 1)
        counts = np.concatenate([np.zeros_like(mask.take([0], axis=axis), dtype=np.int64),
                                 np.cumsum(mask, axis=axis, dtype=np.int64)], axis=axis)
        mask = (counts.take(end, axis=axis) - counts.take(start, axis=axis)) > 0
    return mask


def occlusion_mask(cur: MotionFrame, prev: MotionFrame, threshold_px: float = 1.0,
                   dilate_px: int = 2, size: tuple[int, int] | None = None) -> np.ndarray:
    """(h, w) bool, True where `prev`'s picture must not be carried into `cur`: occluded or
    newly revealed (forward-backward check: following the backward flow to `prev` and
    `prev`'s forward flow back misses by more than `threshold_px` render pixels), or come from
    outside the frame. Dilated by `dilate_px` at render size, then resized to `size` (w, h)
    (default: the render size) keeping any True."""
    backward = flow_to_previous(cur, prev)
    forward = flow_to_next(prev, cur)
    width, height = cur.size
    cols, rows = _pixel_grid(width, height)
    finite = np.isfinite(backward).all(axis=-1)
    backward_safe = np.where(finite[..., None], backward, 0.0)
    forward_safe = np.where(np.isfinite(forward), forward, np.nan)
    back_again = _bilinear(forward_safe, cols + backward_safe[..., 0],
                           rows + backward_safe[..., 1])
    with np.errstate(invalid="ignore"):
        miss = np.hypot(*np.moveaxis(backward_safe + back_again, -1, 0))
        broken = ~(miss <= threshold_px)  # NaN (behind a camera) counts as broken
    mask = broken | ~finite | out_of_frame(backward)
    mask = dilate(mask, dilate_px) if dilate_px > 0 else mask
    return resize_mask(mask, size or cur.size)
