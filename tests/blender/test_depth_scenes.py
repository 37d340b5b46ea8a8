"""Depth capture on realistic scenes built in code (devtools/scenes.py), judged against a ray
cast of the render-evaluated scene (Z) and the final render's alpha (what the render shows):
every capture path and engine that runs headless, and what AUTO chooses for each scene.

EEVEE renders run through software GL here and compile shaders per material (seconds each):
EEVEE runs the scenes at a smaller size (the whole EEVEE set takes about 25 s on 2 cores).
"""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest

from devtools import scenes

from .depth_truth import agreement, final_alpha, smooth_pixels

STEP = {"street": 4}  # truth on every STEP-th row and column (ray casts cost ~0.3 ms each)
FAST = [("COMPOSITOR", "WORKBENCH"), ("COMPOSITOR", "CYCLES"), ("SHADER", "CYCLES"),
        ("AUTO", "AUTO")]
EEVEE = [("COMPOSITOR", "EEVEE"), ("SHADER", "EEVEE")]
EEVEE_SIZE = (120, 80)
TOLERANCE = 0.005  # the README's promise
_truths: dict = {}


def _method_id(method):
    return "/".join(method)


def _methods(scene_name):
    eevee = [pytest.param(*m) for m in EEVEE]
    return [pytest.param(*m, id=_method_id(m)) for m in FAST] + [
        pytest.param(*p.values, marks=p.marks, id=_method_id(p.values)) for p in eevee]


def _build(name, frame=None):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = scenes.REALISTIC_SCENES[name](bpy.context.scene)
    if frame is not None:
        scene.frame_set(frame)
    return scene


def _size(scene, engine):
    if engine == "EEVEE":
        return EEVEE_SIZE
    return scene.render.resolution_x, scene.render.resolution_y


def _truth(name, scene, size, frame=None, skip=frozenset()):
    """(z, background, hit) of the ray cast, cached per scene, frame and size."""
    key = (name, frame, size, skip)
    if key not in _truths:
        z, hit = scenes.raycast_depth(scene, *size, step=STEP.get(name, 2), skip=skip)
        held = scenes.holdout_objects(bpy.context.view_layer)
        # A holdout object hides itself and what lies behind it: the render shows nothing.
        background = np.isnan(z) | np.isin(hit, list(held))
        _truths[key] = (z, background, hit)
    return _truths[key]


def _capture(addon, scene, path, engine, size):
    return addon.compositor.capture.capture_depth(scene, *size, path=path, engine=engine)


def _judge(addon, name, scene, path, engine, frame=None, ignore=frozenset()):
    size = _size(scene, engine)
    z_true, background_true, hit = _truth(name, scene, size, frame)
    depth = _capture(addon, scene, path, engine, size)
    step = STEP.get(name, 2)
    judged = smooth_pixels(z_true, hit) & ~np.isin(hit, list(ignore))
    result = agreement(depth.z[::step, ::step], depth.background[::step, ::step], z_true,
                       background_true, judged)
    print(f"{name} {path}/{engine} -> {depth.path}/{depth.engine}: {result}")
    return result, depth


@pytest.mark.parametrize(("path", "engine"), _methods("horizon"))
def test_horizon_depth_matches_the_ray_cast_out_to_the_far_wall(addon, path, engine):
    scene = _build("horizon")
    result, _ = _judge(addon, "horizon", scene, path, engine)
    assert result.compared > 0.4 * np.prod(_size(scene, engine)) / 4  # floor, props, wall
    assert result.max_error <= TOLERANCE and result.background_mismatches == 0, result


@pytest.mark.parametrize(("path", "engine"), _methods("interior"))
def test_interior_depth_matches_the_ray_cast_from_the_doorway(addon, path, engine):
    scene = _build("interior")
    result, _ = _judge(addon, "interior", scene, path, engine)
    assert result.max_error <= TOLERANCE and result.background_mismatches == 0, result


@pytest.mark.parametrize(("path", "engine"), _methods("street"))
def test_street_of_instances_matches_the_ray_cast(addon, path, engine):
    scene = _build("street")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    assert sum(1 for i in depsgraph.object_instances if i.is_instance) >= 1000
    result, _ = _judge(addon, "street", scene, path, engine)
    assert result.max_error <= TOLERANCE and result.background_mismatches == 0, result


@pytest.mark.parametrize(("path", "engine"), _methods("render_time"))
def test_render_time_modifiers_hidden_and_camera_invisible_objects_match_the_render(
        addon, path, engine):
    scene = _build("render_time")
    # Workbench draws holdout objects (docs/depth.md); the holdout test covers that.
    ignore = scenes.holdout_objects(bpy.context.view_layer) if engine == "WORKBENCH" else ()
    result, _ = _judge(addon, "render_time", scene, path, engine, ignore=frozenset(ignore))
    assert result.max_error <= TOLERANCE and result.background_mismatches == 0, result


