"""Test-wide set-up: make the repository importable as a package without running its
__init__ (which needs bpy), so pure modules with relative imports load in any Python.

    from t2i_src.compositor import encode
    from t2i_src.blender_t2i import jobs
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `backend` as the backend process sees it; `devtools`

from devtools import source_package  # noqa: E402

source_package.register()
