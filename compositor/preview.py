"""Live depth in a 3D View, encoded exactly as the model will get it.

EEVEE (where passes reach the viewport compositor): the scene composites Render Layers Depth
through "T2I Depth Encoding", shown with `shading.use_compositor`. Elsewhere (Cycles, versions
without viewport passes) a depth material running the same encoding is shown in Rendered
mode through `material_override`, or assigned per object where the engine ignores the
override. Workbench draws no materials and has no passes for the viewport compositor, so a
Workbench scene is switched to EEVEE while the preview is on. The view transform is set to
Raw so the screen shows the encoded values unchanged (and F12 renders show the depth too,
until the preview is switched off).

What the preview changed is kept as plain data in a scene property, so toggling off puts the
user's compositor, shading, view transform, world, override and materials back, also after
the file was saved and reopened with the preview on.
"""

from __future__ import annotations

import json
import logging

import bpy

from ..t2i_core.depth_encoding import DepthRange
from . import compat, graph, shader

log = logging.getLogger("blender_t2i")

STATE_KEY = "t2i_depth_preview"
PREVIEW_GROUP = "T2I Depth Preview"
COMPOSITOR, SHADER = "COMPOSITOR", "SHADER"
_SHADING = ("type", "use_compositor", "use_scene_world", "use_scene_lights")
_VIEW = ("view_transform", "look", "exposure", "gamma", "use_curve_mapping")


def is_on(scene: bpy.types.Scene) -> bool:
    return STATE_KEY in scene


def preview_mode(scene: bpy.types.Scene) -> str:
    return COMPOSITOR if compat.viewport_compositor_has_passes(scene.render.engine) else SHADER


def enable(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, screen: bpy.types.Screen,
           area: bpy.types.Area, depth_range: DepthRange, encoding: str) -> str:
    """Turn the preview on in `area` (a VIEW_3D area of `screen`); returns the mode used.
    If anything fails half-way, what was already changed is put back."""
    if is_on(scene):
        raise RuntimeError("the depth preview is already on for this scene")
    space = area.spaces.active
    state: dict = {
        "mode": None, "engine": scene.render.engine, "view_layer": view_layer.name,
        "space": {"screen": screen.name, "area": list(screen.areas).index(area),
                  "shading": {k: getattr(space.shading, k) for k in _SHADING}},
        "view": {k: getattr(scene.view_settings, k) for k in _VIEW},
    }
    try:
        _apply(scene, view_layer, space, state, depth_range, encoding)
    except Exception:
        _undo(scene, state)
        raise
    scene[STATE_KEY] = json.dumps(state)
    return state["mode"]


def update_range(scene: bpy.types.Scene, depth_range: DepthRange, encoding: str) -> None:
    """Point a running preview at a new range (e.g. after Lock Depth Range)."""
    state = json.loads(scene[STATE_KEY])
    for node in _encoding_nodes(scene, state):
        graph.set_encoding(node, depth_range, encoding)


def disable(scene: bpy.types.Scene) -> None:
    state = json.loads(scene[STATE_KEY])
    try:
        _undo(scene, state)
    finally:
        del scene[STATE_KEY]


def _apply(scene, view_layer, space, state, depth_range, encoding) -> None:
    if scene.render.engine == "BLENDER_WORKBENCH":
        # Workbench draws no materials and offers no Material Preview: EEVEE shows the depth
        # while the preview is on (the engine comes back with the rest).
        scene.render.engine = compat.EEVEE_ENGINE
    state["mode"] = preview_mode(scene)
    shading = space.shading
    view = scene.view_settings
    view.view_transform, view.look, view.exposure, view.gamma = "Raw", "None", 0.0, 1.0
    view.use_curve_mapping = False
    if state["mode"] == COMPOSITOR:
        state["use_pass_z"] = view_layer.use_pass_z
        view_layer.use_pass_z = True
        encoding_group = graph.encoding_group("COMPOSITOR")
        preview_group = _preview_group(encoding_group, scene, view_layer) \
            if compat.uses_group_compositor() else None
        _keep(state, getattr(scene, "compositing_node_group", None))
        state["compositor"] = {}  # present from here on: undo knows to remove it
        state["compositor"] = compat.install_preview_compositor(
            scene, preview_group, encoding_group, view_layer)
        shading.type = "RENDERED"
        shading.use_compositor = "ALWAYS"
    else:
        shading.type = "RENDERED"
        shading.use_scene_world = True
        shading.use_compositor = "DISABLED"
        material = bpy.data.materials.get(shader.PREVIEW_MATERIAL) \
            or shader.depth_material(shader.PREVIEW_MATERIAL, encoded=True)
        _keep(state, scene.world)
        state["world"] = scene.world.name if scene.world else None
        scene.world = shader.black_world()
        if compat.override_honoured(scene.render.engine):
            override = view_layer.material_override
            _keep(state, override)
            state["override"] = override.name if override else None
            view_layer.material_override = material
        else:
            for obj in view_layer.objects:
                for slot in getattr(obj, "material_slots", ()):
                    if slot.link == "OBJECT":
                        _keep(state, slot.material)
            state["objects"] = []
            state["objects"] = shader.assign_per_object(view_layer, material)
    for node in _encoding_nodes(scene, state):
        graph.set_encoding(node, depth_range, encoding)


