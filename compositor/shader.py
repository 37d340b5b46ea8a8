"""The shader fallback: a depth material (Camera Data View Z Depth -> Emission) put on every
object, through `material_override` where the engine honours it, per object where it does not
(EEVEE 4.2-4.5). Per-object changes are recorded as plain data (names), so the viewport
preview can keep them on the scene across save/reload and put them back later.
"""

from __future__ import annotations

import bpy

from ..t2i_core.depth_encoding import DepthRange
from . import compat, graph
from .scene_state import Restorer

CAPTURE_MATERIAL = "T2I Depth Capture"
PREVIEW_MATERIAL = "T2I Depth Preview"
BLACK_WORLD = "T2I Depth Background"
SHADED_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT"}


def depth_material(name: str, encoded: bool) -> bpy.types.Material:
    """A new material emitting planar Z in metres, or (encoded) the encoding group's value."""
    material = bpy.data.materials.new(name)
    if material.node_tree is None:
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    camera = nodes.new("ShaderNodeCameraData")
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    camera.location, emission.location, output.location = (-500, 0), (0, 0), (250, 0)
    emission.inputs["Strength"].default_value = 1.0
    depth = camera.outputs["View Z Depth"]
    if encoded:
        group_node = nodes.new("ShaderNodeGroup")
        group_node.node_tree = graph.encoding_group("SHADER")
        group_node.location = (-250, 0)
        links.new(depth, group_node.inputs["Depth"])
        depth = group_node.outputs["Value"]
    links.new(depth, emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def set_preview_encoding(material: bpy.types.Material, depth_range: DepthRange,
                         encoding: str) -> None:
    for node in material.node_tree.nodes:
        if node.bl_idname == "ShaderNodeGroup":
            graph.set_encoding(node, depth_range, encoding)


def black_world() -> bpy.types.World:
    """A world that renders pure black, so the background encodes as 0."""
    world = bpy.data.worlds.get(BLACK_WORLD) or bpy.data.worlds.new(BLACK_WORLD)
    world.color = (0.0, 0.0, 0.0)
    if world.node_tree is not None:
        for node in world.node_tree.nodes:
            if node.bl_idname == "ShaderNodeBackground":
                node.inputs["Strength"].default_value = 0.0
    return world


def apply_material(view_layer: bpy.types.ViewLayer, material: bpy.types.Material, engine: str,
                   restorer: Restorer) -> None:
    """Show `material` on every object for `engine`, undone by `restorer`."""
    if compat.override_honoured(engine):
        restorer.set(view_layer, "material_override", material)
        return
    records = assign_per_object(view_layer, material)
    restorer.on_restore(lambda: restore_per_object(records))


def assign_per_object(view_layer: bpy.types.ViewLayer,
                      material: bpy.types.Material) -> list[dict]:
    """Put `material` in every slot of every shaded object (object-level links, so meshes
    shared with other scenes keep their materials); returns what restore_per_object needs."""
    records: list[dict] = []
    for obj in view_layer.objects:
        if obj.type not in SHADED_TYPES or obj.data is None:
            continue
        if len(obj.material_slots) == 0:
            # No slot to link at object level: give the data one, taken away afterwards.
            obj.data.materials.append(material)
            records.append({"data_of": obj.name})
        slots = []
        for index, slot in enumerate(obj.material_slots):
            link = slot.link
            slot.link = "OBJECT"
            own = slot.material
            slots.append([index, link, own.name if own else None])
            slot.material = material
        records.append({"object": obj.name, "slots": slots})
    return records


def restore_per_object(records: list[dict]) -> None:
    for record in reversed(records):
        if "data_of" in record:
            obj = bpy.data.objects.get(record["data_of"])
            if obj is not None and obj.data is not None:
                # It had no materials before; clear() (unlike pop) also drops the slots
                # objects keep for it.
                obj.data.materials.clear()
            continue
        obj = bpy.data.objects.get(record["object"])
        if obj is None:
            continue
        for index, link, own in record["slots"]:
            if index >= len(obj.material_slots):
                continue
            slot = obj.material_slots[index]
            slot.link = "OBJECT"
            slot.material = bpy.data.materials.get(own) if own else None
            slot.link = link
