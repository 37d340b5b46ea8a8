"""The compositor set-up users add from the Compositor: depth encoding and the result overlay.

Adds to the scene's compositor, leaving every existing node and link as it was:
  Render Layers.Depth -> "T2I Depth" (the add-on's encoding group, set to the current range)
  -> "T2I Depth Viewer", ready to view or to wire into a File Output;
  and the result overlay: the "T2I Result" image mixed over what reaches the output.
Running it again updates those nodes instead of adding more.
"""

from __future__ import annotations

import bpy

from ..t2i_core.depth_encoding import DepthRange
from . import compat, graph, overlay

DEPTH_NODE = "T2I Depth"
VIEWER_NODE = "T2I Depth Viewer"
LAYERS_NODE = "T2I Render Layers"
RESULT_IMAGE = "T2I Result"


def add_t2i_nodes(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer,
                  depth_range: DepthRange, encoding: str, opacity: float) -> bpy.types.Node:
    """Add (or update) the depth encoding and result overlay nodes; returns the depth node."""
    tree = compat.scene_compositor(scene)
    view_layer.use_pass_z = True
    layers = _render_layers(tree, scene, view_layer)
    depth = tree.nodes.get(DEPTH_NODE)
    if depth is None:
        depth = tree.nodes.new("CompositorNodeGroup")
        depth.name = depth.label = DEPTH_NODE
        depth.location = (layers.location.x + 300, layers.location.y - 400)
    depth.node_tree = graph.encoding_group("COMPOSITOR")
    graph.set_encoding(depth, depth_range, encoding)
    if not depth.inputs["Depth"].is_linked:
        tree.links.new(layers.outputs["Depth"], depth.inputs["Depth"])
    viewer = tree.nodes.get(VIEWER_NODE)
    if viewer is None:
        viewer = tree.nodes.new("CompositorNodeViewer")
        viewer.name = viewer.label = VIEWER_NODE
        viewer.location = (depth.location.x + 250, depth.location.y)
        tree.links.new(depth.outputs["Value"], viewer.inputs[0])
    overlay.add_compositor_overlay(scene, bpy.data.images.get(RESULT_IMAGE), opacity)
    return depth


def _render_layers(tree: bpy.types.NodeTree, scene: bpy.types.Scene,
                   view_layer: bpy.types.ViewLayer) -> bpy.types.Node:
    """The user's Render Layers node for this view layer, or one of ours."""
    for node in tree.nodes:
        if (node.bl_idname == "CompositorNodeRLayers" and node.scene in (None, scene)
                and node.layer == view_layer.name):
            return node
    layers = tree.nodes.get(LAYERS_NODE) or tree.nodes.new("CompositorNodeRLayers")
    layers.name = layers.label = LAYERS_NODE
    layers.scene, layers.layer = scene, view_layer.name
    layers.location = (-600, -400)
    return layers
