"""One frame's depth and motion vectors (and, when asked, its colour render) for the temporal
mode: `capture_motion` -> `t2i_core.motion.MotionFrame`.

Depth and vectors come from one pass-only render: Cycles at one sample through the pixel
centre (a tiny box filter), no bounces, no denoiser, motion blur off (with it on the vector
pass is all zeros). One sample matters: at 16 the vectors are averaged across silhouettes.
The user's materials stay (no material override), as on the depth capture's compositor path:
alpha cut-outs and render-time geometry move exactly as the final render shows them. EEVEE
can be asked for instead (it agrees within a few hundredths of a pixel); on 5.0 its first
render in a process has zero vectors, so a tiny warm-up render goes first.

The colour picture, when asked, is a second render: the scene's own engine, samples and look
(`colour_still.render_png`), untouched by the pass-only settings; its vectors would be
averaged at silhouettes and its motion blur would have to go.

Every change to the user's scene (frame, engine, resolution, passes, compositor, output
format and path) goes through a Restorer and is undone, also when a render fails.
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

import bpy
import numpy as np

from ..t2i_core import exr
from ..t2i_core.depth_encoding import DEFAULT_MAX_SIDE, background_mask, check_size
from ..t2i_core.motion import CameraView, MotionFrame
from . import compat
from .camera_frame import camera_params, is_panoramic
from .capture import (
    CAPTURE_TREE_NAME,
    CaptureError,
    add_node,
    prepare_render,
    remove_node_on_restore,
)
from .colour_still import render_png
from .scene_state import Restorer, restoring

MOTION_ENGINES = ("CYCLES", "EEVEE")
WARM_UP_PERCENTAGE = 5
_eevee_warmed = False


def capture_motion(scene: bpy.types.Scene, frame: int, width: int, height: int, folder: Path,
                   *, colour: bool, engine: str = "CYCLES",
                   view_layer: bpy.types.ViewLayer | None = None) -> MotionFrame:
    """Depth and vectors of `frame` at width x height through the scene's camera; with
    `colour`, the scene's own render as `<folder>/colour_<frame>.png` too. Nothing else is
    written to `folder` (`t2i_core.motion.save_motion` keeps the capture)."""
    if engine not in MOTION_ENGINES:
        raise CaptureError(f"motion vectors come from Cycles or EEVEE, not {engine!r} "
                           "(Workbench has no vector pass)")
    try:
        check_size(width, height, DEFAULT_MAX_SIDE)
    except ValueError as exc:
        raise CaptureError(str(exc)) from None
    view_layer = view_layer or bpy.context.view_layer
    engine_id = compat.ENGINE_IDS[engine]
    folder = Path(folder)
    with restoring() as restorer:
        current = scene.frame_current, scene.frame_subframe
        restorer.on_restore(lambda: scene.frame_set(current[0], subframe=current[1]))
        scene.frame_set(frame)
        camera = scene.camera  # after frame_set: markers may switch cameras
        if camera is None:
            raise CaptureError("the scene has no active camera: add one or set Scene > Camera")
        if is_panoramic(camera):
            raise CaptureError(f"camera '{camera.name}' is panoramic: motion capture needs a "
                               "perspective or orthographic camera")
        view = CameraView(np.array(camera.matrix_world), camera_params(camera))
        with tempfile.TemporaryDirectory(prefix="t2i-motion-") as scratch:
            depth, vectors = _render_passes(scene, view_layer, engine_id, width, height,
                                            frame, scratch)
        colour_path = None
        if colour:
            colour_path = render_png(scene, (width, height), folder / f"colour_{frame:04d}.png")
    background = background_mask(depth, view.lens.clip_end)
    vectors[background] = 0.0  # EEVEE leaves stray values on the world; Cycles writes zeros
    return MotionFrame(frame=frame, depth=depth, vectors=vectors, background=background,
                       camera=view, colour=colour_path)


def _render_passes(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, engine_id: str,
                   width: int, height: int, frame: int,
                   scratch: str) -> tuple[np.ndarray, np.ndarray]:
    """(depth (H, W), vectors (H, W, 4)) from one pass-only render, top row first."""
    with restoring() as restorer:
        prepare_render(scene, view_layer, engine_id, width, height, restorer)
        restorer.set(view_layer, "use_pass_vector", True)
        restorer.set_if_present(scene.eevee, use_motion_blur=False)  # 4.x EEVEE's own switch
        name = f"motion_{frame:04d}_"
        if compat.vectors_through_file_output():
            tree = compat.capture_tree(scene, CAPTURE_TREE_NAME, restorer)
            layers = add_node(tree, "CompositorNodeRLayers", restorer)
            layers.scene, layers.layer = scene, view_layer.name
            node, depth_socket, vector_socket = compat.new_motion_file_output(tree, scratch,
                                                                              name)
            remove_node_on_restore(tree, node, restorer)
            tree.links.new(layers.outputs["Depth"], depth_socket)
            tree.links.new(layers.outputs["Vector"], vector_socket)
        else:
            # The render output itself, saved as a multilayer EXR: the user's compositor
            # does not run at all (its File Output nodes would write files).
            restorer.set(scene.render, "use_compositing", False)
            _save_render_as_multilayer(scene, os.path.join(scratch, name + ".exr"), restorer)
        if compat.is_eevee(engine_id) and compat.eevee_needs_warm_up():
            _warm_up_eevee(scene, view_layer, restorer)
        bpy.ops.render.render(write_still=not compat.vectors_through_file_output(),
                              layer=view_layer.name, scene=scene.name)
    if compat.vectors_through_file_output():
        depth = exr.read_exr(_one_file(scratch, name + "Depth"))["R"]
        channels = exr.read_exr(_one_file(scratch, name + "Vector"))
        vectors = np.stack([channels[c] for c in "XYZW"], axis=-1)
    else:
        channels = exr.read_exr(_one_file(scratch, name))
        prefix = f"{view_layer.name}."
        try:
            depth = channels[prefix + "Depth.Z"]
            vectors = np.stack([channels[f"{prefix}Vector.{c}"] for c in "XYZW"], axis=-1)
        except KeyError as exc:
            raise CaptureError(f"the render wrote no {exc.args[0]} pass") from None
    if depth.shape != (height, width):
        raise CaptureError(f"the vector pass came back at {depth.shape[1]}x{depth.shape[0]}, "
                           f"expected {width}x{height}")
    return depth, vectors


def _save_render_as_multilayer(scene: bpy.types.Scene, path: str, restorer: Restorer) -> None:
    settings = scene.render.image_settings
    # Put back after the format (undo runs in reverse): EXR has no 8-bit depth to restore into.
    restorer.set(settings, "color_depth", settings.color_depth)
    restorer.set_if_present(settings, media_type="MULTI_LAYER_IMAGE")  # 5.x: before the format
    restorer.set_many(settings, file_format="OPEN_EXR_MULTILAYER", color_depth="32",
                      exr_codec="ZIP")
    restorer.set(scene.render, "use_file_extension", False)
    restorer.set(scene.render, "filepath", path)


def _warm_up_eevee(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer,
                   restorer: Restorer) -> None:
    """Once per process: a render at a few percent of the size, so that EEVEE's first real
    one has its vectors. Its files take the same names; the real render overwrites them."""
    global _eevee_warmed
    if _eevee_warmed:
        return
    percentage = scene.render.resolution_percentage
    scene.render.resolution_percentage = WARM_UP_PERCENTAGE
    try:
        bpy.ops.render.render(write_still=False, layer=view_layer.name, scene=scene.name)
    finally:
        scene.render.resolution_percentage = percentage
    _eevee_warmed = True


def _one_file(folder: str, stem: str) -> str:
    files = sorted(glob.glob(os.path.join(glob.escape(folder), glob.escape(stem) + "*.exr")))
    if not files:
        raise CaptureError("the vector render wrote no file: is rendering blocked for this "
                           "scene (compositing disabled, a read-only temp folder)?")
    return files[0]
