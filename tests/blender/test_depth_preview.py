"""The viewport depth preview, at the data level (the viewport never draws headless): what it
switches on for each engine, and that toggling off puts everything back."""

from __future__ import annotations

import json

import bpy
import pytest


@pytest.fixture
def startup(addon):
    """Blender's default startup (camera, cube, light, screens with 3D Views)."""
    bpy.ops.wm.read_homefile()
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    return scene


def _area():
    return next(a for a in bpy.context.window.screen.areas if a.type == "VIEW_3D")


def _toggle(area=None):
    with bpy.context.temp_override(area=area or _area()):
        return bpy.ops.t2i.depth_preview()


def _tree_state(tree) -> dict | None:
    if tree is None:
        return None
    return {
        "nodes": sorted((n.name, n.bl_idname, n.mute) for n in tree.nodes),
        "links": sorted((lk.from_node.name, lk.from_socket.identifier, lk.to_node.name,
                         lk.to_socket.identifier) for lk in tree.links),
    }


def snapshot(scene, area) -> dict:
    shading = area.spaces.active.shading
    view_layer = scene.view_layers[0]
    compositor = getattr(scene, "compositing_node_group", None)
    return {
        "shading": [shading.type, shading.use_compositor, shading.use_scene_world],
        "view": [getattr(scene.view_settings, a) for a in (
            "view_transform", "look", "exposure", "gamma", "use_curve_mapping")],
        "engine": scene.render.engine,
        "world": scene.world.name if scene.world else None,
        "use_pass_z": view_layer.use_pass_z,
        "override": view_layer.material_override.name if view_layer.material_override else None,
        "slots": {o.name: [(s.link, s.material.name if s.material else None)
                           for s in o.material_slots] for o in scene.objects},
        "mesh_materials": {m.name: [x.name if x else None for x in m.materials]
                           for m in bpy.data.meshes},
        "compositor": compositor.name if compositor else None,
        "use_nodes": None if hasattr(scene, "compositing_node_group") else scene.use_nodes,
        "scene_tree": _tree_state(getattr(scene, "node_tree", None)),
        "trees": {g.name: _tree_state(g) for g in bpy.data.node_groups},
        "datablocks": [sorted(x.name for x in coll) for coll in (
            bpy.data.node_groups, bpy.data.materials, bpy.data.worlds)],
        "state": "t2i_depth_preview" in scene,
    }


def _encoding_inputs(node) -> tuple[float, float, float]:
    return tuple(node.inputs[n].default_value for n in ("Near", "Far", "Inverse"))


def test_eevee_preview_uses_the_viewport_compositor_where_passes_reach_it(addon, startup):
    scene, area = startup, _area()
    before = snapshot(scene, area)
    assert _toggle(area) == {"FINISHED"}
    state = json.loads(scene["t2i_depth_preview"])
    shading = area.spaces.active.shading
    assert scene.view_settings.view_transform == "Raw"  # the screen shows the encoded values
    if addon.compositor.compat.viewport_compositor_has_passes(scene.render.engine):
        assert state["mode"] == "COMPOSITOR"
        assert (shading.type, shading.use_compositor) == ("RENDERED", "ALWAYS")
        assert scene.view_layers[0].use_pass_z
        group = scene.compositing_node_group if addon.compositor.compat.BLENDER_5 \
            else scene.node_tree
        node = next(n for n in group.nodes if n.bl_idname == "CompositorNodeGroup")
        assert node.node_tree.name == "T2I Depth Encoding"
    else:  # EEVEE 4.2-4.4: shader preview, per object (EEVEE ignores the override there)
        assert state["mode"] == "SHADER" and shading.type == "RENDERED"
        assert scene.objects["Cube"].material_slots[0].material.name == "T2I Depth Preview"
        node = next(n for n in bpy.data.materials["T2I Depth Preview"].node_tree.nodes
                    if n.bl_idname == "ShaderNodeGroup")
    near, far, inverse = _encoding_inputs(node)
    assert 0 < near < far < 100 and inverse == 1.0  # the auto range of what the camera sees
    assert _toggle(area) == {"FINISHED"}
    assert _without_default_tree(snapshot(scene, area), before) == before


def _without_default_tree(after: dict, before: dict) -> dict:
    """4.x creates its default compositor tree (Render Layers -> Composite) the first time
    compositing is switched on, and offers no way to delete it again: it stays, unused."""
    if before["scene_tree"] is None and before["use_nodes"] is False:
        after = {**after, "scene_tree": None}
    return after


