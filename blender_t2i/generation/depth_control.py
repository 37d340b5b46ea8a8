"""Scene -> the control image the model sees, saved beside the results and shown in Blender.

Three files per capture: `<stem>_depth.png` (8-bit grey: exactly what the backend gets),
`<stem>_depth16.png` (the same map in 16 bits) and `<stem>_depth.exr` (planar Z in metres,
1e10 where nothing was hit, like Blender's own Z pass). The PNGs carry the encoding, range and
capture method in text chunks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import bpy
import numpy as np

from ...compositor.capture import CaptureError, DepthCapture, capture_depth
from ..core import depth_encoding as encode
from ..core import exr, png
from .render_hooks import own_renders

# The locked range is computed at this size at most: percentiles barely move with resolution.
LOCK_MAX_SIDE = 256


@dataclass
class ControlImage:
    path: Path  # 8-bit grey PNG: exactly what the backend gets
    path16: Path  # 16-bit grey PNG of the same map, for compositing and inspection
    depth_range: encode.DepthRange
    seconds: float
    path_exr: Path | None = None  # float planar Z in metres
    encoding: str = encode.INVERSE
    range_policy: str = encode.AUTO


@dataclass(frozen=True)
class DepthOptions:
    """What `scene.t2i.depth` holds, as plain values (defaults = the settings' defaults)."""

    capture_path: str = "AUTO"
    capture_engine: str = "AUTO"
    encoding: str = encode.INVERSE
    range_policy: str = encode.AUTO
    manual: tuple[float, float] = (1.0, 20.0)
    locked: tuple[float, float] | None = None
    max_side: int = 4096

    @classmethod
    def from_scene(cls, scene: bpy.types.Scene) -> DepthOptions:
        settings = getattr(getattr(scene, "t2i", None), "depth", None)
        if settings is None:
            return cls()
        return cls(capture_path=settings.capture_path, capture_engine=settings.capture_engine,
                   encoding=settings.encoding, range_policy=settings.range_policy,
                   manual=(settings.near, settings.far), locked=settings.locked_range(),
                   max_side=settings.max_side)


def capture(scene: bpy.types.Scene, size: tuple[int, int], options: DepthOptions,
            context: bpy.types.Context | None = None) -> DepthCapture:
    """capture_depth with the user's path/engine/limit, refusing a view that shows nothing."""
    with own_renders():  # our render must not trigger "generate after render"
        depth = capture_depth(scene, *size, path=options.capture_path,
                              engine=options.capture_engine, max_side=options.max_side,
                              context=context)
    if depth.background.all():
        raise CaptureError(f"camera '{depth.camera}' sees nothing within its clip range "
                           f"({depth.clip_start:g}-{depth.clip_end:g} m): aim it at the scene")
    return depth


def encode_capture(depth: DepthCapture, options: DepthOptions) -> tuple:
    """(float map in [0, 1], range) for a capture, following the range policy."""
    try:
        depth_range = encode.resolve_range(
            options.range_policy, depth.z, depth.background,
            clip=(depth.clip_start, depth.clip_end), manual=options.manual,
            locked=options.locked)
    except ValueError as exc:
        raise CaptureError(str(exc)) from None
    value = encode.encode_depth(depth.z, depth.background, depth_range, options.encoding)
    seen = value[~depth.background]
    # A fixed range can miss the scene entirely (auto cannot; a flat wall is white by right).
    if options.range_policy != encode.AUTO and (seen.max() <= 0.0 or seen.min() >= 1.0):
        where, colour = ("beyond", "black") if seen.max() <= 0.0 else ("nearer than", "white")
        raise CaptureError(f"everything the camera sees is {where} the depth range "
                           f"{depth_range.near:g}-{depth_range.far:g} m, so the map would be "
                           f"all {colour}: widen the range or change the range policy")
    return value, depth_range


def make_control_image(scene: bpy.types.Scene, size: tuple[int, int], folder: Path, stem: str,
                       options: DepthOptions | None = None,
                       context: bpy.types.Context | None = None) -> ControlImage:
    started = time.perf_counter()
    options = options or DepthOptions.from_scene(scene)
    depth = capture(scene, size, options, context)
    value, depth_range = encode_capture(depth, options)
    text = {"t2i:encoding": options.encoding.lower(), "t2i:range": options.range_policy.lower(),
            "t2i:near": f"{depth_range.near:.6g}", "t2i:far": f"{depth_range.far:.6g}",
            "t2i:camera": depth.camera, "t2i:capture": f"{depth.path.lower()}/{depth.engine}"}
    folder = Path(folder)
    path = png.write_png(folder / f"{stem}_depth.png", encode.to_uint8(value), text)
    path16 = png.write_png(folder / f"{stem}_depth16.png", encode.to_uint16(value), text)
    path_exr = exr.write_grey_exr(folder / f"{stem}_depth.exr",
                                  encode.z_for_file(depth.z, depth.background))
    return ControlImage(path=path, path16=path16, depth_range=depth_range,
                        seconds=time.perf_counter() - started, path_exr=path_exr,
                        encoding=options.encoding, range_policy=options.range_policy)


def lock_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = min(1.0, LOCK_MAX_SIDE / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def lock_depth_range(scene: bpy.types.Scene, size: tuple[int, int], frames: Iterable[int],
                     options: DepthOptions | None = None) -> encode.DepthRange:
    """One auto range covering every frame in `frames` (the current frame is put back).
    Always through the camera: the viewport path follows the view, not the animation."""
    options = options or DepthOptions.from_scene(scene)
    if options.capture_path == "VIEWPORT":
        options = replace(options, capture_path="AUTO", capture_engine="AUTO")
    current, subframe = scene.frame_current, scene.frame_subframe
    ranges = []
    try:
        for frame in frames:
            scene.frame_set(frame)
            depth = capture(scene, lock_size(size), options)
            ranges.append(encode.auto_range(depth.z, depth.background))
    finally:
        scene.frame_set(current, subframe=subframe)
    try:
        return encode.union_range(ranges)
    except ValueError as exc:
        raise CaptureError(str(exc)) from None


def preview_range(scene: bpy.types.Scene, size: tuple[int, int],
                  options: DepthOptions | None = None) -> encode.DepthRange:
    """The range a live preview shows: the policy's range now (auto: from a quick capture)."""
    options = options or DepthOptions.from_scene(scene)
    camera = scene.camera
    if options.range_policy in (encode.AUTO, encode.CLIP) and camera is None:
        raise CaptureError("the scene has no active camera: add one or set Scene > Camera "
                           "(or use a Manual or Locked depth range)")
    if options.range_policy == encode.AUTO:
        quick = replace(options, capture_path="AUTO", capture_engine="AUTO")
        depth = capture(scene, lock_size(size), quick)
        return encode.auto_range(depth.z, depth.background)
    clip = (camera.data.clip_start, camera.data.clip_end) if camera else (0.0, 0.0)
    try:
        return encode.resolve_range(options.range_policy, np.zeros((0,)), np.zeros((0,), bool),
                                    clip=clip, manual=options.manual, locked=options.locked)
    except ValueError as exc:
        raise CaptureError(str(exc)) from None
