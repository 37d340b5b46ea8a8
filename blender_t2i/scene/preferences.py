"""Add-on preferences: which backend runs jobs (a local process with its Python, or a ComfyUI
server), model folders, defaults."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy
from bpy.props import (
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    StringProperty,
)

from ...t2i_core import backend_install, backend_kinds
from ...t2i_core.backend_process import BackendConfig, BackendFailure
from ...t2i_core.environment import hf_cache_environment
from ...t2i_core.protocol import (
    A1111_ROOT_ENV,
    COMFYUI_ROOT_ENV,
    DEFAULT_MAX_MEGAPIXELS,
    MAX_MEGAPIXELS_ENV,
    MAX_SIDE,
    MEMORY_MODES,
    MODEL_FOLDERS_ENV,
    ErrorCode,
)

# The extension's package (bl_ext.<repo>.blender_t2i): preferences are registered under it.
ADDON_ID = __package__.removesuffix(".blender_t2i.scene")  # bl_ext.<repo>.blender_t2i
BACKEND_PYTHON_ENV = "T2I_BACKEND_PYTHON"
MANAGED_VENV = "backend-venv"

_DEVICES = [("auto", "Automatic", "The first GPU, else the CPU"),
            ("cuda", "CUDA", "NVIDIA GPU"), ("mps", "Metal", "Apple GPU"),
            ("cpu", "CPU", "Slow, but works everywhere")]
_MEMORY_DESCRIPTIONS = {
    "auto": "Pick by the model's size and the GPU's memory",
    "full": "Everything on the GPU: fastest, needs the most memory",
    "model_offload": "Move each model part to the GPU only while it runs",
    "group_offload": "Stream layer groups to the GPU: slow, fits big models in little memory",
    "fp8": "Store weights in 8-bit float: about half the memory, slightly lower quality",
}
_MEMORY_MODES = [(mode, mode.replace("_", " ").title(), _MEMORY_DESCRIPTIONS.get(mode, ""))
                 for mode in MEMORY_MODES]


class T2IModelFolder(bpy.types.PropertyGroup):
    path: StringProperty(name="Folder", subtype="DIR_PATH",
                         description="A folder of models (A1111 models/Stable-diffusion, "
                                     "ComfyUI models/checkpoints or controlnet, ...)")


class T2IPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_kind: EnumProperty(
        name="Backend", default=backend_kinds.LOCAL,
        items=[(backend_kinds.LOCAL, "Local Process",
                "Run the models here, in a Python with torch and diffusers"),
               (backend_kinds.COMFYUI, "ComfyUI Server",
                "Send the jobs to a running ComfyUI, on this machine or another: it runs "
                "its own models; nothing is installed here")],
        description="What runs the jobs")
    comfyui_url: StringProperty(
        name="Server URL", default=backend_kinds.DEFAULT_COMFYUI_URL,
        description="The ComfyUI server's address, as ComfyUI prints it at start "
                    "(http://127.0.0.1:8188 on this machine; https://... behind a proxy)")
    comfyui_token: StringProperty(
        name="Token", subtype="PASSWORD",
        description="Sent as 'Authorization: Bearer <token>' to a server behind an "
                    "authenticating proxy (empty: none; the T2I_COMFYUI_TOKEN environment "
                    "variable also works and is not saved with the preferences)")
    comfyui_headers: StringProperty(
        name="Extra Headers",
        description="Other headers the proxy asks for, 'Name: value' pairs separated by ';'")
    backend_python: StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="A Python interpreter with torch and diffusers that runs the generator "
                    f"(empty: the {BACKEND_PYTHON_ENV} environment variable, else the backend "
                    "environment Install Backend creates)")
    torch_flavour: EnumProperty(
        name="Torch", default="cpu" if sys.platform == "darwin" else "cuda",
        items=[("cuda", "CUDA (NVIDIA)", "torch built for CUDA 12.8 from PyTorch's index"),
               ("cpu", "CPU / Apple", "torch from PyPI (CPU; Metal on Apple silicon)")],
        description="Which torch build Install Backend installs")
    wheel_folder: StringProperty(
        name="Wheel Folder", subtype="DIR_PATH",
        description="Install from this folder of wheels instead of the internet (offline)")
    hf_cache: StringProperty(
        name="Hugging Face Cache", subtype="DIR_PATH",
        description="The Hugging Face home folder, whose hub/ folder holds downloaded models "
                    "(empty: the default, ~/.cache/huggingface or HF_HOME). Pointing at the "
                    "hub folder itself also works")
    model_folders: CollectionProperty(type=T2IModelFolder)
    model_folder_index: IntProperty()
    a1111_root: StringProperty(
        name="A1111 / Forge", subtype="DIR_PATH",
        description="Your Stable Diffusion WebUI (A1111 or Forge) folder, the one holding "
                    "models/: its checkpoints, ControlNets, LoRAs and VAEs are listed")
    comfyui_root: StringProperty(
        name="ComfyUI", subtype="DIR_PATH",
        description="Your ComfyUI folder, the one holding models/ and extra_model_paths.yaml: "
                    "its checkpoints, diffusion models, ControlNets, LoRAs and VAEs are listed")
    device: EnumProperty(name="Device", items=_DEVICES, default="auto")
    memory_mode: EnumProperty(name="Memory", items=_MEMORY_MODES, default="auto")
    max_megapixels: FloatProperty(
        name="Largest Image", default=DEFAULT_MAX_MEGAPIXELS, min=0.1,
        max=MAX_SIDE * MAX_SIDE / 1e6, soft_max=16.8, precision=1, unit="NONE",
        description="The largest job the backend takes, in megapixels (2048 x 2048 is 4.2): "
                    "larger ones are refused before anything renders. The preferences say "
                    "about how much memory the limit implies")

    # draw() is given by ui/preferences_ui.py before registration: drawing lives with the UI,
    # and this layer does not import the one above it.


def addon_preferences(context: bpy.types.Context | None = None) -> T2IPreferences:
    context = context or bpy.context
    return context.preferences.addons[ADDON_ID].preferences


def user_path(sub: str) -> Path:
    """A folder in the extension's user data (the extension folder itself is read-only)."""
    return Path(bpy.utils.extension_path_user(ADDON_ID, path=sub, create=True))


