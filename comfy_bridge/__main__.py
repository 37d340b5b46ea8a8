"""`python -m comfy_bridge --url URL`: serve the add-on's protocol v1 against a ComfyUI server.
The token and extra headers come from the environment (T2I_COMFYUI_TOKEN, T2I_COMFYUI_HEADERS),
never the command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "blender_t2i"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m comfy_bridge", description=__doc__)
    parser.add_argument("--url", required=True, help="the ComfyUI server, http://host:8188")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="the add-on's cache folder (accepted like the local backend's)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .server import main as serve

    return serve(args.url, args.cache_dir or default_cache_dir())


if __name__ == "__main__":
    sys.exit(main())
