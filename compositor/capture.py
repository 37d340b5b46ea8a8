"""Camera depth behind one function: planar Z in metres plus a background mask, whatever the
path and engine.

Paths:
- compositor: the Z pass -> compositor File Output 32-bit EXR -> numpy (Workbench, Cycles, EEVEE)
- shader: a depth material (Camera Data View Z Depth -> Emission) rendered by Cycles or EEVEE
- viewport: the active 3D View rendered with the depth material (`render.opengl`), for views
  that are not the camera's; it needs Blender's window.
Renders are stripped to what Z needs (one sample, no anti-aliasing, flat light): Workbench on
the compositor path is the fastest exact one, so `AUTO` picks it. Every change to the user's
scene goes through a Restorer and is undone, also when the render fails.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from dataclasses import dataclass

import bpy
import numpy as np

from ..t2i_core.depth_encoding import DEFAULT_MAX_SIDE, background_mask, check_size
from . import compat, shader
from .scene_state import Restorer, remove_new_render_result_on_restore, restoring

log = logging.getLogger("blender_t2i")

CAPTURE_TREE_NAME = "T2I Depth Capture"
PATHS = ("AUTO", "COMPOSITOR", "SHADER", "VIEWPORT")
ENGINES = ("AUTO", "WORKBENCH", "CYCLES", "EEVEE")


class CaptureError(Exception):
    """A capture the user must fix something for (no camera, nothing visible, ...)."""


@dataclass
class DepthCapture:
    z: np.ndarray  # float32 (H, W) planar distance to the camera plane, metres; top row first
    background: np.ndarray  # bool (H, W): nothing was hit
    clip_start: float
    clip_end: float
    camera: str
    path: str = "COMPOSITOR"
    engine: str = "BLENDER_WORKBENCH"


def resolve_method(path: str, engine: str) -> tuple[str, str]:
    """(path, engine id) for the user's choice; AUTO picks the fastest exact one."""
    if path not in PATHS or engine not in ENGINES:
        raise CaptureError(f"unknown capture path/engine {path}/{engine}")
    if path == "VIEWPORT":
        return path, compat.EEVEE_ENGINE  # the 3D View draws materials with EEVEE
    if path == "AUTO":
        path = "COMPOSITOR"
    if engine == "AUTO":
        engine = "WORKBENCH" if path == "COMPOSITOR" else "CYCLES"
    if path == "SHADER" and engine == "WORKBENCH":
        raise CaptureError("Workbench ignores materials, so it cannot run the shader path: "
                           "choose Cycles or EEVEE, or the compositor path")
    return path, compat.ENGINE_IDS[engine]


def capture_depth(scene: bpy.types.Scene, width: int, height: int,
                  view_layer: bpy.types.ViewLayer | None = None, *, path: str = "AUTO",
                  engine: str = "AUTO", max_side: int = DEFAULT_MAX_SIDE,
                  context: bpy.types.Context | None = None) -> DepthCapture:
    """Planar Z of the active camera (or, on the viewport path, of the active 3D View)."""
    path, engine_id = resolve_method(path, engine)
    try:
        check_size(width, height, max_side)
    except ValueError as exc:
        raise CaptureError(str(exc)) from None
    camera = scene.camera
    if camera is None and path != "VIEWPORT":
        raise CaptureError("the scene has no active camera: add one or set Scene > Camera")
    view_layer = view_layer or bpy.context.view_layer
    with tempfile.TemporaryDirectory(prefix="t2i-depth-") as folder:
        with restoring() as restorer:
            _prepare_render(scene, view_layer, engine_id, width, height, restorer)
            if path == "VIEWPORT":
                clip = _render_viewport(scene, view_layer, folder, context, restorer)
            else:
                if path == "SHADER":
                    _prepare_shader(scene, view_layer, engine_id, restorer)
                _render_through_compositor(scene, view_layer, folder,
                                           "Image" if path == "SHADER" else "Depth", restorer)
                clip = (camera.data.clip_start, camera.data.clip_end)
        z = read_exr_channel(folder, "depth")
    if z.shape != (height, width):
        raise CaptureError(f"depth came back at {z.shape[1]}x{z.shape[0]}, "
                           f"expected {width}x{height}")
    name = camera.name if camera is not None and path != "VIEWPORT" else "3D View"
    return DepthCapture(z=z, background=background_mask(z, clip[1]), clip_start=clip[0],
                        clip_end=clip[1], camera=name, path=path, engine=engine_id)


