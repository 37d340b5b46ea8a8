"""The shader fallback: a depth material (Camera Data View Z Depth -> Emission) put on every
object, through `material_override` where the engine honours it, per object where it does not
(EEVEE 4.2-4.5) or where a material cuts leaves out of a card with an image texture's alpha:
those get a depth material that cuts out the same texels. Per-object changes are recorded as
plain data (names), so the viewport preview can keep them on the scene across save/reload and
put them back later.
"""

from __future__ import annotations

import bpy

from ..t2i_core.depth_encoding import DepthRange
from . import compat, graph
from .scene_state import Restorer

CAPTURE_MATERIAL = "T2I Depth Capture"
CUT_OUT_MATERIAL = "T2I Depth Capture (cut out)"
HOLDOUT_MATERIAL = "T2I Depth Capture (holdout)"
ALPHA_THRESHOLD = 0.5  # Cycles' pass_alpha_threshold and Workbench's clip, by default
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


def cut_out_texture(material: bpy.types.Material | None) -> bpy.types.Node | None:
    """The Image Texture whose Alpha goes straight into the material's Principled BSDF Alpha
    (how leaf cards ship), or None."""
    tree = material.node_tree if material is not None else None
    if tree is None:
        return None
    for node in tree.nodes:
        if node.bl_idname != "ShaderNodeBsdfPrincipled" or node.mute:
            continue
        alpha = node.inputs["Alpha"]
        if alpha.is_linked:
            link = alpha.links[0]
            source = link.from_node
            if source.bl_idname == "ShaderNodeTexImage" and link.from_socket.name == "Alpha":
                return source
    return None


def cut_out_depth_material(texture: bpy.types.Node) -> bpy.types.Material:
    """A depth material that is transparent where `texture`'s alpha is below the threshold,
    sampled as the leaf material samples it (same image, filtering, extension and UV map)."""
    material = depth_material(CUT_OUT_MATERIAL, encoded=False)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    emission = next(n for n in nodes if n.bl_idname == "ShaderNodeEmission")
    output = next(n for n in nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    image = nodes.new("ShaderNodeTexImage")
    image.image = texture.image
    image.interpolation, image.extension = texture.interpolation, texture.extension
    image.projection = texture.projection
    vector = texture.inputs["Vector"]
    if vector.is_linked and vector.links[0].from_node.bl_idname == "ShaderNodeUVMap":
        uv = nodes.new("ShaderNodeUVMap")
        uv.uv_map = vector.links[0].from_node.uv_map
        links.new(uv.outputs["UV"], image.inputs["Vector"])
    leaf = nodes.new("ShaderNodeMath")
    leaf.operation = "GREATER_THAN"
    leaf.inputs[1].default_value = ALPHA_THRESHOLD
    links.new(image.outputs["Alpha"], leaf.inputs[0])
    transparent = nodes.new("ShaderNodeBsdfTransparent")
    mix = nodes.new("ShaderNodeMixShader")
    links.new(leaf.outputs[0], mix.inputs["Fac"])
    links.new(transparent.outputs[0], mix.inputs[1])
    links.new(emission.outputs["Emission"], mix.inputs[2])
    links.new(mix.outputs[0], output.inputs["Surface"])
    if hasattr(material, "blend_method"):
        material.blend_method = "CLIP"
    return material


def holdout_material() -> bpy.types.Material:
    """A material that is a holdout (stands in for one with a Holdout shader)."""
    material = bpy.data.materials.new(HOLDOUT_MATERIAL)
    if material.node_tree is None:
        material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    holdout = nodes.new("ShaderNodeHoldout")
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(holdout.outputs[0], output.inputs["Surface"])
    return material


def _has_holdout(material: bpy.types.Material) -> bool:
    tree = material.node_tree
    return tree is not None and any(n.bl_idname == "ShaderNodeHoldout" and not n.mute
                                    for n in tree.nodes)


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
    """Show `material` on every object the render draws for `engine` (leaf cards: a variant
    that cuts out the same leaves), undone by `restorer`."""
    objects = rendered_objects(view_layer)
    variants: dict[str, bpy.types.Material] = {}
    for obj in objects:
        for slot in obj.material_slots:
            own = slot.material
            if own is None or own.name in variants:
                continue
            texture = cut_out_texture(own)
            if texture is not None:
                variant = variants[own.name] = cut_out_depth_material(texture)
            elif _has_holdout(own):
                variant = variants[own.name] = holdout_material()
            else:
                continue
            restorer.on_restore(lambda v=variant: bpy.data.materials.remove(v))
    if compat.override_honoured(engine) and not variants:
        restorer.set(view_layer, "material_override", material)
        return
    records = assign_per_object(view_layer, material, variants, objects)
    restorer.on_restore(lambda: restore_per_object(records))


def rendered_objects(view_layer: bpy.types.ViewLayer) -> list[bpy.types.Object]:
    """The original objects the view layer's depsgraph draws, instanced ones included (those
    in collections that only instances bring in, Geometry Nodes instances of objects)."""
    depsgraph = evaluated_depsgraph(view_layer)
    seen: dict[int, bpy.types.Object] = {}
    for obj in view_layer.objects:
        seen[obj.as_pointer()] = obj
    for instance in depsgraph.object_instances:
        original = instance.object.original
        seen.setdefault(original.as_pointer(), original)
    return list(seen.values())


def evaluated_depsgraph(view_layer: bpy.types.ViewLayer) -> bpy.types.Depsgraph:
    """The view layer's depsgraph, evaluated now. (Its last evaluation can be stale or empty
    in background mode; evaluating costs ~30 ms on a 1,100-instance street right after a
    capture, whose restore tags the scene, and Blender's UI would evaluate it anyway.)"""
    if view_layer == bpy.context.view_layer:
        return bpy.context.evaluated_depsgraph_get()
    depsgraph = view_layer.depsgraph
    depsgraph.update()
    return depsgraph


def assign_per_object(view_layer: bpy.types.ViewLayer, material: bpy.types.Material,
                      variants: dict[str, bpy.types.Material] | None = None,
                      objects: list[bpy.types.Object] | None = None) -> list[dict]:
    """Put `material` (or, for a slot holding a material named in `variants`, its variant) in
    every slot of every shaded object of the view layer, or of `objects` (object-level links,
    so meshes shared with other scenes keep their materials); returns what
    restore_per_object needs."""
    variants = variants or {}
    records: list[dict] = []
    for obj in view_layer.objects if objects is None else objects:
        if obj.type not in SHADED_TYPES or obj.data is None:
            continue
        if len(obj.material_slots) == 0:
            # No slot to link at object level: give the data one, taken away afterwards.
            obj.data.materials.append(material)
            records.append({"data_of": obj.name})
        slots = []
        for index, slot in enumerate(obj.material_slots):
            shown = slot.material  # what the render draws, through the data or the object
            link = slot.link
            slot.link = "OBJECT"
            own = slot.material
            slots.append([index, link, own.name if own else None])
            slot.material = variants.get(shown.name, material) if shown else material
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