@pytest.mark.parametrize(("path", "engine"), [m for m in _methods("render_time")
                                              if m.values[1] != "WORKBENCH"])
def test_holdout_and_hidden_objects_are_absent_where_the_final_render_omits_them(
        addon, path, engine):
    scene = _build("render_time")
    size = _size(scene, engine)
    alpha = final_alpha(scene, *size)
    depth = _capture(addon, scene, path, engine, size)
    decisive = (alpha < 0.05) | (alpha > 0.95)
    shows_nothing = alpha < 0.05
    assert shows_nothing.sum() > 50  # the holdout pillar's hole
    mismatched = decisive & (depth.background != shows_nothing)
    assert mismatched.sum() <= 0.002 * decisive.sum(), mismatched.sum()


def test_workbench_draws_holdout_objects_so_auto_avoids_it(addon):
    scene = _build("render_time")
    size = _size(scene, "WORKBENCH")
    alpha = final_alpha(scene, *size)
    workbench = _capture(addon, scene, "COMPOSITOR", "WORKBENCH", size)
    hole = alpha < 0.05
    assert not workbench.background[hole].any()  # the fact behind Auto's rule
    auto = _capture(addon, scene, "AUTO", "AUTO", size)
    assert auto.engine == "CYCLES" and "holdout" in auto.reason
    assert auto.background[hole].all()


def _foliage_judgement(addon, scene, path, engine):
    size = _size(scene, engine)
    cards = frozenset(o.name for o in scene.objects if o.name.startswith("Leaf card"))
    step = STEP.get("foliage", 2)
    z_first, _, hit = _truth("foliage", scene, size, skip=frozenset())
    cards_passed: dict = {}
    z_behind, _ = scenes.raycast_depth(scene, *size, step=step, skip=cards, passed=cards_passed)
    alpha = final_alpha(scene, *size)[::step, ::step]
    depth = _capture(addon, scene, path, engine, size)
    z, background = depth.z[::step, ::step], depth.background[::step, ::step]
    on_card = np.isin(hit, list(cards)) & smooth_pixels(z_first, hit)
    sky_behind = on_card & np.isnan(z_behind)
    decisive = sky_behind & ((alpha < 0.05) | (alpha > 0.95))
    coverage_mismatches = int((decisive & (background == (alpha > 0.5))).sum())
    # Where a leaf shows, Z is that of one of the cards on the ray (crossed cards overlap);
    # where every card is cut out, that of what lies behind.
    wrong_z = 0
    for row, col in zip(*np.nonzero(on_card & ~background), strict=True):
        candidates = [*cards_passed.get((row, col), []), z_behind[row, col]]
        wrong_z += not any(abs(z[row, col] / c - 1) <= TOLERANCE for c in candidates
                           if np.isfinite(c))
    seen = on_card & ~background
    print(f"foliage {path}/{engine}: {int(decisive.sum())} decisive px, "
          f"{coverage_mismatches} coverage mismatches, {wrong_z} wrong Z of {int(seen.sum())}, "
          f"{int(background[on_card].sum())} cut out")
    return decisive, coverage_mismatches, wrong_z, depth


def _foliage_methods():
    # not strict: which pixels the dithering drops is the renderer's own business
    eevee_dither = pytest.mark.xfail(
        strict=False, reason="EEVEE's dithered alpha at one sample is random where the leaf "
        "texture's alpha is fractional (docs/depth.md); AUTO never picks EEVEE")
    return [pytest.param(*p.values, marks=[*p.marks, eevee_dither], id=p.id)
            if p.values == ("COMPOSITOR", "EEVEE") else p for p in _methods("foliage")]


@pytest.mark.parametrize(("path", "engine"), _foliage_methods())
def test_foliage_depth_follows_the_leaves_alpha_as_the_final_render_shows_it(
        addon, path, engine):
    scene = _build("foliage")
    decisive, coverage_mismatches, wrong_z, _ = _foliage_judgement(addon, scene, path, engine)
    width, height = _size(scene, engine)
    assert decisive.sum() > 300 * width * height / (240 * 160)
    assert coverage_mismatches <= 0.002 * decisive.sum()
    assert wrong_z == 0
    result, _ = _judge(addon, "foliage", scene, path, engine,
                       ignore=frozenset(o.name for o in scene.objects
                                        if o.name.startswith("Leaf card")))
    assert result.max_error <= TOLERANCE, result


@pytest.mark.parametrize("frame", [1, 12, 24])
@pytest.mark.parametrize(("path", "engine"), FAST, ids=_method_id)
def test_dolly_depth_matches_the_ray_cast_on_every_frame(addon, path, engine, frame):
    scene = _build("dolly", frame)
    assert scene.camera.matrix_world.translation.y == pytest.approx(
        20.0 * (frame - 1) / 23, abs=0.5 if frame == 12 else 1e-4)
    result, _ = _judge(addon, "dolly", scene, path, engine, frame=frame)
    assert result.max_error <= TOLERANCE and result.background_mismatches == 0, result


