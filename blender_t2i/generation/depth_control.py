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
from mathutils import Vector

from ...compositor.capture import CaptureError, DepthCapture, capture_depth
from ...t2i_core import depth_encoding as encode
from ...t2i_core import exr, png
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
    max_side: int = encode.DEFAULT_MAX_SIDE

    @classmethod
    def from_scene(cls, scene: bpy.types.Scene) -> DepthOptions:
        settings = scene.t2i.depth
        return cls(capture_path=settings.capture_path, capture_engine=settings.capture_engine,
                   encoding=settings.encoding, range_policy=settings.range_policy,
                   manual=(settings.near, settings.far), locked=settings.locked_range(),
                   max_side=settings.max_side)


def capture(scene: bpy.types.Scene, size: tuple[int, int], options: DepthOptions,
            context: bpy.types.Context | None = None) -> DepthCapture:
    """capture_depth with the user's path/engine/limit, refusing a view that shows nothing
    and a camera inside an object."""
    with own_renders():  # our render must not trigger "generate after render"
        depth = capture_depth(scene, *size, path=options.capture_path,
                              engine=options.capture_engine, max_side=options.max_side,
                              context=context)
    check_capture(scene, depth)
    return depth


def check_capture(scene: bpy.types.Scene, depth: DepthCapture) -> None:
    """CaptureError for a view that shows nothing and for a camera inside an object."""
    if depth.background.all():
        raise CaptureError(f"camera '{depth.camera}' sees nothing within its clip range "
                           f"({depth.clip_start:g}-{depth.clip_end:g} m): aim it at the scene")
    inside = enclosing_objects(scene, depth)
    if inside:
        seen = depth.z[~depth.background]
        raise CaptureError(
            f"camera '{depth.camera}' is inside {inside}: it sees only the inside of its "
            f"faces, {seen.min():.3g}-{seen.max():.3g} m away. Move the camera out, or if it "
            f"is a room, flip its normals to face inward (Edit Mode > Mesh > Normals > Flip)")


# Rays per side of the frame that test whether the camera is inside an object.
INSIDE_RAYS = 5


def enclosing_objects(scene: bpy.types.Scene, depth: DepthCapture) -> str:
    """The objects (quoted, comma-separated) whose back faces are all the camera sees, i.e.
    that it is inside; "" when it is not. Only a view with no background can be inside, so
    other views cost no ray."""
    camera = scene.camera
    if (depth.path == "VIEWPORT" or camera is None or depth.background.any()
            or camera.data.type not in ("PERSP", "ORTHO")):
        return ""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    matrix = camera.matrix_world.normalized()
    rotation = matrix.to_3x3()
    # top right, bottom right, bottom left, top left, in camera space (-Z is the view axis)
    top_right, bottom_right, bottom_left, top_left = camera.data.view_frame(scene=scene)
    start = depth.clip_start
    names = set()
    for i in range(INSIDE_RAYS):
        for j in range(INSIDE_RAYS):
            u, v = (i + 0.5) / INSIDE_RAYS, (j + 0.5) / INSIDE_RAYS
            point = bottom_left.lerp(bottom_right, u).lerp(top_left.lerp(top_right, u), v)
            if camera.data.type == "ORTHO":
                origin = matrix @ Vector((point.x, point.y, -start))
                direction = rotation @ Vector((0.0, 0.0, -1.0))
            else:  # from the clip start plane: nearer geometry is not rendered
                origin = matrix @ (point * (start / -point.z))
                direction = (rotation @ point).normalized()
            hit, _location, normal, _index, obj, _matrix = scene.ray_cast(
                depsgraph, origin, direction)
            if not hit or normal.dot(direction) <= 0.0:  # nothing, or a face seen from front
                return ""
            names.add(obj.name)
    return ", ".join(f"'{name}'" for name in sorted(names))


def encode_capture(depth: DepthCapture,
                   options: DepthOptions) -> tuple[np.ndarray, np.ndarray, encode.DepthRange]:
    """(float map in [0, 1], the 8-bit map sent, range) for a capture, following the range
    policy; RangeError when the range cannot be made or the 8-bit map would show no depth."""
    depth_range = encode.resolve_range(
        options.range_policy, depth.z, depth.background,
        clip=(depth.clip_start, depth.clip_end), manual=options.manual,
        locked=options.locked, encoding=options.encoding)
    value = encode.encode_depth(depth.z, depth.background, depth_range, options.encoding)
    image = encode.to_uint8(value)
    encode.check_map_shows_depth(image, depth.z, depth.background, depth_range,
                                 options.range_policy)
    return value, image, depth_range


def make_control_image(scene: bpy.types.Scene, size: tuple[int, int], folder: Path, stem: str,
                       options: DepthOptions | None = None,
                       context: bpy.types.Context | None = None) -> ControlImage:
    started = time.perf_counter()
    options = options or DepthOptions.from_scene(scene)
    depth = capture(scene, size, options, context)
    return control_from_capture(depth, folder, stem, options, started)


def control_from_capture(depth: DepthCapture, folder: Path, stem: str, options: DepthOptions,
                         started: float | None = None) -> ControlImage:
    """The control image's files from a depth already captured (by `capture`, or by the
    motion capture's render in temporal mode, which gives depth and vectors at once)."""
    started = time.perf_counter() if started is None else started
    value, image, depth_range = encode_capture(depth, options)
    text = {"t2i:encoding": options.encoding.lower(), "t2i:range": options.range_policy.lower(),
            "t2i:near": f"{depth_range.near:.6g}", "t2i:far": f"{depth_range.far:.6g}",
            "t2i:camera": depth.camera, "t2i:capture": f"{depth.path.lower()}/{depth.engine}"}
    folder = Path(folder)
    path = png.write_png(folder / f"{stem}_depth.png", image, text)
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
            ranges.append(encode.auto_range(depth.z, depth.background, options.encoding))
    finally:
        scene.frame_set(current, subframe=subframe)
    return encode.union_range(ranges)


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
        return encode.auto_range(depth.z, depth.background, options.encoding)
    clip = (camera.data.clip_start, camera.data.clip_end) if camera else (0.0, 0.0)
    return encode.resolve_range(options.range_policy, np.zeros((0,)), np.zeros((0,), bool),
                                clip=clip, manual=options.manual, locked=options.locked,
                                encoding=options.encoding)
