"""Where a result goes besides its image: camera background, compositor overlay, projection
from the camera onto meshes (results/projection.py), a texture in the active material.

Each function changes only what it names and is safe to run again on the same target (it
replaces its own earlier output rather than stacking a second one).
"""

from __future__ import annotations

import bpy

from ...compositor import compat, overlay
from . import projection
from .images import RESULT_TAG

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
        try:
            changed = projection.project(scene, image, objects)
        except projection.ProjectionError as exc:
            raise OutputError(str(exc)) from None
        baked = " and baked" if scene.t2i.projection.use_bake else ""
        return f"'{image.name}' projected{baked} onto {', '.join(changed)}"
    if target == "MATERIAL":
        material = use_as_texture(bpy.data.objects.get(active_name), image)
        return f"'{image.name}' is a texture in '{material.name}'"
    raise ValueError(f"unknown output target {target}")


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