# --- far surfaces ---------------------------------------------------------------------------

def _far_plane_scene(distance, clip_start=0.1):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    camera = scenes.add_camera(scene, location=(0.0, 0.0, 0.0), clip_end=2.0 * distance)
    camera.data.clip_start = clip_start
    scenes.add_tilted_plane(scene, distance=distance, tilt_degrees=20.0, size=distance * 4)
    return scene


@pytest.mark.parametrize("distance", [80_000.0, 100_000.0])
def test_auto_keeps_far_surfaces_within_half_a_percent(addon, distance):
    scene = _far_plane_scene(distance)
    size = (240, 160)  # where the cost model picks Workbench first for two triangles
    assert addon.compositor.capture.resolve_method(
        "AUTO", "AUTO", scene, bpy.context.view_layer, size)[1] == "BLENDER_WORKBENCH"
    depth = _capture(addon, scene, "AUTO", "AUTO", size)
    expected = scenes.plane_depth(scene, *size, distance, 20.0)
    np.testing.assert_allclose(depth.z, expected, rtol=TOLERANCE)
    assert depth.engine == "CYCLES" and "beyond" in depth.reason


@pytest.mark.parametrize("clip_start", [0.1, 1.0])
def test_workbench_z_is_within_half_a_percent_up_to_the_stated_distance(addon, clip_start):
    capture = addon.compositor.capture
    distance = capture.workbench_exact_distance(clip_start)
    assert distance == pytest.approx(4e4 * clip_start)
    # The tilted plane reaches from 0.8x to 1.3x the distance: the top rows lie beyond it.
    scene = _far_plane_scene(distance / 1.3, clip_start)
    depth = _capture(addon, scene, "COMPOSITOR", "WORKBENCH", (48, 32))
    expected = scenes.plane_depth(scene, 48, 32, distance / 1.3, 20.0)
    within = expected <= distance
    assert within.sum() > 0.5 * within.size
    np.testing.assert_allclose(depth.z[within], expected[within], rtol=TOLERANCE)


# --- what AUTO chooses ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["horizon", "interior", "street", "foliage"])
def test_auto_captures_light_scenes_with_workbench(addon, name):
    scene = _build(name)
    path, engine, reason = addon.compositor.capture.resolve_method(
        "AUTO", "AUTO", scene, bpy.context.view_layer, (512, 512))
    assert (path, engine) == ("COMPOSITOR", "BLENDER_WORKBENCH"), reason


def test_auto_counts_every_instance_and_only_render_visible_objects(addon):
    scene = _build("street")
    facts = addon.compositor.capture.scene_facts(scene, bpy.context.view_layer)
    assert facts.instances >= 1100
    # 600 houses of 12 + 8 triangles, 500 lamp posts of 12, the ground's 2
    assert facts.triangles == 600 * 20 + 500 * 12 + 2
    assert facts.unique_triangles == 20 + 12 + 2
    scene.objects["Ground"].hide_render = True
    assert addon.compositor.capture.scene_facts(
        scene, bpy.context.view_layer).triangles == facts.triangles - 2


def test_auto_sends_alpha_it_cannot_cut_to_cycles(addon):
    scene = _build("foliage")
    material = bpy.data.materials["Leaf card"]
    tree = material.node_tree
    bsdf = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    texture = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeTexImage")
    invert = tree.nodes.new("ShaderNodeMath")
    invert.operation = "SUBTRACT"
    invert.inputs[0].default_value = 1.0
    tree.links.new(texture.outputs["Alpha"], invert.inputs[1])
    tree.links.new(invert.outputs[0], bsdf.inputs["Alpha"])
    _path, engine, reason = addon.compositor.capture.resolve_method(
        "AUTO", "AUTO", scene, bpy.context.view_layer, (240, 160))
    assert engine == "CYCLES" and "Leaf card" in reason


@pytest.mark.parametrize(("size", "engine"), [(512, "CYCLES"), (1024, "BLENDER_WORKBENCH")])
def test_auto_choice_on_two_million_triangles_follows_the_measured_costs(addon, size, engine):
    """The crossover measured by bench/depth_capture.py (docs/depth.md): instanced heavy
    meshes cost Workbench per triangle drawn and Cycles per pixel."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = scenes.heavy_scene(bpy.context.scene)
    capture = addon.compositor.capture
    facts = capture.scene_facts(scene, bpy.context.view_layer)
    assert 1.9e6 <= facts.triangles <= 2.2e6 and facts.unique_triangles < 2e5
    assert capture.resolve_method("AUTO", "AUTO", scene, bpy.context.view_layer,
                                  (size, size))[1] == engine
    assert math.isfinite(capture.estimated_seconds(engine, size, size, facts))
