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
# dark grey instead of black: a floor stays distinct from the empty background.
AUTO_FAR_LEVEL = 0.05
# ...but its far end stays within this many times the farthest surface's distance. Inverse
# depth cannot give the farthest surface AUTO_FAR_LEVEL once far/near reaches 1/AUTO_FAR_LEVEL
# (even an infinitely far end gives it near/far); there it gets what this bound allows.
AUTO_FAR_LIMIT = 10.0
# A scene shallower than this far/near ratio (a flat wall: 1) is not stretched from white to
# black: its range is widened around it to this ratio, so a flat wall is mid grey.
AUTO_MIN_RATIO = 1.25

# Cycles and Workbench write 1e10 where nothing was hit; EEVEE writes about clip_end.
BACKGROUND_Z = 1e10
_BACKGROUND_THRESHOLD = 1e9
_CLIP_END_FRACTION = 0.999


def background_mask(z: np.ndarray, clip_end: float) -> np.ndarray:
    """True where the camera saw nothing (or the pass holds NaN/inf/non-positive values)."""
    with np.errstate(invalid="ignore"):
        return (~np.isfinite(z) | (z <= 0) | (z >= _BACKGROUND_THRESHOLD)
                | (z >= _CLIP_END_FRACTION * clip_end))


class RangeError(ValueError):
    """A depth range that cannot be made, or one that would send a map with no depth in it;
    the message says what to change."""


@dataclass(frozen=True)
class DepthRange:
    near: float
    far: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.near) and np.isfinite(self.far)):
            raise RangeError(f"the depth range {self.near:g}-{self.far:g} m is not finite")
        if self.near <= 0 or self.far <= self.near:
            raise RangeError(f"the depth range needs 0 < near < far, got near {self.near:g} m "
                             f"and far {self.far:g} m")


def auto_range(z: np.ndarray, background: np.ndarray, encoding: str = INVERSE,
               low: float = AUTO_LOW, high: float = AUTO_HIGH) -> DepthRange:
    """Robust near/far from percentiles of the foreground, for any depth ratio."""
    foreground = z[~background]
    if foreground.size == 0:
        raise RangeError("the depth map has no foreground: the camera sees nothing")
    near, far = (float(v) for v in np.percentile(foreground.astype(np.float64), [low, high]))
    return auto_range_for(near, far, encoding)


def auto_range_for(near: float, far: float, encoding: str = INVERSE) -> DepthRange:
    """The auto range for a scene whose nearest and farthest surfaces are `near` and `far`.

    Both encodings are affine in a variable t (1/z for inverse, -z for linear), so the rule is
    written in t: the nearest surface is white; a scene shallower than AUTO_MIN_RATIO is widened
    around its centre in t to that ratio; the far end is pushed beyond the farthest surface by
    AUTO_FAR_LEVEL / (1 - AUTO_FAR_LEVEL) of the span, which puts that surface at
    AUTO_FAR_LEVEL. Linear can always do that; inverse keeps its far end within AUTO_FAR_LIMIT
    times the farthest surface's distance (t > 0), the farthest surface then encodes to
    (1 - 1/LIMIT) / (far/near - 1/LIMIT)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown depth encoding {encoding!r}; use one of {ENCODINGS}")
    if not (np.isfinite(near) and np.isfinite(far) and 0 < near <= far):
        raise RangeError(f"the scene's depth {near:g}-{far:g} m gives no depth range")
    inverse = encoding == INVERSE
    t_near, t_far = (1.0 / near, 1.0 / far) if inverse else (-near, -far)
    centre = (t_near + t_far) / 2
    min_span = 2 * (AUTO_MIN_RATIO - 1) / (AUTO_MIN_RATIO + 1) * abs(centre)
    if t_near - t_far < min_span:  # nearly flat: widen to AUTO_MIN_RATIO around the centre
        t_near, t_far = centre + min_span / 2, centre - min_span / 2
    t_end = t_far - AUTO_FAR_LEVEL / (1 - AUTO_FAR_LEVEL) * (t_near - t_far)
    if inverse:
        t_end = max(t_end, t_far / AUTO_FAR_LIMIT)
        return DepthRange(near=1.0 / t_near, far=1.0 / t_end)
    return DepthRange(near=-t_near, far=-t_end)


def union_range(ranges: Iterable[DepthRange]) -> DepthRange:
    """One range that covers every frame's own range (the locked range of an animation)."""
    ranges = list(ranges)
    if not ranges:
        raise RangeError("no frames to compute a depth range over")
    return DepthRange(near=min(r.near for r in ranges), far=max(r.far for r in ranges))


