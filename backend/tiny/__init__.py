"""Tiny random-weight models for every family, built locally on first use.

The `tiny` weights value in a model spec (the offline `tiny-sd15-depth` preset) and the tests use
the same builders, so both run the real loaders, pipelines and protocol with no download. They
prove plumbing, not image quality: the pictures are noise.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("blender_t2i.backend")

TINY_VERSION = 6  # bump when a builder changes, so old caches are rebuilt
_MARKER = "complete.json"


def build(family: str, folder: Path) -> dict[str, Path]:
    """Write the family's tiny model into `folder`; returns role -> folder."""
    from .models import BUILDERS

    try:
        builder = BUILDERS[family]
    except KeyError:
        raise ValueError(f"no tiny model for family '{family}'") from None
    folder.mkdir(parents=True, exist_ok=True)
    return builder(folder)


def ensure_tiny(family: str, cache_dir: Path) -> dict[str, Path]:
    """The family's tiny model in `cache_dir`, built on first use. Built in a temp folder and
    renamed into place, so a crash mid-build never leaves a half-written model behind."""
    target = cache_dir / f"tiny-{family}-v{TINY_VERSION}"
    marker = target / _MARKER
    if marker.exists():
        return {role: target / name for role, name in json.loads(marker.read_text()).items()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_dir))
    try:
        roles = build(family, staging)
        names = {role: path.relative_to(staging).as_posix() for role, path in roles.items()}
        (staging / _MARKER).write_text(json.dumps(names))
        if target.exists():  # an incomplete earlier build
            shutil.rmtree(target)
        staging.rename(target)
        log.info("built the tiny %s model in %s", family, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return {role: target / name for role, name in names.items()}