def test_cycles_preview_shows_the_depth_material_through_the_override(startup):
    scene, area = startup, _area()
    scene.render.engine = "CYCLES"
    scene.t2i.depth.range_policy, scene.t2i.depth.encoding = "MANUAL", "LINEAR"
    scene.t2i.depth.near, scene.t2i.depth.far = 2.0, 30.0
    before = snapshot(scene, area)
    _toggle(area)
    material = scene.view_layers[0].material_override
    assert material.name == "T2I Depth Preview"
    assert area.spaces.active.shading.type == "RENDERED"
    assert scene.world.name == "T2I Depth Background"
    node = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeGroup")
    assert _encoding_inputs(node) == pytest.approx((2.0, 30.0, 0.0))
    _toggle(area)
    assert _without_default_tree(snapshot(scene, area), before) == before


def test_workbench_preview_runs_on_eevee_while_on(addon, startup):
    """Workbench draws no materials and gives the viewport compositor no passes."""
    scene, area = startup, _area()
    scene.render.engine = "BLENDER_WORKBENCH"
    before = snapshot(scene, area)
    _toggle(area)
    compat = addon.compositor.compat
    assert scene.render.engine == compat.EEVEE_ENGINE
    assert area.spaces.active.shading.type == "RENDERED"
    mode = json.loads(scene["t2i_depth_preview"])["mode"]
    assert mode == ("COMPOSITOR" if compat.viewport_compositor_has_passes(compat.EEVEE_ENGINE)
                    else "SHADER")
    _toggle(area)
    assert _without_default_tree(snapshot(scene, area), before) == before


def test_the_compositor_preview_puts_the_users_own_compositor_back(addon, startup, monkeypatch):
    """Forced on every version, so 4.x's in-tree variant runs here too."""
    scene, area = startup, _area()
    compat = addon.compositor.compat
    monkeypatch.setattr(addon.compositor.preview, "preview_mode", lambda _scene: "COMPOSITOR")
    if compat.BLENDER_5:
        tree = bpy.data.node_groups.new("User Compositing", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        out = tree.nodes.new("NodeGroupOutput")
        layers = tree.nodes.new("CompositorNodeRLayers")
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        out = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
        layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    blur = tree.nodes.new("CompositorNodeBlur")
    tree.links.new(layers.outputs["Image"], blur.inputs["Image"])
    tree.links.new(blur.outputs["Image"], out.inputs[0])
    before = snapshot(scene, area)
    _toggle(area)
    if compat.BLENDER_5:
        assert scene.compositing_node_group.name == "T2I Depth Preview"
        assert _tree_state(tree) == before["trees"]["User Compositing"]  # untouched
    else:
        composite_source = out.inputs["Image"].links[0].from_node
        assert composite_source.bl_idname == "CompositorNodeGroup"
    _toggle(area)
    assert snapshot(scene, area) == before


def test_the_preview_survives_save_and_reload_and_still_restores(startup, tmp_path):
    startup.render.engine = "CYCLES"
    startup.view_layers[0].material_override = bpy.data.materials.new("User Override")
    path = str(tmp_path / "preview.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)  # drops the startup's unused datablocks
    bpy.ops.wm.open_mainfile(filepath=path)
    before = snapshot(bpy.context.scene, _area())
    _toggle()
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    scene = bpy.context.scene
    assert scene.view_layers[0].material_override.name == "T2I Depth Preview"
    _toggle()
    after = _without_default_tree(snapshot(scene, _area()), before)
    assert after == before  # the user's world and override survived


def test_a_failure_while_switching_on_leaves_nothing_behind(addon, startup, monkeypatch):
    scene, area = startup, _area()
    scene.render.engine = "CYCLES"
    before = snapshot(scene, area)

    def fails(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(addon.compositor.graph, "set_encoding", fails)
    with pytest.raises(RuntimeError, match="boom"):
        _toggle(area)
    assert _without_default_tree(snapshot(scene, area), before) == before


def test_preview_without_a_camera_says_so(startup):
    bpy.data.objects.remove(bpy.data.objects["Camera"])
    with pytest.raises(RuntimeError, match="no active camera"):
        _toggle()
    assert "t2i_depth_preview" not in bpy.context.scene


def test_locking_the_range_updates_a_running_preview(startup):
    scene = startup
    scene.render.engine = "CYCLES"
    scene.frame_start = scene.frame_end = 1
    scene.t2i.depth.range_policy, scene.t2i.depth.near, scene.t2i.depth.far = "MANUAL", 1, 2
    _toggle()
    bpy.ops.t2i.lock_depth_range()
    material = bpy.data.materials["T2I Depth Preview"]
    node = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeGroup")
    near, far, _ = _encoding_inputs(node)
    assert (near, far) == pytest.approx((scene.t2i.depth.locked_near, scene.t2i.depth.locked_far))
    _toggle()