def _prepare_render(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, engine: str,
                    width: int, height: int, restorer: Restorer) -> None:
    """Full frame at exactly width x height, square pixels, only what Z needs."""
    render = scene.render
    remove_new_render_result_on_restore(restorer)
    restorer.set(render, "engine", engine)
    restorer.set_many(render, resolution_x=width, resolution_y=height,
                      resolution_percentage=100, pixel_aspect_x=1.0, pixel_aspect_y=1.0,
                      use_border=False, use_compositing=True, use_sequencer=False,
                      use_motion_blur=False, use_multiview=False)
    restorer.set_if_present(render, use_freestyle=False)
    restorer.set(view_layer, "use_pass_z", True)
    if engine == "BLENDER_WORKBENCH":
        restorer.set(scene.display, "render_aa", "OFF")  # Z needs no anti-aliasing
        restorer.set_if_present(scene.display.shading, light="FLAT", color_type="SINGLE",
                                show_shadows=False, show_cavity=False,
                                show_object_outline=False, show_xray=False, use_dof=False,
                                show_backface_culling=False)
    elif engine == "CYCLES":
        # One sample at the pixel centre (tiny box filter): exact Z, no denoiser touching it.
        restorer.set_if_present(scene.cycles, samples=1, use_denoising=False,
                                use_adaptive_sampling=False, pixel_filter_type="BOX",
                                filter_width=0.01, max_bounces=0, film_exposure=1.0)
    else:
        restorer.set_if_present(scene.eevee, taa_render_samples=1, use_shadows=False,
                                use_raytracing=False)
        restorer.set(render, "filter_size", 0.0)


def _prepare_shader(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, engine: str,
                    restorer: Restorer) -> None:
    material = shader.depth_material(shader.CAPTURE_MATERIAL, encoded=False)
    restorer.on_restore(lambda: bpy.data.materials.remove(material))
    shader.apply_material(view_layer, material, engine, restorer)
    # Transparent film: the background renders as 0, which background_mask catches.
    restorer.set(scene.render, "film_transparent", True)


def _render_through_compositor(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer,
                               folder: str, socket_name: str, restorer: Restorer) -> None:
    tree = compat.capture_tree(scene, CAPTURE_TREE_NAME, restorer)
    layers = add_node(tree, "CompositorNodeRLayers", restorer)
    layers.scene = scene
    layers.layer = view_layer.name
    socket = add_exr_output(tree, folder, "depth", restorer)
    tree.links.new(layers.outputs[socket_name], socket)
    _render_still(scene, view_layer)


def _render_still(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> None:
    bpy.ops.render.render(write_still=False, layer=view_layer.name, scene=scene.name)


def add_node(tree: bpy.types.NodeTree, idname: str, restorer: Restorer) -> bpy.types.Node:
    """A node that `restorer` takes out of the tree again."""
    node = tree.nodes.new(idname)
    _remove_on_restore(tree, node, restorer)
    return node


def add_exr_output(tree: bpy.types.NodeTree, folder: str, name: str,
                   restorer: Restorer) -> bpy.types.NodeSocket:
    """A File Output node writing `<folder>/<name>*.exr` (32-bit float); its input socket."""
    node, socket = compat.new_exr_file_output(tree, folder, name)
    _remove_on_restore(tree, node, restorer)
    return socket


def _remove_on_restore(tree: bpy.types.NodeTree, node: bpy.types.Node,
                       restorer: Restorer) -> None:
    name = node.name
    restorer.on_restore(lambda: tree.nodes.remove(tree.nodes[name]) if name in tree.nodes
                        else None)


def _render_viewport(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, folder: str,
                     context: bpy.types.Context | None,
                     restorer: Restorer) -> tuple[float, float]:
    """Depth of whatever the active 3D View shows (any view, not only the camera's)."""
    if bpy.app.background:
        raise CaptureError("the viewport capture needs Blender's window (it cannot run in "
                           "background mode): use the compositor or shader capture")
    context = context or bpy.context
    area = context.area if context.area and context.area.type == "VIEW_3D" else None
    if area is None:
        area = next((a for a in context.window.screen.areas if a.type == "VIEW_3D"), None)
    if area is None:
        raise CaptureError("the viewport capture needs a 3D View: open one or use the "
                           "compositor capture")
    space = area.spaces.active
    region = next(r for r in area.regions if r.type == "WINDOW")
    material = shader.depth_material(shader.CAPTURE_MATERIAL, encoded=False)
    restorer.on_restore(lambda: bpy.data.materials.remove(material))
    shader.apply_material(view_layer, material, compat.EEVEE_ENGINE, restorer)
    world = shader.black_world()
    restorer.on_restore(lambda: bpy.data.worlds.remove(world) if world.users == 0 else None)
    restorer.set(scene, "world", world)
    restorer.set_many(space.shading, type="MATERIAL", use_scene_world=True,
                      use_compositor="DISABLED")
    restorer.set_if_present(scene.eevee, taa_samples=1)
    restorer.set_many(scene.view_settings, view_transform="Raw", look="None", exposure=0.0,
                      gamma=1.0)
    settings = scene.render.image_settings
    restorer.set_if_present(settings, media_type="IMAGE")  # 5.x: before file_format
    restorer.set_many(settings, file_format="OPEN_EXR", color_depth="32", color_mode="RGB")
    restorer.set(scene.render, "filepath", os.path.join(folder, "depth.exr"))
    with context.temp_override(area=area, region=region):
        bpy.ops.render.opengl(write_still=True, view_context=True)
    view = space.region_3d
    if view.view_perspective == "CAMERA" and scene.camera is not None:
        return scene.camera.data.clip_start, scene.camera.data.clip_end
    return space.clip_start, space.clip_end


def read_exr_channel(folder: str, prefix: str) -> np.ndarray:
    """The first channel of the EXR `prefix*.exr` in `folder`, top row first."""
    files = sorted(glob.glob(os.path.join(folder, f"{prefix}*.exr")))
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
