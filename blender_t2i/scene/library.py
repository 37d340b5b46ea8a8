"""The session's model library: what the preferences' HF cache, model folders, A1111 and
ComfyUI installs hold (t2i_core.model_library), scanned on first use and on Rescan, with the
scan cache in the extension's user folder; or, when the backend is a ComfyUI server, the
server's own lists, which the bridge sends when it connects and on Rescan. The panel's pick
searches and warnings read it."""

from __future__ import annotations

import os
from pathlib import Path

import bpy

from ...t2i_core import model_library as lib
from ...t2i_core.job_queue import get_job_queue
from .preferences import addon_preferences, backend_config, user_path, uses_comfyui

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


def server_library() -> lib.Library:
    """The ComfyUI server's lists as the bridge last sent them (empty until it has)."""
    reply = get_job_queue().models
    return lib.Library(
        entries=[lib.ModelEntry.from_json(item) for item in reply.get("entries", ())
                 if isinstance(item, dict)],
        skipped=[(item.get("path", ""), item.get("reason", ""))
                 for item in reply.get("skipped", ()) if isinstance(item, dict)])


def rescan(context: bpy.types.Context | None = None) -> lib.Library:
    """Scan now (only changed files are read again); OSError when the cache cannot be
    written. With a ComfyUI server the bridge is asked again (launched if needed: a
    BackendFailure says why it cannot be) and the lists arrive with its answer."""
    if uses_comfyui(context):
        get_job_queue().request_models(backend_config(context))
        return server_library()
    _state["library"] = lib.scan(roots(context), lib.ScanCache(cache_file()))
    return _state["library"]


def current(context: bpy.types.Context | None = None) -> lib.Library:
    """The last scan, scanning first if this session has none."""
    if uses_comfyui(context):
        return server_library()
    if "library" not in _state:
        try:
            return rescan(context)
        except OSError:  # no writable user folder: scan without a cache
            _state["library"] = lib.scan(roots(context))
    return _state["library"]


def scanned() -> lib.Library | None:
    """The last scan, or None (drawing never scans)."""
    if uses_comfyui():
        return server_library()
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
        elif item.source == lib.SERVER_SOURCE and not item.families(pick):
            fits = True  # the server's name does not say: ComfyUI refuses a misfit itself
            label = f"{item.name} (on the server)"
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
