"""Camera depth: Workbench render, Z pass -> compositor File Output 32-bit EXR -> numpy.

Workbench needs no shading for Z, and with anti-aliasing off a depth-only render costs about
what a plain render does (see bench/). The user's scene comes back exactly as it was.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from dataclasses import dataclass

import bpy
import numpy as np

from ..blender_t2i import compat
from .encode import background_mask
from .scene_state import preserved_render_settings

log = logging.getLogger("blender_t2i")

CAPTURE_TREE_NAME = "T2I Depth Capture"


class CaptureError(Exception):
    """A capture the user must fix something for (no camera, nothing visible, ...)."""


@dataclass
class DepthCapture:
    z: np.ndarray  # float32 (H, W) planar distance to the camera plane, metres; top row first
    background: np.ndarray  # bool (H, W): nothing was hit
    clip_start: float
    clip_end: float
    camera: str


def capture_depth(scene: bpy.types.Scene, width: int, height: int,
                  view_layer: bpy.types.ViewLayer | None = None) -> DepthCapture:
    """Render the active camera's planar Z at width x height."""
    camera = scene.camera
    if camera is None:
        raise CaptureError("the scene has no active camera: add one or set Scene > Camera")
    view_layer = view_layer or bpy.context.view_layer
    with tempfile.TemporaryDirectory(prefix="t2i-depth-") as folder:
        with preserved_render_settings(scene, view_layer):
            _render_depth_exr(scene, view_layer, width, height, folder)
        z = _read_exr_channel(folder)
    if z.shape != (height, width):
        raise CaptureError(f"depth came back at {z.shape[1]}x{z.shape[0]}, "
                           f"expected {width}x{height}")
    clip_end = camera.data.clip_end
    return DepthCapture(z=z, background=background_mask(z, clip_end),
                        clip_start=camera.data.clip_start, clip_end=clip_end, camera=camera.name)


def _render_depth_exr(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, width: int,
                      height: int, folder: str) -> None:
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y = width, height
    render.resolution_percentage = 100
    render.use_border = False
    render.use_compositing = True
    render.use_sequencer = False
    scene.display.render_aa = "OFF"  # Z needs no anti-aliasing; this is the fast path
    view_layer.use_pass_z = True

    tree = compat.capture_tree(scene, CAPTURE_TREE_NAME)
    added: list[bpy.types.Node] = []
    try:
        layers = tree.nodes.new("CompositorNodeRLayers")
        added.append(layers)
        layers.scene = scene
        layers.layer = view_layer.name
        output, socket = compat.new_exr_file_output(tree, folder, "depth")
        added.append(output)
        tree.links.new(layers.outputs["Depth"], socket)
        bpy.ops.render.render(write_still=False, layer=view_layer.name, scene=scene.name)
    finally:
        compat.discard_capture_tree(tree, added)


def _read_exr_channel(folder: str) -> np.ndarray:
    files = sorted(glob.glob(os.path.join(folder, "depth*.exr")))
    if not files:
        raise CaptureError("the depth render wrote no file: is compositing disabled for "
                           "this scene's render?")
    image = bpy.data.images.load(files[0], check_existing=False)
    try:
        width, height = image.size
        channels = image.channels
        pixels = np.empty(width * height * channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    # Blender's rows run bottom-up; numpy images here run top-down.
    return np.ascontiguousarray(pixels.reshape(height, width, channels)[::-1, :, 0])
