"""Real Blender (the bpy module) with this repository built and installed as an extension.

The extension zip is built with Blender's own tool and installed into a scratch
BLENDER_USER_RESOURCES, exactly as a user installs it. Every test starts from an empty file.
Tests that run jobs need a backend Python with torch: T2I_BACKEND_PYTHON, or this interpreter
when it has torch (the Makefile sets it for the Blender 4.2 run).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_USER = tempfile.mkdtemp(prefix="t2i-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = _USER  # before bpy is imported

import bpy  # noqa: E402

from devtools import extension  # noqa: E402

_DIST = Path(tempfile.mkdtemp(prefix="t2i-dist-"))
MODULE = extension.install(extension.build(_DIST))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    addon = sys.modules.get(MODULE)
    if addon is not None:
        addon.t2i_core.job_queue.reset_job_queue(wait=True)
    shutil.rmtree(_USER, ignore_errors=True)
    shutil.rmtree(_DIST, ignore_errors=True)


def backend_python() -> str | None:
    python = os.environ.get("T2I_BACKEND_PYTHON")
    if python:
        return python
    return sys.executable if importlib.util.find_spec("torch") else None


@pytest.fixture
def addon():
    """The installed extension's top-level module (bl_ext.user_default.blender_t2i)."""
    return sys.modules[MODULE]


@pytest.fixture
def scene(tmp_path):
    """An empty file's scene (temp output folder: the file is unsaved)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


@pytest.fixture
def backend(addon):
    """Points the preferences at a backend Python that has torch."""
    python = backend_python()
    if python is None:
        pytest.fail("no backend Python: set T2I_BACKEND_PYTHON to a Python with torch")
    bpy.context.preferences.addons[MODULE].preferences.backend_python = python
    yield python
    # looked up again: a test that disabled and enabled the add-on has new preferences (the
    # old struct is freed, and writing to it crashes Blender)
    bpy.context.preferences.addons[MODULE].preferences.backend_python = ""
