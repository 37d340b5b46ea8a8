"""A capture leaves the user's scene exactly as it was: engine, resolution, passes, compositor
tree (nodes, links, mute), view transform, world, override and materials, also when the
render fails half-way."""

from __future__ import annotations

import bpy
import pytest

from devtools.scenes import add_box, add_camera, add_plane

METHODS = [("COMPOSITOR", "WORKBENCH"), ("COMPOSITOR", "CYCLES"), ("SHADER", "CYCLES")]


def _tree_state(tree) -> dict | None:
    if tree is None:
        return None
    return {
        "nodes": sorted((n.name, n.bl_idname, n.mute, tuple(n.location)) for n in tree.nodes),
        "links": sorted((lk.from_node.name, lk.from_socket.identifier, lk.to_node.name,
                         lk.to_socket.identifier) for lk in tree.links),
    }


def snapshot(scene) -> dict:
    """Everything a capture touches, in comparable form."""
    render, view_layer = scene.render, scene.view_layers[0]
    compositor = getattr(scene, "compositing_node_group", None)
    return {
        "render": {a: getattr(render, a) for a in (
            "engine", "resolution_x", "resolution_y", "resolution_percentage", "use_border",
            "pixel_aspect_x", "use_compositing", "use_sequencer", "use_motion_blur",
            "film_transparent", "filter_size", "filepath")},
        "view": [getattr(scene.view_settings, a) for a in ("view_transform", "look", "exposure")],
        "world": scene.world.name if scene.world else None,
        "use_pass_z": view_layer.use_pass_z,
        "override": view_layer.material_override.name if view_layer.material_override else None,
        "cycles": [getattr(scene.cycles, a) for a in (
            "samples", "use_denoising", "filter_width", "pixel_filter_type", "max_bounces")],
        "eevee": scene.eevee.taa_render_samples,
        "display": [scene.display.render_aa, scene.display.shading.light,
                    scene.display.shading.show_shadows, scene.display.shading.color_type],
        "slots": {o.name: [(s.link, s.material.name if s.material else None)
                           for s in o.material_slots] for o in scene.objects},
        "mesh_materials": {m.name: [x.name if x else None for x in m.materials]
                           for m in bpy.data.meshes},
        "use_nodes": scene.use_nodes if not hasattr(scene, "compositing_node_group") else None,
        "compositor": compositor.name if compositor else None,
        "trees": {g.name: _tree_state(g) for g in bpy.data.node_groups},
        "scene_tree": _tree_state(getattr(scene, "node_tree", None)),
        "datablocks": [sorted(x.name for x in coll) for coll in (
            bpy.data.node_groups, bpy.data.materials, bpy.data.worlds, bpy.data.images,
            bpy.data.objects, bpy.data.meshes)],
    }


@pytest.fixture
def user_scene(addon, scene, tmp_path):
    """A scene the user has set up: Cycles with their own settings, a world, materials (one
    object without any), AgX, and a compositor with a File Output node of their own."""
    add_camera(scene, location=(0.0, 0.0, 10.0))
    add_plane(scene, size=40.0)
    box = add_box(scene, 2.0, (0.0, 0.0, 1.0))
    material = bpy.data.materials.new("Paint")
    box.data.materials.append(material)
    scene.world = bpy.data.worlds.new("Sky")
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 640, 360, 50
    render.use_border = True
    scene.cycles.samples, scene.cycles.filter_width = 64, 2.0
    scene.view_settings.view_transform = "AgX"
    scene.view_layers[0].use_pass_z = False
    user_output = tmp_path / "user_output"
    _build_user_compositor(addon, scene, str(user_output))
    return scene, user_output


def _build_user_compositor(addon, scene, folder: str) -> None:
    if addon.compositor.compat.uses_group_compositor():
        tree = bpy.data.node_groups.new("User Compositing", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        out = tree.nodes.new("NodeGroupOutput")
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        out = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
    layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None) \
        or tree.nodes.new("CompositorNodeRLayers")
    blur = tree.nodes.new("CompositorNodeBlur")
    tree.links.new(layers.outputs["Image"], blur.inputs["Image"])
    tree.links.new(blur.outputs["Image"], out.inputs[0])
    _node, socket = addon.compositor.compat.new_exr_file_output(tree, folder, "user")
    tree.links.new(layers.outputs["Image"], socket)


@pytest.mark.parametrize(("path", "engine"), METHODS)
def test_capture_restores_the_scene(addon, user_scene, path, engine):
    scene, user_output = user_scene
    before = snapshot(scene)
    addon.compositor.capture.capture_depth(scene, 64, 48, path=path, engine=engine)
    assert snapshot(scene) == before
    assert not user_output.exists()  # the user's File Output node did not run


@pytest.mark.parametrize(("path", "engine"), METHODS)
def test_capture_restores_the_scene_when_the_render_fails(addon, user_scene, monkeypatch,
                                                          path, engine):
    scene, _ = user_scene
    before = snapshot(scene)

    def render_fails(*_args):
        assert snapshot(scene) != before  # the capture set-up really was in place
        raise RuntimeError("render failed")

    monkeypatch.setattr(addon.compositor.capture, "_render_still", render_fails)
    with pytest.raises(RuntimeError, match="render failed"):
        addon.compositor.capture.capture_depth(scene, 64, 48, path=path, engine=engine)
    assert snapshot(scene) == before


def test_eevee_shader_capture_restores_per_object_materials(addon, user_scene):
    """EEVEE 4.x ignores the override: materials go on per object, and come off again."""
    scene, _ = user_scene
    scene.render.engine = addon.compositor.compat.EEVEE_ENGINE
    before = snapshot(scene)
    addon.compositor.capture.capture_depth(scene, 32, 24, path="SHADER", engine="EEVEE")
    assert snapshot(scene) == before


def test_capture_from_a_scene_without_compositor_leaves_it_without(addon, scene):
    add_camera(scene)
    add_plane(scene)
    before = snapshot(scene)
    addon.compositor.capture.capture_depth(scene, 32, 24)
    after = snapshot(scene)
    # 4.x builds its default tree the first time compositing is switched on; it stays unused.
    after["scene_tree"] = before["scene_tree"]
    assert after == before
