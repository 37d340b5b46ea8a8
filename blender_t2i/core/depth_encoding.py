"""Planar Z (metres) -> the control image a depth model expects. Pure numpy, no bpy.

Depth ControlNets were trained on relative inverse depth (MiDaS / Depth-Anything): near = white,
far = black, background black. Inverse depth normalised between 1/far and 1/near is the closest
match to that data for a renderer's metric Z; linear is offered for models trained on it.

The viewport preview graph (graph.py) computes the same two formulas with math nodes, so what
the user sees live is what `encode_depth` writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

INVERSE = "INVERSE"
LINEAR = "LINEAR"
ENCODINGS = (INVERSE, LINEAR)

AUTO = "AUTO"
CLIP = "CLIP"
MANUAL = "MANUAL"
LOCKED = "LOCKED"
RANGE_POLICIES = (AUTO, CLIP, MANUAL, LOCKED)

# Percentiles of the foreground used by the auto range: one stray pixel must not squash the
# rest of the map into one grey level.
AUTO_LOW, AUTO_HIGH = 0.5, 99.5
# The auto range reaches a little beyond the farthest surface, so that surface encodes to this
# dark grey (inverse depth) instead of black: a floor stays distinct from the empty background.
AUTO_FAR_LEVEL = 0.05

# Cycles and Workbench write 1e10 where nothing was hit; EEVEE writes about clip_end.
BACKGROUND_Z = 1e10
_BACKGROUND_THRESHOLD = 1e9
_CLIP_END_FRACTION = 0.999


def background_mask(z: np.ndarray, clip_end: float) -> np.ndarray:
    """True where the camera saw nothing (or the pass holds NaN/inf/non-positive values)."""
    with np.errstate(invalid="ignore"):
        return (~np.isfinite(z) | (z <= 0) | (z >= _BACKGROUND_THRESHOLD)
                | (z >= _CLIP_END_FRACTION * clip_end))


@dataclass(frozen=True)
class DepthRange:
    near: float
    far: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.near) and np.isfinite(self.far)):
            raise ValueError(f"the depth range {self.near:g}-{self.far:g} m is not finite")
        if self.near <= 0 or self.far <= self.near:
            raise ValueError(f"the depth range needs 0 < near < far, got near {self.near:g} m "
                             f"and far {self.far:g} m")


def auto_range(z: np.ndarray, background: np.ndarray, low: float = AUTO_LOW,
               high: float = AUTO_HIGH) -> DepthRange:
    """Robust near/far from percentiles of the foreground."""
    foreground = z[~background]
    if foreground.size == 0:
        raise ValueError("the depth map has no foreground: the camera sees nothing")
    near, far = (float(v) for v in np.percentile(foreground, [low, high]))
    if far - near < 1e-6 * max(far, 1e-6):  # a flat wall facing the camera
        far = near * 1.01 + 1e-6
    # solve (1/far - 1/F) / (1/near - 1/F) = AUTO_FAR_LEVEL for the range's far end F
    level = AUTO_FAR_LEVEL
    far = (1.0 - level) / (1.0 / far - level / near)
    return DepthRange(near=near, far=far)


def union_range(ranges: Iterable[DepthRange]) -> DepthRange:
    """One range that covers every frame's own range (the locked range of an animation)."""
    ranges = list(ranges)
    if not ranges:
        raise ValueError("no frames to compute a depth range over")
    return DepthRange(near=min(r.near for r in ranges), far=max(r.far for r in ranges))


def resolve_range(policy: str, z: np.ndarray, background: np.ndarray, *,
                  clip: tuple[float, float], manual: tuple[float, float],
                  locked: tuple[float, float] | None) -> DepthRange:
    """The near/far a range policy gives for this frame; ValueError says what to fix."""
    if policy == AUTO:
        return auto_range(z, background)
    if policy == CLIP:
        return DepthRange(*clip)
    if policy == MANUAL:
        return DepthRange(*manual)
    if policy == LOCKED:
        if locked is None:
            raise ValueError("the depth range is set to Locked but none is stored: "
                             "run Lock Depth Range over the animation first")
        return DepthRange(*locked)
    raise ValueError(f"unknown depth range policy {policy!r}; use one of {RANGE_POLICIES}")


def inverse_depth(z: np.ndarray, background: np.ndarray, depth_range: DepthRange) -> np.ndarray:
    """Float map in [0, 1]: 1 at `near` (and nearer), 0 at `far` (and beyond) and background."""
    inv_near, inv_far = 1.0 / depth_range.near, 1.0 / depth_range.far
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (1.0 / z.astype(np.float64) - inv_far) / (inv_near - inv_far)
    return _finish(value, background)


def linear_depth(z: np.ndarray, background: np.ndarray, depth_range: DepthRange) -> np.ndarray:
    """Float map in [0, 1], linear in metres: 1 at `near`, 0 at `far` and background."""
    with np.errstate(invalid="ignore"):
        value = (depth_range.far - z.astype(np.float64)) / (depth_range.far - depth_range.near)
    return _finish(value, background)


def _finish(value: np.ndarray, background: np.ndarray) -> np.ndarray:
    value = np.clip(np.nan_to_num(value, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    value[background] = 0.0
    return value.astype(np.float32)


def encode_depth(z: np.ndarray, background: np.ndarray, depth_range: DepthRange,
                 encoding: str = INVERSE) -> np.ndarray:
    if encoding == INVERSE:
        return inverse_depth(z, background, depth_range)
    if encoding == LINEAR:
        return linear_depth(z, background, depth_range)
    raise ValueError(f"unknown depth encoding {encoding!r}; use one of {ENCODINGS}")


def z_for_file(z: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Planar Z as Blender's own Z pass stores it: metres, BACKGROUND_Z where nothing was hit."""
    out = np.where(background, np.float32(BACKGROUND_Z), z).astype(np.float32)
    return np.nan_to_num(out, nan=BACKGROUND_Z, posinf=BACKGROUND_Z, neginf=BACKGROUND_Z)


def to_uint16(value: np.ndarray) -> np.ndarray:
    return np.round(np.clip(value, 0.0, 1.0) * 65535.0).astype(np.uint16)


def to_uint8(value: np.ndarray) -> np.ndarray:
    return np.round(np.clip(value, 0.0, 1.0) * 255.0).astype(np.uint8)


def check_size(width: int, height: int, max_side: int) -> None:
    """Refuse sizes above the user's limit before any memory is spent on them."""
    if width <= 0 or height <= 0:
        raise ValueError(f"the depth size {width}x{height} is empty")
    if max(width, height) > max_side:
        raise ValueError(f"{width}x{height} is above the depth capture limit of {max_side} px "
                         f"per side: lower the size or raise Max Size in the depth settings")