def resolve_range(policy: str, z: np.ndarray, background: np.ndarray, *,
                  clip: tuple[float, float], manual: tuple[float, float],
                  locked: tuple[float, float] | None, encoding: str = INVERSE) -> DepthRange:
    """The near/far a range policy gives for this frame; RangeError says what to fix."""
    if policy == AUTO:
        return auto_range(z, background, encoding)
    if policy == CLIP:
        if not clip[0] < clip[1]:
            raise RangeError(f"Camera Clip's range needs Clip Start below Clip End, got "
                             f"{clip[0]:g}-{clip[1]:g} m: fix the camera's clipping")
        return DepthRange(*clip)
    if policy == MANUAL:
        if not 0 < manual[0] < manual[1]:
            raise RangeError(f"the Manual depth range needs 0 < Near < Far, got "
                             f"{manual[0]:g}-{manual[1]:g} m: set Near below Far")
        return DepthRange(*manual)
    if policy == LOCKED:
        if locked is None:
            raise RangeError("the depth range is set to Locked but none is stored: "
                             "run Lock Depth Range over the animation first")
        return DepthRange(*locked)
    raise ValueError(f"unknown depth range policy {policy!r}; use one of {RANGE_POLICIES}")


_POLICY_NAMES = {AUTO: "the Auto range", CLIP: "Camera Clip's range",
                 MANUAL: "the Manual range", LOCKED: "the Locked range"}
_POLICY_ADVICE = {
    AUTO: "set a Manual range around what the camera sees",
    CLIP: "use the Auto or Manual range, or set the camera's Clip Start and End close around "
          "the scene",
    MANUAL: "set Near and Far around what the camera sees, or use the Auto range",
    LOCKED: "run Lock Depth Range again over these frames, or use the Auto range",
}


def check_map_shows_depth(image: np.ndarray, z: np.ndarray, background: np.ndarray,
                          depth_range: DepthRange, policy: str) -> None:
    """Refuse an 8-bit map (what the backend gets) whose visible pixels are all black or all
    white: the range misses the scene, and the model would get no depth at all."""
    seen = image[~background]
    if seen.size == 0 or (seen.max() > 0 and seen.min() < 255):
        return
    visible = z[~background]
    where, colour = ("below 1/255", "black") if seen.max() == 0 else ("at full white", "white")
    raise RangeError(
        f"{_POLICY_NAMES.get(policy, 'the depth range')} {depth_range.near:g}-"
        f"{depth_range.far:g} m puts everything the camera sees ({visible.min():.3g}-"
        f"{visible.max():.3g} m) {where}, so the depth map sent would be all {colour}: "
        f"{_POLICY_ADVICE.get(policy, 'change the depth range')}")


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


DEFAULT_MAX_SIDE = 4096  # the depth settings' Max Size unless the user raises it


def check_size(width: int, height: int, max_side: int) -> None:
    """Refuse sizes above the user's limit before any memory is spent on them."""
    if width <= 0 or height <= 0:
        raise ValueError(f"the depth size {width}x{height} is empty")
    if max(width, height) > max_side:
        raise ValueError(f"{width}x{height} is above the depth capture limit of {max_side} px "
                         f"per side: lower the size or raise Max Size in the depth settings")
