"""The sidebar panel (View3D > Sidebar > T2I) and the status bar's job progress.

Sections are sub-panels, so they collapse and reorder like Blender's own. Drawing only reads:
the queue's status comes from job_queue, everything else from `scene.t2i`.
"""

from __future__ import annotations

import bpy

from ...t2i_core import job_request
from ...t2i_core.job_queue import JobQueue, Status, get_job_queue
from ..generation import queue_driver, scene_job
from ..results import images as results
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


CLASSES = (T2I_UL_history, T2I_PT_main, T2I_PT_settings, T2I_PT_depth, T2I_PT_output,
           T2I_PT_history, T2I_PT_backend)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
