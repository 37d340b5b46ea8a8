"""Test-wide set-up: make the repository importable as a package without running its
__init__ (which needs bpy), so pure modules with relative imports load in any Python.

    from t2i_src.compositor import encode
    from t2i_src.blender_t2i import jobs
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC_PACKAGE = "t2i_src"

if SRC_PACKAGE not in sys.modules:
    package = types.ModuleType(SRC_PACKAGE)
    package.__path__ = [str(ROOT)]  # a package whose __init__ is never executed
    sys.modules[SRC_PACKAGE] = package
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `backend` as the backend process sees it; `devtools`
