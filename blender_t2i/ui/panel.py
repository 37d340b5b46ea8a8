"""The sidebar panel (View3D > Sidebar > T2I) and the status bar's job progress.

Sections are sub-panels, so they collapse and reorder like Blender's own. Drawing only reads:
the queue's status comes from job_queue, everything else from `scene.t2i`.
"""

from __future__ import annotations

import bpy

from ...t2i_core import job_request
from ...t2i_core import model_library as lib
from ...t2i_core.job_queue import JobQueue, Status, get_job_queue
from ...t2i_core.presets import FAMILY_INFO, get_preset
from ..generation import queue_driver, scene_job
from ..results import images as results
from ..scene import library, model_picks
from ..scene.preferences import ADDON_ID

CATEGORY = "T2I"
_SIMPLE_TYPES = {"BOOLEAN", "INT", "FLOAT", "STRING", "ENUM"}  # what `layout.prop` draws plainly

STATUS_ICONS = {
    Status.STOPPED: "RADIOBUT_OFF", Status.STARTING: "SORTTIME", Status.LOADING: "SORTTIME",
    Status.READY: "CHECKMARK", Status.BUSY: "RENDER_STILL", Status.ERROR: "ERROR",
}


def _progress_text(jobs: JobQueue) -> str:
    waiting = f", {len(jobs.pending)} waiting" if jobs.pending else ""
    if jobs.status == Status.LOADING:
        return f"Loading model{waiting}"
    if jobs.status == Status.STARTING:
        return f"Starting backend{waiting}"
    return f"Step {jobs.step}/{jobs.total}{waiting}"


class _T2IPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "t2i")


class T2I_PT_main(_T2IPanel, bpy.types.Panel):
    bl_label = "Text to Image"
    bl_idname = "T2I_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.t2i
        layout.prop(settings, "model_preset", text="")
        present = get_job_queue().preset_present(settings.model_preset)
        if present is False:
            layout.label(text="Weights not on this machine: see docs/models.md", icon="ERROR")
        col = layout.column(align=True)
        col.prop(settings, "prompt", text="", icon="TEXT")
        col.prop(settings, "negative_prompt", text="", icon="REMOVE")
        draw_generate(layout, get_job_queue())


def draw_generate(layout: bpy.types.UILayout, jobs: JobQueue) -> None:
    """Generate, or Cancel (plus queue another) while a job runs, with its progress."""
    row = layout.row(align=True)
    row.scale_y = 1.5
    if jobs.busy:
        row.operator("t2i.cancel_generate", text="Cancel", icon="CANCEL")
        sub = row.row(align=True)
        sub.scale_x = 1.2
        sub.operator("t2i.generate", text="", icon="ADD")  # queue another with these settings
        layout.progress(factor=jobs.progress, type="BAR", text=_progress_text(jobs))
    else:
        row.operator("t2i.generate", text="Generate", icon="RENDER_STILL")
    if jobs.status == Status.ERROR and jobs.message:
        box = layout.box()
        box.alert = True
        _wrapped_label(box, jobs.message, icon="ERROR")


def draw_size_advice(layout: bpy.types.UILayout, scene: bpy.types.Scene) -> None:
    """A render size far from the one the model was trained at: say so, offer that one."""
    try:
        preset, size = scene_job.preset_and_size(scene)
    except (KeyError, ValueError):  # an empty size or unknown preset: Generate reports it
        return
    advice = job_request.size_advice(size, preset)
    if advice is None:
        return
    box = layout.box()
    _wrapped_label(box, advice.message, icon="ERROR")
    box.operator("t2i.use_trained_size", text=f"Use {advice.size[0]} x {advice.size[1]}",
                 icon="FULLSCREEN_EXIT")


def _wrapped_label(layout: bpy.types.UILayout, text: str, icon: str = "NONE",
                   width: int = 48) -> None:
    """Long messages as several labels (a label does not wrap)."""
    col = layout.column(align=True)
    words, line, first = text.split(), "", True
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            col.label(text=line, icon=icon if first else "BLANK1")
            line, first = "", False
        line = f"{line} {word}".strip()
    if line:
        col.label(text=line, icon=icon if first else "BLANK1")


