"""Where a job's files go and how they become Blender images."""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy

DEPTH_IMAGE = "T2I Depth"
RESULT_IMAGE = "T2I Result"


def output_folder() -> Path:
    """`//t2i/` beside the saved .blend, or a temp folder while the file is unsaved."""
    if bpy.data.filepath:
        folder = Path(bpy.path.abspath("//t2i"))
    else:
        folder = Path(tempfile.gettempdir()) / "blender_t2i"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
