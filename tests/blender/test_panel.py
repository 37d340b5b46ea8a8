"""The sidebar panel, status bar and preferences draw in every state, against this Blender's
real UILayout/operator/property definitions (see layout_probe)."""

from __future__ import annotations

import itertools
import sys
from types import SimpleNamespace

import bpy
import pytest

from devtools.scenes import add_camera, add_plane

from .conftest import MODULE
from .layout_probe import RecordingLayout, draw


@pytest.fixture
def ui(addon):
    panel = addon.blender_t2i.ui.panel
    jobs = addon.t2i_core.job_queue.get_job_queue()
    saved = (jobs.status, jobs.message, list(jobs.pending), jobs.current)
    yield SimpleNamespace(panel=panel, jobs=jobs, Status=addon.t2i_core.job_queue.Status,
                          JobHandle=addon.t2i_core.job_queue.JobHandle)
    jobs.status, jobs.message, pending, jobs.current = saved
    jobs.pending.clear()
    jobs.pending.extend(pending)


def _panels(panel_module):
    return [cls for cls in panel_module.CLASSES if issubclass(cls, bpy.types.Panel)]


def _draw_all(ui, context=None):
    layouts = {}
    for cls in _panels(ui.panel):
        assert cls.poll(context or bpy.context)
        layouts[cls.__name__] = draw(cls.draw, context)
        if hasattr(cls, "draw_header"):
            draw(cls.draw_header, context)
    return layouts


STATES = ["stopped", "starting", "loading model", "ready", "busy", "error"]


@pytest.mark.parametrize(("status", "queued"), list(itertools.product(STATES, [0, 2])))
def test_every_panel_draws_in_every_backend_state(scene, ui, status, queued):
    add_camera(scene)
    ui.jobs.status = ui.Status(status)
    ui.jobs.message = "the backend stopped unexpectedly (exit status -9); see its log" \
        if status == "error" else ""
    if queued:  # one running at step 2 of 4, the rest waiting
        ui.jobs.current = ui.JobHandle({"id": "running", "steps": 4}, ui.jobs)
        ui.jobs.current.step = 2
        ui.jobs.pending.extend(ui.JobHandle({"id": f"job{i}", "steps": 4}, ui.jobs)
                               for i in range(queued - 1))
    layouts = _draw_all(ui)
    main = layouts["T2I_PT_main"]
    if queued:
        assert "t2i.cancel_generate" in main.operators()
        assert any(name == "progress" for name, _a, _k in main.calls)
    else:
        assert main.operators() == ["t2i.generate"]
    backend = layouts["T2I_PT_backend"]
    assert status.capitalize() in backend.texts()
    expected = "t2i.backend_start" if status in ("stopped", "error") else "t2i.backend_stop"
    assert expected in backend.operators()
    draw(ui.panel.draw_status_bar)


def test_panels_draw_with_history_and_own_size(addon, scene, ui):
    add_camera(scene)
    settings = scene.t2i
    settings.use_render_size = False
    settings.output_targets = {"CAMERA_BACKGROUND", "PROJECTION"}
    image = bpy.data.images.new("T2I tiny s1", 8, 8)
    record = addon.t2i_core.job_record.JobRecord(
        model="tiny-sd15-depth", model_spec={}, prompt="a stone floor", negative_prompt="", seed=1,
        steps=2, guidance=7.5, control_strength=1.0, size=(64, 48))
    addon.blender_t2i.scene.history.add_entry(settings, "stem1", record, image, "//t2i/a.png", "")
    layouts = _draw_all(ui)
    history_ops = set(layouts["T2I_PT_history"].operators())
    assert {"t2i.reuse_settings", "t2i.reveal_results", "t2i.project_result",
            "t2i.result_to_camera_background", "t2i.result_to_compositor",
            "t2i.result_to_material", "t2i.show_result"} <= history_ops
    item_layout = RecordingLayout([])
    ui.panel.T2I_UL_history.draw_item(None, bpy.context, item_layout, settings,
                                      settings.history[0], 0, settings, "history_index")
    assert "a stone floor" in item_layout.texts()


def test_the_depth_section_draws_the_scenes_depth_settings(scene, ui):
    add_camera(scene)
    layout = draw(ui.panel.T2I_PT_depth.draw)
    assert {"t2i.capture_depth", "t2i.depth_preview"} <= set(layout.operators())
    drawn = [args[1] for name, args, _k in layout.calls if name == "prop"]
    assert {"capture_path", "encoding", "range_policy", "near", "far", "max_side"} <= set(drawn)
    properties = scene.t2i.depth.bl_rna.properties
    assert all(name in properties for name in drawn)  # every control is a real setting