def managed_venv() -> Path:
    """The backend environment Install Backend creates by default."""
    return user_path(MANAGED_VENV)


def resolve_backend_python(prefs: T2IPreferences) -> tuple[str, str]:
    """(interpreter, where the setting came from): the preference, the environment variable,
    or the installed backend environment; ("", "") when none is set up."""
    if prefs.backend_python:
        return bpy.path.abspath(prefs.backend_python), "preferences"
    if os.environ.get(BACKEND_PYTHON_ENV):
        return os.environ[BACKEND_PYTHON_ENV], BACKEND_PYTHON_ENV
    managed = backend_install.venv_python(
        Path(bpy.utils.extension_path_user(ADDON_ID, path=MANAGED_VENV, create=False)))
    if managed.exists():
        return str(managed), "installed backend"
    return "", ""


def uses_comfyui(context: bpy.types.Context | None = None) -> bool:
    return addon_preferences(context).backend_kind == backend_kinds.COMFYUI


def backend_config(context: bpy.types.Context) -> BackendConfig:
    """How the session's backend is launched; BackendFailure when the settings cannot work."""
    prefs = addon_preferences(context)
    if prefs.backend_kind == backend_kinds.COMFYUI:
        return comfyui_config(prefs)
    python, _source = resolve_backend_python(prefs)
    env: list[tuple[str, str]] = []
    if prefs.hf_cache:
        env.extend(hf_cache_environment(bpy.path.abspath(prefs.hf_cache)))
    env.append((MAX_MEGAPIXELS_ENV, f"{prefs.max_megapixels:g}"))
    folders = [bpy.path.abspath(item.path) for item in prefs.model_folders if item.path]
    if folders:
        env.append((MODEL_FOLDERS_ENV, os.pathsep.join(folders)))
    for variable, root in ((A1111_ROOT_ENV, prefs.a1111_root),
                           (COMFYUI_ROOT_ENV, prefs.comfyui_root)):
        if root:
            env.append((variable, bpy.path.abspath(root)))
    return BackendConfig(python=python, cache_dir=user_path("models"),
                         log_path=user_path("logs") / "backend.log", env=tuple(env))


def comfyui_config(prefs: T2IPreferences) -> BackendConfig:
    """The bridge to the preferences' ComfyUI server. It is stdlib only, so Blender's own
    Python runs it: pointing the add-on at a remote server installs nothing."""
    try:
        args, env = backend_kinds.comfyui_launch(prefs.comfyui_url, prefs.comfyui_token,
                                                 prefs.comfyui_headers)
    except ValueError as exc:
        raise BackendFailure(ErrorCode.BACKEND_NOT_CONFIGURED, str(exc)) from None
    return BackendConfig(python=sys.executable, cache_dir=user_path("models"),
                         log_path=user_path("logs") / "backend.log", env=env,
                         module=backend_kinds.BRIDGE_MODULE, args=args)


def register() -> None:
    bpy.utils.register_class(T2IModelFolder)
    bpy.utils.register_class(T2IPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(T2IPreferences)
    bpy.utils.unregister_class(T2IModelFolder)
