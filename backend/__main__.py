"""`python -m backend [--cache-dir DIR]`: serve the JSON-lines protocol on stdin/stdout."""

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
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where locally built models (tiny-sd15-depth) live")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    # Models come from the local cache or folders only; nothing is fetched while serving.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .server import main as serve

    cache_dir = args.cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    return serve(cache_dir)


if __name__ == "__main__":
    sys.exit(main())
