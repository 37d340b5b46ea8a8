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
