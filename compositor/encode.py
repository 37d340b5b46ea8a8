"""Planar Z (metres) -> the control image a depth model expects. Pure numpy, no bpy.

Depth ControlNets were trained on relative inverse depth (MiDaS / Depth-Anything): near = white,
far = black, background black. Inverse depth normalised between 1/far and 1/near is the closest
match to that data for a renderer's metric Z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Cycles and Workbench write 1e10 where nothing was hit; EEVEE writes about clip_end.
_BACKGROUND_Z = 1e9
_CLIP_END_FRACTION = 0.999


def background_mask(z: np.ndarray, clip_end: float) -> np.ndarray:
    """True where the camera saw nothing (or the pass holds NaN/inf/non-positive values)."""
    with np.errstate(invalid="ignore"):
        return (~np.isfinite(z) | (z <= 0) | (z >= _BACKGROUND_Z)
                | (z >= _CLIP_END_FRACTION * clip_end))


@dataclass(frozen=True)
class DepthRange:
    near: float
    far: float


def auto_range(z: np.ndarray, background: np.ndarray, low: float = 0.5,
               high: float = 99.5) -> DepthRange:
    """Robust near/far from percentiles of the foreground, so one stray pixel cannot squash
    the rest of the map into one grey level."""
    foreground = z[~background]
    if foreground.size == 0:
        raise ValueError("the depth map has no foreground: the camera sees nothing")
    near, far = np.percentile(foreground, [low, high])
    near, far = float(near), float(far)
    if far - near < 1e-6 * max(far, 1e-6):  # a flat wall facing the camera
        far = near * 1.01 + 1e-6
    return DepthRange(near=near, far=far)


def inverse_depth(z: np.ndarray, background: np.ndarray, depth_range: DepthRange) -> np.ndarray:
    """Float map in [0, 1]: 1 at `near` (and nearer), 0 at `far` (and beyond) and background."""
    inv_near, inv_far = 1.0 / depth_range.near, 1.0 / depth_range.far
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (1.0 / z - inv_far) / (inv_near - inv_far)
    value = np.clip(np.nan_to_num(value, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    value[background] = 0.0
    return value.astype(np.float32)


def to_uint16(value: np.ndarray) -> np.ndarray:
    return np.round(np.clip(value, 0.0, 1.0) * 65535.0).astype(np.uint16)


def to_uint8(value: np.ndarray) -> np.ndarray:
    return np.round(np.clip(value, 0.0, 1.0) * 255.0).astype(np.uint8)
