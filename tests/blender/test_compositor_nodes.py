"""Compositor node set-up and "generate after render", on both compositor APIs."""

from __future__ import annotations

import bpy
import pytest

from devtools.scenes import add_camera, add_plane


def _tree(addon, scene):
    return addon.compositor.compat.scene_compositor(scene)


def _snapshot(tree):
    nodes = {node.name: (node.bl_idname, tuple(node.location), node.mute) for node in tree.nodes}
    links = {(link.from_node.name, link.from_socket.identifier, link.to_node.name,
              link.to_socket.identifier) for link in tree.links}
    return nodes, links


def _users_compositor(addon, scene):
    """A user's tree: Render Layers -> Blur -> output, plus an unconnected Invert."""
    tree = _tree(addon, scene)
    output = addon.compositor.compat.output_node(tree)
    layers = output.inputs[0].links[0].from_node
    blur = tree.nodes.new("CompositorNodeBlur")
    blur.name = "User Blur"
    tree.links.new(layers.outputs["Image"], blur.inputs[0])
    tree.links.new(blur.outputs[0], output.inputs[0])
    tree.nodes.new("CompositorNodeInvert").name = "User Invert"
    return tree, output


def test_adds_depth_encoding_and_result_overlay_leaving_the_users_nodes(addon, scene):
    add_camera(scene)
    add_plane(scene)
    tree, output = _users_compositor(addon, scene)
    nodes_before, links_before = _snapshot(tree)
    into_output = next(link for link in links_before if link[2] == output.name)

    assert bpy.ops.t2i.add_compositor_nodes() == {"FINISHED"}
    assert bpy.ops.t2i.add_compositor_nodes() == {"FINISHED"}  # again: updates, adds nothing

    nodes_after, links_after = _snapshot(tree)
    assert {name: nodes_after[name] for name in nodes_before} == nodes_before
    assert links_before - {into_output} <= links_after
    added = set(nodes_after) - set(nodes_before)
    assert {"T2I Depth", "T2I Depth Viewer", "T2I Overlay Mix", "T2I Overlay Image"} <= added
    assert len([n for n in tree.nodes if n.name.startswith("T2I Depth")]) == 2
    # the user's graded image still reaches the output, now under the overlay
    mix = tree.nodes["T2I Overlay Mix"]
    assert output.inputs[0].links[0].from_node == mix
    _factor, background, _foreground = addon.compositor.compat.alpha_over_sockets(mix)
    assert "User Blur" in {link.from_node.name for link in background.links}
    depth = tree.nodes["T2I Depth"]
    assert depth.inputs["Depth"].links[0].from_socket.name == "Depth"
    # the camera sees a flat floor 10 m away: the auto range straddles it (it encodes mid grey)
    near, far = depth.inputs["Near"].default_value, depth.inputs["Far"].default_value
    assert (near, far) == pytest.approx((9.0, 11.4), rel=0.01)
    assert bpy.context.view_layer.use_pass_z


def test_the_depth_node_uses_the_range_policy_the_model_gets(addon, scene):
    add_camera(scene)
    add_plane(scene)
    plane = bpy.data.objects["Plane"]
    plane.rotation_euler.x = 0.6  # a slope: the map has a range of values
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    scene.t2i.depth.range_policy = "CLIP"
    scene.camera.data.clip_start, scene.camera.data.clip_end = 5.0, 20.0
    assert bpy.ops.t2i.add_compositor_nodes() == {"FINISHED"}
    assert "T2I Depth Encoding" in bpy.data.node_groups  # a group the user can reuse
    node = _tree(addon, scene).nodes["T2I Depth"]
    assert (node.inputs["Near"].default_value, node.inputs["Far"].default_value) == \
        pytest.approx((5.0, 20.0))


def test_generate_after_render_runs_after_a_render_but_not_after_our_captures(
        addon, scene, backend):
    add_camera(scene)
    add_plane(scene)
    settings = scene.t2i
    settings.model_preset = "tiny-sd15-depth"
    settings.use_render_size = False
    settings.width, settings.height, settings.steps = 64, 64, 1
    scene.render.engine = "BLENDER_WORKBENCH"
    if "T2I Result" in bpy.data.images:
        bpy.data.images.remove(bpy.data.images["T2I Result"])

    settings.generate_after_render = True
    assert bpy.ops.t2i.capture_depth() == {"FINISHED"}  # renders, but is ours
    assert "T2I Result" not in bpy.data.images
    bpy.ops.render.render()
    assert "T2I Result" in bpy.data.images
    assert tuple(bpy.data.images["T2I Result"].size) == (64, 64)

    bpy.data.images.remove(bpy.data.images["T2I Result"])
    settings.generate_after_render = False
    bpy.ops.render.render()
    assert "T2I Result" not in bpy.data.images
