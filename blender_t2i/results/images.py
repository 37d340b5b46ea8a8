"""Where a job's files go and how they become Blender images."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import bpy

RESULT_TAG = "t2i_result"  # custom property on images the add-on made
DEPTH_IMAGE = "T2I Depth"
RESULT_IMAGE = "T2I Result"  # always the latest result
PREVIEW_IMAGE = "T2I Preview"  # the running job's step previews
DEFAULT_OUTPUT_DIR = "//t2i/"


_session_temp: Path | None = None


def _temp_folder() -> Path:
    """This session's own folder for unsaved files: made by mkdtemp (0700, a new name each
    session), not a fixed /tmp path another user could create or link first."""
    global _session_temp
    if _session_temp is None or not _session_temp.is_dir():
        _session_temp = Path(tempfile.mkdtemp(prefix="blender_t2i-"))
    return _session_temp


def output_folder(scene: bpy.types.Scene | None = None) -> Path:
    """The scene's output folder (default `//t2i/` beside the saved .blend); a temp folder
    while a `//` folder has no saved .blend to be relative to."""
    setting = DEFAULT_OUTPUT_DIR
    if scene is not None and scene.t2i.output_dir:
        setting = scene.t2i.output_dir
    if setting.startswith("//") and not bpy.data.filepath:
        folder = _temp_folder()
    else:
        folder = Path(bpy.path.abspath(setting))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def is_temporary(path: Path) -> bool:
    """Files in the temp folder do not outlive the session: their images get packed."""
    return _temp_folder() in Path(path).resolve().parents


def _file_path(path: Path) -> str:
    """Relative to the .blend when it is saved (the project folder can move)."""
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(str(path))
        except ValueError:  # another drive (Windows)
            pass
    return str(path)


def show_image(name: str, path: Path) -> bpy.types.Image:
    """Load `path` into the image datablock `name` (reusing it, so Image Editors showing it
    update). Packed while the .blend is unsaved: temp files do not outlive the session."""
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(str(path), check_existing=False)
        image.name = name
    else:
        if image.packed_file is not None:
            image.unpack(method="REMOVE")
        image.source = "FILE"
        image.filepath = str(path)
        image.reload()
    if not bpy.data.filepath:
        image.pack()
    return image


def result_image(path: Path, preset: str, seed: int, stem: str) -> bpy.types.Image:
    """A new image datablock for one result, named with its preset and seed, pointing at its
    file (relative to the .blend), packed when the file is in the temp folder."""
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = f"T2I {preset} s{seed}"
    image.filepath = _file_path(path)
    image[RESULT_TAG] = stem
    if is_temporary(path) or not bpy.data.filepath:
        image.pack()
    return image


def show_preview(source: Path) -> bpy.types.Image:
    """Copy a step preview (the backend keeps only its newest few) into our own file and show
    it as "T2I Preview"; never packed, it is replaced by the next step."""
    target = _temp_folder() / f"preview-{id(bpy.data)}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is None:
        image = bpy.data.images.load(str(target), check_existing=False)
        image.name = PREVIEW_IMAGE
    else:
        image.filepath = str(target)
        image.reload()
    return image
