"""The result overlay in the scene's compositor: Image -> Scale (render size) -> Alpha Over,
inserted before the output node without touching the user's nodes. Version details (socket
names, output node kinds) come from compositor/compat.py.
"""

from __future__ import annotations

import bpy

from . import compat

OVERLAY_IMAGE = "T2I Overlay Image"
OVERLAY_SCALE = "T2I Overlay Scale"
OVERLAY_MIX = "T2I Overlay Mix"
OVERLAY_FRAME = "T2I Overlay"


def add_compositor_overlay(scene: bpy.types.Scene, image: bpy.types.Image,
                           opacity: float) -> bpy.types.Node:
    """Mix `image` over what reaches the compositor's output: Image -> Scale (render size) ->
    Alpha Over, inserted before the output node. The user's nodes stay as they are; only the
    output's incoming link moves onto our mix. Run again, it swaps the image and opacity."""
    tree = compat.scene_compositor(scene)
    mix = tree.nodes.get(OVERLAY_MIX)
    if mix is None:
        mix = _insert_overlay(tree)
    factor, _background, _foreground = compat.alpha_over_sockets(mix)
    factor.default_value = opacity
    tree.nodes[OVERLAY_IMAGE].image = image
    return mix


def _insert_overlay(tree: bpy.types.NodeTree) -> bpy.types.Node:
    output = compat.output_node(tree)
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
    compat.stretch_to_render_size(scale)
    _factor, background, foreground = compat.alpha_over_sockets(mix)
    tree.links.new(image_node.outputs["Image"], scale.inputs["Image"])
    tree.links.new(scale.outputs["Image"], foreground)
    if source is not None:
        tree.links.new(source, background)
    tree.links.new(mix.outputs["Image"], target)
    return mix


def remove_compositor_overlay(scene: bpy.types.Scene) -> bool:
    """Take our nodes out and reconnect what they mixed over to the output."""
    tree = compat.existing_scene_compositor(scene)
    if tree is None or OVERLAY_MIX not in tree.nodes:
        return False
    mix = tree.nodes[OVERLAY_MIX]
    _factor, background, _foreground = compat.alpha_over_sockets(mix)
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
