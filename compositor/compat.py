"""Every Blender version difference the add-on depends on (4.2 LTS .. 5.x), in one place.

Nothing else in the add-on looks at `bpy.app.version`. See ../shared/facts/blender.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

if TYPE_CHECKING:
    from ..compositor.scene_state import Restorer

BLENDER_5 = bpy.app.version >= (5, 0, 0)

# The EEVEE engine id: each version rejects the other's.
EEVEE_ENGINE = "BLENDER_EEVEE" if BLENDER_5 else "BLENDER_EEVEE_NEXT"
ENGINE_IDS = {"WORKBENCH": "BLENDER_WORKBENCH", "CYCLES": "CYCLES", "EEVEE": EEVEE_ENGINE}

# 5.x compositor trees use the shader Math node; 4.x has its own.
COMPOSITOR_MATH_NODE = "ShaderNodeMath" if BLENDER_5 else "CompositorNodeMath"

# Render passes reach the viewport compositor with EEVEE from 4.5 on (read in the 4.5 source;
# unconfirmed for 4.2, so 4.2-4.4 use the shader preview).
_VIEWPORT_PASSES = bpy.app.version >= (4, 5, 0)


def is_eevee(engine: str) -> bool:
    return engine in ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT")


def override_honoured(engine: str) -> bool:
    """Whether `view_layer.material_override` reaches this engine's render (EEVEE 4.x ignores
    it: materials must be assigned per object)."""
    return BLENDER_5 or not is_eevee(engine)


def viewport_compositor_has_passes(engine: str) -> bool:
    """Whether the Render Layers Depth pass reaches the viewport compositor."""
    return _VIEWPORT_PASSES and is_eevee(engine)


def uses_group_compositor() -> bool:
    """5.x composites with a node group assigned to the scene; 4.x with `scene.node_tree`."""
    return BLENDER_5


# --- final-render capture ------------------------------------------------------------------

def capture_tree(scene: bpy.types.Scene, name: str, restorer: Restorer) -> bpy.types.NodeTree:
    """A compositor tree for capture nodes, with the user's own compositing out of the way.

    5.x: a fresh node group swapped in for the user's (theirs is not touched at all).
    4.x: the scene's single tree; the user's nodes are muted so their outputs (File Output
    nodes writing files, other scenes' Render Layers) do not run, and unmuted afterwards.
    Nodes the caller adds must be removed through `restorer` too (graph.add_node does this).
    """
    if BLENDER_5:
        group = bpy.data.node_groups.new(name, "CompositorNodeTree")
        restorer.on_restore(lambda: bpy.data.node_groups.remove(group))
        restorer.set(scene, "compositing_node_group", group)
        return group
    restorer.set(scene, "use_nodes", True)
    tree = scene.node_tree
    for node in tree.nodes:
        if node.bl_idname not in ("NodeFrame", "NodeReroute"):
            restorer.set(node, "mute", True)
    return tree


def new_exr_file_output(tree: bpy.types.NodeTree, directory: str, name: str) -> tuple:
    """A File Output node writing one 32-bit float EXR; returns (node, input socket).

    4.x writes `<directory>/<name>_<frame:04>.exr`; 5.x writes `<directory>/<name><item>.exr`
    for a still. Callers glob `<name>*.exr` in `directory`.
    """
    node = tree.nodes.new("CompositorNodeOutputFile")
    if BLENDER_5:
        node.format.media_type = "IMAGE"  # must precede file_format (else TypeError)
        node.format.file_format = "OPEN_EXR"
        node.format.color_depth = "32"
        node.directory = directory
        node.file_name = name
        node.file_output_items.new("FLOAT", "Depth")
        socket = node.inputs["Depth"]
    else:
        node.format.file_format = "OPEN_EXR"
        node.format.color_depth = "32"
        node.base_path = directory
        node.file_slots[0].path = name + "_"
        socket = node.inputs[0]
    return node, socket


def vectors_through_file_output() -> bool:
    """How depth and the 4-component vector pass leave a render. 5.x: a File Output node with
    a 4-dimension vector item (its default of 3 drops W; its multilayer render output is a
    multi-part EXR, which t2i_core/exr.py does not read). 4.x: the File Output node drops W,
    so the render output itself is saved as a single-part multilayer EXR (write_still)."""
    return BLENDER_5


def new_motion_file_output(tree: bpy.types.NodeTree, directory: str, name: str) -> tuple:
    """5.x: a File Output node writing `<directory>/<name>Depth.exr` (depth in R) and
    `<name>Vector.exr` (channels X, Y, Z, W); returns (node, depth socket, vector socket)."""
    node = tree.nodes.new("CompositorNodeOutputFile")
    node.format.media_type = "IMAGE"  # must precede file_format (else TypeError)
    node.format.file_format = "OPEN_EXR"
    node.format.color_depth = "32"
    node.directory = directory
    node.file_name = name  # a still writes no frame number: the name must differ per frame
    node.file_output_items.new("FLOAT", "Depth")
    node.file_output_items.new("VECTOR", "Vector").vector_socket_dimensions = 4
    return node, node.inputs["Depth"], node.inputs["Vector"]


def eevee_needs_warm_up() -> bool:
    """EEVEE 5.0's first render in a process writes all-zero vectors when the camera moves
    (shared/facts/motion-vectors.md); a tiny render first fixes it. 4.2 renders them right."""
    return BLENDER_5


# --- viewport preview (state kept as plain data on the scene, so it survives save/reload) ---

def install_preview_compositor(scene: bpy.types.Scene, preview_group: bpy.types.NodeTree,
                               encoding_group: bpy.types.NodeTree,
                               view_layer: bpy.types.ViewLayer) -> dict:
    """Make the scene composite Depth -> encoding group. Returns what `remove_preview_compositor`
    needs to put the user's compositor back.

    5.x: `preview_group` (already holding the graph) replaces the scene's compositor group.
    4.x: the graph's nodes go into the user's tree and feed its Composite node; the user's own
    link into the Composite node is recorded and put back.
    """
    if BLENDER_5:
        user_group = scene.compositing_node_group
        scene.compositing_node_group = preview_group
        return {"group": user_group.name if user_group else None}
    state = {"use_nodes": scene.use_nodes, "nodes": [], "composite_from": None}
    scene.use_nodes = True
    tree = scene.node_tree
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene, layers.layer = scene, view_layer.name
    group_node = tree.nodes.new("CompositorNodeGroup")
    group_node.node_tree = encoding_group
    composite = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
    added = [layers, group_node]
    if composite is None:
        composite = tree.nodes.new("CompositorNodeComposite")
        added.append(composite)
    else:
        for link in composite.inputs["Image"].links:
            state["composite_from"] = [link.from_node.name, link.from_socket.identifier]
    for node, x in zip(added, (-600, -300, 0), strict=False):
        node.location = (x, -600)
        node.label = "T2I Depth Preview"
    tree.links.new(layers.outputs["Depth"], group_node.inputs["Depth"])
    tree.links.new(group_node.outputs[0], composite.inputs["Image"])
    state["nodes"] = [node.name for node in added]
    state["composite"] = composite.name
    return state


def preview_group_node(scene: bpy.types.Scene, preview_group: bpy.types.NodeTree | None,
                       state: dict) -> bpy.types.Node | None:
    """The group node running the encoding in the preview compositor (to set near/far on)."""
    tree = preview_group if BLENDER_5 else scene.node_tree
    if tree is None:
        return None
    names = set(state.get("nodes", [])) if not BLENDER_5 else None
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeGroup" and (names is None or node.name in names):
            return node
    return None


def remove_preview_compositor(scene: bpy.types.Scene, state: dict) -> None:
    if BLENDER_5:
        name = state.get("group")
        scene.compositing_node_group = bpy.data.node_groups.get(name) if name else None
        return
    tree = scene.node_tree
    if tree is not None:
        for name in state.get("nodes", []):
            node = tree.nodes.get(name)
            if node is not None:
                tree.nodes.remove(node)
        source = state.get("composite_from")
        composite = tree.nodes.get(state.get("composite", ""))
        if source and composite is not None and source[0] in tree.nodes:
            from_node = tree.nodes[source[0]]
            socket = next((s for s in from_node.outputs if s.identifier == source[1]), None)
            if socket is not None:
                tree.links.new(socket, composite.inputs["Image"])
    scene.use_nodes = state.get("use_nodes", False)


# --- result outputs: paths, materials, the scene compositor's output ---

# Path properties that accept "//" must say so from 4.5 on (else a warning on every set);
# 4.2 has no such option and refuses it.
BLEND_RELATIVE_PATH: set[str] = (
    {"PATH_SUPPORTS_BLEND_RELATIVE"}
    if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties else set())

def use_material_nodes(material: bpy.types.Material) -> None:
    """4.x materials can have nodes switched off; 5.x always uses them (`use_nodes` is
    deprecated there and warns)."""
    if not BLENDER_5:
        material.use_nodes = True


def scene_compositor(scene: bpy.types.Scene) -> bpy.types.NodeTree:
    """The scene's compositor tree, created with Render Layers -> output when there is none."""
    if BLENDER_5:
        tree = scene.compositing_node_group
        if tree is None:
            tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            layers = tree.nodes.new("CompositorNodeRLayers")
            output = tree.nodes.new("NodeGroupOutput")
            output.location = (400, 0)
            tree.links.new(layers.outputs["Image"], output.inputs[0])
            scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True  # creates Render Layers -> Composite in an empty tree
    tree = scene.node_tree
    if output_node(tree) is None:
        layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None) \
            or tree.nodes.new("CompositorNodeRLayers")
        output = tree.nodes.new("CompositorNodeComposite")
        output.location = (400, 0)
        tree.links.new(layers.outputs["Image"], output.inputs["Image"])
    return tree


def output_node(tree: bpy.types.NodeTree) -> bpy.types.Node | None:
    kind = "NodeGroupOutput" if BLENDER_5 else "CompositorNodeComposite"
    outputs = [node for node in tree.nodes if node.bl_idname == kind]
    active = [node for node in outputs if getattr(node, "is_active_output", False)]
    return (active or outputs or [None])[0]


def alpha_over_sockets(node: bpy.types.Node) -> tuple:
    """(factor, background, foreground) inputs of an Alpha Over node."""
    if BLENDER_5:
        return node.inputs["Factor"], node.inputs["Background"], node.inputs["Foreground"]
    return node.inputs[0], node.inputs[1], node.inputs[2]


def stretch_to_render_size(node: bpy.types.Node) -> None:
    if BLENDER_5:
        node.inputs["Type"].default_value = "Render Size"
        node.inputs["Frame Type"].default_value = "Stretch"
    else:
        node.space = "RENDER_SIZE"
        node.frame_method = "STRETCH"


def existing_scene_compositor(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    """The scene's compositor tree if it has one (creates nothing)."""
    return scene.compositing_node_group if BLENDER_5 else scene.node_tree
