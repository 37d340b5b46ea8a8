"""The environment another Python runs in (the backend, pip, Check Backend)."""

from __future__ import annotations

import os
from collections.abc import Iterable

# Blender's own Python settings would point another interpreter at Blender's modules.
_BLENDER_ONLY = ("PYTHONPATH", "PYTHONHOME")


def python_environment(extra: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """This process's environment without Blender's Python settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _BLENDER_ONLY}
    env.update(extra)
    return env


def hf_cache_environment(folder: str) -> list[tuple[str, str]]:
    """The variables that make the backend use `folder` as its Hugging Face cache.

    The preference names the Hugging Face home (`~/.cache/huggingface` by default, models in its
    `hub/` folder), but a user may also point at the hub folder itself (`.../huggingface/hub`,
    where the `models--org--name` folders are): both work. HF_HUB_CACHE is always set, because
    it outranks HF_HOME, and one left in the user's environment would otherwise win."""
    path = os.path.expanduser(folder)
    if _is_hub_folder(path):
        return [("HF_HUB_CACHE", path)]
    return [("HF_HOME", path), ("HF_HUB_CACHE", os.path.join(path, "hub"))]


def _is_hub_folder(path: str) -> bool:
    if os.path.isdir(os.path.join(path, "hub")):
        return False  # a Hugging Face home
    if os.path.basename(os.path.normpath(path)) == "hub":
        return True
    try:
        names = os.listdir(path)
    except OSError:
        return False  # not there yet: taken as the home the preference asks for
    return any(name.startswith(("models--", "datasets--", "spaces--")) or name == ".locks"
               for name in names)
