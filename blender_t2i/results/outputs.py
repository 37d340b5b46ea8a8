"""Where a result goes besides its image: camera background, compositor overlay, projection
from the camera onto meshes, a texture in the active material.

Each function changes only what it names and is safe to run again on the same target (it
replaces its own earlier output rather than stacking a second one).
"""

from __future__ import annotations

import bpy
import numpy as np

from ...compositor import compat, overlay
from ...t2i_core import projection

RESULT_TAG = "t2i_result"  # custom property on images the add-on made
PROJECTION_UV = "T2I Projection"
TEXTURE_NODE = "T2I Texture"


class OutputError(Exception):
    """An output the user must fix something for (no camera, no mesh selected, ...)."""


def set_camera_background(camera: bpy.types.Object | None, image: bpy.types.Image,
                          opacity: float) -> None:
    """Show `image` as the camera's background, stretched to its frame so it lines up with the
    camera view. Reuses the background slot showing an earlier result."""
    if camera is None or camera.type != "CAMERA":
        raise OutputError("the scene has no active camera for the background image")
    data = camera.data
    slot = next((bg for bg in data.background_images
                 if bg.image is not None and bg.image.get(RESULT_TAG)), None)
    if slot is None:
        slot = data.background_images.new()
    slot.source = "IMAGE"
    slot.image = image
    slot.alpha = opacity
    slot.frame_method = "STRETCH"  # the result covers exactly the camera frame
    slot.display_depth = "FRONT"
    slot.show_background_image = True
    data.show_background_images = True


def add_compositor_overlay(scene: bpy.types.Scene, image: bpy.types.Image,
                           opacity: float) -> bpy.types.Node:
    return overlay.add_compositor_overlay(scene, image, opacity)


def camera_view_projection(scene: bpy.types.Scene, camera: bpy.types.Object,
                           depsgraph: bpy.types.Depsgraph) -> np.ndarray:
    """The 4x4 world -> clip matrix of the camera at the scene's render aspect."""
    render = scene.render
    projection_matrix = camera.calc_matrix_camera(
        depsgraph, x=render.resolution_x, y=render.resolution_y,
        scale_x=render.pixel_aspect_x, scale_y=render.pixel_aspect_y)
    return np.array(projection_matrix) @ np.array(camera.matrix_world.inverted())


def project_from_camera(scene: bpy.types.Scene, camera: bpy.types.Object | None,
                        objects: list[bpy.types.Object], image: bpy.types.Image,
                        depsgraph: bpy.types.Depsgraph) -> list[str]:
    """Give each mesh a UV map projected from the camera view and a material showing `image`
    through it; every face gets that material. Returns the names of the meshes changed."""
    if camera is None or camera.type != "CAMERA":
        raise OutputError("projection needs an active camera: set Scene > Camera")
    meshes = [obj for obj in objects if obj.type == "MESH"]
    if not meshes:
        raise OutputError("select the meshes to project onto")
    view_projection = camera_view_projection(scene, camera, depsgraph)
    material = projection_material(image)
    for obj in meshes:
        mesh = obj.data
        layer = mesh.uv_layers.get(PROJECTION_UV) or mesh.uv_layers.new(name=PROJECTION_UV)
        if layer is None:
            raise OutputError(f"'{obj.name}' already has the most UV maps Blender allows")
        coords = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", coords)
        world = projection.transform_points(coords.reshape(-1, 3), np.array(obj.matrix_world))
        uvs = projection.camera_uvs(world, view_projection)
        loop_vertices = np.empty(len(mesh.loops), dtype=np.int64)
        mesh.loops.foreach_get("vertex_index", loop_vertices)
        layer.data.foreach_set("uv", uvs[loop_vertices].astype(np.float32).ravel())
        index = _material_slot(obj, material)
        mesh.polygons.foreach_set("material_index", np.full(len(mesh.polygons), index, np.int32))
        mesh.update()
    return [obj.name for obj in meshes]


def send_to_output(context: bpy.types.Context, scene: bpy.types.Scene, target: str,
                   image: bpy.types.Image, object_names: tuple[str, ...], active_name: str,
                   opacity: float) -> str:
    """Apply one output target (a scene.t2i.output_targets item); returns a line to report."""
    if target == "CAMERA_BACKGROUND":
        set_camera_background(scene.camera, image, opacity)
        return f"'{image.name}' is the camera background"
    if target == "COMPOSITOR":
        add_compositor_overlay(scene, image, opacity)
        return f"'{image.name}' is overlaid in the compositor"
    if target == "PROJECTION":
        objects = [bpy.data.objects[name] for name in object_names if name in bpy.data.objects]
        changed = project_from_camera(scene, scene.camera, objects, image,
                                      context.evaluated_depsgraph_get())
        return f"'{image.name}' projected onto {', '.join(changed)}"
    if target == "MATERIAL":
        material = use_as_texture(bpy.data.objects.get(active_name), image)
        return f"'{image.name}' is a texture in '{material.name}'"
    raise ValueError(f"unknown output target {target}")


def _material_slot(obj: bpy.types.Object, material: bpy.types.Material) -> int:
    for index, slot in enumerate(obj.material_slots):
        if slot.material == material:
            return index
    obj.data.materials.append(material)
    return len(obj.data.materials) - 1


def projection_material(image: bpy.types.Image) -> bpy.types.Material:
    """A material showing `image` through the projection UV map (one per image)."""
    name = f"T2I Projection {image.name}"
    material = bpy.data.materials.get(name)
    if material is not None:
        return material
    material = bpy.data.materials.new(name)
    compat.use_material_nodes(material)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = PROJECTION_UV
    uv.location = (-700, 300)
    texture = nodes.new("ShaderNodeTexImage")
    texture.name = texture.label = TEXTURE_NODE
    texture.image = image
    texture.extension = "CLIP"  # outside the camera frame stays untextured, not smeared
    texture.location = (-450, 300)
    links.new(uv.outputs["UV"], texture.inputs["Vector"])
    links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def use_as_texture(obj: bpy.types.Object | None, image: bpy.types.Image) -> bpy.types.Material:
    """Put `image` in the active material as an image texture feeding its Principled BSDF's
    Base Color (a new material if the object has none). Reuses our texture node."""
    if obj is None or not hasattr(obj.data, "materials"):
        raise OutputError("select an object that can have materials")
    material = obj.active_material
    if material is None:
        material = bpy.data.materials.new(f"T2I {obj.name}")
        obj.data.materials.append(material)
        obj.active_material_index = len(obj.data.materials) - 1
    compat.use_material_nodes(material)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    texture = nodes.get(TEXTURE_NODE)
    if texture is None:
        texture = nodes.new("ShaderNodeTexImage")
        texture.name = texture.label = TEXTURE_NODE
    texture.image = image
    nodes.active = texture  # texture paint and the Image Editor follow the active node
    bsdf = next((node for node in nodes if node.type == "BSDF_PRINCIPLED"), None)
    if bsdf is not None:
        texture.location = (bsdf.location.x - 350, bsdf.location.y)
        links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    return material
