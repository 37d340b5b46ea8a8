"""Scene -> the control image the model sees, saved beside the results and shown in Blender."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from ..compositor import encode
from ..compositor.capture import CaptureError, capture_depth
from . import png


@dataclass
class ControlImage:
    path: Path  # 8-bit grey PNG: exactly what the backend gets
    path16: Path  # 16-bit grey PNG of the same map, for compositing and inspection
    depth_range: encode.DepthRange
    seconds: float


def make_control_image(scene: bpy.types.Scene, size: tuple[int, int], folder: Path,
                       stem: str) -> ControlImage:
    started = time.perf_counter()
    depth = capture_depth(scene, *size)
    if depth.background.all():
        raise CaptureError(f"camera '{depth.camera}' sees nothing within its clip range "
                           f"({depth.clip_start:g}-{depth.clip_end:g} m): aim it at the scene")
    depth_range = encode.auto_range(depth.z, depth.background)
    value = encode.inverse_depth(depth.z, depth.background, depth_range)
    text = {"t2i:encoding": "inverse", "t2i:near": f"{depth_range.near:.6g}",
            "t2i:far": f"{depth_range.far:.6g}", "t2i:camera": depth.camera}
    path = png.write_png(folder / f"{stem}_depth.png", encode.to_uint8(value), text)
    path16 = png.write_png(folder / f"{stem}_depth16.png", encode.to_uint16(value), text)
    return ControlImage(path=path, path16=path16, depth_range=depth_range,
                        seconds=time.perf_counter() - started)
