"""Drawing the preferences: the backend (a local interpreter or a ComfyUI server), install/check
with live output, models."""

from __future__ import annotations

import bpy

from ...t2i_core import backend_install, backend_kinds
from ...t2i_core.backend_install import SetupRuns
from ...t2i_core.protocol import working_memory_gib
from ..scene.preferences import T2IPreferences, managed_venv, resolve_backend_python, user_path


class T2I_UL_model_folders(bpy.types.UIList):
    def draw_item(self, _context, layout, _data, item, _icon, _active_data, _active_prop,
                  _index=0, _flt_flag=0):
        layout.prop(item, "path", text="", emboss=False, icon="FILE_FOLDER")


def draw_preferences(prefs, layout: bpy.types.UILayout, _context: bpy.types.Context) -> None:
    layout.row().prop(prefs, "backend_kind", expand=True)
    if prefs.backend_kind == backend_kinds.COMFYUI:
        _draw_comfyui(prefs, layout)
    else:
        _draw_backend(prefs, layout)
        _draw_install(prefs, layout)
    _draw_models(prefs, layout)
    box = layout.box()
    box.label(text="Defaults", icon="PREFERENCES")
    row = box.row()
    row.prop(prefs, "device")
    row.prop(prefs, "memory_mode")
    row = box.row()
    row.prop(prefs, "max_megapixels")
    row.label(text=f"about {working_memory_gib(prefs.max_megapixels):.1f} GiB of working "
                   "memory beyond the model (SD 1.5, fp16)")


def _draw_backend(prefs, layout: bpy.types.UILayout) -> None:
    box = layout.box()
    box.label(text="Backend", icon="CONSOLE")
    box.prop(prefs, "backend_python")
    python, source = resolve_backend_python(prefs)
    col = box.column(align=True)
    if python:
        col.label(text=f"Using {python} ({source})")
    else:
        col.alert = True
        col.label(text="No backend Python yet: install one below or set an interpreter",
                  icon="ERROR")
    row = box.row()
    row.operator("t2i.check_backend", icon="CHECKMARK")
    row.operator("t2i.open_log", text="Backend Log", icon="TEXT").which = "backend"
    report = SetupRuns.check_report
    check = SetupRuns.check
    if check is not None and not check.done:
        box.label(text="Checking...", icon="SORTTIME")
    elif report is not None:
        col = box.column(align=True)
        col.alert = not report.ok
        col.label(text=report.summary, icon="CHECKMARK" if report.ok else "ERROR")
        if report.next_step:
            col.label(text=report.next_step)


def _draw_comfyui(prefs, layout: bpy.types.UILayout) -> None:
    box = layout.box()
    box.label(text="ComfyUI Server", icon="URL")
    box.prop(prefs, "comfyui_url")
    box.prop(prefs, "comfyui_token")
    box.prop(prefs, "comfyui_headers")
    col = box.column(align=True)
    col.scale_y = 0.8
    try:
        url = backend_kinds.check_server_url(prefs.comfyui_url)
        backend_kinds.parse_headers(prefs.comfyui_headers)
    except ValueError as exc:
        col.alert = True
        col.label(text=str(exc), icon="ERROR")
    else:
        remote = not url.split("://", 1)[1].startswith(("127.", "localhost", "[::1]"))
        if remote:
            col.label(text="Each job sends its depth, render, mask and prompts to this "
                           "server", icon="INFO")
            if url.startswith("http://"):
                col.label(text="Plain http: the token and pictures cross the network "
                               "unencrypted", icon="ERROR")
    col.label(text="Models come from the server's folders: pick them in the panel's Models")
    row = box.row()
    row.operator("t2i.backend_start", text="Connect", icon="LINKED")
    row.operator("t2i.open_log", text="Bridge Log", icon="TEXT").which = "backend"


def _draw_install(prefs, layout: bpy.types.UILayout) -> None:
    box = layout.box()
    box.label(text="Install Backend", icon="IMPORT")
    box.label(text=f"Creates {managed_venv()} with torch {backend_install.TORCH_VERSION} "
                   "and diffusers")
    row = box.row()
    row.prop(prefs, "torch_flavour", expand=True)
    box.prop(prefs, "wheel_folder")
    run = SetupRuns.install
    row = box.row()
    if run is not None and not run.done:
        row.operator("t2i.cancel_install", icon="CANCEL")
    else:
        row.operator("t2i.install_backend", icon="IMPORT")
    row.operator("t2i.open_log", text="Install Log", icon="TEXT").which = "install"
    if run is not None:
        col = box.column(align=True)
        col.scale_y = 0.8
        if run.done:
            ok, message = run.report()
            col.alert = not ok
            col.label(text=message, icon="CHECKMARK" if ok else "ERROR")
        for line in run.tail[-6:]:
            col.label(text=line[:160])
    if not bpy.app.online_access and not prefs.wheel_folder:
        box.label(text="Online access is off (Preferences > System): installing needs it, "
                       "or a wheel folder", icon="INFO")
    box.label(text=f"Logs: {user_path('logs')}")


def _draw_models(prefs, layout: bpy.types.UILayout) -> None:
    box = layout.box()
    box.label(text="Models", icon="FILE_BLEND")
    box.prop(prefs, "hf_cache")
    box.label(text="Also search these folders (A1111 / ComfyUI models, .safetensors files):")
    row = box.row()
    row.template_list("T2I_UL_model_folders", "", prefs, "model_folders", prefs,
                      "model_folder_index", rows=2)
    col = row.column(align=True)
    col.operator("t2i.model_folder_add", icon="ADD", text="")
    col.operator("t2i.model_folder_remove", icon="REMOVE", text="")
    box.prop(prefs, "a1111_root")
    box.prop(prefs, "comfyui_root")
    box.label(text="The sidebar's Models panel lists what these hold (Rescan after changes)")


def _draw(prefs: T2IPreferences, context: bpy.types.Context) -> None:
    draw_preferences(prefs, prefs.layout, context)


def register() -> None:
    """Before scene.preferences registers: Blender looks for draw() at registration."""
    T2IPreferences.draw = _draw
    bpy.utils.register_class(T2I_UL_model_folders)


def unregister() -> None:
    bpy.utils.unregister_class(T2I_UL_model_folders)
