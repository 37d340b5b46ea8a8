"""Where results go: files and metadata, per-result images, camera background, compositor
overlay (rendered), texture in the active material, history and its persistence. Projection
from the camera has its own file, test_projection.py."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image

from devtools.scenes import add_camera, add_plane


def _settings(scene, **values):
    scene.t2i.model_preset = "tiny-sd15-depth"
    scene.t2i.prompt = "a stone floor"
    scene.t2i.use_render_size = False
    scene.t2i.width, scene.t2i.height, scene.t2i.steps = 64, 48, 1
    for key, value in values.items():
        setattr(scene.t2i, key, value)
    return scene.t2i


def _fake_result(addon, scene, colour=(1.0, 0.0, 0.0, 1.0), seed=7, size=(32, 24)):
    """A history entry with a solid image, as if a job had produced it (no backend needed)."""
    image = bpy.data.images.new(f"T2I tiny-sd15-depth s{seed}", *size)
    image.pixels.foreach_set(np.tile(np.array(colour, np.float32), size[0] * size[1]))
    image[addon.blender_t2i.results.images.RESULT_TAG] = f"stem{seed}"
    record = addon.t2i_core.job_record.JobRecord(
        model="tiny-sd15-depth", model_spec={}, prompt="a red wall", negative_prompt="blurry",
        seed=seed, steps=3, guidance=5.0, control_strength=0.8, size=tuple(size))
    addon.blender_t2i.scene.history.add_entry(scene.t2i, f"stem{seed}", record, image, "", "")
    return image


def _select(*objects):
    for obj in bpy.context.scene.objects:
        obj.select_set(obj in objects)
    bpy.context.view_layer.objects.active = objects[0] if objects else None


def test_results_land_in_the_output_folder_with_their_parameters(scene, backend, tmp_path):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, seed=21, output_dir="//renders/ai/", negative_prompt="blurry")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    image = bpy.data.images["T2I tiny-sd15-depth s21"]
    assert image.filepath.startswith("//renders/ai/") and image.packed_file is None
    path = Path(bpy.path.abspath(image.filepath))
    assert path.parent == tmp_path / "renders" / "ai"
    with Image.open(path) as png:
        assert png.size == (64, 48)
        assert png.info["t2i:prompt"] == "a stone floor"
        assert png.info["t2i:negative_prompt"] == "blurry"
        assert png.info["t2i:seed"] == "21" and png.info["t2i:model"] == "tiny-sd15-depth"
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["seed"] == 21 and record["size"] == [64, 48]
    assert bpy.data.images["T2I Result"].filepath == str(path)  # still the latest result
    item = scene.t2i.history[0]
    assert item.image == image and item.seed == 21 and item.prompt == "a stone floor"


def test_an_unsaved_file_packs_its_results(scene, backend, tmp_path):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, seed=3)
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    assert bpy.data.images["T2I tiny-sd15-depth s3"].packed_file is not None


def test_results_and_history_survive_saving_and_reopening(scene, backend, tmp_path):
    add_camera(scene)
    add_plane(scene)
    _settings(scene, seed=4)
    blend = tmp_path / "keep.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    item = bpy.context.scene.t2i.history[0]
    assert item.seed == 4 and item.image is not None
    assert tuple(item.image.size) == (64, 48)  # loads from //t2i/ beside the .blend


def test_reuse_settings_puts_a_results_settings_back(addon, scene):
    add_camera(scene)
    _fake_result(addon, scene, seed=9)
    _settings(scene, prompt="something else", seed=1, steps=30, guidance=1.0)
    assert bpy.ops.t2i.reuse_settings(index=0) == {"FINISHED"}
    s = scene.t2i
    assert (s.prompt, s.negative_prompt, s.seed, s.steps, s.guidance) == \
        ("a red wall", "blurry", 9, 3, 5.0)
    assert s.control_strength == pytest.approx(0.8) and (s.width, s.height) == (32, 24)


def test_reveal_files_names_the_folder_headless(addon, scene, tmp_path):
    _fake_result(addon, scene)
    scene.t2i.history[0].result_path = str(tmp_path / "r.png")
    assert bpy.ops.t2i.reveal_results(index=0) == {"FINISHED"}
    scene.t2i.history[0].result_path = str(tmp_path / "gone" / "r.png")
    with pytest.raises(RuntimeError, match="no longer exists"):
        bpy.ops.t2i.reveal_results(index=0)


def test_camera_background_shows_the_result_framed_to_the_camera(addon, scene):
    camera = add_camera(scene)
    image = _fake_result(addon, scene)
    scene.t2i.overlay_opacity = 0.6
    assert bpy.ops.t2i.result_to_camera_background() == {"FINISHED"}
    second = _fake_result(addon, scene, seed=8)
    assert bpy.ops.t2i.result_to_camera_background() == {"FINISHED"}
    backgrounds = camera.data.background_images
    assert len(backgrounds) == 1 and backgrounds[0].image == second != image  # slot reused
    assert backgrounds[0].frame_method == "STRETCH" and camera.data.show_background_images
    assert backgrounds[0].alpha == pytest.approx(0.6)


def _render_centre(scene, tmp_path) -> np.ndarray:
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.view_settings.view_transform = "Standard"  # pure red stays (255, 0, 0)
    scene.render.resolution_x, scene.render.resolution_y = 32, 24
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(tmp_path / "frame.png")
    bpy.ops.render.render(write_still=True)
    with Image.open(tmp_path / "frame.png") as frame:
        return np.asarray(frame.convert("RGB"))[12, 16]


def test_compositor_overlay_mixes_over_the_render_and_keeps_the_users_nodes(
        addon, scene, tmp_path):
    compat = addon.compositor.compat
    add_camera(scene)
    add_plane(scene)
    tree = compat.scene_compositor(scene)
    output = compat.output_node(tree)
    user_node = tree.nodes.new("CompositorNodeInvert")  # the user's own grade
    tree.links.new(output.inputs[0].links[0].from_socket, user_node.inputs["Color"])
    tree.links.new(user_node.outputs["Color"], output.inputs[0])
    user_nodes = {node.name for node in tree.nodes}
    _fake_result(addon, scene, colour=(1.0, 0.0, 0.0, 1.0))
    scene.t2i.overlay_opacity = 1.0
    assert bpy.ops.t2i.result_to_compositor() == {"FINISHED"}
    assert bpy.ops.t2i.result_to_compositor() == {"FINISHED"}  # again: no second overlay
    tree = scene.compositing_node_group if compat.BLENDER_5 else scene.node_tree
    assert user_nodes < {node.name for node in tree.nodes}
    assert sum(node.bl_idname == "CompositorNodeAlphaOver" for node in tree.nodes) == 1
    assert user_node.inputs["Color"].is_linked
    np.testing.assert_allclose(_render_centre(scene, tmp_path), (255, 0, 0), atol=2)
    assert bpy.ops.t2i.remove_compositor_overlay() == {"FINISHED"}
    assert {node.name for node in tree.nodes} == user_nodes
    assert compat.output_node(tree).inputs[0].links[0].from_node.name == user_node.name
    assert not np.allclose(_render_centre(scene, tmp_path), (255, 0, 0), atol=2)


def test_use_as_texture_feeds_the_active_materials_base_colour(addon, scene):
    plane = add_plane(scene)
    material = bpy.data.materials.new("Wall")
    addon.compositor.compat.use_material_nodes(material)
    plane.data.materials.append(material)
    _select(plane)
    _fake_result(addon, scene)
    assert bpy.ops.t2i.result_to_material() == {"FINISHED"}
    assert bpy.ops.t2i.result_to_material() == {"FINISHED"}
    nodes = material.node_tree.nodes
    assert sum(node.type == "TEX_IMAGE" for node in nodes) == 1
    bsdf = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    assert bsdf.inputs["Base Color"].links[0].from_node == nodes["T2I Texture"]


def test_outputs_chosen_in_the_panel_follow_each_result(scene, backend):
    camera = add_camera(scene)
    plane = add_plane(scene)
    _select(plane)
    _settings(scene, output_targets={"CAMERA_BACKGROUND", "PROJECTION", "COMPOSITOR"})
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    image = scene.t2i.history[0].image
    assert camera.data.background_images[0].image == image
    nodes = plane.material_slots[0].material.node_tree.nodes
    assert any(node.bl_idname == "ShaderNodeGroup" and node.label == "T2I Projection"
               for node in nodes)
    tree = scene.compositing_node_group if bpy.app.version >= (5, 0, 0) else scene.node_tree
    assert tree.nodes["T2I Overlay Image"].image == image


def test_an_output_that_cannot_be_made_is_a_warning_and_the_result_is_kept(
        addon, scene, backend):
    add_camera(scene)
    add_plane(scene)
    _select()  # nothing selected: nothing to project onto
    _settings(scene, output_targets={"PROJECTION"})
    handle = addon.blender_t2i.generation.submit.submit(bpy.context)
    handle.wait(timeout=300)
    levels = [level for level, _text in handle.reports]
    assert levels == ["INFO", "WARNING"], handle.reports
    assert handle.reports[1][1] == "Projection: select the meshes to project onto"
    assert len(scene.t2i.history) == 1 and scene.t2i.history[0].image is not None
    assert bpy.ops.t2i.generate() == {"FINISHED"}  # the operator too: a warning, not a failure
    assert len(scene.t2i.history) == 2


def test_apply_without_any_result_is_reported(scene):
    add_camera(scene)
    with pytest.raises(RuntimeError, match="no results yet"):
        bpy.ops.t2i.result_to_camera_background()
