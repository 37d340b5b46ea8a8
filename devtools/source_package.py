"""The repository as an importable package, `t2i_src`, without running its __init__ (which
registers with bpy): pure modules with relative imports then load in any Python, and the
benches import the capture code beside a bpy they set up themselves.

    from t2i_src.compositor import capture
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

SRC_PACKAGE = "t2i_src"
ROOT = Path(__file__).resolve().parent.parent


def register() -> None:
    if SRC_PACKAGE not in sys.modules:
        package = types.ModuleType(SRC_PACKAGE)
        package.__path__ = [str(ROOT)]  # a package whose __init__ is never executed
        sys.modules[SRC_PACKAGE] = package
