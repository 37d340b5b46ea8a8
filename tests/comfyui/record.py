"""`python -m tests.comfyui.record [CASE...]` (`make record-comfyui`): run the live cases (all, or
the named ones) against the real ComfyUI named by T2I_TEST_COMFYUI / T2I_TEST_COMFYUI_PYTHON
and rewrite their recordings."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .comfy_server import find_comfyui
from .conftest import RECORD_ENV
from .recording import RECORDINGS


def main() -> int:
    found = find_comfyui()
    if isinstance(found, str):
        print(f"record-comfyui: {found}", file=sys.stderr)
        return 2
    cases = sys.argv[1:]  # none: all of them
    if not cases:
        shutil.rmtree(RECORDINGS / "shared", ignore_errors=True)  # only what is used stays
    os.environ[RECORD_ENV] = "1"
    import pytest

    here = Path(__file__).resolve().parent
    select = ["-k", " or ".join(f"[{case}]" for case in cases)] if cases else []
    return pytest.main([str(here / "test_live.py"), "-x", "-q", *select])


if __name__ == "__main__":
    sys.exit(main())
