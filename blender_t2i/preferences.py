"""Add-on preferences: where the backend's Python is, where its log and model cache live."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import StringProperty

from .client import BackendConfig

# The extension's package (bl_ext.<repo>.blender_t2i): preferences are registered under it.
ADDON_ID = __package__.rpartition(".")[0]
BACKEND_PYTHON_ENV = "T2I_BACKEND_PYTHON"


class T2IPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_python: StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="A Python interpreter with torch and diffusers that runs the generator "
                    f"(empty: the {BACKEND_PYTHON_ENV} environment variable)")

    def draw(self, _context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_python")
        layout.label(text=f"Backend log: {user_path('logs') / 'backend.log'}")


def user_path(sub: str) -> Path:
    """A folder in the extension's user data (the extension folder itself is read-only)."""
    return Path(bpy.utils.extension_path_user(ADDON_ID, path=sub, create=True))


def backend_config(context: bpy.types.Context) -> BackendConfig:
    prefs = context.preferences.addons[ADDON_ID].preferences
    python = bpy.path.abspath(prefs.backend_python) if prefs.backend_python else \
        os.environ.get(BACKEND_PYTHON_ENV, "")
    return BackendConfig(python=python, cache_dir=user_path("models"),
                         log_path=user_path("logs") / "backend.log")


def register() -> None:
    bpy.utils.register_class(T2IPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(T2IPreferences)
