"""The depth encoding as a node group, for the compositor and for materials.

"T2I Depth Encoding" (compositor) and "T2I Depth Encoding (Shader)" take Depth (planar Z in
metres), Near, Far and Inverse (1 = inverse depth, 0 = linear) and output the same value
`encode.encode_depth` computes: clamp((1/z - 1/far) / (1/near - 1/far)) or
clamp((far - z) / (far - near)). Users can open them and reuse them in their own trees.
"""

from __future__ import annotations

import itertools

import bpy

from ..t2i_core.depth_encoding import INVERSE, DepthRange
from . import compat

COMPOSITOR_GROUP = "T2I Depth Encoding"
SHADER_GROUP = "T2I Depth Encoding (Shader)"
_MARK = "t2i_encoding_graph"
_VERSION = 1


def encoding_group(kind: str) -> bpy.types.NodeTree:
    """The named group for `kind` ("COMPOSITOR" or "SHADER"), built on first use."""
    if kind == "COMPOSITOR":
        name, tree_type, math = COMPOSITOR_GROUP, "CompositorNodeTree", compat.COMPOSITOR_MATH_NODE
    else:
        name, tree_type, math = SHADER_GROUP, "ShaderNodeTree", "ShaderNodeMath"
    group = bpy.data.node_groups.get(name)
    if group is not None and group.bl_idname == tree_type and group.get(_MARK) == _VERSION:
        return group
    group = bpy.data.node_groups.new(name, tree_type)
    group[_MARK] = _VERSION
    _build(group, math)
    return group


def set_encoding(node: bpy.types.Node, depth_range: DepthRange, encoding: str) -> None:
    """Point a group node of the encoding group at a range and encoding."""
    node.inputs["Near"].default_value = depth_range.near
    node.inputs["Far"].default_value = depth_range.far
    node.inputs["Inverse"].default_value = 1.0 if encoding == INVERSE else 0.0


def _build(group: bpy.types.NodeTree, math_idname: str) -> None:
    interface = group.interface
    for socket_name, default in (("Depth", 10.0), ("Near", 1.0), ("Far", 20.0), ("Inverse", 1.0)):
        item = interface.new_socket(socket_name, in_out="INPUT", socket_type="NodeSocketFloat")
        item.default_value = default
    interface.new_socket("Value", in_out="OUTPUT", socket_type="NodeSocketFloat")
    nodes, links = group.nodes, group.links
    inputs = nodes.new("NodeGroupInput")
    inputs.location = (-900, 0)
    output = nodes.new("NodeGroupOutput")
    output.location = (900, 0)
    column = itertools.count(-700, 120)

    def math(operation: str, a, b, clamp: bool = False) -> bpy.types.NodeSocket:
        node = nodes.new(math_idname)
        node.operation, node.use_clamp = operation, clamp
        node.location = (next(column), 0)
        for socket, value in zip(node.inputs, (a, b), strict=False):
            if isinstance(value, float):
                socket.default_value = value
            else:
                links.new(value, socket)
        return node.outputs[0]

    depth, near, far, inverse = (inputs.outputs[n] for n in ("Depth", "Near", "Far", "Inverse"))
    inv_far = math("DIVIDE", 1.0, far)
    inverse_value = math("DIVIDE", math("SUBTRACT", math("DIVIDE", 1.0, depth), inv_far),
                         math("SUBTRACT", math("DIVIDE", 1.0, near), inv_far), clamp=True)
    linear_value = math("DIVIDE", math("SUBTRACT", far, depth), math("SUBTRACT", far, near),
                        clamp=True)
    blended = math("ADD", linear_value,
                   math("MULTIPLY", math("SUBTRACT", inverse_value, linear_value), inverse))
    links.new(blended, output.inputs["Value"])