def test_preferences_draw_before_during_and_after_an_install_and_a_check(addon, tmp_path):
    install = addon.t2i_core.backend_install
    prefs = bpy.context.preferences.addons[MODULE].preferences
    runs = install.SetupRuns
    saved = (runs.install, runs.check, runs.check_report)
    try:
        for state in ("none", "running", "failed", "checked"):
            if state == "running":
                runs.install = install.CommandRun(
                    [[sys.executable, "-c", "import time; time.sleep(5)"]],
                    tmp_path / "install.log", "Install backend").start()
            elif state == "failed":
                runs.install.cancel()
                runs.install.wait(10)
            elif state == "checked":
                runs.check_report = install.CheckReport(False, "Python 3.11.9 lacks peft",
                                                        "Use Install Backend", ["peft"])
            layout = RecordingLayout([])
            addon.blender_t2i.ui.preferences_ui.draw_preferences(prefs, layout, bpy.context)
            assert type(prefs).draw.__module__.endswith("ui.preferences_ui")  # the UI draws
            ops = layout.operators()
            assert ("t2i.cancel_install" in ops) == (state == "running")
            assert "t2i.check_backend" in ops
        assert any("lacks peft" in text for text in layout.texts())
    finally:
        runs.install, runs.check, runs.check_report = saved


def test_the_panel_lives_in_the_3d_view_sidebar(ui):
    main = ui.panel.T2I_PT_main
    assert (main.bl_space_type, main.bl_region_type, main.bl_category) == ("VIEW_3D", "UI", "T2I")
    for cls in _panels(ui.panel):
        names = {c.__name__ for c in _panels(ui.panel)}
        assert cls is main or cls.bl_parent_id in names  # a section of ours, under main


def test_a_scene_with_a_plane_draws_the_render_size(scene, ui):
    add_camera(scene)
    add_plane(scene)
    scene.render.resolution_x, scene.render.resolution_y = 640, 480
    scene.render.resolution_percentage = 50
    assert "320 x 240 px (render, snapped)" in draw(ui.panel.T2I_PT_settings.draw).texts()


def test_the_panel_warns_when_the_chosen_presets_weights_are_not_here(scene, ui):
    add_camera(scene)
    scene.t2i.model_preset = "sd15-depth"
    saved = ui.jobs.capabilities
    try:
        ui.jobs.capabilities = {"presets": [{"name": "sd15-depth", "present": False},
                                            {"name": "tiny-sd15-depth", "present": True}]}
        warning = "Weights not on this machine: see docs/models.md"
        assert warning in draw(ui.panel.T2I_PT_main.draw).texts()
        scene.t2i.model_preset = "tiny-sd15-depth"
        assert warning not in draw(ui.panel.T2I_PT_main.draw).texts()
    finally:
        ui.jobs.capabilities = saved


def test_the_projection_section_draws_project_bake_and_their_settings(scene, ui):
    add_camera(scene)
    layout = draw(ui.panel.T2I_PT_projection.draw)
    assert {"t2i.project_result", "t2i.bake_projection", "t2i.remove_projection"} <= \
        set(layout.operators())
    drawn = [args[1] for name, args, _k in layout.calls if name == "prop"]
    assert {"shading", "texture_filter", "occlusion_tolerance", "fade_start", "fade_end",
            "use_bake", "bake_uv", "bake_size", "bake_margin", "views_source", "orbit_count",
            "orbit_elevation"} == set(drawn)
    assert "t2i.generate_views" in layout.operators()
    properties = scene.t2i.projection.bl_rna.properties
    assert all(name in properties for name in drawn)  # every control is a real setting
    assert "Select the meshes to project onto" in layout.texts()
    add_plane(scene).select_set(True)
    assert "Select the meshes to project onto" not in draw(ui.panel.T2I_PT_projection.draw).texts()


def test_a_render_size_the_model_was_not_trained_for_is_flagged_with_a_fix(scene, ui):
    add_camera(scene)
    settings = scene.t2i
    settings.model_preset = "sd15-depth"
    settings.use_render_size = True
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    scene.render.resolution_percentage = 100
    drawn = draw(ui.panel.T2I_PT_settings.draw)
    assert any("1920 x 1080 is 7.9x the 512 x 512" in text for text in drawn.texts())
    assert "Use 680 x 384" in drawn.texts() and "t2i.use_trained_size" in drawn.operators()
    assert bpy.ops.t2i.use_trained_size() == {"FINISHED"}
    assert (settings.use_render_size, settings.width, settings.height) == (False, 680, 384)
    assert "t2i.use_trained_size" not in draw(ui.panel.T2I_PT_settings.draw).operators()
    settings.use_render_size = True  # a size the model suits: no advice, nothing to do
    scene.render.resolution_x, scene.render.resolution_y = 640, 480
    assert "t2i.use_trained_size" not in draw(ui.panel.T2I_PT_settings.draw).operators()
    assert bpy.ops.t2i.use_trained_size() == {"CANCELLED"}