def _preview_group(encoding_group, scene, view_layer) -> bpy.types.NodeTree:
    """5.x: the compositor group the scene shows during the preview."""
    group = bpy.data.node_groups.get(PREVIEW_GROUP)
    if group is not None:
        bpy.data.node_groups.remove(group)
    group = bpy.data.node_groups.new(PREVIEW_GROUP, "CompositorNodeTree")
    group.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    layers = group.nodes.new("CompositorNodeRLayers")
    layers.scene, layers.layer = scene, view_layer.name
    encode_node = group.nodes.new("CompositorNodeGroup")
    encode_node.node_tree = encoding_group
    output = group.nodes.new("NodeGroupOutput")
    layers.location, encode_node.location, output.location = (-400, 0), (-100, 0), (150, 0)
    group.links.new(layers.outputs["Depth"], encode_node.inputs["Depth"])
    group.links.new(encode_node.outputs["Value"], output.inputs["Image"])
    return group


def _encoding_nodes(scene, state) -> list[bpy.types.Node]:
    if state["mode"] == COMPOSITOR:
        node = compat.preview_group_node(scene, bpy.data.node_groups.get(PREVIEW_GROUP),
                                         state.get("compositor", {}))
        return [node] if node is not None else []
    material = bpy.data.materials.get(shader.PREVIEW_MATERIAL)
    if material is None:
        return []
    return [n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeGroup"]


def _keep(state: dict, block: bpy.types.ID | None) -> None:
    """Give a datablock of the user's that the preview swaps out a fake user, so saving the
    file with the preview on does not drop it (Blender does not save unused datablocks)."""
    if block is None or block.use_fake_user:
        return
    block.use_fake_user = True
    state.setdefault("kept", []).append([type(block).__name__, block.name])


_COLLECTIONS = {"World": "worlds", "Material": "materials"}


def _release(state: dict) -> None:
    for kind, name in state.get("kept", []):
        collection = getattr(bpy.data, _COLLECTIONS.get(kind, "node_groups"))
        block = collection.get(name)
        if block is not None:
            block.use_fake_user = False


def _undo(scene: bpy.types.Scene, state: dict) -> None:
    """Put back everything `state` records, in reverse order of _apply."""
    _release(state)
    view_layer = scene.view_layers.get(state["view_layer"])
    if "objects" in state:
        shader.restore_per_object(state["objects"])
    if "override" in state and view_layer is not None:
        name = state["override"]
        view_layer.material_override = bpy.data.materials.get(name) if name else None
    if "world" in state:
        scene.world = bpy.data.worlds.get(state["world"]) if state["world"] else None
    if "compositor" in state:
        if state["compositor"]:
            compat.remove_preview_compositor(scene, state["compositor"])
        _remove_if_unused(bpy.data.node_groups, PREVIEW_GROUP)
    if "use_pass_z" in state and view_layer is not None:
        view_layer.use_pass_z = state["use_pass_z"]
    for key, value in state["view"].items():
        setattr(scene.view_settings, key, value)
    if scene.render.engine != state["engine"]:
        scene.render.engine = state["engine"]
    space = _find_space(state["space"])
    if space is not None:
        for key, value in state["space"]["shading"].items():
            if getattr(space.shading, key) != value:
                setattr(space.shading, key, value)
    _remove_if_unused(bpy.data.materials, shader.PREVIEW_MATERIAL)
    _remove_if_unused(bpy.data.worlds, shader.BLACK_WORLD)
    _remove_if_unused(bpy.data.node_groups, graph.COMPOSITOR_GROUP)
    _remove_if_unused(bpy.data.node_groups, graph.SHADER_GROUP)


def _remove_if_unused(collection, name: str) -> None:
    """Our own datablocks go when nothing uses them; a user who reused one keeps it."""
    block = collection.get(name)
    if block is not None and block.users == 0:
        collection.remove(block)


def _find_space(where: dict) -> bpy.types.SpaceView3D | None:
    screen = bpy.data.screens.get(where["screen"])
    if screen is None or where["area"] >= len(screen.areas):
        log.warning("the 3D View the depth preview ran in is gone; its shading stays as is")
        return None
    space = screen.areas[where["area"]].spaces.active
    return space if space.type == "VIEW_3D" else None