class T2I_PT_settings(_T2IPanel, bpy.types.Panel):
    bl_label = "Settings"
    bl_parent_id = "T2I_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.t2i
        row = layout.row(align=True)
        row.prop(settings, "seed")
        row.operator("t2i.randomize_seed", text="", icon="FILE_REFRESH")
        layout.prop(settings, "use_random_seed")
        col = layout.column(align=True)
        col.prop(settings, "steps")
        col.prop(settings, "guidance")
        col.prop(settings, "control_strength")
        row = layout.row(heading="Render")
        row.prop(settings, "use_render", text="Use")
        sub = row.row()
        sub.active = settings.use_render
        sub.prop(settings, "render_strength", text="Strength")
        layout.prop(settings, "use_render_size")
        col = layout.column(align=True)
        if settings.use_render_size:
            render = context.scene.render
            pct = render.resolution_percentage
            col.label(text=f"{render.resolution_x * pct // 100} x "
                           f"{render.resolution_y * pct // 100} px (render, snapped)")
            draw_size_advice(layout, context.scene)
        else:
            col.prop(settings, "width", text="Size X")
            col.prop(settings, "height", text="Y")


class T2I_UL_loras(bpy.types.UIList):
    def draw_item(self, _context, layout, _data, item, _icon, _active_data, _active_prop,
                  _index=0, _flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        found = _scanned_entry(item.path)
        sub = row.row(align=True)
        sub.active = item.enabled
        sub.label(text=found.name if found is not None else (item.path or "(pick a file)"),
                  icon="FILE" if found is not None else "QUESTION")
        sub.prop(item, "weight", text="")


def _scanned_entry(reference: str) -> lib.ModelEntry | None:
    """A pick's entry in the last scan; drawing reads no file."""
    found = library.scanned()
    return found.find(library.path_of(reference)) or found.find(reference) \
        if found is not None and reference else None


def _draw_pick(layout: bpy.types.UILayout, settings, role: str, family: str) -> None:
    layout.prop(settings, f"{role}_model")
    reference = getattr(settings, f"{role}_model").strip()
    if not reference:
        return
    found = _scanned_entry(reference)
    if found is None:
        if lib.looks_like_path(reference):
            layout.label(text="Not in the library: Rescan (checked again at Generate)",
                         icon="QUESTION")
        return
    info = FAMILY_INFO[family]
    problem = lib.pick_problem(found, reference, family, role, info.label)
    row = layout.row()
    row.alert = problem is not None
    row.label(text=f"{found.label}" + (": not for this preset" if problem else ""),
              icon="ERROR" if problem else "CHECKMARK")


class T2I_PT_models(_T2IPanel, bpy.types.Panel):
    bl_label = "Models"
    bl_parent_id = "T2I_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.t2i
        family = get_preset(settings.model_preset).family
        info = FAMILY_INFO[family]
        found = library.scanned()
        row = layout.row()
        row.label(text=f"Library: {len(found.entries)} models" if found is not None
                  else "Library: not scanned yet", icon="ASSET_MANAGER")
        row.operator("t2i.rescan_models", text="", icon="FILE_REFRESH")
        if found is not None and found.skipped:
            layout.label(text=f"{len(found.skipped)} files skipped (unreadable or pickle): "
                              "see Rescan's report", icon="INFO")
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        for role in model_picks.PICK_ROLES:
            if role in info.roles + info.optional_roles:
                _draw_pick(col, settings, role, family)
        layout.label(text="LoRAs")
        row = layout.row()
        row.template_list("T2I_UL_loras", "", settings, "loras", settings, "lora_index",
                          rows=2)
        buttons = row.column(align=True)
        buttons.operator("t2i.lora_add", text="", icon="ADD")
        buttons.operator("t2i.lora_remove", text="", icon="REMOVE")
        if 0 <= settings.lora_index < len(settings.loras):
            _draw_lora(layout, settings, settings.loras[settings.lora_index])
        if info.takes_scheduler:
            col = layout.column()
            col.use_property_split = True
            col.use_property_decorate = False
            col.prop(settings, "scheduler")


def _draw_lora(layout: bpy.types.UILayout, settings, item) -> None:
    box = layout.box()
    box.prop(item, "path", text="")
    found = _scanned_entry(item.path)
    if found is None:
        return
    col = box.column(align=True)
    if found.trigger_words:
        col.label(text="Trigger: " + ", ".join(found.trigger_words), icon="SMALL_CAPS")
    if found.tags:
        col.label(text="Tags: " + ", ".join(found.tags[:6]))
    base = _scanned_entry(settings.base_model.strip())
    arch = base.arch if base is not None and base.arch else \
        lib.family_base_arch(get_preset(settings.model_preset).family)
    if lib.lora_fits(found, arch) is False:
        row = col.row()
        row.alert = True
        made_for = ", ".join(lib.ARCH_LABELS.get(a, a) for a in found.lora_bases[:2])
        row.label(text=f"Made for {made_for}, not {lib.ARCH_LABELS.get(arch, arch)}",
                  icon="ERROR")


class T2I_PT_depth(_T2IPanel, bpy.types.Panel):
    bl_label = "Depth"
    bl_parent_id = "T2I_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        row = layout.row(align=True)
        row.operator("t2i.capture_depth", icon="IMAGE_ZDEPTH")
        row.operator("t2i.depth_preview", text="", icon="HIDE_OFF")
        depth = context.scene.t2i.depth
        layout.use_property_split = True
        layout.use_property_decorate = False
        for prop in depth.bl_rna.properties:
            if (prop.type in _SIMPLE_TYPES and not prop.is_readonly
                    and prop.identifier not in {"rna_type", "name"}):
                layout.prop(depth, prop.identifier)
        image = bpy.data.images.get(results.DEPTH_IMAGE)
        if image is not None:
            layout.label(text=f"Last depth map: {image.size[0]} x {image.size[1]}",
                         icon="IMAGE_DATA")


class T2I_PT_animation(_T2IPanel, bpy.types.Panel):
    bl_label = "Animation"
    bl_parent_id = "T2I_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scene = context.scene
        temporal = scene.t2i.temporal
        layout.label(text=f"Frames {scene.frame_start}-{scene.frame_end} (scene range)")
        layout.prop(temporal, "enabled")
        col = layout.column()
        col.active = temporal.enabled
        col.prop(temporal, "carry", slider=True)
        col.prop(temporal, "keyframe_every")
        col.prop(temporal, "mask_dilate")
        row = layout.row()
        row.scale_y = 1.3
        row.enabled = not get_job_queue().busy
        row.operator("t2i.generate_animation", icon="RENDER_ANIMATION")


class T2I_PT_output(_T2IPanel, bpy.types.Panel):
    bl_label = "Output"
    bl_parent_id = "T2I_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.t2i
        col = layout.column(align=True)
        col.prop(settings, "output_targets", expand=True)
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(settings, "overlay_opacity")
        layout.prop(settings, "output_dir")
        if settings.output_dir.startswith("//") and not bpy.data.filepath:
            layout.label(text="Unsaved file: results are packed into it", icon="INFO")
        layout.prop(settings, "generate_after_render")
        layout.operator("t2i.add_compositor_nodes", icon="NODE_COMPOSITING")


class T2I_PT_projection(_T2IPanel, bpy.types.Panel):
    bl_label = "Projection"
    bl_parent_id = "T2I_PT_output"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.t2i
        projection = settings.projection
        row = layout.row(align=True)
        row.operator("t2i.project_result", text="Project", icon="MOD_UVPROJECT")
        row.operator("t2i.bake_projection", text="Bake", icon="RENDER_STILL")
        row.operator("t2i.remove_projection", text="", icon="X")
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(projection, "shading")
        layout.prop(projection, "texture_filter")
        layout.prop(projection, "occlusion_tolerance")
        col = layout.column(align=True)
        col.prop(projection, "fade_start")
        col.prop(projection, "fade_end", text="To")
        layout.prop(projection, "use_bake", text="Bake After Projecting")
        col = layout.column(align=True)
        col.prop(projection, "bake_uv")
        col.prop(projection, "bake_size")
        col.prop(projection, "bake_margin")
        if not context.selected_objects or all(o.type != "MESH" for o in context.selected_objects):
            layout.label(text="Select the meshes to project onto", icon="INFO")
        draw_views(layout, settings)


def draw_views(layout: bpy.types.UILayout, settings) -> None:
    """Several cameras: offered when the model can inpaint (views after the first need it)."""
    projection = settings.projection
    box = layout.box()
    box.label(text="From Several Cameras", icon="OUTLINER_OB_CAMERA")
    col = box.column()
    col.prop(projection, "views_source")
    if projection.views_source == "ORBIT":
        sub = col.column(align=True)
        sub.prop(projection, "orbit_count")
        sub.prop(projection, "orbit_elevation")
    family = FAMILY_INFO.get(get_preset(settings.model_preset).family)
    can_inpaint = family is not None and family.inpaint
    row = box.row()
    row.enabled = can_inpaint or (projection.views_source == "ORBIT"
                                  and projection.orbit_count == 1)
    row.operator("t2i.generate_views", icon="RENDER_STILL")
    if not can_inpaint:
        box.label(text=f"{family.label if family else 'This model'} cannot inpaint: "
                       "one view only", icon="INFO")


class T2I_UL_history(bpy.types.UIList):
    def draw_item(self, _context, layout, _data, item, _icon, _active_data, _active_prop,
                  _index=0, _flt_flag=0):
        icon_value = item.image.preview.icon_id if item.image and item.image.preview else 0
        row = layout.row(align=True)
        if icon_value:
            row.label(text="", icon_value=icon_value)
        row.label(text=f"{item.prompt or '(no prompt)'}")
        row.label(text=f"s{item.seed}")


class T2I_PT_history(_T2IPanel, bpy.types.Panel):
    bl_label = "History"
    bl_parent_id = "T2I_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.t2i
        if not len(settings.history):
            layout.label(text="No results in this file yet")
            return
        layout.template_list("T2I_UL_history", "", settings, "history", settings,
                             "history_index", rows=3)
        index = min(settings.history_index, len(settings.history) - 1)
        item = settings.history[index]
        col = layout.column(align=True)
        col.label(text=f"{item.model_preset}, {item.width}x{item.height}, {item.steps} steps, "
                       f"CFG {item.guidance:g}")
        col.label(text=item.created, icon="TIME")
        row = layout.row(align=True)
        row.operator("t2i.reuse_settings", icon="RECOVER_LAST").index = index
        row.operator("t2i.show_result", text="", icon="IMAGE_DATA").index = index
        row.operator("t2i.reveal_results", text="", icon="FILE_FOLDER").index = index
        row = layout.row(align=True)
        row.label(text="Apply:")
        row.operator("t2i.result_to_camera_background", text="", icon="CAMERA_DATA").index = index
        row.operator("t2i.result_to_compositor", text="", icon="NODE_COMPOSITING").index = index
        row.operator("t2i.project_result", text="", icon="MOD_UVPROJECT").index = index
        row.operator("t2i.result_to_material", text="", icon="MATERIAL").index = index


class T2I_PT_backend(_T2IPanel, bpy.types.Panel):
    bl_label = "Backend"
    bl_parent_id = "T2I_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, _context: bpy.types.Context) -> None:
        self.layout.label(text="", icon=STATUS_ICONS[get_job_queue().status])

    def draw(self, _context: bpy.types.Context) -> None:
        layout = self.layout
        jobs = get_job_queue()
        row = layout.row()
        row.label(text=jobs.status.value.capitalize(), icon=STATUS_ICONS[jobs.status])
        sub = row.row(align=True)
        if jobs.status in (Status.STOPPED, Status.ERROR):
            sub.operator("t2i.backend_start", text="Start", icon="PLAY")
        else:
            sub.operator("t2i.backend_stop", text="Stop", icon="PAUSE")
        if jobs.message:
            box = layout.box()
            box.alert = jobs.status == Status.ERROR
            _wrapped_label(box, jobs.message)
        for level, message in queue_driver.recent_reports()[-2:]:
            layout.label(text=message[:80], icon="ERROR" if level == "ERROR" else "INFO")
        row = layout.row(align=True)
        row.operator("t2i.open_log", text="Log", icon="TEXT").which = "backend"
        row.operator("preferences.addon_show", text="Set Up",
                     icon="PREFERENCES").module = ADDON_ID


def draw_status_bar(self, _context: bpy.types.Context) -> None:
    """The running job's progress in the status bar (appended to Blender's header)."""
    jobs = get_job_queue()
    if not jobs.busy:
        return
    self.layout.separator()
    self.layout.progress(factor=jobs.progress, type="RING", text=f"T2I: {_progress_text(jobs)}")


CLASSES = (T2I_UL_history, T2I_UL_loras, T2I_PT_main, T2I_PT_models, T2I_PT_settings,
           T2I_PT_depth, T2I_PT_animation, T2I_PT_output, T2I_PT_projection, T2I_PT_history,
           T2I_PT_backend)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
