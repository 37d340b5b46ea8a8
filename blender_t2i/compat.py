"""Every Blender version difference the add-on depends on (4.2 LTS .. 5.x), in one place.

Nothing else in the add-on looks at `bpy.app.version`. See ../shared/facts/blender.md.
"""

from __future__ import annotations

import bpy

BLENDER_5 = bpy.app.version >= (5, 0, 0)

# The EEVEE engine id: each version rejects the other's.
EEVEE_ENGINE = "BLENDER_EEVEE" if BLENDER_5 else "BLENDER_EEVEE_NEXT"


def uses_group_compositor() -> bool:
    """5.x composites with a node group assigned to the scene; 4.x with `scene.node_tree`."""
    return BLENDER_5


def compositor_state(scene: bpy.types.Scene) -> dict:
    """What `restore_compositor` needs to put the user's compositor set-up back."""
    if BLENDER_5:
        return {"group": scene.compositing_node_group}
    return {"use_nodes": scene.use_nodes}


def restore_compositor(scene: bpy.types.Scene, state: dict) -> None:
    if BLENDER_5:
        scene.compositing_node_group = state["group"]
    else:
        scene.use_nodes = state["use_nodes"]


def capture_tree(scene: bpy.types.Scene, name: str) -> bpy.types.NodeTree:
    """A compositor tree to add capture nodes to.

    5.x: a fresh node group, swapped in for the user's (restore_compositor swaps it back).
    4.x: the scene's single tree; the caller adds its own nodes and removes exactly those.
    """
    if BLENDER_5:
        group = bpy.data.node_groups.new(name, "CompositorNodeTree")
        scene.compositing_node_group = group
        return group
    scene.use_nodes = True
    return scene.node_tree


def discard_capture_tree(tree: bpy.types.NodeTree, added_nodes: list[bpy.types.Node]) -> None:
    """Undo `capture_tree`: drop our group (5.x) or just the nodes we added (4.x)."""
    if BLENDER_5:
        bpy.data.node_groups.remove(tree)
        return
    for node in added_nodes:
        tree.nodes.remove(node)


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
