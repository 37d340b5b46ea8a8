"""Camera depth behind one function: planar Z in metres plus a background mask, whatever the
path and engine.

Paths:
- compositor: the Z pass -> compositor File Output 32-bit EXR -> numpy (Workbench, Cycles, EEVEE)
- shader: a depth material (Camera Data View Z Depth -> Emission) rendered by Cycles or EEVEE
- viewport: the active 3D View rendered with the depth material (`render.opengl`), for views
  that are not the camera's; it needs Blender's window.
Renders are stripped to what Z needs (one sample, no anti-aliasing, flat light). `AUTO` picks,
from facts about the scene at hand, the fastest path that is exact for it: a Z-only Workbench
render or a one-sample Cycles render on the compositor path (see docs/depth.md for what each
engine honours and the measured costs behind the choice). Every change to the user's scene
goes through a Restorer and is undone, also when the render fails.
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
    reason: str = ""  # why AUTO chose this path and engine ("" when the user chose)


# Workbench's Z pass is unprojected from a float depth buffer: its error grows as about
# 2^-23 * z / clip_start (measured on 4.2 and 5.0.1, docs/depth.md), so 0.5% holds up to this
# many times the camera's clip_start: 4 km at the default 0.1 m.
WORKBENCH_EXACT_RATIO = 4e4
# A pixel whose final-render alpha is at most this shows nothing (holdout, empty background).
ALPHA_EMPTY = 1e-3
# Seconds = base + per megapixel + per million triangles (Workbench: every instance drawn;
# Cycles: distinct meshes, which its BVH instances) + per thousand instances. Fitted by
# `bench/depth_capture.py --fit` on 2 CPU cores with software GL (docs/depth.md).
COST_MODEL = {
    "BLENDER_WORKBENCH": (0.017, 0.164, 0.374, 0.068),
    "CYCLES": (0.009, 1.43, 0.334, 0.104),
}


@dataclass(frozen=True)
class SceneFacts:
    """What decides which capture is exact and fast for a scene (from its evaluated depsgraph)."""

    triangles: int  # triangles the render draws, every instance counted
    unique_triangles: int  # triangles of the distinct evaluated meshes
    instances: int  # shaded objects and instances
    holdout: str = ""  # an object in a holdout collection or with a Holdout shader ("" if none)
    foreign_alpha: str = ""  # a material whose alpha Workbench cannot follow ("" if none)


def workbench_exact_distance(clip_start: float) -> float:
    """How far Workbench's Z stays within 0.5% for a camera with this clip_start."""
    return WORKBENCH_EXACT_RATIO * clip_start


