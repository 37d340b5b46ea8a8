"""The session's model library: what the preferences' HF cache, model folders, A1111 and
ComfyUI installs hold (t2i_core.model_library), scanned on first use and on Rescan, with the
scan cache in the extension's user folder. The panel's pick searches and warnings read it."""

from __future__ import annotations

import os
from pathlib import Path

import bpy

from ...t2i_core import model_library as lib
from .preferences import addon_preferences, user_path

_state: dict[str, lib.Library] = {}


def roots(context: bpy.types.Context | None = None) -> lib.Roots:
    """The preferences' roots; where one is not set, the environment's (T2I_A1111_ROOT,
    T2I_COMFYUI_ROOT, T2I_MODEL_FOLDERS, HF_HUB_CACHE/HF_HOME: a farm or a batch run)."""
    prefs = addon_preferences(context)
    env = lib.roots_from_env()
    hf_cache = env.hf_cache
    if prefs.hf_cache:  # the cache folder itself, or the HF home that holds it (hub/)
        chosen = Path(bpy.path.abspath(prefs.hf_cache))
        hf_cache = str(chosen / "hub" if (chosen / "hub").is_dir() else chosen)
    folders = tuple(bpy.path.abspath(f.path) for f in prefs.model_folders if f.path)
    return lib.Roots(
        hf_cache=hf_cache, model_folders=folders or env.model_folders,
        a1111=bpy.path.abspath(prefs.a1111_root) if prefs.a1111_root else env.a1111,
        comfyui=bpy.path.abspath(prefs.comfyui_root) if prefs.comfyui_root else env.comfyui)


def cache_file() -> Path:
    return user_path("library") / "scan.json"


def rescan(context: bpy.types.Context | None = None) -> lib.Library:
    """Scan now (only changed files are read again); OSError when the cache cannot be
    written."""
    _state["library"] = lib.scan(roots(context), lib.ScanCache(cache_file()))
    return _state["library"]


def current(context: bpy.types.Context | None = None) -> lib.Library:
    """The last scan, scanning first if this session has none."""
    if "library" not in _state:
        try:
            return rescan(context)
        except OSError:  # no writable user folder: scan without a cache
            _state["library"] = lib.scan(roots(context))
    return _state["library"]


def scanned() -> lib.Library | None:
    """The last scan, or None (drawing never scans)."""
    return _state.get("library")


def forget() -> None:
    _state.clear()


def search(pick: str, family: str, edit_text: str) -> list[tuple[str, str]]:
    """Candidates for a pick's search field: entries of the pick's role, those that fit the
    family first, each (reference, what it is)."""
    roles = {"base": (lib.CHECKPOINT, lib.DIFFUSION_MODEL), "controlnet": (lib.CONTROLNET,),
             "vae": (lib.VAE,), "lora": (lib.LORA,)}[pick]
    needle = edit_text.lower().strip()
    found = []
    for item in current().entries:
        if item.role not in roles:
            continue
        if needle and needle not in item.reference.lower():
            continue
        if pick == "lora":
            fits = lib.lora_fits(item, lib.family_base_arch(family)) is not False
            label = item.label + ("" if fits else ": for another base")
        else:
            fits = family in item.families(pick)
            label = item.label + ("" if fits else ": another family")
        found.append((not fits, item.name.lower(), item.reference, label))
    found.sort()
    return [(reference, label) for _fits, _name, reference, label in found]


def path_of(reference: str) -> str:
    """A pick as the job sends it: an absolute path for files ('//' resolved), else as is."""
    if reference.startswith("//"):
        return bpy.path.abspath(reference)
    return os.path.expanduser(reference)
