"""Version differences for the result outputs (compositor overlay), 4.2 LTS .. 5.x.

Kept apart from compat.py while another branch changes that module; the lead merges the two.
4.2-4.5: `scene.node_tree` with a Composite node; Alpha Over's inputs are Fac/Image/Image and
Scale has `space`/`frame_method` properties. 5.x: `scene.compositing_node_group` ending in a
Group Output; Alpha Over's inputs are Factor/Background/Foreground and Scale's options are menu
inputs (see ../shared/facts/blender.md).
"""

from __future__ import annotations

import bpy

BLENDER_5 = bpy.app.version >= (5, 0, 0)

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


OVERLAY_IMAGE = "T2I Overlay Image"
OVERLAY_SCALE = "T2I Overlay Scale"
OVERLAY_MIX = "T2I Overlay Mix"
OVERLAY_FRAME = "T2I Overlay"


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
    if _output_node(tree) is None:
        layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None) \
            or tree.nodes.new("CompositorNodeRLayers")
        output = tree.nodes.new("CompositorNodeComposite")
        output.location = (400, 0)
        tree.links.new(layers.outputs["Image"], output.inputs["Image"])
    return tree


def _output_node(tree: bpy.types.NodeTree) -> bpy.types.Node | None:
    kind = "NodeGroupOutput" if BLENDER_5 else "CompositorNodeComposite"
    outputs = [node for node in tree.nodes if node.bl_idname == kind]
    active = [node for node in outputs if getattr(node, "is_active_output", False)]
    return (active or outputs or [None])[0]


def _alpha_over_sockets(node: bpy.types.Node) -> tuple:
    """(factor, background, foreground) inputs of an Alpha Over node."""
    if BLENDER_5:
        return node.inputs["Factor"], node.inputs["Background"], node.inputs["Foreground"]
    return node.inputs[0], node.inputs[1], node.inputs[2]


def _stretch_to_render_size(node: bpy.types.Node) -> None:
    if BLENDER_5:
        node.inputs["Type"].default_value = "Render Size"
        node.inputs["Frame Type"].default_value = "Stretch"
    else:
        node.space = "RENDER_SIZE"
        node.frame_method = "STRETCH"


def add_compositor_overlay(scene: bpy.types.Scene, image: bpy.types.Image,
                           opacity: float) -> bpy.types.Node:
    """Mix `image` over what reaches the compositor's output: Image -> Scale (render size) ->
    Alpha Over, inserted before the output node. The user's nodes stay as they are; only the
    output's incoming link moves onto our mix. Run again, it swaps the image and opacity."""
    tree = scene_compositor(scene)
    mix = tree.nodes.get(OVERLAY_MIX)
    if mix is None:
        mix = _insert_overlay(tree)
    factor, _background, _foreground = _alpha_over_sockets(mix)
    factor.default_value = opacity
    tree.nodes[OVERLAY_IMAGE].image = image
    return mix


def _insert_overlay(tree: bpy.types.NodeTree) -> bpy.types.Node:
    output = _output_node(tree)
    if output is None:
        raise RuntimeError("the compositor has no output node to overlay")
    target = output.inputs[0]
    source = target.links[0].from_socket if target.is_linked else None
    frame = tree.nodes.new("NodeFrame")
    frame.name = frame.label = OVERLAY_FRAME
    image_node = tree.nodes.new("CompositorNodeImage")
    scale = tree.nodes.new("CompositorNodeScale")
    mix = tree.nodes.new("CompositorNodeAlphaOver")
    for node, name, offset in ((image_node, OVERLAY_IMAGE, (-500, -250)),
                               (scale, OVERLAY_SCALE, (-300, -250)),
                               (mix, OVERLAY_MIX, (-150, -80))):
        node.name = node.label = name
        node.location = (output.location.x + offset[0], output.location.y + offset[1])
        node.parent = frame
    _stretch_to_render_size(scale)
    _factor, background, foreground = _alpha_over_sockets(mix)
    tree.links.new(image_node.outputs["Image"], scale.inputs["Image"])
    tree.links.new(scale.outputs["Image"], foreground)
    if source is not None:
        tree.links.new(source, background)
    tree.links.new(mix.outputs["Image"], target)
    return mix


def remove_compositor_overlay(scene: bpy.types.Scene) -> bool:
    """Take our nodes out and reconnect what they mixed over to the output."""
    tree = scene.compositing_node_group if BLENDER_5 else scene.node_tree
    if tree is None or OVERLAY_MIX not in tree.nodes:
        return False
    mix = tree.nodes[OVERLAY_MIX]
    _factor, background, _foreground = _alpha_over_sockets(mix)
    source = background.links[0].from_socket if background.is_linked else None
    targets = [link.to_socket for link in mix.outputs["Image"].links]
    for name in (OVERLAY_MIX, OVERLAY_SCALE, OVERLAY_IMAGE, OVERLAY_FRAME):
        node = tree.nodes.get(name)
        if node is not None:
            tree.nodes.remove(node)
    if source is not None:
        for target in targets:
            tree.links.new(source, target)
    return True