def scene_facts(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> SceneFacts:
    depsgraph = shader.evaluated_depsgraph(view_layer)
    held = _holdout_collection_objects(view_layer)
    triangles = unique = instances = 0
    counted: dict[int, int] = {}
    materials: dict[str, str] = {}
    holdout = ""
    for instance in depsgraph.object_instances:
        obj = instance.object
        if obj.type not in shader.SHADED_TYPES or obj.original.hide_render:
            continue
        instances += 1
        if not holdout and (obj.original.name in held or getattr(obj, "is_holdout", False)):
            holdout = obj.original.name
        if obj.type == "MESH":
            mesh = obj.data
            key = mesh.as_pointer()
            if key not in counted:
                counted[key] = len(mesh.loops) - 2 * len(mesh.polygons)
                unique += counted[key]
            triangles += counted[key]
        for slot in obj.material_slots:
            material = slot.material
            if material is not None and material.name not in materials:
                materials[material.name] = _material_kind(material)
    if not holdout:
        holdout = next((name for name, kind in materials.items() if kind == "HOLDOUT"), "")
    foreign = next((name for name, kind in materials.items() if kind == "ALPHA"), "")
    return SceneFacts(triangles, unique, instances, holdout, foreign)


def _holdout_collection_objects(view_layer: bpy.types.ViewLayer) -> set[str]:
    names: set[str] = set()
    stack = [(view_layer.layer_collection, False)]
    while stack:
        layer_collection, held = stack.pop()
        held = held or layer_collection.holdout
        if held:
            names.update(obj.name for obj in layer_collection.collection.all_objects)
        stack.extend((child, held) for child in layer_collection.children)
    return names


def _material_kind(material: bpy.types.Material) -> str:
    """'HOLDOUT', 'ALPHA' (transparency other than one image texture's alpha straight into
    the Principled BSDF, which Workbench's Texture colour cuts out), or ''."""
    tree = material.node_tree
    if tree is None:
        return ""
    images = [n for n in tree.nodes if n.bl_idname == "ShaderNodeTexImage" and not n.mute]
    kind = ""
    for node in tree.nodes:
        if node.mute:
            continue
        if node.bl_idname == "ShaderNodeHoldout":
            return "HOLDOUT"
        if node.bl_idname == "ShaderNodeBsdfTransparent":
            kind = "ALPHA"
        elif node.bl_idname == "ShaderNodeBsdfPrincipled":
            alpha = node.inputs["Alpha"]
            if not alpha.is_linked:
                kind = kind or ("ALPHA" if alpha.default_value < 1.0 else "")
                continue
            source = alpha.links[0].from_node
            shown = source in images and (len(images) == 1 or tree.nodes.active == source)
            if not shown or alpha.links[0].from_socket.name != "Alpha":
                kind = "ALPHA"
    return kind


def estimated_seconds(engine: str, width: int, height: int, facts: SceneFacts) -> float:
    base, per_mpx, per_mtri, per_kinstance = COST_MODEL[engine]
    triangles = facts.triangles if engine == "BLENDER_WORKBENCH" else facts.unique_triangles
    return (base + per_mpx * width * height / 1e6 + per_mtri * triangles / 1e6
            + per_kinstance * facts.instances / 1e3)


def auto_engine(facts: SceneFacts, width: int, height: int) -> tuple[str, str]:
    """(engine id, reason) for the compositor path: Workbench where it is exact and faster."""
    if facts.holdout:
        return "CYCLES", f"holdout ('{facts.holdout}'): Workbench draws holdout objects"
    if facts.foreign_alpha:
        return "CYCLES", (f"material '{facts.foreign_alpha}' has transparency Workbench "
                          "cannot cut out")
    workbench = estimated_seconds("BLENDER_WORKBENCH", width, height, facts)
    cycles = estimated_seconds("CYCLES", width, height, facts)
    if cycles < workbench:
        return "CYCLES", (f"{facts.triangles:,} triangles: Cycles ~{cycles:.2f} s, "
                          f"Workbench ~{workbench:.2f} s")
    return "BLENDER_WORKBENCH", (f"{facts.triangles:,} triangles: Workbench ~{workbench:.2f} s, "
                                 f"Cycles ~{cycles:.2f} s")


def resolve_method(path: str, engine: str, scene: bpy.types.Scene | None = None,
                   view_layer: bpy.types.ViewLayer | None = None,
                   size: tuple[int, int] = (512, 512)) -> tuple[str, str, str]:
    """(path, engine id, reason) for the user's choice; AUTO picks the fastest path that is
    exact for `scene` (without a scene: Workbench on the compositor path)."""
    if path not in PATHS or engine not in ENGINES:
        raise CaptureError(f"unknown capture path/engine {path}/{engine}")
    if path == "VIEWPORT":
        return path, compat.EEVEE_ENGINE, ""  # the 3D View draws materials with EEVEE
    if path == "SHADER" and engine == "WORKBENCH":
        raise CaptureError("Workbench ignores materials, so it cannot run the shader path: "
                           "choose Cycles or EEVEE, or the compositor path")
    if path == "AUTO":
        path = "COMPOSITOR"  # exact on every engine; the shader path loses alpha cut-outs
    if engine != "AUTO":
        return path, compat.ENGINE_IDS[engine], ""
    if path == "SHADER":
        return path, "CYCLES", "the shader path runs on Cycles unless told otherwise"
    if scene is None:
        return path, "BLENDER_WORKBENCH", "no scene to look at"
    engine_id, reason = auto_engine(scene_facts(scene, view_layer or bpy.context.view_layer),
                                    *size)
    return path, engine_id, reason


def capture_depth(scene: bpy.types.Scene, width: int, height: int,
                  view_layer: bpy.types.ViewLayer | None = None, *, path: str = "AUTO",
                  engine: str = "AUTO", max_side: int = DEFAULT_MAX_SIDE,
                  context: bpy.types.Context | None = None) -> DepthCapture:
    """Planar Z of the active camera (or, on the viewport path, of the active 3D View)."""
    try:
        check_size(width, height, max_side)
    except ValueError as exc:
        raise CaptureError(str(exc)) from None
    camera = scene.camera
    if camera is None and path != "VIEWPORT":
        raise CaptureError("the scene has no active camera: add one or set Scene > Camera")
    view_layer = view_layer or bpy.context.view_layer
    path, engine_id, reason = resolve_method(path, engine, scene, view_layer, (width, height))
    depth = _capture(scene, view_layer, path, engine_id, width, height, context)
    depth.reason = reason
    if reason and engine_id == "BLENDER_WORKBENCH":
        limit = workbench_exact_distance(depth.clip_start)
        if depth.clip_end > limit and np.any(depth.z[~depth.background] > limit):
            # Seen, not guessed: only the render tells how far the visible surfaces are.
            depth = _capture(scene, view_layer, path, "CYCLES", width, height, context)
            depth.reason = (f"surfaces beyond {limit:g} m, where Workbench's Z is no longer "
                            "within 0.5%")
    return depth


def _capture(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, path: str,
             engine_id: str, width: int, height: int,
             context: bpy.types.Context | None) -> DepthCapture:
    camera = scene.camera
    masked_by_alpha = path == "COMPOSITOR" and compat.is_eevee(engine_id)
    with tempfile.TemporaryDirectory(prefix="t2i-depth-") as folder:
        with restoring() as restorer:
            prepare_render(scene, view_layer, engine_id, width, height, restorer)
            if path == "VIEWPORT":
                clip = _render_viewport(scene, view_layer, folder, context, restorer)
            else:
                if path == "SHADER":
                    # Not on the compositor path: with the material override Cycles stops
                    # instancing linked duplicates (0.28 -> 0.8 s on the ~2M-triangle scene
                    # at 512², measured), which costs more than shading saves.
                    _prepare_shader(scene, view_layer, engine_id, restorer)
                # EEVEE writes a holdout object's Z; its alpha (0) says the render shows nothing.
                extra = ("Alpha",) if masked_by_alpha else ()
                _render_through_compositor(scene, view_layer, folder,
                                           "Image" if path == "SHADER" else "Depth", restorer,
                                           extra)
                clip = (camera.data.clip_start, camera.data.clip_end)
        z = read_exr_channel(folder, "depth")
        alpha = read_exr_channel(folder, "alpha") if masked_by_alpha else None
    if z.shape != (height, width):
        raise CaptureError(f"depth came back at {z.shape[1]}x{z.shape[0]}, "
                           f"expected {width}x{height}")
    background = background_mask(z, clip[1])
    if alpha is not None:
        background |= alpha <= ALPHA_EMPTY
    name = camera.name if camera is not None and path != "VIEWPORT" else "3D View"
    return DepthCapture(z=z, background=background, clip_start=clip[0], clip_end=clip[1],
                        camera=name, path=path, engine=engine_id)


def prepare_render(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, engine: str,
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
    restorer.set(render, "film_transparent", True)  # alpha 0 where the render shows nothing
    if engine == "BLENDER_WORKBENCH":
        restorer.set(scene.display, "render_aa", "OFF")  # Z needs no anti-aliasing
        # Texture colour: Workbench then cuts out image-texture alpha (leaf cards) in Z too.
        restorer.set_if_present(scene.display.shading, light="FLAT", color_type="TEXTURE",
                                show_shadows=False, show_cavity=False,
                                show_object_outline=False, show_xray=False, use_dof=False,
                                show_backface_culling=False)
        # Workbench ignores "visible to camera rays"; the final render leaves such objects out.
        for obj in view_layer.objects:
            if not obj.visible_camera and not obj.hide_render:
                restorer.set(obj, "hide_render", True)
    elif engine == "CYCLES":
        # One sample at the pixel centre (tiny box filter): exact Z, no denoiser touching it.
        restorer.set_if_present(scene.cycles, samples=1, use_denoising=False,
                                use_adaptive_sampling=False, pixel_filter_type="BOX",
                                filter_width=0.01, max_bounces=0, film_exposure=1.0)
        if scene.world is not None:
            # No light is sampled at 0 bounces, but a textured world's importance map is
            # still built: ~10 s per render at 128x96 on 2 cores with a noise world, measured.
            restorer.set_if_present(scene.world.cycles, sampling_method="NONE")
    else:
        restorer.set_if_present(scene.eevee, taa_render_samples=1, use_shadows=False,
                                use_raytracing=False)
        restorer.set(render, "filter_size", 0.0)


def _prepare_shader(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, engine: str,
                    restorer: Restorer) -> None:
    material = shader.depth_material(shader.CAPTURE_MATERIAL, encoded=False)
    restorer.on_restore(lambda: bpy.data.materials.remove(material))
    shader.apply_material(view_layer, material, engine, restorer)
    # The film is transparent (prepare_render): the background renders as 0, which
    # background_mask catches.


def _render_through_compositor(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer,
                               folder: str, socket_name: str, restorer: Restorer,
                               extra: tuple[str, ...] = ()) -> None:
    """Render, writing `socket_name` to depth*.exr and each `extra` pass to <pass>*.exr."""
    tree = compat.capture_tree(scene, CAPTURE_TREE_NAME, restorer)
    layers = add_node(tree, "CompositorNodeRLayers", restorer)
    layers.scene = scene
    layers.layer = view_layer.name
    for output, prefix in ((socket_name, "depth"), *((name, name.lower()) for name in extra)):
        socket = add_exr_output(tree, folder, prefix, restorer)
        tree.links.new(layers.outputs[output], socket)
    _render_still(scene, view_layer)


def _render_still(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> None:
    bpy.ops.render.render(write_still=False, layer=view_layer.name, scene=scene.name)


def add_node(tree: bpy.types.NodeTree, idname: str, restorer: Restorer) -> bpy.types.Node:
    """A node that `restorer` takes out of the tree again."""
    node = tree.nodes.new(idname)
    remove_node_on_restore(tree, node, restorer)
    return node


def add_exr_output(tree: bpy.types.NodeTree, folder: str, name: str,
                   restorer: Restorer) -> bpy.types.NodeSocket:
    """A File Output node writing `<folder>/<name>*.exr` (32-bit float); its input socket."""
    node, socket = compat.new_exr_file_output(tree, folder, name)
    remove_node_on_restore(tree, node, restorer)
    return socket


def remove_node_on_restore(tree: bpy.types.NodeTree, node: bpy.types.Node,
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
